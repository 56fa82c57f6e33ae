"""Where the driver's frames come from: one small class per backend, behind one interface.

The driver node owns the publishers, the diagnostics and :meth:`DriverNode.publish_frame`; a
backend declares its own parameters, starts its source, fills the Link diagnostic and stops.
The replay backend imports the recording reader (mcap, rosbags) only when it starts, so a
driver that does not replay never loads them.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from builtin_interfaces.msg import Time

from echoloc_ros.core.room import load_room
from echoloc_ros.device import protocol
from echoloc_ros.device.serial_link import EchoFrameEvent, SerialArrayLink, StatusEvent
from echoloc_ros.nodes.common import declare
from echoloc_ros.ros import conversions
from echoloc_ros.ros.diagnostics import ERROR, OK, WARN
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

if TYPE_CHECKING:
    from echoloc_ros.nodes.driver import DriverNode


class Backend(Protocol):
    """A source of raw frames for the driver node."""

    def start(self) -> None:
        """Declare the backend's parameters and start sending frames to the node."""

    def link_status(self, stat) -> None:
        """Fill the Link diagnostic's summary and values."""

    def stop(self) -> None:
        """Stop sending frames (the node is being destroyed)."""


class SimBackend:
    """The embedded simulated array, moving through the room at ``rate_hz``."""

    def __init__(self, node: DriverNode):
        self.node = node
        self.sim: SimulatedArray | None = None
        self.acquire_time_s = 0.0

    def start(self) -> None:
        node = self.node
        standing = declare(node, 'sim_furniture', '', 'sim: a room YAML (the same room) whose '
                           'furniture the simulated array moves among, as after furniture has '
                           'moved since the room file; empty: the room file\'s',
                           read_only=True)
        furniture = None
        if standing:
            world = load_room(standing)
            if world.name != node.room.name:
                raise ValueError(f'sim_furniture {standing!r} is room {world.name!r}; expected '
                                 f'the same room as parameter room ({node.room.name!r}) with '
                                 'its furniture moved')
            furniture = world.furniture
        scenario = Scenario(
            snr_db=declare(node, 'sim_snr_db', 20.0, 'sim: echo SNR [dB]', on_set=self.set_snr,
                           min_value=-20.0, max_value=80.0),
            seed=declare(node, 'sim_seed', 0, 'sim: random seed (same seed, same frames)',
                         read_only=True, min_value=0, max_value=2**31 - 1),
            furniture=furniture)
        sim = SimulatedArray(
            node.room, node.array, node.chirp, node.fs_hz, scenario,
            height_m=declare(node, 'sim_height_m', 0.3, 'sim: array height [m]',
                             read_only=True, min_value=0.05, max_value=10.0),
            speed_mps=declare(node, 'sim_speed_mps', 0.3, 'sim: mean speed along the path '
                              '[m/s]', read_only=True, min_value=0.01, max_value=5.0),
            heading_noise_rad=np.deg2rad(declare(
                node, 'sim_heading_noise_deg', 1.0, 'sim: std of the published heading '
                '[deg]', on_set=self.set_heading_noise, min_value=0.0, max_value=180.0)),
            seed=scenario.seed)
        self.sim_imu = declare(node, 'sim_imu', True, 'sim: publish the heading on imu/data; '
                               'false plays a robot without an IMU',
                               on_set=lambda publish: setattr(self, 'sim_imu', publish))
        if sim.window_s * node.rate_hz > 1.0:
            node.get_logger().warning(
                f'rate_hz={node.rate_hz} leaves less than the {1e3 * sim.window_s:.1f} ms '
                'window a real array needs between chirps')
        self.sim = sim
        node.updater.setHardwareID(f'sim:{node.array.name}')
        self.t0 = time.monotonic()
        self.timer = node.create_timer(1.0 / node.rate_hz, self.on_tick)

    def set_snr(self, snr_db: float) -> None:
        self.sim.scenario = dataclasses.replace(self.sim.scenario, snr_db=snr_db)

    def set_heading_noise(self, std_deg: float) -> None:
        self.sim.heading_noise_rad = float(np.deg2rad(std_deg))

    def on_tick(self) -> None:
        node = self.node
        stamp = node.get_clock().now().to_msg()
        start = time.perf_counter()
        frame = self.sim.acquire(time.monotonic() - self.t0)
        self.acquire_time_s = time.perf_counter() - start
        if self.sim_imu:
            node.imu_pub.publish(conversions.imu_msg(
                frame.measured_yaw_rad, self.sim.heading_noise_rad ** 2, stamp, node.frame_id))
        node.truth_pub.publish(conversions.pose_stamped_msg(frame.position_m, frame.yaw_rad,
                                                            stamp, node.map_frame))
        node.publish_frame(frame.samples, stamp, node.room.temperature_c)

    def link_status(self, stat) -> None:
        stat.summary(OK, 'simulated array streaming')
        stat.add('simulation time per frame (ms)', f'{1e3 * self.acquire_time_s:.2f}')

    def stop(self) -> None:
        """The timer stops with the node."""


class SerialBackend:
    """The real array on a serial port, through :class:`SerialArrayLink`."""

    def __init__(self, node: DriverNode):
        self.node = node
        self.link: SerialArrayLink | None = None
        self.device_temperature_c = float('nan')

    def start(self) -> None:
        node = self.node
        port = declare(node, 'port', '/dev/ttyACM0', 'serial: device path of the array (or a '
                       'pyserial URL)', read_only=True)
        baudrate = declare(node, 'baudrate', 115200, 'serial: baud rate (ignored by USB CDC)',
                           read_only=True, min_value=1200, max_value=12000000)
        chirp = node.chirp
        window_samples = int(np.ceil(EchoSimulator.default_window_s(node.room, chirp)
                                     * node.fs_hz))
        config = protocol.Configure(
            chirp_kind=protocol.ChirpKind[chirp.kind.upper()], f0_hz=chirp.f0_hz,
            f1_hz=chirp.f1_hz, duration_s=chirp.duration_s, fs_hz=int(node.fs_hz),
            window_samples=window_samples, frame_rate_hz=node.rate_hz,
            taper=protocol.Taper.HANN if chirp.window == 'hann' else protocol.Taper.RECT)
        node.updater.setHardwareID(f'serial:{port}')
        # The node's logger: the link's warnings reach /rosout with the node's name.
        self.link = SerialArrayLink(port, baudrate, on_frame=self.on_frame,
                                    on_status=self.on_status, config=config,
                                    logger=node.get_logger())
        self.link.start()

    def on_frame(self, event: EchoFrameEvent) -> None:
        # Runs on the link's delivery thread; publishing from it is thread-safe in rclpy.
        stamp = Time(sec=int(event.stamp_s), nanosec=int((event.stamp_s % 1.0) * 1e9))
        self.node.publish_frame(np.asarray(event.samples), stamp, self.device_temperature_c,
                                seq=event.device_seq, fs_hz=float(event.fs_hz))

    def on_status(self, event: StatusEvent) -> None:
        self.device_temperature_c = float(event.status.temperature_c)

    def link_status(self, stat) -> None:
        health = self.link.health()
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
            self.node.updater.setHardwareID(f'serial:{health.port}:{info.array_id}')
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

    def stop(self) -> None:
        if self.link is not None:
            self.link.close()


class ReplayBackend:
    """A recording (rosbag2 MCAP) played back, raw CDR in and out: byte-identical frames."""

    def __init__(self, node: DriverNode):
        self.node = node
        self.thread: threading.Thread | None = None
        self.done = False
        self.stop_event = threading.Event()

    def start(self) -> None:
        node = self.node
        path = Path(declare(node, 'replay_file', '', 'replay: recording directory (rosbag2 '
                            'MCAP) to play', read_only=True))
        rate = declare(node, 'replay_rate', 1.0, 'replay: speed factor of the original timing; '
                       '0 plays as fast as possible', read_only=True, min_value=0.0,
                       max_value=1000.0)
        self.wait_s = declare(node, 'replay_wait_s', 10.0, 'replay: wait up to this long '
                              'for subscribers to the echoes and the heading (the '
                              'processor and the localizer) before starting [s]',
                              read_only=True, min_value=0.0, max_value=600.0)
        if not (path / 'metadata.yaml').is_file():
            raise FileNotFoundError(f'replay_file={str(path)!r}: no recording there (expected '
                                    'a directory with metadata.yaml)')
        node.updater.setHardwareID(f'replay:{path.name}')
        publishers = {'/echoloc/echoes': node.frame_pub, '/imu/data': node.imu_pub,
                      '/echoloc/ground_truth': node.truth_pub}
        self.thread = threading.Thread(target=self.replay, args=(path, rate, publishers),
                                       daemon=True)
        self.thread.start()

    def wait_for_subscribers(self) -> bool:
        """Frames sent before the processor and the localizer have matched are lost: wait for
        both, then a moment for discovery to finish on their side too. False: stopped."""
        node = self.node
        deadline = time.monotonic() + self.wait_s
        while time.monotonic() < deadline and not (node.frame_pub.get_subscription_count()
                                                   and node.imu_pub.get_subscription_count()):
            if self.stop_event.wait(0.05):
                return False
        return not self.stop_event.wait(1.0)

    def replay(self, path: Path, rate: float, publishers: dict) -> None:
        from echoloc_ros.ros.bag import read_bag
        if not self.wait_for_subscribers():
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
                self.node.seq += 1
                self.node.frequency.tick()
        self.done = True
        self.node.get_logger().info(f'replay of {path} finished: {self.node.seq} frames')

    def link_status(self, stat) -> None:
        stat.summary(OK, 'replay finished' if self.done else 'replaying')

    def stop(self) -> None:
        self.stop_event.set()


BACKENDS: dict[str, type[Backend]] = {'sim': SimBackend, 'serial': SerialBackend,
                                      'replay': ReplayBackend}
