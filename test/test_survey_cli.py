"""`echoloc survey` on a real recording: features and tracked poses in, the room file out."""
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from echoloc.msg import EchoFrame
from rclpy.serialization import serialize_message

from echoloc_ros.ros import conversions
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.offline.tracked_path import drive, moved_off_path, tracked_path
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.ros.bag import BagWriter, posed_frames

FS_HZ = 250e3
# Each test runs echoloc survey over a simulated drive in a subprocess.
pytestmark = pytest.mark.long


def write_recording(path, room, world, n_uncertain=3, n_bad=2):
    """What `echoloc record` keeps of a drive along the tracked path: features and poses with
    the frame's stamp; some poses uncertain, some headings the IMU's, some features
    truncated."""
    array, chirp = load_array('square_4sensor'), Chirp()
    route = tracked_path(room)
    frames = drive(route, room.vertices_m.min(axis=0), EchoSimulator(room, array, chirp, FS_HZ),
                   EchoProcessor(chirp, FS_HZ, array=array),
                   Scenario(snr_db=10.0, furniture=world.furniture), np.random.default_rng(8),
                   int(np.ceil(route.period_s / 0.2)), 5.0, 0.0)
    bag = BagWriter(path)
    bag.add_topic('/echoloc/features', 'echoloc/msg/EchoFeatures')
    bag.add_topic('/echoloc/pose', 'geometry_msgs/msg/PoseWithCovarianceStamped')
    written = 0
    for k, (t_s, position, features, yaw) in enumerate(frames):
        stamp = Time(sec=int(t_s), nanosec=int(round((t_s % 1.0) * 1e9)))
        frame = EchoFrame()
        frame.header.stamp = stamp
        frame.seq = k
        frame.array_id = array.name
        msg = conversions.features_msg(features, frame, 0.001)
        if written < n_bad:
            msg.baseband_real = msg.baseband_real[:10]
        std_m = 0.5 if n_bad <= written < n_bad + n_uncertain else 0.002
        # Two frames whose fix the tracker refused: the node publishes the IMU's heading, 1 deg.
        refused = n_bad + n_uncertain <= written < n_bad + n_uncertain + 2
        yaw_var = np.deg2rad(1.0) ** 2 if refused else 1e-6
        pose = conversions.pose_msg(position, std_m ** 2 * np.eye(3), yaw, yaw_var, stamp,
                                    'map')
        log_ns = int(t_s * 1e9)
        bag.write('/echoloc/features', log_ns, serialize_message(msg))
        bag.write('/echoloc/pose', log_ns, serialize_message(pose))
        written += 1
    bag.close()
    return written


def test_survey_cli_writes_the_room_as_it_stands(tmp_path):
    room = load_room('furnished_room')
    moved = moved_off_path(room, tracked_path(room), room.vertices_m.min(axis=0),
                           np.random.default_rng(3), 1.0)
    written = write_recording(tmp_path / 'drive', room, replace(room, furniture=moved))
    frames, counts = posed_frames(tmp_path / 'drive')
    assert counts == {'features': written, 'poses': written, 'paired': written,
                      'uncertain': 5, 'bad': 2, 'used': written - 7}
    assert len(frames) == written - 7
    out = tmp_path / 'room_now.yaml'
    run = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'survey',
                          str(tmp_path / 'drive'), '--room', 'furnished_room', '--out', str(out),
                          '--every', '1'], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report['out'] == str(out) and report['n_frames'] == written - 7
    surveyed = load_room(out)
    for before, truth, after in zip(room.furniture, moved, surveyed.furniture):
        fix = report['boxes'][before.name]
        if before.name != 'desk_top':
            assert fix['seen'], before.name
            assert np.linalg.norm(after.min_m - truth.min_m) < 0.03, before.name
        if not fix['seen']:
            assert np.all(after.min_m == before.min_m)


def test_survey_cli_names_what_is_missing(tmp_path):
    missing = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'survey',
                              str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'x.yaml')],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0
    assert 'nowhere' in missing.stderr and 'is not a directory' in missing.stderr
    (tmp_path / 'empty').mkdir()
    empty = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'survey',
                            str(tmp_path / 'empty'), '--out', str(tmp_path / 'x.yaml')],
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode != 0
    assert 'empty is not a readable recording' in empty.stderr, empty.stderr
    room = load_room('furnished_room')
    write_recording(tmp_path / 'unsure', room, room, n_uncertain=10 ** 6, n_bad=0)
    unsure = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'survey',
                             str(tmp_path / 'unsure'), '--out', str(tmp_path / 'y.yaml')],
                            capture_output=True, text=True, timeout=120)
    assert unsure.returncode != 0
    assert 'standard deviation below 0.02 m' in unsure.stderr
    assert not (tmp_path / 'y.yaml').exists()
