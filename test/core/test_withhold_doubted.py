"""A single-frame fix of confidence 0 withheld (issue 19, 10 dB gross fixes in shoeboxes):
:attr:`Pipeline.withhold_doubted` without a tracker, and ``evaluate``'s count of it."""
import numpy as np
import pytest

from echoloc_ros.core.pipeline import Pipeline, make_pipeline
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.offline.evaluation import evaluate_fixes
from echoloc_ros.offline.room_evaluation import frames_seed
from echoloc_ros.sim.room_generator import generate_room
from echoloc_ros.sim.simulator import Scenario
from dev_frames_testing import HEADING_STD_RAD, dev_frame

# Dev room 16 of seed 7 (a 6.4 x 7.8 m shoebox, no furniture) at 10 dB: its frame 3 is fixed
# 41 cm off along y, the truth refined 1 log unit below the fix (the far wall's echo under the
# noise), published with confidence 0 and a covariance over the whole room.
ROOM, SEED, GROSS_FRAME = 16, 7, 3


@pytest.fixture(scope='module')
def doubted_frame(array, chirp, processor):
    return dev_frame(ROOM, SEED, GROSS_FRAME, array, chirp, processor)


def _step(loc, frame, withhold: bool, tracker: PoseTracker | None = None):
    features, position, heading = frame
    pipeline = Pipeline(loc, tracker, withhold_doubted=withhold)
    return pipeline, pipeline.step(0.0, features, heading, HEADING_STD_RAD), position


@pytest.mark.long
def test_a_doubted_gross_fix_is_withheld_without_a_tracker(doubted_frame):
    loc, frame = doubted_frame
    pipeline, published, position = _step(loc, frame, False)
    error_m = np.linalg.norm(published.fix.estimate.position_m - position)
    assert error_m > 0.1 and published.fix.estimate.confidence == 0.0
    assert not published.withheld and pipeline.counts.withheld == 0
    pipeline, result, _ = _step(loc, frame, True)
    assert result.withheld and pipeline.counts.withheld == 1
    # The fix is the same; only whether it is published changed.
    np.testing.assert_array_equal(result.fix.estimate.position_m,
                                  published.fix.estimate.position_m)


@pytest.mark.long
def test_a_tracker_still_takes_a_doubted_fix(doubted_frame):
    loc, frame = doubted_frame
    pipeline, result, _ = _step(loc, frame, True, PoseTracker())
    assert not result.withheld and pipeline.counts.withheld == 0


@pytest.mark.long
def test_a_right_fix_is_published(room, array, chirp, simulator, processor):
    rng = np.random.default_rng(3)
    position, yaw = room.random_pose(rng)
    features = processor.process(simulator.simulate(position, yaw, Scenario(snr_db=10), rng))
    pipeline = make_pipeline('physics', room, array, chirp, processor=processor)
    pipeline.withhold_doubted = True
    result = pipeline.step(0.0, features, yaw, HEADING_STD_RAD)
    assert result.fix.estimate.confidence > 0.0 and not result.withheld
    assert np.linalg.norm(result.position_m - position) < 0.01


@pytest.mark.long
def test_evaluate_counts_the_withheld_fix_and_scores_the_rest(array, chirp):
    """The room's first four frames as ``echoloc evaluate --rooms random:30 --split dev --seed
    7 --snr-db 10 --heading-noise-deg 1`` draws them: the gross one is withheld, not scored."""
    room = generate_room('dev', ROOM, SEED)
    kwargs = {'heading_noise_deg': 1.0, 'details': {}}
    scored = evaluate_fixes(room, array, chirp, Scenario(snr_db=10.0, seed=SEED),
                            GROSS_FRAME + 1, frames_seed(SEED, ROOM), **kwargs)
    withheld = evaluate_fixes(room, array, chirp, Scenario(snr_db=10.0, seed=SEED),
                              GROSS_FRAME + 1, frames_seed(SEED, ROOM), withhold_doubted=True,
                              **kwargs)
    assert scored['withheld_rate'] == 0.0 and scored['gross_rate_10cm'] == 0.25
    assert withheld['withheld_rate'] == 0.25 and withheld['gross_rate_10cm'] == 0.0
    assert withheld['n'] == scored['n'] == GROSS_FRAME + 1


def test_the_command_line_says_it_withholds(capsys):
    """``echoloc evaluate --withhold-doubted`` passes the rule on and says so in its JSON."""
    import json
    from echoloc_ros.cli import main
    main(['evaluate', '--n', '2', '--tracked-frames', '0', '--withhold-doubted', '--seed', '3'])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out['scenario']['withhold_doubted'] is True and out['n'] == 2
    main(['evaluate', '--n', '1', '--tracked-frames', '0', '--seed', '3'])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])['scenario'][
        'withhold_doubted'] is False
