"""A confident fix whose fit explains too little of the frame is not published alone (issue
19, branches r37-03, r38-04): its residual over the noise above
:data:`~echoloc_ros.core.withhold.WITHHELD_RATIO`, or in a shoebox more than
:data:`~echoloc_ros.core.withhold.SHOEBOX_MISSING_SHARE` of the echo energy its pose predicts
not found by its fit. Dev frames published outside their own 99.9 % ellipsoid at 10 dB are
withheld without a tracker, and a tracker still takes them; a right shoebox fix of few echoes
(r37-03's count withheld it) is published."""
import numpy as np
import pytest

from echoloc_ros.core import withhold
from echoloc_ros.core.pipeline import DOUBTED_WITHHELD, Pipeline
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.offline.evaluation import CHI2_999_3DOF
from dev_frames_testing import HEADING_STD_RAD, dev_frame

# Dev room 3 of seed 13 (an alcove with a soft floor or ceiling) at 10 dB: its frame 15 is fixed
# 5.4 cm off with confidence 1 and a 1.7 mm sigma (d2 about 2200), its fit's residual 1.8
# times the noise; the refined truth explains the echoes far better, and no candidate lay near
# it (``scripts/classify-gross.py``: ``none_near``).
ROOM, SEED, FRAME = 3, 13, 15


@pytest.fixture(scope='module')
def unexplained_frame(array, chirp, processor):
    return dev_frame(ROOM, SEED, FRAME, array, chirp, processor)


def _step(loc, frame, tracker: PoseTracker | None = None):
    features, position, heading = frame
    pipeline = Pipeline(loc, tracker, withhold_doubted=True)
    return pipeline, pipeline.step(0.0, features, heading, HEADING_STD_RAD), position


@pytest.mark.long
def test_a_confident_fix_with_unexplained_echoes_is_withheld(unexplained_frame, monkeypatch):
    loc, frame = unexplained_frame
    with monkeypatch.context() as patch:
        # Confidence 0 alone, as before WITHHELD_RATIO: the fix was published outside.
        patch.setattr(withhold, 'WITHHELD_RATIO', np.inf)
        _, before, position = _step(loc, frame)
    estimate = before.fix.estimate
    error = estimate.position_m - position
    assert estimate.confidence == 1.0 and before.published and not before.withheld
    assert 0.02 < np.linalg.norm(error) < 0.1
    assert error @ np.linalg.solve(before.covariance_m2, error) > CHI2_999_3DOF
    assert withhold.WITHHELD_RATIO < estimate.residual_ratio < 2.0
    pipeline, result, _ = _step(loc, frame)
    assert result.withheld and result.unpublished == DOUBTED_WITHHELD
    assert pipeline.counts.withheld == 1
    # The fix is the same; only whether it is published alone changed.
    np.testing.assert_array_equal(result.fix.estimate.position_m, estimate.position_m)


@pytest.mark.long
def test_a_tracker_still_takes_a_fix_with_unexplained_echoes(unexplained_frame):
    loc, frame = unexplained_frame
    pipeline, result, _ = _step(loc, frame, PoseTracker())
    assert not result.withheld and pipeline.counts.withheld == 0
    assert result.fix.estimate.residual_ratio > withhold.WITHHELD_RATIO


# Dev room 6 of seed 13 (a shoebox with a soft floor or ceiling) at 10 dB: its frame 1 is fixed
# 6 m off (4.1 m on x, 4.4 m on y) with confidence 1, its fit of six echoes leaving a residual
# at the noise (1.05); the refined truth explains the echoes far better (``none_near``). Its
# pose predicts near-wall echoes the frame does not hold: 0.68 of their energy not found.
# Dev room 6 of seed 17 (also soft): frame 15 is fixed 1.7 m off with confidence 1 and a
# 0.8 mm sigma from 18 echoes (r37-03's count published it), 0.25 of the energy not found.
WRONG_SHOEBOX = [(6, 13, 1), (6, 17, 15)]


@pytest.mark.long
@pytest.mark.parametrize('room, seed, k', WRONG_SHOEBOX)
def test_a_shoebox_fix_missing_its_predicted_echoes_is_withheld(room, seed, k, array, chirp,
                                                                processor, monkeypatch):
    loc, frame = dev_frame(room, seed, k, array, chirp, processor)
    assert loc.room.is_shoebox
    with monkeypatch.context() as patch:
        # Confidence 0 and the ratio alone: the fix was published outside.
        patch.setattr(withhold, 'SHOEBOX_MISSING_SHARE', np.inf)
        _, before, position = _step(loc, frame)
    estimate = before.fix.estimate
    error = estimate.position_m - position
    assert estimate.confidence == 1.0 and before.published
    assert np.linalg.norm(error) > 1.0
    assert error @ np.linalg.solve(before.covariance_m2, error) > CHI2_999_3DOF
    assert estimate.residual_ratio < withhold.WITHHELD_RATIO
    assert estimate.missing_share > withhold.SHOEBOX_MISSING_SHARE
    pipeline, result, _ = _step(loc, frame)
    assert result.withheld and result.unpublished == DOUBTED_WITHHELD
    # Only in a shoebox: plans with wings were not measured (a wall hidden by a wing).
    assert withhold.doubted(estimate, shoebox=True) and not withhold.doubted(estimate)


# Dev room 2 of seed 17 (a bare shoebox, no soft surface) at 10 dB: frame 9 is fixed 0.4 mm off
# from 6 echoes, every one where and as strong as its pose predicts (nothing missing); dev room
# 12 of seed 18 (soft, furnished): frame 2, 6 mm off, 6 echoes. r37-03's count (at most 6
# echoes in a shoebox) withheld both.
RIGHT_SHOEBOX = [(2, 17, 9), (12, 18, 2)]


@pytest.mark.long
@pytest.mark.parametrize('room, seed, k', RIGHT_SHOEBOX)
def test_a_right_shoebox_fix_of_few_echoes_is_published(room, seed, k, array, chirp,
                                                        processor):
    loc, frame = dev_frame(room, seed, k, array, chirp, processor)
    assert loc.room.is_shoebox
    _, result, position = _step(loc, frame)
    estimate = result.fix.estimate
    error = estimate.position_m - position
    assert np.linalg.norm(error) < 0.01
    assert error @ np.linalg.solve(result.covariance_m2, error) < CHI2_999_3DOF
    assert estimate.n_echoes <= 6 and estimate.missing_share < 0.05
    assert result.published and not result.withheld
