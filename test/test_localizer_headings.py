"""The localizer reads the IMU's headings when a frame comes (or its flush timer runs while a
frame waits), not as each arrives: imu/data does not wake its executor, whose every wake costs
the node its own CPU at the IMU's rate. The node built in this process as its main() builds
it, spun by its own executor; the headings and features published over DDS by another node."""
import time

import pytest
import rclpy
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Imu

from echoloc.msg import EchoFeatures
from echoloc_ros.nodes.common import _executor
from echoloc_ros.ros import conversions
from ros_testing import wait_for

STAMP_S = 1000.0
# Long enough that a frame waiting for its heading on a busy machine is not flushed without it.
HEADING_TOLERANCE_S = 3.0


def _stamp(t_s: float) -> Time:
    return Time(sec=int(t_s), nanosec=round(1e9 * (t_s - int(t_s))))


@pytest.fixture
def localizer(ros_env):
    """(localizer, executor, publisher node): headings from imu/data only, no diagnostics due
    while a test runs (they read the headings too), no warm-up."""
    from echoloc_ros.nodes.localizer import LocalizerNode
    # The node's parameters as its process gets them: the command line's.
    rclpy.shutdown()
    rclpy.init(args=['--ros-args', '-p', 'heading_source:=imu', '-p', 'warm_up:=false',
                     '-p', 'room_updates:=false', '-p', 'diagnostic_updater.period:=60.0',
                     '-p', f'heading_tolerance_s:={HEADING_TOLERANCE_S}'])
    node, source, executor = LocalizerNode(), Node('heading_test_source'), _executor()
    executor.add_node(node)
    try:
        yield node, executor, source
    finally:
        executor.remove_node(node)
        node.destroy_node()
        source.destroy_node()


def _publishers(source: Node):
    imu = source.create_publisher(Imu, 'imu/data', qos_profile_sensor_data)
    features = source.create_publisher(EchoFeatures, 'echoloc/features', QoSProfile(depth=1))
    assert wait_for(lambda: imu.get_subscription_count() and features.get_subscription_count(),
                    timeout_s=30.0), 'the localizer did not subscribe within 30 s'
    # Discovery goes both ways: the localizer's readers must have matched these writers too.
    time.sleep(1.0)
    return imu, features


def _spin(executor, seconds: float, until=lambda: False) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until():
        executor.spin_once(timeout_sec=0.02)


def _features(t_s: float) -> EchoFeatures:
    # No array named: the frame fails once its heading is found (frames_failed), not before.
    msg = EchoFeatures()
    msg.header.stamp = _stamp(t_s)
    return msg


def test_headings_wait_unread_until_a_frame_comes_then_are_read_in_order(localizer):
    node, executor, source = localizer
    imu, features = _publishers(source)
    stamps = [STAMP_S + 0.01 * k for k in range(5)]
    for k, t_s in enumerate(stamps):
        imu.publish(conversions.imu_msg(0.1 * k, 1e-4, _stamp(t_s), 'imu'))
    # The executor spins while they arrive and wait: none is read, none refused.
    _spin(executor, 1.0)
    assert node.headings.latest_s() == -float('inf') and not node.headings_refused
    # A frame at the last heading's stamp: every heading is read first, in order, and the
    # frame goes ahead with its own (then fails: it names no array).
    features.publish(_features(stamps[-1]))
    _spin(executor, 10.0, until=lambda: node.frames_in)
    assert node.frames_in == 1 and node.frames_failed == 1 and node.no_heading == 0
    assert node.headings.latest_s() == stamps[-1]
    assert [node.headings.at(t_s, 0.001)[0] for t_s in stamps] == pytest.approx(
        [0.1 * k for k in range(5)])


def test_a_frame_waiting_for_its_heading_gets_it_from_the_flush_timer(localizer):
    node, executor, source = localizer
    imu, features = _publishers(source)
    # A frame before any heading waits for it; the heading comes while the node sleeps, and
    # is read by the timer that flushes the waiting frames (not heading_tolerance_s later,
    # without a heading).
    features.publish(_features(STAMP_S))
    _spin(executor, 10.0, until=lambda: node.waiting)
    assert node.waiting and node.frames_failed == 0
    imu.publish(conversions.imu_msg(0.2, 1e-4, _stamp(STAMP_S), 'imu'))
    _spin(executor, 2 * HEADING_TOLERANCE_S, until=lambda: node.frames_failed or node.no_heading)
    assert not node.waiting
    assert node.no_heading == 0 and node.frames_failed == 1
    assert node.headings.latest_s() == STAMP_S
