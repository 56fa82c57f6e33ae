"""The per-frame pipeline the node and the evaluations share: tracking, the heading it
publishes, the wide-search budget and its counts, the nn->physics fallback."""

import dataclasses

import numpy as np
import pytest

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.core.paths import default_model_path
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.core.tracker import PoseTracker

FS_HZ = 250e3


def _frames(room, n: int, seed: int, snr_db: float = 20.0, shift_m: float = 0.0):
    array, chirp = load_array('square_4sensor'), Chirp()
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    simulator = EchoSimulator(room, array, chirp, FS_HZ)
    return [(processor.process(frame), position, yaw) for _, frame, position, yaw, _, _ in
            random_frames(simulator, Scenario(snr_db=snr_db), n, seed,
                          furniture_shift_m=shift_m)]


def test_without_tracker_each_fix_is_published_with_its_heading(room, array, chirp):
    pipeline = make_pipeline('physics', room, array, chirp)
    assert pipeline.method == 'physics' and pipeline.tracker is None
    features, position, yaw = _frames(room, 1, seed=3)[0]
    result = pipeline.step(0.0, features, yaw + 0.01, np.deg2rad(1.0))
    assert result.accepted and not result.tracker_restarted
    assert np.array_equal(result.position_m, result.fix.estimate.position_m)
    assert result.yaw_rad == result.fix.estimate.yaw_rad
    assert np.linalg.norm(result.position_m - position) < 0.02
    assert pipeline.counts.frames == 1 and pipeline.counts.wide_searches == 0


@pytest.mark.parametrize('name, index, value, words', [
    ('baseband', (1, 800), np.inf, r'baseband\[1, 800\] = \(inf\+0j\), expected finite'),
    ('baseband', (2, 5), np.nan, r'baseband\[2, 5\] = \(nan\+0j\), expected finite'),
    ('direct_tof_s', (3,), -np.inf, r'direct_tof_s = .*-inf.*expected finite delays')])
def test_non_finite_features_are_refused_naming_the_value(room, array, chirp, name, index,
                                                          value, words):
    # An inf in the baseband used to fail deep in the search with an IndexError, an infinite
    # direct delay with an OverflowError: neither is what the node catches (ValueError).
    features, _, yaw = _frames(room, 1, seed=3)[0]
    bad = getattr(features, name).copy()
    bad[index] = value
    pipeline = make_pipeline('physics', room, array, chirp)
    with pytest.raises(ValueError, match=words):
        pipeline.step(0.0, dataclasses.replace(features, **{name: bad}), yaw)
    assert pipeline.counts.frames == 0
    # A channel with no direct arrival found (NaN) is a dead channel, not bad input.
    dead = features.direct_tof_s.copy()
    dead[3] = np.nan
    assert pipeline.step(0.0, dataclasses.replace(features, direct_tof_s=dead), yaw).accepted


def test_refused_fix_publishes_the_heading_given_and_a_stamp_back_restarts(room, array, chirp):
    frames = _frames(room, 2, seed=5)
    pipeline = make_pipeline('physics', room, array, chirp,
                             tracker=PoseTracker(room_volume_m3=room.volume_m3))
    # A still array: the same frame four times confirms a track there.
    for k in range(4):
        assert pipeline.step(10.0 + 0.04 * k, frames[0][0], frames[0][2],
                             np.deg2rad(1.0)).accepted
    # A fix 40 ms later, metres away: the track refuses it.
    result = pipeline.step(10.16, frames[1][0], frames[1][2], np.deg2rad(1.0))
    assert np.linalg.norm(frames[1][1] - frames[0][1]) > 0.5
    assert not result.accepted and pipeline.counts.gated == 1
    assert result.yaw_rad == frames[1][2]
    assert result.yaw_variance_rad2 == pytest.approx(np.deg2rad(1.0) ** 2)
    # A stamp before the last frame's (a recording played again): the track starts anew.
    again = pipeline.step(0.0, frames[1][0], frames[1][2], np.deg2rad(1.0))
    assert again.tracker_restarted and again.accepted


def test_missing_model_falls_back_to_physics_only_when_asked(room, array, chirp, tmp_path):
    missing = tmp_path / 'none.pt'
    pipeline = make_pipeline('nn', room, array, chirp, model_path=missing, fallback=True)
    assert isinstance(pipeline.localizer, PhysicsLocalizer) and pipeline.method == 'physics'
    assert str(missing) in pipeline.model_error and 'using physics' in pipeline.model_error
    with pytest.raises(ValueError, match='does not exist'):
        make_pipeline('nn', room, array, chirp, model_path=missing)


@pytest.mark.long
@pytest.mark.skipif(not default_model_path('furnished_room').is_file(),
                    reason='no shipped model for the furnished room')
def test_wide_search_budget_is_counted_per_frame():
    room = load_room('furnished_room')
    array, chirp = load_array('square_4sensor'), Chirp()
    frames = _frames(room, 30, seed=7, snr_db=10.0, shift_m=0.5)
    refused = make_pipeline('nn', room, array, chirp)
    allowed = make_pipeline('nn', room, array, chirp)
    doubted = 0
    for k, (features, _, yaw) in enumerate(frames):
        no = refused.step(k / 25, features, yaw, np.deg2rad(1.0), wide_search_allowed=False)
        yes = allowed.step(k / 25, features, yaw, np.deg2rad(1.0))
        assert no.fix.doubted == yes.fix.doubted
        assert not no.fix.wide and no.wide_skipped == no.fix.doubted
        assert yes.fix.wide == yes.fix.doubted and not yes.wide_skipped
        if not yes.fix.wide_kept:
            # Without the wide proposal the two runs fix from the same candidates.
            assert np.array_equal(no.fix.estimate.position_m, yes.fix.estimate.position_m)
        doubted += yes.fix.doubted
    # These frames (furniture moved, 10 dB) hold doubted ones: the budget was exercised.
    assert doubted > 0
    assert refused.counts.wide_skipped == doubted and refused.counts.wide_searches == 0
    assert allowed.counts.wide_searches == doubted and allowed.counts.wide_skipped == 0
    assert allowed.counts.wide_kept <= doubted
