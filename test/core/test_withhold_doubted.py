"""A single-frame fix of confidence 0 withheld (issue 19, 10 dB gross fixes in shoeboxes):
:attr:`Pipeline.withhold_doubted` without a tracker, the one reason a pose is not published
beside "no confirmed track", and ``evaluate``'s count of it beside every fix scored."""
import numpy as np
import pytest

from echoloc_ros.core.pipeline import (DOUBTED_WITHHELD, NO_CONFIRMED_TRACK, Pipeline,
                                       make_pipeline)
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
    assert published.published and published.unpublished == ''
    pipeline, result, _ = _step(loc, frame, True)
    assert result.withheld and pipeline.counts.withheld == 1
    # One notion of "not published", by reason: what the node reads and counts.
    assert result.unpublished == DOUBTED_WITHHELD and not result.published
    assert result.vouched
    # The fix is the same; only whether it is published changed.
    np.testing.assert_array_equal(result.fix.estimate.position_m,
                                  published.fix.estimate.position_m)


@pytest.mark.long
def test_a_tracker_still_takes_a_doubted_fix(doubted_frame):
    loc, frame = doubted_frame
    pipeline, result, _ = _step(loc, frame, True, PoseTracker())
    assert not result.withheld and pipeline.counts.withheld == 0
    # Its first fix confirms no track yet: that is why it is not published.
    assert result.unpublished == NO_CONFIRMED_TRACK and not result.vouched


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
    assert (withheld['scored'], withheld['all_fixes']['scored']) == (GROSS_FRAME, GROSS_FRAME + 1)
    # Every fix is scored as well: the same fixes as without withholding.
    assert withheld['all_fixes'] == scored['all_fixes']
    assert withheld['all_fixes']['gross_rate_10cm'] == 0.25


def test_the_command_line_withholds_as_the_node_does(capsys):
    """``echoloc evaluate`` withholds by default, as the localizer node with ``tracking`` false
    does (``withhold_doubted``), ``--no-withhold-doubted`` scores every fix, and its JSON says
    which, with every fix scored in ``all_fixes`` either way."""
    import json
    from echoloc_ros.cli import main
    from echoloc_ros.core.withhold import WITHHOLD_DOUBTED
    assert WITHHOLD_DOUBTED is True
    main(['evaluate', '--n', '2', '--tracked-frames', '0', '--seed', '3'])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out['scenario']['withhold_doubted'] is True and out['n'] == 2
    assert out['all_fixes']['scored'] == 2
    main(['evaluate', '--n', '1', '--tracked-frames', '0', '--seed', '3',
          '--no-withhold-doubted'])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])['scenario'][
        'withhold_doubted'] is False


def _details(errors_m: list[float], published: list[bool]) -> dict:
    """One room's ``evaluate_fixes`` details: fixes off along x, sigma 1 cm."""
    n = len(errors_m)
    estimate = np.zeros((n, 3))
    estimate[:, 0] = errors_m
    return {'errors_m': np.array(errors_m), 'truth_m': np.zeros((n, 3)),
            'estimate_m': estimate, 'covariance_m2': np.tile(1e-4 * np.eye(3), (n, 1, 1)),
            'inside_95': np.array(errors_m) < 0.028, 'published': np.array(published)}


def test_the_rooms_figures_are_the_published_fixes_with_every_fix_beside(tmp_path):
    """``evaluate --rooms`` and ``evaluate-shards pool`` score the published fixes, count the
    withheld ones, and score every fix in ``all_fixes``; a shard file written before fixes
    were withheld (no ``published``) reads as all published."""
    import importlib.util
    from pathlib import Path
    from echoloc_ros.offline.room_evaluation import published_summary, room_frames
    one = published_summary(room_frames(_details([0.001, 0.5, 0.002], [True, False, True])), 3)
    assert (one['n'], one['gross_rate_10cm']) == (2, 0.0)
    assert one['withheld_rate'] == pytest.approx(1 / 3)
    assert one['outside_999'] == 0.0 and one['coverage_95'] == 1.0
    assert one['all_fixes']['n'] == 3 and 'withheld_rate' not in one['all_fixes']
    assert one['all_fixes']['gross_rate_10cm'] == one['all_fixes']['outside_999'] == 1 / 3
    path = Path(__file__).resolve().parents[2] / 'scripts' / 'evaluate-shards.py'
    spec = importlib.util.spec_from_file_location('evaluate_shards', path)
    shards = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shards)
    rooms = generate_room('dev', 0, SEED), generate_room('dev', 1, SEED)
    files = []
    shards_details = [_details([0.001, 0.5], [True, False]), _details([0.002, 0.003], [True] * 2)]
    for i, (room, details) in enumerate(zip(rooms, shards_details)):
        if i == 1:  # an older shard file
            details.pop('published')
        files.append(str(tmp_path / f'{i}.npz'))
        np.savez(files[-1], **{f'{i}/{k}': v for k, v in details.items()},
                 **{f'{i}/name': np.array(room.name)})
    pooled = shards.pool('random:2', 'dev', SEED, 4, files)['pooled']
    assert (pooled['n'], pooled['withheld_rate'], pooled['gross_rate_10cm']) == (3, 0.25, 0.0)
    assert (pooled['all_fixes']['n'], pooled['all_fixes']['gross_rate_10cm']) == (4, 0.25)
