"""The localizer node's tracker parameters: how the array moves (its unmodelled acceleration,
a ground base's sideways slip), how long the tracker remembers and coasts, and where the array
sits on the base (``array_in_base_yaw_rad``, ``array_in_base_xyz``, which the node declares
with the pose's parameters and hands on live)."""

from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.core.tracker_motion import LATERAL_SPEED_STD_MPS
from echoloc_ros.nodes.common import declare


def declare_tracker(node) -> PoseTracker:
    """Declare the ``tracker_*`` parameters on ``node`` and return its tracker, for the
    node's room (``node.room``) and array mount (``node.array_in_base_yaw_rad``,
    ``node.array_in_base_xyz``)."""
    return PoseTracker(
        accel_std_mps2=declare(node, 'tracker_accel_std_mps2', 0.5, 'standard deviation of '
                               'the array\'s unmodelled acceleration, for the tracker '
                               '[m/s^2]; raise it for a robot that turns or brakes '
                               'harder', read_only=True, min_value=0.01, max_value=50.0),
        memory_s=declare(node, 'tracker_memory_s', 1.0, 'how long the tracker remembers '
                         'which track the fixes supported [s]', read_only=True,
                         min_value=0.1, max_value=60.0),
        max_coast_s=declare(node, 'tracker_max_coast_s', 2.0, 'the tracked pose is '
                            'published at most this long after the last fix it took; '
                            'then it is dropped, the Localization diagnostic is ERROR and '
                            'no pose is published until fresh fixes confirm a new track '
                            '[s]', read_only=True, min_value=0.1, max_value=60.0),
        lateral_speed_std_mps=declare(
            node, 'tracker_lateral_speed_std_mps', LATERAL_SPEED_STD_MPS, 'the base moves '
            'along its heading but for this much sideways slip, for the tracker [m/s]; an '
            'array off the base\'s turning axis (array_in_base_xyz) also moves sideways as it '
            'turns, and the tracker allows that; 0: a device that may move sideways',
            read_only=True, min_value=0.0, max_value=10.0) or None,
        array_in_base_yaw_rad=node.array_in_base_yaw_rad,
        array_in_base_xyz=tuple(node.array_in_base_xyz), room_volume_m3=node.room.volume_m3)
