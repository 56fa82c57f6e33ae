"""`echoloc calibrate-receivers` on a recording of the running graph (echo features and the
poses it published, no pose known) from an array whose receivers stand up to 0.5 mm off their
file: the array file it writes has them closer to where they are; a recording without poses,
or with too few echoes, is named."""
import json
import subprocess
import sys

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message

from echoloc.msg import EchoFrame
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.room import load_room
from echoloc_ros.ros import conversions
from echoloc_ros.ros.bag import BagWriter
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3
# The command localizes every frame again: a subprocess over a simulated drive.
pytestmark = pytest.mark.long


def write_recording(path, hardware, n_frames, poses=True):
    """Random poses in the default room heard by ``hardware``, recorded as the graph records
    them: the features, and a published pose off the truth by a few millimetres and a
    degree's fraction, as a tracker's."""
    room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(room, array, chirp, FS_HZ)
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    rng = np.random.default_rng(6)
    bag = BagWriter(path)
    bag.add_topic('/echoloc/features', 'echoloc/msg/EchoFeatures')
    bag.add_topic('/echoloc/pose', 'geometry_msgs/msg/PoseWithCovarianceStamped')
    for k in range(n_frames):
        position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
        features = processor.process(simulator.simulate(position, yaw,
                                                        Scenario(hardware=hardware), rng))
        stamp = Time(sec=k // 25, nanosec=(k % 25) * 40_000_000)
        frame = EchoFrame()
        frame.header.stamp = stamp
        frame.seq = k
        frame.array_id = array.name
        bag.write('/echoloc/features', k * 40_000_000,
                  serialize_message(conversions.features_msg(features, frame, 0.001)))
        if poses:
            fix = position + rng.normal(0.0, 0.002, 3)
            pose = conversions.pose_msg(fix, 0.003 ** 2 * np.eye(3),
                                        yaw + np.deg2rad(0.3) * rng.standard_normal(),
                                        np.deg2rad(1.0) ** 2, stamp, 'map')
            bag.write('/echoloc/pose', k * 40_000_000, serialize_message(pose))
    bag.close()


def calibrate(bag, out, *more):
    return subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'calibrate-receivers',
                           str(bag), '--out', str(out), *more], capture_output=True, text=True,
                          timeout=300)


def test_calibrate_receivers_writes_the_phase_centres(tmp_path):
    array = load_array('square_4sensor')
    hardware = ModelError(receiver_offset_m=0.0005, seed=3).draw_hardware(array)
    write_recording(tmp_path / 'drive', hardware, 50)
    out = tmp_path / 'array_now.yaml'
    run = calibrate(tmp_path / 'drive', out)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report['out'] == str(out) and report['frames']['used'] == 50
    assert len(report['passes']) == 2 and report['n_echoes'] >= 50
    now = load_array(out)
    # The frames name the array: the written file keeps its name.
    assert now.name == array.name
    # The phases cannot see a shift common to every receiver: compare without it.
    truth = hardware.receivers_m - hardware.receivers_m.mean(axis=0)
    before = array.receivers_m - array.receivers_m.mean(axis=0) - truth
    after = now.receivers_m - now.receivers_m.mean(axis=0) - truth
    rms_before, rms_after = (float(np.sqrt(np.mean(e ** 2))) for e in (before, after))
    assert rms_before > 0.15e-3
    assert rms_after < 0.3 * rms_before, (rms_before, rms_after)
    offsets = np.array(report['offsets_mm']) * 1e-3
    np.testing.assert_allclose(now.receivers_m, array.receivers_m + offsets, atol=2e-6)
    assert np.all(np.array(report['std_mm']) > 0)


def test_calibrate_receivers_names_what_is_missing(tmp_path):
    missing = calibrate(tmp_path / 'nowhere', tmp_path / 'x.yaml')
    assert missing.returncode != 0
    assert 'nowhere' in missing.stderr and 'is not a directory' in missing.stderr
    hardware = ModelError(receiver_offset_m=0.0005, seed=3).draw_hardware(
        load_array('square_4sensor'))
    write_recording(tmp_path / 'unposed', hardware, 3, poses=False)
    unposed = calibrate(tmp_path / 'unposed', tmp_path / 'y.yaml')
    assert unposed.returncode != 0
    assert "'features': 3, 'poses': 0" in unposed.stderr, unposed.stderr
    write_recording(tmp_path / 'short', hardware, 3)
    short = calibrate(tmp_path / 'short', tmp_path / 'y.yaml')
    assert short.returncode != 0
    assert 'isolated echoes collected; need at least 50' in short.stderr, short.stderr
    absent = calibrate(tmp_path / 'short', tmp_path / 'y.yaml', '--array-calibration',
                       str(tmp_path / 'none.yaml'))
    assert absent.returncode != 0
    assert 'none.yaml' in absent.stderr and 'echoloc calibrate-array' in absent.stderr
    assert not (tmp_path / 'y.yaml').exists()
