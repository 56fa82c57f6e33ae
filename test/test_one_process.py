"""The echo processor and the localizer in one process (``bringup --one-process``): raw frames
in, the same poses out as the processor and the pipeline give in-process, bit for bit, and the
features still published to a subscriber in another process."""
import time

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from threadpoolctl import threadpool_limits

from echoloc.msg import EchoFeatures, EchoFrame
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.ros import conversions
from echoloc_ros.ros.graph import GRAPH, ONE_PROCESS, graph_specs
from echoloc_ros.ros.process_graph import NodeProcesses
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from ros_testing import wait_for

FRAMES = 10
RATE_HZ = 25.0
YAW_RAD = 0.3
HEADING_STD_DEG = 1.0


def _frames(room, array) -> list[EchoFrame]:
    """Raw frames of a straight drive at 0.3 m/s, as the driver publishes them."""
    simulator = EchoSimulator(room, array, Chirp())
    rng = np.random.default_rng(11)
    frames = []
    for k in range(FRAMES):
        t_s = 1.0 + k / RATE_HZ
        position = np.array([1.5 + 0.3 * k / RATE_HZ, 2.0, 0.3])
        samples = simulator.simulate(position, YAW_RAD, Scenario(snr_db=20.0), rng)
        stamp = Time(sec=int(t_s), nanosec=int(round((t_s % 1.0) * 1e9)))
        frames.append(conversions.echo_frame_msg(samples, stamp, 'array', k, array, Chirp(),
                                                 250e3))
    return frames


def _pose_fields(msg: PoseWithCovarianceStamped) -> tuple:
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return (p.x, p.y, p.z, q.x, q.y, q.z, q.w, tuple(msg.pose.covariance))


def test_graph_specs_put_the_two_nodes_in_one_process():
    # By default (bringup, the launch file, the bench): one process.
    assert graph_specs() == graph_specs(one_process=True) != GRAPH
    assert graph_specs(one_process=False) == GRAPH
    specs = graph_specs(one_process=True)
    names = [name for spec in specs for name in spec.node_names]
    assert sorted(names) == sorted(spec.name for spec in GRAPH)
    assert ONE_PROCESS in specs and ONE_PROCESS.node_names == ('echo_processor', 'localizer')
    # Each node's overrides go to its own section, not to every node of the process.
    graph = NodeProcesses(specs=specs, overrides={'localizer': {'method': 'nn'}})
    command = graph.command(ONE_PROCESS)
    try:
        assert '-p' not in command and '__node:=echo_localizer' not in command
        assert command.count('--params-file') == 2
        text = graph.override_files[0].read_text()
        assert 'localizer:' in text and 'method: nn' in text and 'echo_processor' not in text
    finally:
        graph.stop()
    assert not graph.override_files


def test_one_process_gives_the_in_process_poses_and_still_publishes_features(ros_env, tmp_path):
    room, array = load_room('default_room'), load_array('square_4sensor')
    frames = _frames(room, array)

    # In-process: the processor for the frames' own chirp and rate (single precision, as the
    # node builds it), then the pipeline given the node's fixed heading.
    processor = EchoProcessor(conversions.echo_frame_chirp(frames[0]),
                              frames[0].sample_rate_hz, decimation=4, array=array)
    pipeline = make_pipeline('physics', room, array, Chirp(), num_threads=1,
                             tracker=PoseTracker(room_volume_m3=room.volume_m3))
    yaw_std = float(np.deg2rad(HEADING_STD_DEG))
    expected, vouched = [], []
    with threadpool_limits(limits=1):
        for frame in frames:
            msg = conversions.features_msg(
                processor.process(conversions.echo_frame_samples(frame)), frame, 0.0)
            result = pipeline.step(conversions.stamp_to_s(frame.header.stamp),
                                   conversions.features_from_msg(msg), YAW_RAD, yaw_std, 20.0)
            vouched.append(result.vouched)
            if result.vouched:
                expected.append(_pose_fields(conversions.pose_msg(
                    result.position_m, result.covariance_m2, result.yaw_rad,
                    result.yaw_variance_rad2, frame.header.stamp, 'map')))
    assert sum(vouched) >= FRAMES - 3, vouched

    import rclpy
    from ros_testing import TopicRecorder
    rec = TopicRecorder(rclpy)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    rec.subscribe(PoseWithCovarianceStamped, '/echoloc/pose', reliable)
    rec.subscribe(EchoFeatures, '/echoloc/features', QoSProfile(depth=100))
    rec.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=50))
    publisher = rec.publisher(EchoFrame, '/echoloc/echoes', QoSProfile(depth=5))

    def frames_taken() -> int:
        """Frames the localizer has finished with (callbacks and diagnostics share a thread)."""
        return rec.diagnostic_count('localizer: Localization', 'frames')

    graph = NodeProcesses(specs=(ONE_PROCESS,), env=ros_env, log_dir=tmp_path, overrides={
        'localizer': {'heading_source': 'fixed', 'fixed_yaw_rad': YAW_RAD,
                      'heading_std_deg': HEADING_STD_DEG, 'temperature_c': 20.0,
                      'wide_search_max_hz': 0.0, 'room_updates': False,
                      'publish_markers': False},
        'echo_processor': {'publish_ranges': False, 'self_calibrate': False}})
    try:
        graph.start()
        assert wait_for(lambda: publisher.get_subscription_count() > 0
                        and rec.node.count_publishers('/echoloc/pose') > 0
                        and rec.node.count_publishers('/echoloc/features') > 0,
                        timeout_s=90.0), f'not up in 90 s; log in {tmp_path}: {graph.exited()}'
        # Until the processor's publisher has matched this process's features subscription
        # (discovery goes both ways, not at once), so that it publishes every frame's.
        time.sleep(2.0)
        for k, frame in enumerate(frames):
            # One frame at a time: each waits for its pose, or for the localizer to count it.
            publisher.publish(frame)
            n = sum(vouched[:k + 1])
            assert wait_for(lambda: len(rec.get('/echoloc/pose')) >= n
                            and len(rec.get('/echoloc/features')) > k, timeout_s=30.0), \
                f'frame {k}: no pose or features (taken: {frames_taken()}); log in {tmp_path}: ' \
                f'{graph.exited()}'
            if not vouched[k]:
                assert wait_for(lambda: frames_taken() > k, timeout_s=30.0), \
                    f'frame {k} not taken; log in {tmp_path}: {graph.exited()}'
        assert not graph.exited()
    finally:
        codes = graph.stop()
        rec.close()
    assert codes == {ONE_PROCESS.name: 0}, codes
    assert [_pose_fields(m) for _, m in rec.get('/echoloc/pose')] == expected
    # The features went out too (a subscriber in another process), one per frame, in order.
    assert [m.seq for _, m in rec.get('/echoloc/features')] == list(range(FRAMES))


def test_the_processor_looks_for_the_first_echo_only_while_another_process_may_read_it(
        ros_env):
    # In one process with the localizer and no other subscriber, the features handed over
    # skip the first echo (the localizer does not read it); once another subscriber appears,
    # the same frame's features carry it, and everything else is the same to the bit.
    import rclpy
    from ros_testing import TopicRecorder

    from echoloc_ros.nodes.echo_processor import EchoProcessorNode
    frame = _frames(load_room('default_room'), load_array('square_4sensor'))[0]
    node = EchoProcessorNode()
    handed: list[EchoFeatures] = []
    node.local_readers.append(lambda msg, features: handed.append(msg))
    rec = TopicRecorder(rclpy)
    try:
        node.on_frame(frame)
        rec.subscribe(EchoFeatures, '/echoloc/features', QoSProfile(depth=10))
        assert wait_for(lambda: node.pub.get_subscription_count() > 0, timeout_s=30.0)
        node.on_frame(frame)
    finally:
        rec.close()
        node.destroy_node()
    lean, full = (conversions.features_from_msg(m) for m in handed)
    for name in ('tof_s', 'tof_cfd_s', 'snr_db', 'noise_floor'):
        assert np.all(np.isnan(getattr(lean, name))), name
        assert np.all(np.isfinite(getattr(full, name))), name
    for name in ('baseband', 'direct_tof_s', 'direct_amplitude'):
        assert np.array_equal(getattr(lean, name), getattr(full, name)), name


def _heard_by(node, subscriber, frame, subscribers: int) -> EchoFeatures:
    """The features ``subscriber`` (a node) receives once the echo processor ``node`` sees
    ``subscribers`` subscribers of them and processes ``frame``."""
    import rclpy
    got: list[EchoFeatures] = []
    subscriber.create_subscription(EchoFeatures, '/echoloc/features', got.append,
                                   QoSProfile(depth=10))
    assert wait_for(lambda: len(node.get_subscriptions_info_by_topic(
        '/echoloc/features')) == subscribers and node.pub.get_subscription_count() == subscribers,
        30.0)
    node.on_frame(frame)
    assert wait_for(lambda: rclpy.spin_once(subscriber, timeout_sec=0.1) or got, 30.0)
    return conversions.features_from_msg(got[0])


def test_the_features_carry_the_first_echo_only_while_a_subscriber_may_read_it(ros_env):
    # Two processes: the features are published, and while the localizer (and the furniture
    # survey) are their only subscribers they leave the first echo out, as the one process
    # does; a subscriber of any other name (a recorder) gets it, the rest the same to the bit.
    import rclpy

    from echoloc_ros.nodes.echo_processor import EchoProcessorNode
    frame = _frames(load_room('default_room'), load_array('square_4sensor'))[0]
    node = EchoProcessorNode()
    localizer, recorder = rclpy.create_node('localizer'), rclpy.create_node('recorder')
    try:
        lean = _heard_by(node, localizer, frame, 1)
        full = _heard_by(node, recorder, frame, 2)
    finally:
        recorder.destroy_node()
        localizer.destroy_node()
        node.destroy_node()
    for name in ('tof_s', 'tof_cfd_s', 'snr_db', 'noise_floor'):
        assert np.all(np.isnan(getattr(lean, name))), name
        assert np.all(np.isfinite(getattr(full, name))), name
    for name in ('baseband', 'direct_tof_s', 'direct_amplitude'):
        assert np.array_equal(getattr(lean, name), getattr(full, name)), name


def test_a_node_of_the_localizers_name_elsewhere_gets_the_first_echo(ros_env):
    # Only this graph's own localizer and survey (this node's namespace) leave the first echo
    # unread: a robot's node that happens to be called "localizer" in its own namespace reads
    # the features whole.
    import rclpy

    from echoloc_ros.nodes.echo_processor import EchoProcessorNode
    frame = _frames(load_room('default_room'), load_array('square_4sensor'))[0]
    node = EchoProcessorNode()
    other = rclpy.create_node('localizer', namespace='/robot')
    try:
        whole = _heard_by(node, other, frame, 1)
    finally:
        other.destroy_node()
        node.destroy_node()
    for name in ('tof_s', 'tof_cfd_s', 'snr_db', 'noise_floor'):
        assert np.all(np.isfinite(getattr(whole, name))), name


def test_the_localizer_in_one_process_localizes_from_the_processors_own_features(ros_env):
    # Joined as echo_localizer joins them, the processor hands the localizer each frame's
    # features beside the message's fields, and the localizer localizes from those, not from
    # the fields' single-precision copies: here the fields' arrays are emptied on the way, and
    # the fix is the same, to the bit, as a localizer given the whole message.
    import dataclasses

    from echoloc_ros.nodes.echo_localizer import join
    from echoloc_ros.nodes.echo_processor import EchoProcessorNode
    from echoloc_ros.nodes.localizer import LocalizerNode
    frames = _frames(load_room('default_room'), load_array('square_4sensor'))[:3]
    import rclpy
    # The nodes' parameters as their process gets them: the command line's.
    rclpy.shutdown()
    rclpy.init(args=['--ros-args', '-p', 'heading_source:=fixed', '-p',
                     f'fixed_yaw_rad:={YAW_RAD}', '-p', 'self_calibrate:=false', '-p',
                     'wide_search_max_hz:=0.0', '-p', 'warm_up:=false', '-p',
                     'room_updates:=false'])
    processor, joined, alone = EchoProcessorNode(), LocalizerNode(), LocalizerNode()
    try:
        join(processor, joined)
        read = processor.local_readers[0]
        whole: list = []

        def emptied(msg, features) -> None:
            whole.append(msg)
            empty = np.empty(0, dtype=np.float32)
            read(dataclasses.replace(msg, baseband_real=empty, baseband_imag=empty), features)

        processor.local_readers[:] = [emptied]
        for frame in frames:
            processor.on_frame(frame)
            alone.on_features(whole[-1])
        assert joined.frames_failed == 0, joined.last_error
        assert joined.pipeline.counts.frames == alone.pipeline.counts.frames == len(frames)
        for name in ('position_m', 'covariance_m2', 'yaw_rad'):
            assert (np.asarray(getattr(joined.last_estimate, name)).tobytes()
                    == np.asarray(getattr(alone.last_estimate, name)).tobytes()), name
    finally:
        for node in (processor, joined, alone):
            node.destroy_node()
        rclpy.shutdown()
        rclpy.init()
