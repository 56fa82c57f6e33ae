"""A software echoloc array on a pseudo-terminal, speaking protocol v1 like the firmware.

The driver opens :attr:`FakeArrayDevice.path` exactly as it would open ``/dev/ttyACM0``.
Faults (bit flips, lost bytes, stalls, a dead or clipping channel, the device vanishing and
coming back) are injected on purpose so the serial link can be tested without hardware.

A pty's slave path (``/dev/pts/N``) belongs to one pty: when the device "disappears" the pty
is closed, and the one opened when it "reappears" may get another number.  Pass
``link_path`` (e.g. ``/tmp/echoloc_fake0``) to get a stable symlink, removed while the device
is away and re-pointed when it is back — the way udev's ``/dev/serial/by-id/...`` links behave
for a real USB device.  A disappearance emulates unplugging a bus-powered array: it comes
back rebooted (ticks, sequence numbers and configuration start over).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import select
import threading
import time
import tty
from typing import Callable, Optional

import numpy as np

from echoloc_ros.device import protocol as p
from echoloc_ros.device.decoder import FrameDecoder
from echoloc_ros.core.chirp import BARKER_13

FrameSource = Callable[[int], np.ndarray]

_SPEED_OF_SOUND_M_S = 343.4
_AIR_ABSORPTION_DB_PER_M = 1.3


def synthetic_echo_source(n_channels: int = 4, n_samples: int = 10_000,
                          fs_hz: int = 250_000, config: Optional[p.Configure] = None,
                          noise_rms: float = 20.0, seed: int = 0) -> FrameSource:
    """Return a deterministic ``frame_source(seq)`` of chirp echoes in a shoebox room.

    The emitter sits at the centre of a 10 cm square of receivers, 0.3 m above the floor of a
    6.0 x 4.5 x 2.8 m room; each frame holds the direct path and the six first-order wall
    echoes (reflection 0.7, spherical spreading, 1.3 dB/m air absorption) plus white noise.
    Only the noise changes with ``seq``.  Good enough to exercise the link, not a simulator.

    :param n_channels: receivers (at most 4 distinct positions, repeated beyond)
    :param n_samples: samples per channel
    :param fs_hz: sample rate
    :param config: chirp settings (default: :class:`protocol.Configure` defaults)
    :param noise_rms: noise standard deviation in counts
    :param seed: noise seed; frame ``seq`` uses ``(seed, seq)``
    :return: callable mapping ``seq`` to int16 ``(n_channels, n_samples)``
    """
    cfg = config or p.Configure()
    room_m = np.array([6.0, 4.5, 2.8])
    emitter_m = np.array([2.2, 1.7, 0.3])
    corners = np.array([[0.05, 0.05, 0], [-0.05, 0.05, 0], [-0.05, -0.05, 0], [0.05, -0.05, 0]])
    receivers_m = emitter_m + corners[np.arange(n_channels) % 4]
    images = [emitter_m]
    for axis in range(3):
        for wall in (0.0, room_m[axis]):
            image = emitter_m.copy()
            image[axis] = 2 * wall - emitter_m[axis]
            images.append(image)
    duration_s = float(cfg.duration_s)
    t_s = np.arange(n_samples) / fs_hz
    clean = np.zeros((n_channels, n_samples))
    for ch in range(n_channels):
        for k, image in enumerate(images):
            path_m = float(np.linalg.norm(image - receivers_m[ch]))
            gain = (1.0 if k == 0 else 0.7) / path_m * 10 ** (-_AIR_ABSORPTION_DB_PER_M * path_m
                                                              / 20)
            tau = t_s - path_m / _SPEED_OF_SOUND_M_S
            inside = (tau >= 0) & (tau < duration_s)
            clean[ch, inside] += gain * _chirp(tau[inside], cfg)
    clean *= 16_000.0 / max(float(np.abs(clean).max()), 1e-12)

    def frame_source(seq: int) -> np.ndarray:
        noise = np.random.default_rng((seed, seq)).normal(0.0, noise_rms, clean.shape)
        return np.clip(np.rint(clean + noise), -32768, 32767).astype(np.int16)

    return frame_source


def _chirp(tau_s: np.ndarray, cfg: p.Configure) -> np.ndarray:
    # The same frequency laws as echoloc_ros.core.chirp.Chirp, evaluated at arbitrary times.
    duration_s = float(cfg.duration_s)
    f0, f1 = float(cfg.f0_hz), float(cfg.f1_hz)
    if cfg.chirp_kind == p.ChirpKind.HFM:
        k = (f1 - f0) / (f1 * duration_s)
        phase = -f0 / k * np.log1p(-k * np.clip(tau_s, 0.0, duration_s))
    elif cfg.chirp_kind == p.ChirpKind.BARKER:
        chip = np.clip((tau_s / duration_s * 13).astype(int), 0, 12)
        phase = 0.5 * (f0 + f1) * tau_s + 0.5 * (BARKER_13[chip] < 0)
    else:
        phase = f0 * tau_s + (f1 - f0) / (2 * duration_s) * tau_s ** 2
    taper = 1.0
    if cfg.taper == p.Taper.HANN:
        taper = 0.5 - 0.5 * np.cos(2 * np.pi * tau_s / duration_s)
    return taper * np.sin(2 * np.pi * phase)


@dataclasses.dataclass
class FaultConfig:
    """Faults injected by :class:`FakeArrayDevice`.

    :param bit_flip_rate: probability that a sent byte has one random bit flipped
    :param drop_byte_rate: probability that a sent byte is lost
    :param stall_at_s: seconds after ``start()`` at which the device goes silent (None: never)
    :param stall_s: length of the silence; commands sent meanwhile are lost
    :param dead_channel: channel index that reads a constant 0 (None: none)
    :param clip_channel: channel index with 50x too much gain, clipped at full scale
    :param seed: seed of the fault pattern
    """

    bit_flip_rate: float = 0.0
    drop_byte_rate: float = 0.0
    stall_at_s: Optional[float] = None
    stall_s: float = 0.0
    dead_channel: Optional[int] = None
    clip_channel: Optional[int] = None
    seed: int = 0


class FakeArrayDevice:
    """The echoloc array firmware, emulated on a pty, in a thread (``start()``/``stop()``).

    Records every ECHO_FRAME it sends in :attr:`echo_log` as ``device_seq -> intact`` (False
    when a fault touched any of its bytes), so tests know exactly which frames a correct
    receiver must deliver.
    """

    def __init__(self, frame_source: Optional[FrameSource] = None, *,
                 link_path: Optional[str] = None, n_channels: int = 4,
                 fs_hz: int = 250_000, window_samples: int = 2_500,
                 frame_rate_hz: float = 20.0, max_window_samples: int = 16_384,
                 tick_rate_hz: int = 1_000_000, clock_drift_ppm: float = 0.0,
                 tick_offset: int = 0, faults: Optional[FaultConfig] = None,
                 status_period_s: float = 1.0, firmware_version: str = 'fake-1.0.0',
                 array_id: str = 'fake-square_4sensor', temperature_c: float = 25.0,
                 supply_v: float = 5.0) -> None:
        """Create the device (nothing is opened until :meth:`start`).

        :param frame_source: ``frame_source(device_seq)`` -> int16 ``(n_channels, n_samples)``;
            default :func:`synthetic_echo_source` at the configured shape, rebuilt on CONFIGURE
            (a custom source is used as is: its array shape is what is sent)
        :param link_path: stable symlink to the current pty slave, or None
        :param n_channels: receivers reported in INFO
        :param fs_hz: default sample rate
        :param window_samples: default samples per channel per frame
        :param frame_rate_hz: default frames per second
        :param max_window_samples: largest window accepted by CONFIGURE
        :param tick_rate_hz: device clock rate reported in INFO
        :param clock_drift_ppm: device clock error: ticks run ``1 + ppm * 1e-6`` times fast
        :param tick_offset: tick count at boot
        :param faults: injected faults (default none)
        :param status_period_s: period of unsolicited STATUS while streaming
        :param firmware_version: reported in INFO
        :param array_id: reported in INFO
        :param temperature_c: die temperature reported in STATUS
        :param supply_v: supply voltage reported in STATUS
        """
        if not 0 < window_samples <= max_window_samples:
            raise ValueError(f'window_samples must be in (0, {max_window_samples}], got '
                             f'{window_samples}')
        self._custom_source = frame_source
        self.link_path = link_path
        self.n_channels = n_channels
        self.max_window_samples = max_window_samples
        self.tick_rate_hz = tick_rate_hz
        self.clock_rate = 1.0 + clock_drift_ppm * 1e-6
        self.tick_offset = tick_offset
        self.faults = faults or FaultConfig()
        self.status_period_s = status_period_s
        self.firmware_version = firmware_version
        self.array_id = array_id
        self.temperature_c = temperature_c
        self.supply_v = supply_v
        self._default_config = p.Configure(fs_hz=fs_hz, window_samples=window_samples,
                                           frame_rate_hz=frame_rate_hz)
        self.echo_log: dict[int, bool] = {}
        self.counters = {'frames_sent': 0, 'frames_damaged': 0, 'tx_bytes_dropped': 0,
                         'commands': 0, 'reboots': 0}
        self.reappeared_at_s: Optional[float] = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._fault_rng = np.random.default_rng(self.faults.seed)
        self._master = -1
        self._slave = -1
        self.slave_path = ''
        self._disappear_s: Optional[float] = None
        self._boot()

    @property
    def path(self) -> str:
        """The path a driver should open: the symlink if configured, else the pty slave."""
        return self.link_path or self.slave_path

    def ticks_at(self, host_mono_s: float) -> int:
        """Device tick count at a host ``time.monotonic()`` instant (current boot)."""
        return self.tick_offset + int((host_mono_s - self._boot_s) * self.tick_rate_hz
                                      * self.clock_rate)

    def host_time_of(self, ticks: int) -> float:
        """Host ``time.monotonic()`` instant at which the device clock read ``ticks``."""
        return self._boot_s + (ticks - self.tick_offset) / (self.tick_rate_hz * self.clock_rate)

    def start(self) -> None:
        """Open the pty (and symlink) and run the device thread."""
        self._open_pty()
        self._start_s = time.monotonic()
        self._thread = threading.Thread(target=self._run, name='fake-array', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, close the pty and remove the symlink."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._close_pty()

    def disappear(self, duration_s: float) -> None:
        """Vanish for ``duration_s`` (pty closed, symlink removed), then come back rebooted."""
        with self._lock:
            self._disappear_s = duration_s

    def _boot(self) -> None:
        self._boot_s = time.monotonic()
        self._config = self._default_config
        self._source = self._custom_source or self._make_source(self._config)
        self._streaming = False
        self._device_seq = 0
        self._tx_seq = 0
        self._clip_count = 0
        self._overruns = 0
        self._decoder = FrameDecoder(max_payload_bytes=64)

    def _make_source(self, cfg: p.Configure) -> FrameSource:
        return synthetic_echo_source(self.n_channels, cfg.window_samples, cfg.fs_hz, cfg)

    def _open_pty(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.slave_path = os.ttyname(self._slave)
        if self.link_path:
            tmp = f'{self.link_path}.tmp{os.getpid()}'
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(self.slave_path, tmp)
            os.replace(tmp, self.link_path)

    def _close_pty(self) -> None:
        if self.link_path and os.path.islink(self.link_path):
            os.unlink(self.link_path)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def _run(self) -> None:
        next_status_s = 0.0
        while not self._stop.is_set():
            with self._lock:
                away_s, self._disappear_s = self._disappear_s, None
            if away_s is not None:
                self._vanish(away_s)
                next_status_s = 0.0
                continue
            now = time.monotonic()
            stall_at = self.faults.stall_at_s
            if stall_at is not None and 0 <= now - self._start_s - stall_at < self.faults.stall_s:
                self._read_commands(timeout_s=0.01)
                self._decoder.reset()
                continue
            timeout_s = 0.05
            if self._streaming:
                timeout_s = max(0.0, min(timeout_s, self._next_frame_s - now))
            for msg in self._read_commands(timeout_s):
                self._handle(msg)
            now = time.monotonic()
            if self._streaming and now >= self._next_frame_s:
                self._send_echo(now)
            if self._streaming and now >= next_status_s:
                self._send(self._status())
                next_status_s = now + self.status_period_s

    def _vanish(self, away_s: float) -> None:
        self._close_pty()
        self._stop.wait(away_s)
        if self._stop.is_set():
            return
        self._boot()
        self.counters['reboots'] += 1
        self._open_pty()
        self.reappeared_at_s = time.monotonic()

    def _read_commands(self, timeout_s: float) -> list[p.Decoded]:
        ready, _, _ = select.select([self._master], [], [], timeout_s)
        if not ready:
            return []
        try:
            data = os.read(self._master, 4096)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EIO):
                return []
            raise
        return self._decoder.feed(data)

    def _handle(self, decoded: p.Decoded) -> None:
        seq, msg = decoded
        self.counters['commands'] += 1
        if isinstance(msg, p.Ping):
            self._send(p.Pong(msg.token))
        elif isinstance(msg, p.GetInfo):
            self._send(p.Info(self.firmware_version, self.array_id, self._config.fs_hz,
                              self.n_channels, p.PROTOCOL_VERSION, self.tick_rate_hz,
                              self.max_window_samples))
        elif isinstance(msg, p.GetStatus):
            self._send(self._status())
        elif isinstance(msg, p.Configure):
            problem = p.configure_problem(msg, self.max_window_samples)
            if self._streaming:
                self._send(p.Nack(seq, p.MsgType.CONFIGURE, p.ErrorCode.BUSY))
            elif problem:
                self._send(p.Nack(seq, p.MsgType.CONFIGURE, p.ErrorCode.INVALID_PARAM))
            else:
                self._config = msg
                self._source = self._custom_source or self._make_source(msg)
                self._send(p.Ack(seq, p.MsgType.CONFIGURE))
        elif isinstance(msg, p.Start):
            if not self._streaming:
                self._streaming = True
                self._next_frame_s = time.monotonic() + self._window_s()
            self._send(p.Ack(seq, p.MsgType.START))
        elif isinstance(msg, p.Stop):
            self._streaming = False
            self._send(p.Ack(seq, p.MsgType.STOP))
        else:
            self._send(p.Nack(seq, int(p.msg_type_of(msg)), p.ErrorCode.UNKNOWN_TYPE))

    def _window_s(self) -> float:
        return self._config.window_samples / self._config.fs_hz

    def _status(self) -> p.Status:
        uptime = self.ticks_at(time.monotonic()) - self.tick_offset
        state = p.DeviceState.STREAMING if self._streaming else p.DeviceState.IDLE
        return p.Status(uptime, self.temperature_c, self.supply_v, self._clip_count,
                        self._overruns, state)

    def _send_echo(self, now_s: float) -> None:
        period_s = 1.0 / float(self._config.frame_rate_hz)
        while now_s - self._next_frame_s > period_s:
            # The acquisition finished but was never sent: the firmware counts an overrun.
            self._overruns += 1
            self._device_seq += 1
            self._next_frame_s += period_s
        samples = self._apply_channel_faults(self._source(self._device_seq))
        self._clip_count += int(np.count_nonzero((samples == 32767) | (samples == -32768)))
        acq_ticks = self.ticks_at(now_s - samples.shape[1] / self._config.fs_hz)
        frame = p.EchoFrame(self._device_seq, acq_ticks, self._config.fs_hz, samples)
        intact = self._send(frame)
        self.echo_log[self._device_seq] = intact
        self.counters['frames_sent'] += 1
        self.counters['frames_damaged'] += not intact
        self._device_seq = (self._device_seq + 1) & 0xFFFFFFFF
        self._next_frame_s += period_s

    def _apply_channel_faults(self, samples: np.ndarray) -> np.ndarray:
        dead, clip = self.faults.dead_channel, self.faults.clip_channel
        if dead is None and clip is None:
            return samples
        samples = samples.copy()
        if dead is not None:
            samples[dead] = 0
        if clip is not None:
            samples[clip] = np.clip(samples[clip].astype(np.int32) * 50, -32768, 32767)
        return samples

    def _send(self, msg: p.Message) -> bool:
        """Encode, damage as configured, write; return True if the bytes went out intact."""
        data = p.encode(msg, self._tx_seq)
        self._tx_seq = (self._tx_seq + 1) & 0xFFFFFFFF
        data, intact = self._damage(data)
        return self._write_all(data) and intact

    def _damage(self, data: bytes) -> tuple[bytes, bool]:
        flip, drop = self.faults.bit_flip_rate, self.faults.drop_byte_rate
        if not flip and not drop:
            return data, True
        rng = self._fault_rng
        buf = np.frombuffer(data, dtype=np.uint8).copy()
        flipped = np.flatnonzero(rng.random(buf.size) < flip)
        buf[flipped] ^= (1 << rng.integers(0, 8, flipped.size)).astype(np.uint8)
        kept = rng.random(buf.size) >= drop
        return buf[kept].tobytes(), flipped.size == 0 and bool(kept.all())

    def _write_all(self, data: bytes) -> bool:
        view = memoryview(data)
        deadline_s = time.monotonic() + 0.5
        while view:
            try:
                view = view[os.write(self._master, view):]
            except BlockingIOError:
                left_s = deadline_s - time.monotonic()
                if left_s <= 0 or not select.select([], [self._master], [], left_s)[1]:
                    # Nobody drains the port: like USB CDC firmware, give up on this frame.
                    self.counters['tx_bytes_dropped'] += len(view)
                    return False
        return True
