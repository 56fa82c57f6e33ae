"""The localizer follows its own track (issue 20): on a simulated drive most frames get a local
fix from the track's prediction, agreeing with the full search's within their sigma; a refused
local fix falls back to the full search on the same frame; a kidnapped array is found again
within one full-search period; ``track_search`` off is the full search every frame."""

import numpy as np
import pytest

from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.track_fix import local_fix
from echoloc_ros.core.pipeline import Pipeline
from echoloc_ros.core.track_search import TrackSearch
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.offline.tracked_path import drive, tracked_path
from echoloc_ros.sim.simulator import Scenario

FRAME_S = 0.04
YAW_STD_RAD = float(np.deg2rad(1.0))


@pytest.fixture(scope='module')
def physics(room, array, chirp, processor):
    return PhysicsLocalizer(room, array, chirp, processor=processor)


@pytest.fixture(scope='module')
def frames(room, simulator, processor):
    """2 s of the tracked evaluations' figure-of-eight at 20 dB, 1 deg heading noise."""
    path = tracked_path(room)
    rng = np.random.default_rng(20)
    return list(drive(path, room.vertices_m.min(axis=0), simulator, processor,
                      Scenario(snr_db=20.0, seed=20), rng, 50, 1 / FRAME_S, YAW_STD_RAD))


def _pipeline(physics, room, search, **tracker) -> Pipeline:
    return Pipeline(physics, PoseTracker(room_volume_m3=room.volume_m3, **tracker),
                    track_search=search)


def _run(pipeline, frames):
    return [pipeline.step(t_s, features, yaw, YAW_STD_RAD) for t_s, _, features, yaw in frames]


@pytest.fixture(scope='module')
def full_results(physics, room, frames):
    """The same drive with the full search every frame (track_search off)."""
    return _run(_pipeline(physics, room, None), frames)


def test_most_frames_are_fixed_locally_and_agree_with_the_full_search(
        physics, room, frames, full_results):
    search = TrackSearch()
    results = _run(_pipeline(physics, room, search), frames)
    local = [i for i, r in enumerate(results) if r.local]
    # The track is confirmed after 3 frames; then a full search each second: 4 of 50.
    assert search.counts.local == len(local) >= 40
    assert search.counts.full == len(frames) - len(local)
    # The period's checks put each local fix first: no full search after the first frames.
    assert search.counts.verified >= 1 and not search.counts.refused
    assert search.counts.full == search.counts.skipped['no_track']
    ratios = []
    for i in local:
        mine, full = results[i].fix.estimate, full_results[i].fix.estimate
        # The same optimum, refined from another start: within a small part of its sigma.
        d = mine.position_m - full.position_m
        assert float(d @ np.linalg.solve(full.covariance_m2, d)) < 1.0
        ratios.append(np.diag(mine.covariance_m2) / np.diag(full.covariance_m2))
    # The same covariance machinery: the same variances on most frames. Not on all: the local
    # fix has no rivals from candidates it never proposed (where the full search's widened its
    # fix toward one, it is narrower), and where one of the two is scanned along an axis and
    # the other not (the scans' gate reads the fit), their widenings differ.
    assert np.all(np.median(ratios, axis=0) == pytest.approx(1.0, abs=0.05))
    assert 0.5 < np.min(ratios) and np.max(ratios) < 2.0
    for (_, truth, _, _), r in zip(frames[10:], results[10:]):
        assert np.linalg.norm(r.position_m - truth) < 0.005


def test_a_full_search_at_least_every_period(physics, room, frames):
    search = TrackSearch(period_s=0.5, verify_period=False)
    results = _run(_pipeline(physics, room, search), frames)
    full_t = [t for (t, _, _, _), r in zip(frames, results) if not r.local]
    # The first frame at least a period after the last full search gets one.
    assert np.max(np.diff(full_t)) <= 0.5 + FRAME_S + 1e-9
    assert search.counts.skipped['period'] == 3


def test_the_period_checks_the_local_fix_with_the_candidates_spread_over_frames(
        physics, room, frames):
    # The first frame a period after the last search starts the check: its local fix stands,
    # the full search's candidates' first stage runs, the next two frames run the wall scans
    # and the scoring (one height). The next period counts from the check's first frame.
    search = TrackSearch(period_s=0.5)
    pipeline = _pipeline(physics, room, search)
    stages, checks = [], []
    for t_s, _, features, yaw in frames:
        result = pipeline.step(t_s, features, yaw, YAW_STD_RAD)
        assert result.local or search.counts.skipped['no_track'] == search.counts.full
        if search._check is not None:
            stages.append(t_s)
        if search.counts.verified > len(checks):
            checks.append(t_s)
    full = search.counts.skipped['no_track']
    assert search.counts.full == full and search.counts.local == len(frames) - full
    assert len(checks) == search.counts.verified == 3 and not search.counts.refused
    started = [t - 2 * FRAME_S for t in checks]
    assert np.allclose(np.diff(started), 0.5, atol=FRAME_S / 2)
    assert np.allclose(stages, sorted(set(started) | {t + FRAME_S for t in started}))


def test_track_search_off_is_the_full_search_every_frame(physics, room, frames, full_results):
    # Period 0: every frame is searched in full, as without a track search (to the bit).
    search = TrackSearch(period_s=0.0)
    results = _run(_pipeline(physics, room, search), frames[:12])
    assert search.counts.local == 0 and search.counts.skipped['off'] == 12
    for r, full in zip(results, full_results):
        assert np.array_equal(r.fix.estimate.position_m, full.fix.estimate.position_m)
        assert np.array_equal(r.position_m, full.position_m)


def test_a_kidnapped_array_is_refused_locally_and_found_within_one_period(
        physics, room, simulator, processor, frames):
    # After 1.2 s on the figure-of-eight the array is carried 2 m away, its heading kept (its
    # frames are those of the path 7 s later): the local fix from the old track's prediction
    # is refused on the first of them, that frame gets the full search (its fix is the full
    # search's, to the bit), and the published pose is at the new place within one period.
    # Carried on the path 7 s ahead with the heading of now, it moves sideways to its heading:
    # a tracker that holds a ground robot to its heading is told it may (none).
    period_s = 1.0
    search = TrackSearch(period_s=period_s)
    pipeline = _pipeline(physics, room, search, lateral_speed_std_mps=None)
    _run(pipeline, frames[:30])
    path, corner = tracked_path(room), np.append(room.vertices_m.min(axis=0), 0.0)
    rng = np.random.default_rng(5)
    refused_before = sum(search.counts.refused.values())
    found_s = None
    for k in range(30):
        t_s = frames[29][0] + FRAME_S * (k + 1)
        truth, yaw = path.pose(t_s + 7.0)[0] + corner, path.pose(t_s)[1]
        features = processor.process(simulator.simulate(truth, yaw, Scenario(snr_db=20.0),
                                                        rng))
        given = yaw + YAW_STD_RAD * rng.standard_normal()
        result = pipeline.step(t_s, features, given, YAW_STD_RAD)
        if k == 0:
            assert not result.local
            assert sum(search.counts.refused.values()) == refused_before + 1
            alone = physics.fix(features, given, None, YAW_STD_RAD).estimate
            assert np.array_equal(result.fix.estimate.position_m, alone.position_m)
        if (found_s is None and result.vouched
                and np.linalg.norm(result.position_m - truth) < 0.01):
            found_s = FRAME_S * (k + 1)
    assert found_s is not None and found_s <= period_s


def test_bad_values_are_refused_by_name(physics, frames):
    with pytest.raises(ValueError, match='period_s must be >= 0, got -1'):
        TrackSearch(period_s=-1.0)
    with pytest.raises(ValueError, match=r'evidence_share must be in \[0, 1\), got 1.5'):
        TrackSearch(evidence_share=1.5)
    _, _, features, yaw = frames[0]
    with pytest.raises(ValueError, match='origin_m must be 3 finite numbers'):
        local_fix(physics, features, yaw, np.array([1.0, np.nan, 0.3]), 343.0)
    with pytest.raises(ValueError, match='speed_of_sound_mps must be finite and positive'):
        local_fix(physics, features, yaw, np.array([1.0, 1.0, 0.3]), 0.0)
