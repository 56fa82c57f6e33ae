"""driver: publishes raw echo frames from the simulated array, a serial array or a recording."""
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Imu

from echoloc.msg import EchoFrame
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.channel_health import CHANNEL_NOISY, CHANNEL_OK, channel_health
from echoloc_ros.core.frame_rate import max_frame_rate_hz
from echoloc_ros.core.room import load_room
from echoloc_ros.nodes.common import (declare, declare_chirp, diagnostic_updater,
                                      limit_threads, run)
from echoloc_ros.nodes.driver_backends import BACKENDS, Backend
from echoloc_ros.ros import conversions
from echoloc_ros.ros.diagnostics import (ERROR, OK, WARN, DiagnosticTask, FrequencyStatus,
                                         FrequencyStatusParam)

CHANNEL_CHECK_PERIOD_S = 0.25


class ChannelHealthTask(DiagnosticTask):
    """Per-receiver health of the latest frame: dead, saturated or noisy channels."""

    def __init__(self):
        super().__init__('Receiver channels')
        self.report = None

    def run(self, stat):
        if self.report is None:
            stat.summary(WARN, 'no frame yet')
            return stat
        worst = OK
        problems = []
        for ch in self.report:
            level = {CHANNEL_OK: OK, CHANNEL_NOISY: WARN}.get(ch['state'], ERROR)
            worst = max(worst, level)
            if ch['state'] != CHANNEL_OK:
                problems.append(f"channel {ch['channel']} {ch['state']} ({ch['reason']})")
            stat.add(f"channel {ch['channel']}", f"{ch['state']} rms={ch['rms']:.1f} "
                     f"clipped={100 * ch['clip_fraction']:.2f}% "
                     f"noise={ch['noise_floor_rms']:.1f} snr={ch['snr_db']:.1f}dB")
        stat.summary(worst, ', '.join(problems) if problems else 'all channels OK')
        return stat


class DriverNode(Node):
    """Publishes EchoFrame on ``echoes``; the sim backend also publishes heading and truth."""

    def __init__(self):
        super().__init__('driver')
        limit_threads(self)
        self.backend = declare(self, 'backend', 'sim', 'frame source: sim (embedded simulated '
                               'array), serial (the array on a port), replay (an MCAP '
                               'recording)', read_only=True, choices=tuple(BACKENDS))
        self.frame_id = declare(self, 'frame_id', 'echoloc_array', 'frame of the array',
                                read_only=True)
        self.map_frame = declare(self, 'map_frame', 'map', 'frame of ground truth',
                                 read_only=True)
        self.rate_hz = declare(self, 'rate_hz', 25.0, 'chirp rate [Hz]; at most 1/window',
                               read_only=True, min_value=0.1, max_value=100.0)
        room_name = declare(self, 'room', 'default_room', 'room YAML (name in config/rooms or '
                            'path) the sim array moves through', read_only=True)
        array_name = declare(self, 'array', 'square_4sensor', 'array YAML (name in '
                             'config/arrays or path)', read_only=True)
        self.chirp = declare_chirp(self)
        self.fs_hz = declare(self, 'sample_rate_hz', 250000.0, 'ADC rate per channel [Hz]',
                             read_only=True, min_value=10000.0, max_value=2e6)
        self.array = load_array(array_name)
        self.room = load_room(room_name)
        supported_hz = max_frame_rate_hz(self.room, self.chirp)
        if self.rate_hz > supported_hz:
            self.get_logger().warning(
                f'rate_hz={self.rate_hz} is more than the {supported_hz:.1f} Hz room '
                f'{self.room.name!r} supports with one chirp in flight (its farthest '
                f'first-order echo returns {1e3 / supported_hz:.1f} ms after a chirp leaves): '
                'echoes of one chirp land in the next frame; set rate_hz to at most that')
        self.seq = 0

        qos = qos_profile_sensor_data
        self.frame_pub = self.create_publisher(EchoFrame, 'echoloc/echoes', qos)
        self.imu_pub = self.create_publisher(Imu, 'imu/data', qos)
        self.truth_pub = self.create_publisher(PoseStamped, 'echoloc/ground_truth',
                                               QoSProfile(depth=10))

        # Twice a second (upstream's default is 1 s): a dead link shows up quickly.
        self.updater = diagnostic_updater(self, f'{self.backend}:{self.array.name}',
                                          period_s=0.5)
        self.frequency = FrequencyStatus(FrequencyStatusParam(
            {'min': self.rate_hz, 'max': self.rate_hz}, tolerance=0.2), name='Frame rate')
        self.channels = ChannelHealthTask()
        self.updater.add(self.frequency)
        self.updater.add(self.channels)
        self.updater.add('Link', self.link_status)
        self.last_channel_check_s = -np.inf
        self.source: Backend = BACKENDS[self.backend](self)
        self.source.start()

    def publish_frame(self, samples: np.ndarray, stamp, temperature_c: float,
                      seq: int | None = None, fs_hz: float | None = None) -> None:
        self.frame_pub.publish(conversions.echo_frame_msg(
            samples, stamp, self.frame_id, self.seq if seq is None else seq, self.array,
            self.chirp, fs_hz or self.fs_hz, temperature_c))
        self.seq += 1
        self.frequency.tick()
        now = time.monotonic()
        if now - self.last_channel_check_s >= CHANNEL_CHECK_PERIOD_S:
            self.last_channel_check_s = now
            self.channels.report = channel_health(samples)

    def link_status(self, stat):
        stat.add('backend', self.backend)
        stat.add('frames published', str(self.seq))
        self.source.link_status(stat)
        return stat

    def destroy_node(self) -> bool:
        self.source.stop()
        return super().destroy_node()


def main(args=None) -> int:
    return run(DriverNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
