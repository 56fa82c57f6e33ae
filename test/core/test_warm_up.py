"""Warming the nodes' code on a synthetic frame: the frame is like a real one, and a warmed
processor or pipeline gives the real frames' results of a cold one, to the bit."""

import dataclasses

import numpy as np
import pytest

from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.core.warm_up import room_features, warm_processor
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3


def _same(a, b) -> bool:
    """Every field of two dataclasses (nested ones field by field) equal, NaN equal to NaN,
    but the network's inference time (a clock's reading)."""
    if dataclasses.is_dataclass(a):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
                   if f.name != 'inference_s')
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b, equal_nan=a is not None and np.asarray(a).dtype.kind in 'fc')
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return a == b


def test_the_synthetic_frame_places_the_array_where_it_was_made(room, array, chirp):
    # A frame the search finds its pose in runs the paths a real frame takes (scans, fits,
    # evidence), not an early way out: within a millimetre-scale of the middle of the plan.
    pipeline = make_pipeline('physics', room, array, chirp)
    features, temperature_c = room_features(pipeline.localizer)
    estimate = pipeline.localizer.localize(features, 0.0, temperature_c)
    origin = np.append(room.vertices_m.mean(axis=0), 0.3)
    assert np.linalg.norm(estimate.position_m - origin) < 0.005
    assert estimate.n_echoes >= 10


def test_a_warmed_processor_gives_a_cold_ones_features(array, chirp, simulator):
    frames = [simulator.simulate(np.array([1.0 + 0.7 * i, 1.5, 0.3]), 0.2 * i,
                                 Scenario(snr_db=20.0, seed=i)) for i in range(3)]
    warm, cold = (EchoProcessor(chirp, FS_HZ, array=array) for _ in range(2))
    warm_processor(warm)
    assert warm.calibration is None
    for samples in frames:
        assert _same(warm.process(samples), cold.process(samples))


@pytest.mark.parametrize('method, room_name', [('physics', 'default_room'),
                                               ('physics', 'furnished_room'),
                                               ('nn', 'default_room')])
def test_a_warmed_pipeline_gives_a_cold_ones_results(array, chirp, method, room_name):
    room = load_room(room_name)
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    frames = [(processor.process(frame), yaw) for _, frame, _, yaw, _, _ in random_frames(
        EchoSimulator(room, array, chirp, FS_HZ), Scenario(snr_db=20.0), 4, 11)]
    pipelines = [make_pipeline(method, room, array, chirp, FS_HZ, processor,
                               tracker=PoseTracker(room_volume_m3=room.volume_m3))
                 for _ in range(2)]
    warm, cold = pipelines
    warm.estimate_tilt = cold.estimate_tilt = True
    warm.warm_up()
    # The warm-up's frame left nothing behind: no track, no count, no tilt.
    assert not warm.tracker.initialised and warm.tracker.last_t_s is None
    assert warm.counts == cold.counts and len(warm.tilts) == 0
    # The same frame twice, 40 ms apart: the tracker takes the second fix into a track.
    for i, (features, yaw) in enumerate([frames[0], *frames]):
        a, b = (p.step(0.04 * i, features, yaw, np.deg2rad(1.0)) for p in pipelines)
        assert _same(a, b), i
    assert warm.counts == cold.counts and warm.counts.frames == 5


WARMED_KERNELS = """
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics import axis_kernels, newton
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.core.tracker import PoseTracker
room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
pipeline = make_pipeline('physics', room, array, chirp, 250e3,
                         EchoProcessor(chirp, 250e3, array=array),
                         tracker=PoseTracker(room_volume_m3=room.volume_m3))
pipeline.warm_up()
print(len(axis_kernels.axis_shares.signatures), len(newton.model_evidence.signatures))
"""


def test_the_warm_up_loads_the_kernels_a_full_search_and_a_wider_look_read():
    """The warm-up's one frame (tracked from nowhere, no wider look) does not reach a full
    search's axis shares or the final model's evidence on its own; a fresh process that has
    only warmed up has both loaded, so the first real frame that reads them does not pay to
    load them (40 ms once)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, '-c', WARMED_KERNELS], capture_output=True,
                         text=True, check=True, timeout=600).stdout.split()
    assert [int(n) > 0 for n in out] == [True, True], out
