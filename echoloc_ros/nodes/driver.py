"""driver: publishes raw echo frames from the simulated array, a serial array or a recording."""
import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Imu

from echoloc.msg import EchoFrame
from builtin_interfaces.msg import Time
from echoloc_ros.ros import conversions
from echoloc_ros.device import protocol
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.channel_health import CHANNEL_NOISY, CHANNEL_OK, channel_health
from echoloc_ros.core.room import load_room
from echoloc_ros.device.serial_link import EchoFrameEvent, SerialArrayLink, StatusEvent
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.ros.bag import read_bag
from echoloc_ros.ros.diagnostics import (ERROR, OK, WARN, DiagnosticTask, FrequencyStatus,
                                         FrequencyStatusParam)
from echoloc_ros.nodes.common import (declare, declare_chirp, diagnostic_updater,
                                      limit_threads, run)

BACKENDS = ('sim', 'serial', 'replay')
REPLAYED_TOPICS = ('/echoloc/echoes', '/imu/data', '/echoloc/ground_truth')
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
                               'recording)', read_only=True, choices=BACKENDS)
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
        self.acquire_time_s = 0.0
        self.last_channel_check_s = -np.inf
        self.device_temperature_c = float('nan')
        self.sim = self.link = self.replay_thread = None
        self.replay_done = False
        self.stop_event = threading.Event()
        {'sim': self.start_sim, 'serial': self.start_serial, 'replay': self.start_replay}[
            self.backend]()

    def start_sim(self) -> None:
        standing = declare(self, 'sim_furniture', '', 'sim: a room YAML (the same room) whose '
                           'furniture the simulated array moves among, as after furniture has '
                           'moved since the room file; empty: the room file\'s',
                           read_only=True)
        furniture = None
        if standing:
            world = load_room(standing)
            if world.name != self.room.name:
                raise ValueError(f'sim_furniture {standing!r} is room {world.name!r}; expected '
                                 f'the same room as parameter room ({self.room.name!r}) with '
                                 'its furniture moved')
            furniture = world.furniture
        scenario = Scenario(
            snr_db=declare(self, 'sim_snr_db', 20.0, 'sim: echo SNR [dB]', on_set=self.set_snr,
                           min_value=-20.0, max_value=80.0),
            seed=declare(self, 'sim_seed', 0, 'sim: random seed (same seed, same frames)',
                         read_only=True, min_value=0, max_value=2**31 - 1),
            furniture=furniture)
        sim = SimulatedArray(
            self.room, self.array, self.chirp, self.fs_hz, scenario,
            height_m=declare(self, 'sim_height_m', 0.3, 'sim: array height [m]',
                             read_only=True, min_value=0.05, max_value=10.0),
            speed_mps=declare(self, 'sim_speed_mps', 0.3, 'sim: mean speed along the path '
                              '[m/s]', read_only=True, min_value=0.01, max_value=5.0),
            heading_noise_rad=np.deg2rad(declare(
                self, 'sim_heading_noise_deg', 1.0, 'sim: std of the published heading '
                '[deg]', on_set=self.set_heading_noise, min_value=0.0, max_value=180.0)),
            seed=scenario.seed)
        self.sim_imu = declare(self, 'sim_imu', True, 'sim: publish the heading on imu/data; '
                               'false plays a robot without an IMU',
                               on_set=lambda publish: setattr(self, 'sim_imu', publish))
        if sim.window_s * self.rate_hz > 1.0:
            self.get_logger().warning(
                f'rate_hz={self.rate_hz} leaves less than the {1e3 * sim.window_s:.1f} ms '
                'window a real array needs between chirps')
        self.sim = sim
        self.updater.setHardwareID(f'sim:{self.array.name}')
        self.t0 = time.monotonic()
        self.timer = self.create_timer(1.0 / self.rate_hz, self.on_sim_tick)

    def set_snr(self, snr_db: float) -> None:
        self.sim.scenario = dataclasses.replace(self.sim.scenario, snr_db=snr_db)

    def set_heading_noise(self, std_deg: float) -> None:
        self.sim.heading_noise_rad = float(np.deg2rad(std_deg))

    def start_serial(self) -> None:
        port = declare(self, 'port', '/dev/ttyACM0', 'serial: device path of the array (or a '
                       'pyserial URL)', read_only=True)
        baudrate = declare(self, 'baudrate', 115200, 'serial: baud rate (ignored by USB CDC)',
                           read_only=True, min_value=1200, max_value=12000000)
        window_samples = int(np.ceil(EchoSimulator.default_window_s(self.room, self.chirp)
                                     * self.fs_hz))
        config = protocol.Configure(
            chirp_kind=protocol.ChirpKind[self.chirp.kind.upper()], f0_hz=self.chirp.f0_hz,
            f1_hz=self.chirp.f1_hz, duration_s=self.chirp.duration_s, fs_hz=int(self.fs_hz),
            window_samples=window_samples, frame_rate_hz=self.rate_hz,
            taper=protocol.Taper.HANN if self.chirp.window == 'hann' else protocol.Taper.RECT)
        self.updater.setHardwareID(f'serial:{port}')
        self.link = SerialArrayLink(port, baudrate, on_frame=self.on_serial_frame,
                                    on_status=self.on_serial_status, config=config)
        self.link.start()

    def start_replay(self) -> None:
        path = Path(declare(self, 'replay_file', '', 'replay: recording directory (rosbag2 '
                            'MCAP) to play', read_only=True))
        rate = declare(self, 'replay_rate', 1.0, 'replay: speed factor of the original timing; '
                       '0 plays as fast as possible', read_only=True, min_value=0.0,
                       max_value=1000.0)
        self.replay_wait_s = declare(self, 'replay_wait_s', 10.0, 'replay: wait up to this long '
                                     'for subscribers to the echoes and the heading (the '
                                     'processor and the localizer) before starting [s]',
                                     read_only=True, min_value=0.0, max_value=600.0)
        if not (path / 'metadata.yaml').is_file():
            raise FileNotFoundError(f'replay_file={str(path)!r}: no recording there (expected '
                                    'a directory with metadata.yaml)')
        self.updater.setHardwareID(f'replay:{path.name}')
        # Raw CDR in, raw CDR out: replayed frames are byte-identical to the recorded ones.
        publishers = {'/echoloc/echoes': self.frame_pub, '/imu/data': self.imu_pub,
                      '/echoloc/ground_truth': self.truth_pub}
        self.replay_thread = threading.Thread(target=self.replay, args=(path, rate, publishers),
                                              daemon=True)
        self.replay_thread.start()

    def replay(self, path: Path, rate: float, publishers: dict) -> None:
        # Frames sent before the processor and the localizer have matched are lost: wait for
        # both, then a moment for discovery to finish on their side too.
        deadline = time.monotonic() + self.replay_wait_s
        while time.monotonic() < deadline and not (self.frame_pub.get_subscription_count()
                                                   and self.imu_pub.get_subscription_count()):
            if self.stop_event.wait(0.05):
                return
        if self.stop_event.wait(1.0):
            return
        start_wall = first_log = None
        for topic, _, log_time_ns, rawdata in read_bag(path):
            if topic not in publishers:
                continue
            if rate > 0:
                if first_log is None:
                    start_wall, first_log = time.monotonic(), log_time_ns
                due = start_wall + (log_time_ns - first_log) * 1e-9 / rate
                if self.stop_event.wait(max(0.0, due - time.monotonic())):
                    return
            elif self.stop_event.is_set():
                return
            publishers[topic].publish(rawdata)
            if topic == '/echoloc/echoes':
                self.seq += 1
                self.frequency.tick()
        self.replay_done = True
        self.get_logger().info(f'replay of {path} finished: {self.seq} frames')

    def on_sim_tick(self) -> None:
        stamp = self.get_clock().now().to_msg()
        start = time.perf_counter()
        frame = self.sim.acquire(time.monotonic() - self.t0)
        self.acquire_time_s = time.perf_counter() - start
        if self.sim_imu:
            self.imu_pub.publish(conversions.imu_msg(
                frame.measured_yaw_rad, self.sim.heading_noise_rad ** 2, stamp, self.frame_id))
        self.truth_pub.publish(conversions.pose_stamped_msg(frame.position_m, frame.yaw_rad,
                                                            stamp, self.map_frame))
        self.publish_frame(frame.samples, stamp, self.room.temperature_c)

    def on_serial_frame(self, event: EchoFrameEvent) -> None:
        # Runs on the link's delivery thread; publishing from it is thread-safe in rclpy.
        stamp = Time(sec=int(event.stamp_s), nanosec=int((event.stamp_s % 1.0) * 1e9))
        self.publish_frame(np.asarray(event.samples), stamp, self.device_temperature_c,
                           seq=event.device_seq, fs_hz=float(event.fs_hz))

    def on_serial_status(self, event: StatusEvent) -> None:
        self.device_temperature_c = float(event.status.temperature_c)

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
        if self.sim is not None:
            stat.summary(OK, 'simulated array streaming')
            stat.add('simulation time per frame (ms)', f'{1e3 * self.acquire_time_s:.2f}')
        elif self.replay_thread is not None:
            stat.summary(OK, 'replay finished' if self.replay_done else 'replaying')
        else:
            self.serial_status(stat, self.link.health())
        return stat

    def serial_status(self, stat, health) -> None:
        if not health.connected:
            stat.summary(ERROR, f'{health.port}: not connected'
                         + (f' ({health.last_error})' if health.last_error else ''))
        elif not health.streaming or (health.time_since_last_frame_s or 0) > 1.0:
            stat.summary(ERROR, f'{health.port}: connected but no frames')
        elif health.last_error_age_s is not None and health.last_error_age_s < 2.0:
            stat.summary(WARN, f'{health.port}: {health.last_error}')
        else:
            stat.summary(OK, f'{health.port}: streaming')
        if health.device_info is not None:
            info = health.device_info
            stat.add('device', f'{info.array_id} firmware {info.firmware_version}')
            self.updater.setHardwareID(f'serial:{health.port}:{info.array_id}')
        for name in ('frames_received', 'frames_dropped', 'messages_lost', 'queue_overflows',
                     'connects', 'stalls', 'nacks'):
            stat.add(name.replace('_', ' '), str(getattr(health, name)))
        stat.add('frame rate (Hz)', f'{health.frame_rate_hz:.2f}')
        for name in ('crc_errors', 'header_crc_errors', 'truncated', 'oversize', 'resyncs',
                     'bytes_discarded'):
            stat.add(f'decoder {name.replace("_", " ")}', str(health.decoder.get(name, 0)))
        if health.clock is not None:
            stat.add('clock offset (s)', f'{health.clock.offset_s:.6f}')
            stat.add('clock drift (ppm)', f'{health.clock.drift_ppm:.1f}')
        if health.last_status is not None:
            stat.add('device temperature (C)', f'{health.last_status.temperature_c:.1f}')
            stat.add('supply (V)', f'{health.last_status.supply_v:.2f}')
            stat.add('ADC clip count', str(health.last_status.clip_count))
            stat.add('ADC overrun count', str(health.last_status.overrun_count))

    def destroy_node(self) -> bool:
        self.stop_event.set()
        if self.link is not None:
            self.link.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run(DriverNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
