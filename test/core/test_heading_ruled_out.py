"""A fix whose heading the given heading's prior rules out is doubted (issue 19,
:meth:`WiderLook._heading_doubted`; :data:`NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS` where the
plan is not a rectangle, r38-03): a dev frame published confident outside its 99.9 %
ellipsoid is withheld, its covariance the room's; a right fix and a shoebox's are as they
were."""
from dataclasses import replace

import numpy as np
import pytest

from echoloc_ros.core.physics import wider_look
from echoloc_ros.core.withhold import doubted
from echoloc_ros.offline.evaluation import CHI2_999_3DOF
from dev_frames_testing import (HEADING_STD_RAD, assert_right_fix_kept, dev_frame, localized,
                                shipped)


@pytest.mark.long
def test_a_fix_whose_heading_the_prior_rules_out_is_doubted(array, chirp, processor,
                                                            monkeypatch):
    """Frame 7 of dev room 5 (seed 14, 10 dB, an L plan): the fix sat 11 cm off with
    confidence 1 and a 0.8 mm sigma across the error (d2 about 5000), its heading 4.3 of the
    given heading's standard deviations from it (3.8 deg from the true one); the wider look
    found nothing better. Doubted, it is withheld and its covariance holds the truth."""
    loc, frame = dev_frame(5, 14, 7, array, chirp, processor, snr_db=10.0)
    assert not loc._shoebox
    before, old_error, old_d2 = localized(loc, frame, wider_look,
                                          'NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS', None,
                                          monkeypatch)
    assert before.confidence == 1.0
    assert not doubted(before)
    assert np.linalg.norm(old_error) > 0.05
    assert old_d2 > CHI2_999_3DOF
    sigmas = wider_look.NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS
    assert abs(before.yaw_rad - frame[2]) >= sigmas * HEADING_STD_RAD
    # What ships in a plan that is not a rectangle.
    estimate, error, d2 = shipped(loc, frame)
    assert estimate.confidence == 0.0
    assert doubted(estimate)
    assert d2 < CHI2_999_3DOF
    # The place and the evidence are the fix's: only the doubt changed.
    np.testing.assert_array_equal(estimate.position_m, before.position_m)
    assert estimate.score == before.score


@pytest.mark.long
def test_a_heading_within_the_prior_keeps_the_fix(array, chirp, processor):
    """The rule reads the fix's heading against the given one: within
    :data:`NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS` standard deviations (or with the heading
    given exact) the fix is returned as it is; beyond, doubted."""
    loc, (features, _, heading) = dev_frame(5, 14, 7, array, chirp, processor, snr_db=10.0)
    proposal = loc.propose(features, heading, None, HEADING_STD_RAD)
    estimate = loc.finish(proposal)
    rule = wider_look.NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS
    for sigmas, kept in ((rule - 0.1, True), (rule + 0.1, False)):
        moved = replace(estimate, yaw_rad=heading + sigmas * HEADING_STD_RAD)
        out = loc._heading_doubted(proposal, moved)
        assert (out is moved) == kept
        assert out.confidence == (moved.confidence if kept else 0.0)
    exact = loc.propose(features, heading, None, 0.0)
    far = replace(estimate, yaw_rad=heading + 0.5)
    assert loc._heading_doubted(exact, far) is far


@pytest.mark.long
def test_a_right_fix_keeps_its_place_and_sigma(array, chirp, processor, monkeypatch):
    """A right fix in a plan that is not a rectangle (dev seed 16 room 1, a T plan, frame 1 at
    10 dB: its heading 1.5 sigma from the given one) is the same to the bit with the rule on
    or off."""
    loc, frame = dev_frame(1, 16, 1, array, chirp, processor, snr_db=10.0)
    assert not loc._shoebox
    before, old_error, _ = localized(loc, frame, wider_look,
                                     'NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS', None,
                                     monkeypatch)
    after, error, d2 = localized(loc, frame, wider_look,
                                 'NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS', 3.5, monkeypatch)
    assert np.linalg.norm(old_error) < 0.01
    assert d2 < CHI2_999_3DOF
    np.testing.assert_array_equal(after.position_m, before.position_m)
    np.testing.assert_array_equal(after.covariance_m2, before.covariance_m2)
    assert after.confidence == before.confidence


def test_a_shoebox_keeps_its_own_rule(room, array, chirp, simulator, processor, monkeypatch):
    """The default room is a shoebox: the rule of a plan that is not a rectangle, even set to
    doubt every heading, leaves its right fix's place and covariance to the bit (it reads
    :data:`HEADING_RULED_OUT_SIGMAS`, off)."""
    def localize(loc, frame, on):
        return localized(loc, frame, wider_look, 'NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS',
                         0.0 if on else None, monkeypatch)

    assert room.is_shoebox
    assert_right_fix_kept(room, array, chirp, simulator, processor, localize)
