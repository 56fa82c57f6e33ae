"""The polished rivals refined as the fix is, and a wider-look fix below the first's evidence
not taken for it (issue 19, :meth:`WiderLook._polished_rivals`, :data:`WIDER_NO_LOSS`): two
dev frames at 20 dB that were gross are right; a doubtful fix's rivals are left to the wider
look; a right fix in the default room keeps its place and sigma."""
from dataclasses import replace

import numpy as np
import pytest

from echoloc_ros.core.physics import wider_look
from echoloc_ros.offline.evaluation import CHI2_999_3DOF
from dev_frames_testing import (HEADING_STD_RAD, assert_right_fix_kept, dev_frame, localized,
                                shipped)


@pytest.mark.long
def test_a_rival_that_refines_above_the_fix_is_chosen(array, chirp, processor, monkeypatch):
    """Frame 8 of dev room 1 (seed 10, 20 dB, an L room with 8 boxes): the truth was a polished
    candidate 1644 log units below the fix and never refined; the fix sat 3.6 m off in y with
    confidence 1 and a sub-millimetre sigma (outside its 99.9 % ellipsoid). Refined, the truth
    scores 125 above it and is the fix, with the one rival refined that ships in a plan that is
    not a rectangle (r36-03; none refined, the fix is as it was)."""
    loc, frame = dev_frame(1, 10, 8, array, chirp, processor, snr_db=20.0)
    assert not loc._shoebox
    before, old_error, old_d2 = localized(loc, frame, wider_look,
                                          'NON_RECTANGULAR_POLISHED_RIVALS', 0, monkeypatch)
    assert before.confidence == 1.0
    assert np.linalg.norm(old_error) > 3.0
    assert old_d2 > CHI2_999_3DOF
    # What ships: one rival refined in a plan that is not a rectangle (r36-03).
    estimate, error, d2 = shipped(loc, frame)
    assert np.linalg.norm(error) < 0.01
    assert d2 < CHI2_999_3DOF
    assert estimate.score > before.score


@pytest.mark.long
def test_a_wider_look_fix_below_the_first_does_not_replace_it(array, chirp, processor,
                                                              monkeypatch):
    """Frame 5 of dev room 17 (seed 9, 20 dB, a non-rectangular room): the first fix is right
    and explains its echoes; the wider look's best, refined again, lands 19 log units below it
    2.9 m away and replaced it. Kept, the first fix is published, its covariance over the
    rival (confidence 0)."""
    loc, frame = dev_frame(17, 9, 5, array, chirp, processor, snr_db=20.0)
    before, old_error, _ = localized(loc, frame, wider_look, 'WIDER_NO_LOSS', False,
                                     monkeypatch)
    assert np.linalg.norm(old_error) > 2.0
    estimate, error, d2 = localized(loc, frame, wider_look, 'WIDER_NO_LOSS', True,
                                    monkeypatch)
    assert np.linalg.norm(error) < 0.01
    assert d2 < CHI2_999_3DOF
    assert estimate.score > before.score


@pytest.mark.long
def test_a_doubtful_fix_leaves_its_rivals_to_the_wider_look(array, chirp, processor,
                                                            monkeypatch):
    """The same frame's confident fix has the truth for a polished rival that refines above
    it (one rival refined, r35-93's value); the fix taken as doubtful (confidence 0), none is
    refined: the wider look refines the best polished candidates there itself."""
    monkeypatch.setattr(wider_look, 'NON_RECTANGULAR_POLISHED_RIVALS', 1)
    loc, (features, _, heading) = dev_frame(1, 10, 8, array, chirp, processor, snr_db=20.0)
    proposal = loc.propose(features, heading, None, HEADING_STD_RAD)
    estimate = loc.finish(proposal)
    theta = loc._fix_theta(proposal, estimate)
    assert not loc._doubtful_fix(estimate)
    rivals = loc._polished_rivals(proposal, theta, estimate)
    assert len(rivals) == 1 and rivals[0][0] < 0.0
    doubted = replace(estimate, confidence=0.0)
    assert loc._doubtful_fix(doubted)
    assert loc._polished_rivals(proposal, theta, doubted) == []


def test_a_right_fix_in_the_default_room_keeps_its_place_and_sigma(room, array, chirp,
                                                                   simulator, processor,
                                                                   monkeypatch):
    def localize(loc, frame, on):
        with monkeypatch.context() as patch:
            patch.setattr(wider_look, 'WIDER_NO_LOSS', on)
            return localized(loc, frame, wider_look, 'N_POLISHED_RIVALS', 1 if on else 0,
                             patch)

    assert_right_fix_kept(room, array, chirp, simulator, processor, localize)


def test_a_shoebox_keeps_its_own_checks(room, array, chirp, simulator, processor, monkeypatch):
    """The default room is a shoebox: the checks of a plan that is not a rectangle (r36-03),
    even set to refine three rivals and to search every fix again, leave its right fix's place
    and covariance to the bit (it runs :data:`N_POLISHED_RIVALS` and
    :data:`HEADING_MOVED_SIGMAS`, both off)."""
    def localize(loc, frame, on):
        with monkeypatch.context() as patch:
            patch.setattr(wider_look, 'NON_RECTANGULAR_HEADING_MOVED_SIGMAS', 0.0 if on else None)
            return localized(loc, frame, wider_look, 'NON_RECTANGULAR_POLISHED_RIVALS',
                             3 if on else 0, patch)

    assert room.is_shoebox
    assert_right_fix_kept(room, array, chirp, simulator, processor, localize)
