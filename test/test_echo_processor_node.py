"""echo_processor against bad frames: clear errors, diagnostics, and it keeps running; and the
localizer behind it against frames stamped back in time."""
import math
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from rclpy.serialization import serialize_message

from ros_testing import wait_for
from echoloc.msg import EchoFeatures, EchoFrame
from echoloc_ros.ros import conversions
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator
from echoloc_ros.ros.diagnostics import level_of
from echoloc_ros.ros.graph import GRAPH
from echoloc_ros.ros.process_graph import NodeProcesses


@pytest.fixture(scope='module')
def good_samples():
    sim = EchoSimulator(load_room('default_room'), load_array('square_4sensor'), Chirp(),
                        fs_hz=250e3)
    return sim.simulate(np.array([2.0, 1.5, 0.3]), 0.3, rng=np.random.default_rng(1))


@pytest.fixture
def processor(ros_env, tmp_path):
    spec = next(s for s in GRAPH if s.name == 'echo_processor')
    graph = NodeProcesses(specs=(spec,), env=ros_env, log_dir=tmp_path)
    graph.start()
    yield graph
    graph.stop()


def _frame(samples, seq, **changes):
    msg = conversions.echo_frame_msg(samples, _stamp(seq), 'echoloc_array', seq,
                                     load_array('square_4sensor'), Chirp(), 250e3)
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


def _stamp(seq):
    from builtin_interfaces.msg import Time
    return Time(sec=1000 + seq, nanosec=0)


def test_bad_frames_rejected_with_clear_errors_and_node_survives(processor, recorder,
                                                                 good_samples, tmp_path):
    recorder.subscribe(EchoFeatures, '/echoloc/features', QoSProfile(depth=50))
    recorder.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=50))
    pub = recorder.publisher(EchoFrame, '/echoloc/echoes', QoSProfile(depth=50))

    def answered(seq):
        return [m for _, m in recorder.get('/echoloc/features') if m.header.stamp == _stamp(seq)]

    # A good frame, repeated until its features come back: the path works both ways before
    # the bad frames go out (a best-effort subscriber drops what comes before it matched).
    assert wait_for(lambda: pub.publish(_frame(good_samples, 0)) or answered(0), timeout_s=20.0)
    truncated = _frame(good_samples, 1)
    truncated.data = truncated.data[:1000]
    bad = [
        truncated,
        _frame(good_samples, 2, sample_rate_hz=48000.0),
        _frame(good_samples, 3, sample_rate_hz=math.nan),
        _frame(good_samples, 4, n_channels=0),
        _frame(good_samples, 5, array_id='no_such_array'),
    ]
    for msg in bad:
        # Spaced out: the node's sensor-data queue is short and drops a burst.
        pub.publish(msg)
        time.sleep(0.1)
    # Bytes that end before the frame does (the node takes its frames serialized): refused by
    # name, not counted as a frame rejected (its seq unread, the gap counts it).
    unreadable = serialize_message(_frame(good_samples, 7))[:5000]
    pub.publish(unreadable)
    time.sleep(0.1)
    # Then a good one: the node must still be alive and process it.
    assert wait_for(lambda: pub.publish(_frame(good_samples, 6)) or answered(6), timeout_s=15.0)
    assert not any(answered(seq) for seq in range(1, 6))
    features = answered(6)[0]
    assert features.n_channels == 4 and len(features.baseband_real) == 4 * features.n_bins
    # The envelope is left for the reader to compute from the baseband.
    assert len(features.envelope) == 0
    assert not processor.exited()

    def frame_status():
        statuses = [s for _, m in recorder.get('/diagnostics') for s in m.status
                    if s.name == 'echo_processor: Frames']
        return statuses[-1] if statuses else None

    # The diagnostic names the problem; it reports the rejection in the period it happened.
    assert wait_for(lambda: frame_status() and any(
        v.key == 'frames rejected' and int(v.value) == len(bad) for v in frame_status().values)
        if frame_status() else False, timeout_s=5.0)
    rejected = [s for _, m in recorder.get('/diagnostics') for s in m.status
                if s.name == 'echo_processor: Frames' and level_of(s) >= 1]
    assert rejected and 'rejected' in rejected[0].message
    log = (tmp_path / 'echo_processor.log').read_text()
    for expected in ('truncated frame seq=1: 1000 samples, expected n_channels*n_samples',
                     'sample_rate_hz=48000, expected 250000', 'sample_rate_hz=nan',
                     'n_channels=0', "unknown array 'no_such_array'",
                     'frame unreadable: serialized EchoFrame of 5000 bytes unreadable (',
                     'expected a echoloc/msg/EchoFrame in CDR'):
        assert expected in log


def test_localizer_restarts_its_tracker_when_stamps_go_back(ros_env, recorder, good_samples,
                                                             tmp_path):
    """A frame stamped before the last one (a recording played again into a running graph, a
    clock reset) restarts the track; the localizer keeps publishing."""
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.qos import ReliabilityPolicy
    specs = tuple(s for s in GRAPH if s.name in ('echo_processor', 'localizer'))
    overrides = {'localizer': {'heading_source': 'fixed', 'fixed_yaw_rad': 0.3,
                               'tracking': True, 'tracker_accel_std_mps2': 1.0,
                               'tracker_memory_s': 2.0}}
    recorder.subscribe(PoseWithCovarianceStamped, '/echoloc/pose',
                       QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    pub = recorder.publisher(EchoFrame, '/echoloc/echoes', QoSProfile(depth=50))

    def posed(seq):
        return any(m.header.stamp == _stamp(seq) for _, m in recorder.get('/echoloc/pose'))

    with NodeProcesses(specs, env=ros_env, log_dir=tmp_path, overrides=overrides) as graph:
        assert wait_for(lambda: pub.publish(_frame(good_samples, 50)) or posed(50),
                        timeout_s=30.0)
        for seq in (51, 52, 10, 11):  # 10: forty seconds back
            assert wait_for(lambda: pub.publish(_frame(good_samples, seq)) or posed(seq),
                            timeout_s=15.0), f'no pose for seq {seq}; logs in {tmp_path}'
        assert not graph.exited()
    poses = {m.header.stamp.sec: m for _, m in recorder.get('/echoloc/pose')}
    assert abs(poses[1011].pose.pose.position.x - 2.0) < 0.05
    log = (tmp_path / 'localizer.log').read_text()
    assert 'before the last frame' in log and 'tracker restarted' in log
