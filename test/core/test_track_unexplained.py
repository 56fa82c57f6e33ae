"""A track's local fix where furniture leaves echoes unexplained (issue 20): in the furnished
room the stages bench's drive passes a table whose echoes no modelled path places, and the
fits there leave the echoes unexplained (a residual over the noise above 2). Their local fixes
lie where the full search's first fix does, a fraction of a millimetre from the truth; the full
search doubted them and searched again wider (about 60 ms a frame). Judged by the other checks,
they stand; a track 30 cm off is still refused there."""
import numpy as np
import pytest

from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.pipeline import Pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.core.track_search import TrackSearch
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import Scenario

FRAME_S = 0.04
# The stages bench's furnished drive (echoloc bench --stages-only --room furnished_room): the
# track is confirmed on frame 3, and frames 9-14 leave the echoes unexplained.
UNEXPLAINED = range(9, 15)


@pytest.fixture(scope='module')
def furnished(array, chirp, processor):
    """The first 15 frames of the bench's furnished drive (20 dB, seed 0), its localizer and
    room: ``(physics, room, sim, frames, features)``."""
    room = load_room('furnished_room')
    sim = SimulatedArray(room, array, chirp, 250e3, Scenario(snr_db=20.0, seed=0), seed=0)
    frames = [sim.acquire(FRAME_S * i) for i in range(UNEXPLAINED.stop)]
    features = [processor.process(frame.samples) for frame in frames]
    return PhysicsLocalizer(room, array, chirp, processor=processor), room, sim, frames, features


def _run(furnished, search, n):
    physics, room, _, frames, features = furnished
    pipeline = Pipeline(physics, PoseTracker(room_volume_m3=room.volume_m3), track_search=search)
    results = [pipeline.step(FRAME_S * i, f, frame.measured_yaw_rad)
               for i, (frame, f) in enumerate(zip(frames[:n], features[:n]))]
    return pipeline, results


def test_a_right_track_keeps_its_local_fix_where_echoes_are_unexplained(furnished):
    _, _, _, frames, _ = furnished
    search = TrackSearch()
    _, results = _run(furnished, search, UNEXPLAINED.stop)
    assert all(results[i].local for i in UNEXPLAINED)
    assert search.counts.unexplained == len(UNEXPLAINED) and not search.counts.refused
    for i in UNEXPLAINED:
        estimate = results[i].fix.estimate
        assert estimate.residual_ratio > 2.0 and estimate.confidence == 0.0
        assert np.linalg.norm(estimate.position_m - frames[i].position_m) < 0.001
        assert np.linalg.norm(results[i].position_m - frames[i].position_m) < 0.001
    # Refused as doubtful, each of them is searched in full.
    strict = TrackSearch(unexplained_fixes=False)
    _, results = _run(furnished, strict, UNEXPLAINED.stop)
    assert not any(results[i].local for i in UNEXPLAINED)
    assert strict.counts.refused['doubtful'] == len(UNEXPLAINED)
    assert strict.counts.unexplained == 0


@pytest.mark.parametrize('offset_m, reason', [((0.0, 0.3), 'peaks_ahead'),
                                              ((0.0, -0.3), 'peaks_ahead'),
                                              # Refused by the tracker's gate since the late
                                              # orders' allowance (r36-04; the frame takes
                                              # the model with order 3), still refused.
                                              ((-0.2, 0.2), 'outside_gate'),
                                              ((0.3, 0.0), 'doubtful')])
def test_a_track_30_cm_off_is_refused_where_echoes_are_unexplained(
        furnished, processor, offset_m, reason):
    # The track follows the drive to frame 11; then the array is carried 30 cm (its heading
    # kept). The local fix from the track's prediction leaves the echoes unexplained, as the
    # right one does there (along y it explains them better: a residual ratio of 3.7 against
    # 3.9). Off along y it is judged, and the truth's peak lies ahead of it; off along x only
    # an axis is weak, and it is refused before its scans. The frame gets the full search.
    physics, room, sim, frames, _ = furnished
    search = TrackSearch()
    pipeline, _ = _run(furnished, search, 12)
    refused = search.counts.refused.copy()
    frame = frames[12]
    carried = frame.position_m + np.append(offset_m, 0.0)
    samples = sim.simulator.simulate(carried, frame.yaw_rad, scenario=sim.scenario,
                                     rng=np.random.default_rng(12))
    result = pipeline.step(FRAME_S * 12, processor.process(samples), frame.measured_yaw_rad)
    assert not result.local
    refused[reason] += 1
    assert search.counts.refused == refused
    assert np.linalg.norm(result.fix.estimate.position_m - carried) < 0.001
