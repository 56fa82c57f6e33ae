"""What is measured is what ships: the same frames through the localizer node over DDS and
through the pipeline that ``echoloc evaluate`` drives give the same poses, bit for bit."""
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from threadpoolctl import threadpool_limits

from echoloc.msg import EchoFeatures, EchoFrame
from echoloc_ros.ros import conversions
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.paths import default_model_path
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.ros.graph import GRAPH
from echoloc_ros.ros.process_graph import NodeProcesses
from ros_testing import TopicRecorder, wait_for

FRAMES = 12
RATE_HZ = 25.0
YAW_RAD = 0.3
# The heading the node is given (fixed_yaw_rad), 0.5 deg off the truth, and its std.
GIVEN_YAW_RAD = YAW_RAD + float(np.deg2rad(0.5))
HEADING_STD_DEG = 1.0


def _feature_messages(room, array) -> list[EchoFeatures]:
    """Frames of a straight drive at 0.3 m/s along the heading (a ground robot's: the tracker
    holds a track's velocity to it), as the echo processor publishes them."""
    chirp = Chirp()
    simulator = EchoSimulator(room, array, chirp)
    processor = EchoProcessor(chirp, 250e3, array=array)
    rng = np.random.default_rng(5)
    messages = []
    for k in range(FRAMES):
        t_s = 1.0 + k / RATE_HZ
        position = np.array([1.5, 2.0, 0.3]) + 0.3 * k / RATE_HZ * np.array(
            [np.cos(YAW_RAD), np.sin(YAW_RAD), 0.0])
        features = processor.process(simulator.simulate(position, YAW_RAD,
                                                        Scenario(snr_db=15.0), rng))
        frame = EchoFrame(seq=k, array_id=array.name)
        frame.header.stamp = Time(sec=int(t_s), nanosec=int(round((t_s % 1.0) * 1e9)))
        frame.header.frame_id = 'array'
        # As a recording holds them: serialized (float32 fields rounded as DDS carries them).
        messages.append(deserialize_message(serialize_message(
            conversions.features_msg(features, frame, 0.0)), EchoFeatures))
    return messages


def _pose_fields(msg: PoseWithCovarianceStamped) -> tuple:
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return (p.x, p.y, p.z, q.x, q.y, q.z, q.w, tuple(msg.pose.covariance))


@pytest.mark.parametrize('method', ['physics', 'nn'])
def test_node_and_evaluate_give_identical_poses(ros_env, tmp_path, method):
    room, array = load_room('default_room'), load_array('square_4sensor')
    if method == 'nn' and not default_model_path(room.name).is_file():
        pytest.skip('no shipped model for the default room')
    messages = _feature_messages(room, array)

    # evaluate's path: the pipeline make_pipeline builds, given what the node is given.
    yaw_std = float(np.sqrt(np.deg2rad(HEADING_STD_DEG) ** 2))
    pipeline = make_pipeline(method, room, array, Chirp(), num_threads=1,
                             tracker=PoseTracker(room_volume_m3=room.volume_m3))
    expected, vouched = [], []
    # The node holds BLAS to num_threads (1); sums over other thread counts round otherwise.
    with threadpool_limits(limits=1):
        for msg in messages:
            result = pipeline.step(conversions.stamp_to_s(msg.header.stamp),
                                   conversions.features_from_msg(msg), GIVEN_YAW_RAD, yaw_std,
                                   20.0)
            # The node publishes only the poses a confirmed track vouches for.
            vouched.append(result.vouched)
            if result.vouched:
                expected.append(_pose_fields(conversions.pose_msg(
                    result.position_m, result.covariance_m2, result.yaw_rad,
                    result.yaw_variance_rad2, msg.header.stamp, 'map')))
    # Until a track is confirmed (three fixes) nothing is published; then every frame is.
    assert vouched == [False] * 3 + [True] * (FRAMES - 3), vouched

    import rclpy
    rec = TopicRecorder(rclpy)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    rec.subscribe(PoseWithCovarianceStamped, '/echoloc/pose', reliable)
    rec.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=50))
    publisher = rec.publisher(EchoFeatures, '/echoloc/features', QoSProfile(depth=5))

    def frames_taken() -> int:
        """Frames the localizer has finished with (callbacks and diagnostics share a thread)."""
        return rec.diagnostic_count('localizer: Localization', 'frames')

    graph = NodeProcesses(specs=tuple(s for s in GRAPH if s.name == 'localizer'),
                          env=ros_env, log_dir=tmp_path, overrides={'localizer': {
                              'method': method, 'heading_source': 'fixed',
                              'fixed_yaw_rad': GIVEN_YAW_RAD,
                              'heading_std_deg': HEADING_STD_DEG, 'temperature_c': 20.0,
                              'wide_search_max_hz': 0.0, 'room_updates': False,
                              'publish_markers': False}})
    try:
        graph.start()
        assert wait_for(lambda: publisher.get_subscription_count() > 0
                        and rec.node.count_publishers('/echoloc/pose') > 0, timeout_s=60.0), \
            f'localizer not up in 60 s; log in {tmp_path}: {graph.exited()}'
        for k, msg in enumerate(messages):
            # One frame at a time: the node works on the newest frame and drops any it
            # overtook, so each frame waits for its pose, or, before the track is confirmed
            # (no pose), for the diagnostics to show the node took it.
            publisher.publish(msg)
            if vouched[k]:
                n = sum(vouched[:k + 1])
                assert wait_for(lambda: len(rec.get('/echoloc/pose')) >= n, timeout_s=30.0), \
                    f'no pose for frame {k}; log in {tmp_path}: {graph.exited()}'
            else:
                assert wait_for(lambda: frames_taken() > k, timeout_s=30.0), \
                    f'frame {k} not taken; log in {tmp_path}: {graph.exited()}'
    finally:
        graph.stop()
        rec.close()
    published = [_pose_fields(m) for _, m in rec.get('/echoloc/pose')]

    assert published == expected
