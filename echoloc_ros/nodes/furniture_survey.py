"""furniture_survey: where the room's furniture stands now, from the robot's own tracked drive.

Pairs each tracked pose on ``echoloc/pose`` with the echo features of the same frame, keeps the
sure ones (:class:`~echoloc_ros.core.survey.LiveSurvey`), places the room file's boxes again
every ``period_s``, and when a box has moved publishes the room as it now stands on
``echoloc/room`` (YAML text, latched), which the localizer takes up. A process of its own: a
placement takes a second or two of CPU, which must not hold up the localizer's frames.
"""
import os

import numpy as np
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from echoloc.msg import EchoFeatures
from echoloc_ros.ros import conversions
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.room import load_room
from echoloc_ros.core.stamps import StampPairs
from echoloc_ros.core.survey import FurnitureSurvey, LiveSurvey, room_yaml
from echoloc_ros.ros.diagnostics import OK, WARN
from echoloc_ros.nodes.common import (declare, declare_chirp, diagnostic_updater,
                                      limit_threads, run)
from echoloc_ros.nodes.temperature_input import TemperatureInput

# The room as surveyed: latched, so a localizer that starts (or restarts) later gets it.
ROOM_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Features kept while their pose is awaited (frames; 4 s at 25 Hz, about 15 MB): a localizer
# that falls behind answers late.
FEATURES_HELD = 100


class FurnitureSurveyNode(Node):
    """Publishes the room with its furniture where it now stands on ``echoloc/room``."""

    def __init__(self):
        super().__init__('furniture_survey')
        limit_threads(self)
        niceness = declare(self, 'niceness', 10, 'added to this process\'s niceness: the survey '
                           'is background work, and on a small CPU the localizer\'s frames '
                           'come first', read_only=True, min_value=0, max_value=19)
        if niceness:
            os.nice(niceness)
        self.room_source = declare(self, 'room', 'default_room', 'room YAML (name in '
                                   'config/rooms or path): the room file whose furniture is '
                                   'surveyed', read_only=True)
        array_name = declare(self, 'array', 'square_4sensor', 'array YAML the frames come '
                             'from', read_only=True)
        chirp = declare_chirp(self)
        self.temperature_c = declare(self, 'temperature_c', 20.0, 'assumed air temperature '
                                     '[deg C] (the speed of sound is fitted around it)',
                                     min_value=-40.0, max_value=60.0,
                                     on_set=lambda t_c: setattr(self, 'temperature_c', t_c))
        self.temperature = TemperatureInput(self)
        period_s = declare(self, 'period_s', 5.0, 'how often the boxes are placed again [s]',
                           read_only=True, min_value=0.5, max_value=3600.0)
        max_shift_m = declare(self, 'max_shift_m', 1.0, 'how far a box may stand from where '
                              'the room file has it, on each axis [m]', read_only=True,
                              min_value=0.05, max_value=10.0)
        max_frames = declare(self, 'max_frames', 250, 'sure frames held for the placements '
                             '(the newest; about 190 KB each)', read_only=True, min_value=10,
                             max_value=10000)
        max_pose_std_m = declare(self, 'max_pose_std_m', 0.02, 'a pose is sure when its '
                                 'standard deviation is below this on every axis [m]',
                                 read_only=True, min_value=1e-4, max_value=1.0)
        max_yaw_std_deg = declare(self, 'max_yaw_std_deg', 0.5, 'and its heading\'s below '
                                  'this [deg]', read_only=True, min_value=0.01, max_value=45.0)
        self.out_file = declare(self, 'out_file', '', 'where to write the room file as '
                                'surveyed, after each change; empty: not written',
                                read_only=True)
        self.room = load_room(self.room_source)
        self.array = load_array(array_name)
        self.live = None
        if self.room.furniture:
            self.live = LiveSurvey(
                FurnitureSurvey(self.room, self.array, chirp, max_shift_m=max_shift_m),
                period_s=period_s, max_frames=max_frames, min_frames=min(25, max_frames),
                max_pose_std_m=max_pose_std_m, max_yaw_std_deg=max_yaw_std_deg)
        # Each pose with the features of its frame (the localizer copies the frame's stamp).
        self.pairs = StampPairs(capacity=FEATURES_HELD)
        self.poses_in = 0
        self.unpaired = 0
        self.frames_failed = 0
        self.rooms_published = 0
        self.last_error = ''
        self.placement_ms = 0.0

        self.room_pub = self.create_publisher(String, 'echoloc/room', ROOM_QOS)
        if self.live is not None:
            self.create_subscription(EchoFeatures, 'echoloc/features', self.on_features,
                                     QoSProfile(depth=10))
            self.create_subscription(PoseWithCovarianceStamped, 'echoloc/pose', self.on_pose,
                                     QoSProfile(depth=10,
                                                reliability=ReliabilityPolicy.RELIABLE))
        self.updater = diagnostic_updater(self, f'furniture_survey:{self.room.name}')
        self.updater.add('Furniture survey', self.survey_status)

    def on_features(self, msg: EchoFeatures) -> None:
        pair = self.pairs.add(0, conversions.stamp_key(msg.header.stamp), msg)
        if pair is not None:
            self.offer(*pair)

    def on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        self.poses_in += 1
        pair = self.pairs.add(1, conversions.stamp_key(msg.header.stamp), msg)
        if pair is None:
            self.unpaired += 1
            return
        self.offer(*pair)

    def offer(self, features_msg: EchoFeatures, msg: PoseWithCovarianceStamped) -> None:
        """Give the survey one frame's features with the pose published for that frame."""
        t_s = conversions.stamp_to_s(msg.header.stamp)
        position, covariance = conversions.pose_position_covariance(msg)
        yaw_var = float(msg.pose.covariance[35])
        try:
            if features_msg.array_id != self.array.name:
                raise ValueError(f'array_id={features_msg.array_id!r}, expected '
                                 f'{self.array.name!r} (parameter array)')
            self.live.offer(t_s, conversions.features_from_msg(features_msg), position,
                            covariance, conversions.quaternion_to_yaw(msg.pose.pose.orientation),
                            yaw_var, self.temperature.current(self.temperature_c)[0])
        except ValueError as exc:
            self.frames_failed += 1
            self.last_error = f'frame at {t_s:.3f} s skipped: {exc}'
            self.get_logger().warning(self.last_error, throttle_duration_sec=5.0)
            return
        if self.live.due(t_s):
            self.place(t_s)

    def place(self, t_s: float) -> None:
        start = self.get_clock().now()
        try:
            room = self.live.place(t_s)
        except ValueError as exc:
            self.last_error = f'placement failed: {exc}'
            self.get_logger().error(self.last_error)
            return
        self.placement_ms = (self.get_clock().now() - start).nanoseconds / 1e6
        self.last_error = ''
        if room is None:
            return
        text = room_yaml(self.room_source, self.live.result)
        self.room_pub.publish(String(data=text))
        self.rooms_published += 1
        moved = [f'{fix.name} ({fix.shift_m[0]:+.3f}, {fix.shift_m[1]:+.3f}) m'
                 for fix in self.live.result.boxes if fix.seen and np.any(fix.shift_m)]
        self.get_logger().info('furniture now stands: ' + (', '.join(moved) + ' from the room '
                                                           'file' if moved else 'as the room '
                                                           'file has it'))
        if self.out_file:
            try:
                with open(self.out_file, 'w', encoding='utf-8') as out:
                    out.write(text)
            except OSError as exc:
                self.last_error = f'out_file {self.out_file!r}: {exc}'
                self.get_logger().error(self.last_error)

    def survey_status(self, stat):
        live = self.live
        stat.add('assumed temperature (C)', f'{self.temperature_c:.1f}')
        for key, value in self.temperature.status(self.temperature_c)[2]:
            stat.add(key, value)
        if live is None:
            stat.summary(OK, f'room {self.room.name!r} has no furniture: nothing to survey')
            return stat
        if self.last_error:
            stat.summary(WARN, self.last_error)
        elif live.result is None:
            stat.summary(OK, f'gathering sure frames ({live.n_frames} of {live.min_frames})')
        else:
            moved = sum(bool(fix.seen and np.any(fix.shift_m)) for fix in live.result.boxes)
            stat.summary(OK, f'{moved} of {len(live.result.boxes)} boxes moved from the room '
                         'file')
        stat.add('poses', str(self.poses_in))
        stat.add('poses without features', str(self.unpaired))
        stat.add('frames failed', str(self.frames_failed))
        stat.add('frames held', str(live.n_frames))
        stat.add('placements', str(live.placements))
        stat.add('placement time (ms)', f'{self.placement_ms:.0f}')
        stat.add('rooms published', str(self.rooms_published))
        if live.result is not None:
            for fix in live.result.boxes:
                stat.add(f'box {fix.name}', (f'shift ({fix.shift_m[0]:+.3f}, '
                                             f'{fix.shift_m[1]:+.3f}) m' if fix.seen
                                             else 'not heard: where the file has it'))
        return stat


def main(args=None) -> int:
    return run(FurnitureSurveyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
