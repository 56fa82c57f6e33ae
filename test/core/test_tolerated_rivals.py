"""The rivals a room file's tolerance cannot rule out (issue 18, branch r32-64): a fix metres off
in a room off its file, which the allowance let through at confidence 1 inside a sub-centimetre
covariance, now spans the rival the evidence cannot rule out there; a right fix in the same
world keeps its confidence and its covariance; a room stating no tolerance adds nothing."""

from dataclasses import replace

import numpy as np
import pytest

from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.core.room_tolerance import (TOLERATED_GAP_SHARE, TOLERATED_MIN_OFFSET_M,
                                             TOLERATED_RIVAL_WEIGHT, with_room_tolerance,
                                             with_tolerated_rivals)
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

CHI2_999_3DOF = 16.266
FS_HZ = 250e3
HEADING_NOISE_RAD = float(np.deg2rad(1.0))


def test_only_rivals_within_the_allowance_share_and_away_are_spanned():
    theta = np.array([1.0, 2.0, 0.5, 1.0, 0.0])
    far = np.array([3.0, 2.0, 0.5, 1.0, 0.0])
    near = np.array([1.05, 2.0, 0.5, 1.0, 0.0])
    own = 1e-6 * np.eye(3)
    allowance = 1000.0
    inside = 100.0 - (TOLERATED_GAP_SHARE * allowance - 1.0)
    # A rival 2 m off 1 log unit within the share is spanned; one nearer than
    # TOLERATED_MIN_OFFSET_M, however close its evidence, is not.
    spanned = with_tolerated_rivals(own, allowance, 100.0, theta,
                                    [(inside, far, 1), (100.0, near, 2)], [])
    assert spanned - own == pytest.approx(TOLERATED_RIVAL_WEIGHT * np.diag([4.0, 0.0, 0.0]))
    assert np.linalg.norm(near[:3] - theta[:3]) < TOLERATED_MIN_OFFSET_M
    # One just beyond the share leaves the covariance as it was, the same array.
    beyond = 100.0 - (TOLERATED_GAP_SHARE * allowance + 1.0)
    assert with_tolerated_rivals(own, allowance, 100.0, theta, [(beyond, far, 1)], []) is own
    # An axis peak given as (gap, offset) counts alike.
    along = [(10.0, np.array([0.0, -1.5, 0.0]))]
    assert (with_tolerated_rivals(own, allowance, 100.0, theta, [], along) - own)[1, 1] == (
        pytest.approx(TOLERATED_RIVAL_WEIGHT * 2.25))
    # Without an allowance (a room stating no tolerance) nothing, even a rival scoring above.
    assert with_tolerated_rivals(own, 0.0, 100.0, theta, [(150.0, far, 1)], along) is own


@pytest.fixture(scope='module')
def dev_world(array, chirp, processor):
    """Three frames of dev world 8 (model-error seed 1's eighth, as ``echoloc evaluate
    --surface-offset-m 0.03 --room-tolerance-m 0.03 --air-drawn --model-error-seed 1
    --model-error-draws 10 --heading-noise-deg 1`` draws it, frames 140-142 of 200), each
    localized with and without the tolerated rivals, the room's term added as the pipeline
    adds it: ``(error, published, confidence, old published, old confidence)``."""
    told = replace(load_room('default_room'), tolerance_m=0.03)
    error = ModelError(surface_offset_m=0.03, seed=8, air_std_c=1.0)
    truth = error.draw_room(told)
    scenario = Scenario(snr_db=20.0, temperature_c=error.draw_air_c(told.temperature_c))
    simulator = EchoSimulator(truth.room, array, chirp, FS_HZ)
    localizer = PhysicsLocalizer(told, array, chirp, processor=processor)
    rows = []
    for _, frame, position, yaw, draw, _ in random_frames(simulator, scenario, 3, [0, 7]):
        features = processor.process(frame)
        given = yaw + HEADING_NOISE_RAD * draw
        estimate = with_room_tolerance(localizer.localize(features, given, None,
                                                          HEADING_NOISE_RAD), told)
        old = _without_tolerated(localizer, features, given, told)
        rows.append((estimate.position_m - position - truth.origin_m, estimate.covariance_m2,
                     estimate.confidence, old.covariance_m2, old.confidence))
    return rows


def _without_tolerated(localizer, features, yaw, told):
    """The fix as it was before the tolerated rivals (r31-54's rule)."""
    import echoloc_ros.core.physics.localizer as module
    kept = module.with_tolerated_rivals
    module.with_tolerated_rivals = lambda covariance, *args: covariance
    try:
        return with_room_tolerance(localizer.localize(features, yaw, None, HEADING_NOISE_RAD),
                                   told)
    finally:
        module.with_tolerated_rivals = kept


def _d2(error, covariance):
    return float(error @ np.linalg.solve(covariance, error))


def test_a_fix_metres_off_in_a_room_off_its_file_spans_the_rival(dev_world):
    # Frames 140 and 142: 2.78 m off along x and 1.97 m along y with confidence 1; r31-54's
    # rule published them inside sub-centimetre sigmas (d^2 about 1e4), the right pose a
    # polished rival 63 log units (and an axis peak) below, well within TOLERATED_GAP_SHARE of
    # the 1390-1450 the tolerance may leave unexplained.
    for error, published, confidence, old, old_confidence in (dev_world[0], dev_world[2]):
        assert np.linalg.norm(error) > 1.0
        assert old_confidence == 1.0
        assert _d2(error, old) > 100 * CHI2_999_3DOF
        assert _d2(error, published) < CHI2_999_3DOF


def test_a_right_fix_in_the_same_world_keeps_its_confidence_and_covariance(dev_world):
    error, published, confidence, old, old_confidence = dev_world[1]
    assert np.linalg.norm(error) < 0.1
    assert confidence == old_confidence == 1.0
    np.testing.assert_array_equal(published, old)
    assert _d2(error, published) < CHI2_999_3DOF
