"""Under load the localizer works on the newest frame: frames overtaken while it localizes are
dropped, not localized late, and every dropped frame is counted in its diagnostics."""
import time

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message

from echoloc.msg import EchoFeatures, EchoFrame
from echoloc_ros.ros import conversions
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.ros.graph import GRAPH
from echoloc_ros.ros.process_graph import NodeProcesses
from ros_testing import TopicRecorder, wait_for

BURST = 30


def _messages(n: int) -> list[bytes]:
    """``n`` frames 1 ms apart at one place, serialized (so that a burst of them is published
    in a few ms, far faster than the localizer takes one)."""
    room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(room, array, chirp)
    processor = EchoProcessor(chirp, 250e3, array=array)
    features = processor.process(simulator.simulate(np.array([2.0, 1.5, 0.3]), 0.0,
                                                    Scenario(snr_db=20.0),
                                                    np.random.default_rng(1)))
    messages = []
    for k in range(n):
        frame = EchoFrame(seq=k, array_id=array.name)
        frame.header.stamp = Time(sec=1, nanosec=1_000_000 * k)
        messages.append(serialize_message(conversions.features_msg(features, frame, 0.0)))
    return messages


def _value(status, key: str) -> str | None:
    return next((v.value for v in status.values if v.key == key), None)


def _dropped(rec) -> int | None:
    statuses = [s for _, m in rec.get('/diagnostics') for s in m.status
                if s.name == 'localizer: Localization']
    value = _value(statuses[-1], 'frames dropped (overtaken)') if statuses else None
    return None if value is None else int(value)


def test_overtaken_frames_are_dropped_and_counted(ros_env, tmp_path):
    messages = _messages(BURST)
    import rclpy
    rec = TopicRecorder(rclpy)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    rec.subscribe(PoseWithCovarianceStamped, '/echoloc/pose', reliable)
    rec.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=50))
    publisher = rec.publisher(EchoFeatures, '/echoloc/features', QoSProfile(depth=BURST))
    graph = NodeProcesses(specs=tuple(s for s in GRAPH if s.name == 'localizer'),
                          env=ros_env, log_dir=tmp_path, overrides={'localizer': {
                              'heading_source': 'fixed', 'room_updates': False,
                              'publish_markers': False, 'tracking': False}})

    try:
        graph.start()
        assert wait_for(lambda: publisher.get_subscription_count() > 0
                        and rec.node.count_publishers('/echoloc/pose') > 0, timeout_s=60.0), \
            f'localizer not up in 60 s; log in {tmp_path}: {graph.exited()}'
        # Frame 0 alone first (the first frame also pays for warm-up), then a burst.
        publisher.publish(messages[0])
        assert wait_for(lambda: len(rec.get('/echoloc/pose')) == 1, timeout_s=30.0), \
            f'no pose for frame 0; log in {tmp_path}'
        for msg in messages[1:]:
            publisher.publish(msg)
        newest = Time(sec=1, nanosec=1_000_000 * (BURST - 1))
        assert wait_for(lambda: any(m.header.stamp == newest
                                    for _, m in rec.get('/echoloc/pose')), timeout_s=30.0), \
            f'no pose for the newest frame; log in {tmp_path}'
        posed = len(rec.get('/echoloc/pose'))
        assert wait_for(lambda: _dropped(rec) == BURST - posed, timeout_s=5.0), \
            f'{BURST - posed} frames without a pose, diagnostics count {_dropped(rec)}'
    finally:
        graph.stop()
        rec.close()
    stamps = [m.header.stamp.nanosec for _, m in rec.get('/echoloc/pose')]
    # Frame 0, the burst's first (taken at once) and its newest: those between were overtaken
    # (a queue of 5 would have localized 5 of them late).
    assert len(stamps) <= 4, f'{len(stamps)} of {BURST} frames localized: {stamps}'
    assert stamps == sorted(stamps)


def test_a_frame_waiting_for_its_heading_is_overtaken_by_a_newer_one(ros_env, tmp_path):
    # Frames wait for the IMU heading at their stamp; while one waits, a newer frame replaces
    # it (dropped and counted), so the heading that comes localizes the newest frame only.
    messages = _messages(BURST)
    import rclpy
    from sensor_msgs.msg import Imu
    rec = TopicRecorder(rclpy)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    rec.subscribe(PoseWithCovarianceStamped, '/echoloc/pose', reliable)
    rec.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=50))
    publisher = rec.publisher(EchoFeatures, '/echoloc/features', QoSProfile(depth=BURST))
    imu = rec.publisher(Imu, '/imu/data', QoSProfile(depth=10))
    graph = NodeProcesses(specs=tuple(s for s in GRAPH if s.name == 'localizer'),
                          env=ros_env, log_dir=tmp_path, overrides={'localizer': {
                              'heading_source': 'imu', 'heading_tolerance_s': 10.0,
                              'room_updates': False, 'publish_markers': False,
                              'tracking': False}})

    def posed_with_heading(stamp: Time) -> bool:
        # Sent until the pose comes: the first heading can go out before the localizer's side
        # of discovery has matched this publisher (best effort keeps no history for it).
        imu.publish(conversions.imu_msg(0.0, 1e-4, stamp, 'imu'))
        return any(m.header.stamp == stamp for _, m in rec.get('/echoloc/pose'))

    try:
        graph.start()
        assert wait_for(lambda: publisher.get_subscription_count() > 0
                        and imu.get_subscription_count() > 0
                        and rec.node.count_publishers('/echoloc/pose') > 0, timeout_s=60.0), \
            f'localizer not up in 60 s; log in {tmp_path}: {graph.exited()}'
        publisher.publish(messages[0])
        assert wait_for(lambda: posed_with_heading(Time(sec=1)), timeout_s=30.0), \
            f'no pose for frame 0; log in {tmp_path}'
        # 50 ms apart, so that each is taken (not overtaken in the subscription's queue).
        for msg in messages[1:]:
            publisher.publish(msg)
            time.sleep(0.05)
        newest = Time(sec=1, nanosec=1_000_000 * (BURST - 1))
        # The burst has arrived (each frame waiting in turn) before the heading comes.
        assert wait_for(lambda: _dropped(rec) is not None and _dropped(rec) >= BURST - 3,
                        timeout_s=15.0), f'diagnostics count {_dropped(rec)} dropped'
        assert wait_for(lambda: posed_with_heading(newest), timeout_s=30.0), \
            f'no pose for the newest frame; log in {tmp_path}'
        posed = len(rec.get('/echoloc/pose'))
        assert wait_for(lambda: _dropped(rec) == BURST - posed, timeout_s=5.0), \
            f'{BURST - posed} frames without a pose, diagnostics count {_dropped(rec)}'
    finally:
        graph.stop()
        rec.close()
    stamps = [m.header.stamp.nanosec for _, m in rec.get('/echoloc/pose')]
    # A queue of waiting frames would have localized the whole burst, late, in order.
    assert len(stamps) <= 3, f'{len(stamps)} of {BURST} frames localized: {stamps}'
    assert stamps[-1] == newest.nanosec
