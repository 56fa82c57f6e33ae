"""The bench's listener reads when each message was sent from its DDS source timestamp, the
publisher's clock, so that a late listener does not shorten the latencies it reports."""
import time

import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy

from echoloc_ros.ros.listener import GraphListener, MessageInfo, Spinner
from ros_testing import wait_for


def test_listener_keeps_the_send_time_of_each_pose(ros_env):
    if MessageInfo is None:
        pytest.skip('this rclpy gives no message info (Humble): the bench falls back to '
                    'arrival times')
    import rclpy
    listener = GraphListener('test_listener_clock')
    talker = rclpy.create_node('test_listener_clock_talker')
    publisher = talker.create_publisher(PoseWithCovarianceStamped, 'echoloc/pose', QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE))
    try:
        assert wait_for(lambda: publisher.get_subscription_count() > 0, timeout_s=20.0)
        before_s = time.time()
        msg = PoseWithCovarianceStamped()
        msg.header.stamp = Time(sec=7, nanosec=5)
        publisher.publish(msg)
        after_s = time.time()
        # The listener is not spinning yet: it takes the pose only 0.3 s later, as a listener
        # without a core would.
        time.sleep(0.3)
        with Spinner(listener):
            assert wait_for(lambda: listener.pose_stamps(), timeout_s=10.0)
        with listener.lock:
            heard_s = listener.heard.poses[7, 5][0]
            sent_s = listener.heard.sent['pose', (7, 5)]
        assert heard_s >= after_s + 0.3
        assert before_s - 0.001 <= sent_s <= after_s + 0.001
    finally:
        talker.destroy_node()
        listener.destroy_node()
