"""The localizer keeps each heading on imu/data as its bytes when it arrives, over real DDS, and
reads it with the next frame or diagnostics report (nodes/localizer_imu.py): read in the
order they came, each taken or refused by name as on arrival, with its arrival time; and no
more than PENDING_MAX kept unread."""
import time

from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Imu

from ros_testing import wait_for
from echoloc_ros.ros.diagnostics import DiagnosticStatusWrapper


def _imu(stamp_s: float, q=(0.0, 0.0, 0.0, 1.0), yaw_var: float = 1e-4) -> Imu:
    msg = Imu()
    msg.header.stamp = Time(sec=int(stamp_s), nanosec=int(round(stamp_s % 1 * 1e9)))
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = q
    msg.orientation_covariance = [1e6, 0.0, 0.0, 0.0, 1e6, 0.0, 0.0, 0.0, yaw_var]
    return msg


def _localizer():
    """A localizer node in this process whose diagnostics do not run by themselves."""
    from echoloc_ros.nodes.localizer import LocalizerNode
    node = LocalizerNode()
    node.set_parameters([Parameter('diagnostic_updater.period', value=3600.0)])
    return node


def _spin_until(node, predicate, timeout_s: float = 20.0) -> bool:
    import rclpy
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        rclpy.spin_once(node, timeout_sec=0.05)
    return predicate()


def test_headings_are_kept_as_they_come_and_read_in_order_at_the_next_report(recorder):
    node = _localizer()
    try:
        imu = recorder.publisher(Imu, '/imu/data', qos_profile_sensor_data)
        assert wait_for(lambda: imu.get_subscription_count() > 0, timeout_s=20.0)
        sent = [serialize_message(_imu(100.0)),
                serialize_message(_imu(100.04, q=(0.0, 0.0, 0.0, 1.01))),
                serialize_message(Imu())[:20],  # bytes that end before the message does
                serialize_message(_imu(100.08, q=(0.0, 0.0, 0.6, 0.8)))]
        for data in sent:
            imu.publish(data)
            assert _spin_until(node, lambda: node.imu_pending and node.imu_pending[-1][1] == data)
        published_mono = time.monotonic()
        # Kept, not read: nothing taken or refused yet.
        assert [data for _, data in node.imu_pending] == sent
        assert node.headings.times == [] and not node.headings_refused
        assert node.imu_accepted_mono == float('-inf')

        status = node.localization_status(DiagnosticStatusWrapper())
        assert not node.imu_pending
        # Read in the order they came, each as on arrival: two taken, two refused by name.
        assert node.headings.times == [100.0, 100.08]
        yaw, variance, _ = node.headings.at(100.08, 0.001)
        assert abs(yaw - 2 * 0.6435011087932844) < 1e-9 and variance == 1e-4
        assert dict(node.headings_refused) == {'non-unit quaternion': 1, 'unreadable': 1}
        assert node.last_refusal.startswith('unreadable: serialized Imu')
        # The times are the messages' arrivals, not the report's.
        assert node.imu_accepted_mono < published_mono
        assert node.imu_refused_mono < published_mono
        values = {v.key: v.value for v in status.values}
        assert values['headings refused'] == '2'
        assert values['headings refused: unreadable'] == '1'
    finally:
        node.destroy_node()


def test_no_more_than_pending_max_headings_are_kept_unread(recorder):
    from echoloc_ros.nodes.localizer_imu import PENDING_MAX
    node = _localizer()
    try:
        imu = recorder.publisher(Imu, '/imu/data', qos_profile_sensor_data)
        assert wait_for(lambda: imu.get_subscription_count() > 0, timeout_s=20.0)
        for i in range(PENDING_MAX + 3):
            imu.publish(_imu(100.0 + 0.01 * i))
            assert _spin_until(node, lambda: len(node.headings.times) + len(node.imu_pending)
                               == i + 1), f'heading {i} not heard'
        # No frame and no report came: the first PENDING_MAX were read when that many were
        # kept; the rest wait.
        assert len(node.imu_pending) == 3
        assert len(node.headings.times) == PENDING_MAX
        assert node.headings.latest_s() == 100.0 + 0.01 * (PENDING_MAX - 1)
    finally:
        node.destroy_node()
