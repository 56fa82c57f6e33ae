"""The localizer hands the tracker how a base moves: along its heading but for
tracker_lateral_speed_std_mps of slip (0: a device that may move sideways), on the base's
heading (the array's less array_in_base_yaw_rad, live), allowing the sideways swing of an
array off the turning axis (array_in_base_xyz, live). The node built in this process as its
main() builds it, from its command line's parameters."""
import pytest
import rclpy
from rclpy.parameter import Parameter

from echoloc_ros.core.tracker_motion import LATERAL_SPEED_STD_MPS


def _localizer(*assignments: str):
    from echoloc_ros.nodes.localizer import LocalizerNode
    rclpy.shutdown()
    args = ['--ros-args', '-p', 'warm_up:=false', '-p', 'room_updates:=false']
    for assignment in assignments:
        args += ['-p', assignment]
    rclpy.init(args=args)
    return LocalizerNode()


@pytest.mark.parametrize('assignments, lateral', [
    ((), LATERAL_SPEED_STD_MPS),
    (('tracker_lateral_speed_std_mps:=0.1',), 0.1),
    (('tracker_lateral_speed_std_mps:=0.0',), None)])
def test_the_tracker_takes_the_lateral_speed_the_node_is_given(ros_env, assignments, lateral):
    node = _localizer(*assignments)
    try:
        assert node.tracker.lateral_speed_std_mps == lateral
    finally:
        node.destroy_node()


def test_the_tracker_follows_the_arrays_heading_on_the_base(ros_env):
    node = _localizer('array_in_base_yaw_rad:=0.5')
    try:
        assert node.tracker.array_in_base_yaw_rad == 0.5
        result = node.set_parameters([Parameter('array_in_base_yaw_rad', value=-1.0)])
        assert result[0].successful, result[0].reason
        assert node.tracker.array_in_base_yaw_rad == -1.0
    finally:
        node.destroy_node()


def test_the_tracker_takes_where_the_array_sits_on_the_base_live(ros_env):
    # An array ahead of the base's turning axis swings sideways as the base turns: the
    # tracker's hold of the heading needs its place on the base, and a new place at once.
    node = _localizer('array_in_base_xyz:=[0.3, 0.1, 0.2]')
    try:
        assert node.tracker.array_in_base_xyz.tolist() == [0.3, 0.1, 0.2]
        result = node.set_parameters([Parameter('array_in_base_xyz', value=[-0.2, 0.0, 0.0])])
        assert result[0].successful, result[0].reason
        assert node.tracker.array_in_base_xyz.tolist() == [-0.2, 0.0, 0.0]
    finally:
        node.destroy_node()
