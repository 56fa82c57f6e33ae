"""The host end of the USB serial link to the echoloc array (no rclpy).

:class:`SerialArrayLink` owns a reader thread that opens the port, runs the handshake
(STOP, GET_INFO, CONFIGURE, START), decodes the stream, maps device ticks to host time and
hands frames to a delivery thread that calls ``on_frame`` — so neither a slow callback nor a
dead port ever blocks the caller.  Port loss and stalls end in a reconnect with exponential
backoff.  Every ``channel_health_period_s`` a frame's receivers are classified with
:func:`echoloc_ros.core.channel_health.channel_health`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import queue
import threading
import time
import traceback
from typing import Callable, Optional

import numpy as np
import serial

from echoloc_ros.device import protocol as p
from echoloc_ros.device.decoder import FrameDecoder
from echoloc_ros.core.channel_health import channel_health

_LOG = logging.getLogger(__name__)
_READ_CHUNK_BYTES = 256 * 1024


@dataclasses.dataclass(frozen=True)
class ClockEstimate:
    """Current tick-to-host-time mapping: ``host_s = offset_s + ticks / tick_rate * scale``.

    :param offset_s: host ``time.monotonic()`` at device tick 0
    :param drift_ppm: how fast the device clock runs against the host's, ``(1/scale - 1) * 1e6``
    :param n_points: frames in the fit
    :param span_s: device time covered by the fit
    :param jitter_p50_s: median delay of frames above the fitted floor (transport jitter)
    """

    offset_s: float
    drift_ppm: float
    n_points: int
    span_s: float
    jitter_p50_s: float


class ClockModel:
    """Maps device ticks to host monotonic time from one-way arrival times.

    Arrival delays are the true offset plus a latency that is never negative, so the fit is
    the lower envelope of the points, not a least-squares line: the lower convex-hull edge
    that spans the mean abscissa (the linear program of Moon, Skelly and Towsley, 1999,
    "Estimation and removal of clock skew from network delay measurements").  Jitter only
    ever lifts points, so it barely moves the floor.  The remaining bias is the minimum
    transport latency, which a one-way link cannot observe.
    """

    def __init__(self, tick_rate_hz: float, window: int = 512,
                 min_span_for_drift_s: float = 0.5) -> None:
        """Create an empty model.

        :param tick_rate_hz: device tick rate from INFO
        :param window: most recent points kept (drift follows temperature slowly)
        :param min_span_for_drift_s: below this device-time span, drift is taken as 0
        """
        if tick_rate_hz <= 0:
            raise ValueError(f'tick_rate_hz must be positive, got {tick_rate_hz}')
        self.tick_rate_hz = float(tick_rate_hz)
        self.min_span_for_drift_s = min_span_for_drift_s
        self._points: collections.deque = collections.deque(maxlen=window)
        self._fit: Optional[tuple[float, float]] = None

    def __len__(self) -> int:
        return len(self._points)

    def reset(self) -> None:
        """Forget all points (the device rebooted or was replaced)."""
        self._points.clear()
        self._fit = None

    def add(self, ticks: int, host_s: float) -> None:
        """Add one observation: the device clock read ``ticks`` at or before ``host_s``."""
        if self._points and ticks <= self._points[-1][0]:
            self.reset()
        if not self._points:
            self._origin = (ticks, host_s)
        t0, h0 = self._origin
        self._points.append((ticks, (ticks - t0) / self.tick_rate_hz, host_s - h0))
        self._fit = None

    def to_host(self, ticks: int) -> float:
        """Host monotonic time at which the device clock read ``ticks``."""
        if not self._points:
            raise ValueError('clock model has no observations yet')
        a, b = self._solve()
        t0, h0 = self._origin
        return h0 + a + b * (ticks - t0) / self.tick_rate_hz

    def estimate(self) -> Optional[ClockEstimate]:
        """Return the current mapping, or None before the first observation."""
        if not self._points:
            return None
        a, b = self._solve()
        xs = np.array([pt[1] for pt in self._points])
        ys = np.array([pt[2] for pt in self._points])
        return ClockEstimate(offset_s=self.to_host(0), drift_ppm=(1.0 / b - 1.0) * 1e6,
                             n_points=len(xs), span_s=float(xs[-1] - xs[0]),
                             jitter_p50_s=float(np.median(ys - (a + b * xs))))

    def _solve(self) -> tuple[float, float]:
        if self._fit is None:
            self._fit = self._lower_envelope()
        return self._fit

    def _lower_envelope(self) -> tuple[float, float]:
        pts = [(x, y) for _, x, y in self._points]
        span = pts[-1][0] - pts[0][0]
        if len(pts) < 2 or span < self.min_span_for_drift_s:
            return min(y - x for x, y in pts), 1.0
        hull: list[tuple[float, float]] = []
        for pt in pts:
            while len(hull) >= 2:
                (x1, y1), (x2, y2) = hull[-2], hull[-1]
                if (x2 - x1) * (pt[1] - y1) - (y2 - y1) * (pt[0] - x1) > 0:
                    break
                hull.pop()
            hull.append(pt)
        x_mean = sum(x for x, _ in pts) / len(pts)
        for (x1, y1), (x2, y2) in zip(hull, hull[1:]):
            if x2 >= x_mean:
                b = (y2 - y1) / (x2 - x1)
                return y1 - b * x1, b
        return min(y - x for x, y in pts), 1.0


@dataclasses.dataclass(frozen=True)
class EchoFrameEvent:
    """What ``on_frame`` receives, on the link's delivery thread.

    :param samples: int16 ``(n_channels, n_samples)``, read-only
    :param fs_hz: sample rate
    :param device_seq: acquisition counter
    :param acq_ticks: device tick at the first sample
    :param stamp_s: acquisition time on the system clock (``time.time()`` base): use it for
        the ROS header stamp
    :param stamp_mono_s: the same instant on ``time.monotonic()``
    :param receive_mono_s: when the frame was decoded, ``time.monotonic()``
    :param dropped_before: frames missing between the previous delivered one and this one
    """

    samples: np.ndarray
    fs_hz: int
    device_seq: int
    acq_ticks: int
    stamp_s: float
    stamp_mono_s: float
    receive_mono_s: float
    dropped_before: int


@dataclasses.dataclass(frozen=True)
class StatusEvent:
    """What ``on_status`` receives: the device's STATUS and when it was decoded."""

    status: p.Status
    receive_mono_s: float
    stamp_s: float


@dataclasses.dataclass(frozen=True)
class LinkHealth:
    """A consistent snapshot of the link, for diagnostics."""

    connected: bool
    streaming: bool
    port: str
    device_path: str
    device_info: Optional[p.Info]
    frames_received: int
    frames_delivered: int
    frames_dropped: int
    messages_lost: int
    queue_overflows: int
    callback_errors: int
    bytes_received: int
    connects: int
    connect_attempts: int
    stalls: int
    nacks: int
    frame_rate_hz: float
    byte_rate_bps: float
    time_since_last_frame_s: Optional[float]
    last_error: str
    last_error_age_s: Optional[float]
    decoder: dict
    clock: Optional[ClockEstimate]
    last_status: Optional[p.Status]
    channels: list


class LinkError(Exception):
    """The device did not behave: no reply, a refusal, a stall."""


class SerialArrayLink:
    """Reader thread + delivery thread for one echoloc array on a serial port.

    Call :meth:`start`, then read :meth:`health` whenever; :meth:`close` stops both threads.
    Callbacks run on the delivery thread, one at a time; if they fall more than
    ``queue_depth`` events behind, the oldest are dropped and counted (``queue_overflows``).
    """

    def __init__(self, port: str, baudrate: int = 115_200,
                 on_frame: Optional[Callable[[EchoFrameEvent], None]] = None,
                 on_status: Optional[Callable[[StatusEvent], None]] = None, *,
                 config: Optional[p.Configure] = None, read_timeout_s: float = 0.02,
                 reply_timeout_s: float = 0.25, reply_attempts: int = 4,
                 stall_timeout_s: float = 0.5, backoff_min_s: float = 0.1,
                 backoff_max_s: float = 2.0, queue_depth: int = 16,
                 clock_window: int = 512, channel_health_period_s: float = 1.0,
                 logger=None) -> None:
        """Configure the link; nothing is opened until :meth:`start`.

        :param port: device path (``/dev/ttyACM0``, a by-id symlink) or a pyserial URL
        :param baudrate: ignored by USB CDC (the Teensy runs at USB speed); used by real UARTs
        :param on_frame: called with each :class:`EchoFrameEvent`
        :param on_status: called with each :class:`StatusEvent`
        :param config: sent as CONFIGURE on every connect; None keeps the device's own
        :param read_timeout_s: longest blocking read, bounds the reaction time to ``close()``
        :param reply_timeout_s: wait for each handshake reply before resending
        :param reply_attempts: sends per handshake step before giving up on the connection
        :param stall_timeout_s: no decoded message for this long while streaming = stall
            (raised to three frame periods when the frame rate is lower)
        :param backoff_min_s: first wait between failed connections
        :param backoff_max_s: cap of the doubling wait
        :param queue_depth: events buffered for the delivery thread
        :param clock_window: frames kept by the tick-to-time fit
        :param channel_health_period_s: how often :func:`channel_health` runs on a frame
        :param logger: where the link's warnings and errors go: anything with ``warning(str)``
            and ``error(str)``, such as a ROS node's logger (so they reach /rosout); None:
            this module's stdlib logger
        """
        if not 0 < backoff_min_s <= backoff_max_s:
            raise ValueError(f'need 0 < backoff_min_s <= backoff_max_s, got {backoff_min_s}, '
                             f'{backoff_max_s}')
        if queue_depth < 1:
            raise ValueError(f'queue_depth must be >= 1, got {queue_depth}')
        self.port = port
        self.baudrate = baudrate
        self.on_frame = on_frame
        self.on_status = on_status
        self.config = config
        self.read_timeout_s = read_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self.reply_attempts = reply_attempts
        self.stall_timeout_s = stall_timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.channel_health_period_s = channel_health_period_s
        self._log = logger if logger is not None else _LOG
        self._clock_window = clock_window
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_depth)
        self._commands: queue.Queue = queue.Queue()
        self._decoder = FrameDecoder()
        self._ser: Optional[serial.SerialBase] = None
        self._threads: list[threading.Thread] = []
        self._tx_seq = 0
        self._clock: Optional[ClockModel] = None
        self._rates: collections.deque = collections.deque()
        self._c = collections.Counter()
        self._connected = False
        self._streaming = False
        self._device_path = ''
        self._info: Optional[p.Info] = None
        self._last_status: Optional[p.Status] = None
        self._last_frame_s: Optional[float] = None
        self._last_error = ''
        self._last_error_s: Optional[float] = None
        self._channels: list = []
        self._last_health_s = -float('inf')
        self._last_rx_s = 0.0
        self._last_rx_seq: Optional[int] = None
        self._last_device_seq: Optional[int] = None

    def start(self) -> None:
        """Start the reader and delivery threads."""
        if self._threads:
            raise RuntimeError('SerialArrayLink already started')
        self._threads = [threading.Thread(target=self._read_loop, name='echoloc-serial-read',
                                          daemon=True),
                         threading.Thread(target=self._deliver_loop,
                                          name='echoloc-serial-deliver', daemon=True)]
        for thread in self._threads:
            thread.start()

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop streaming (best effort), close the port and join both threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)

    def send(self, msg: p.Message) -> None:
        """Queue a command (e.g. :class:`protocol.GetStatus`) for the reader thread to send."""
        self._commands.put(msg)

    def to_host_time(self, ticks: int) -> Optional[float]:
        """Host monotonic time of a device tick under the current fit (None before data)."""
        with self._lock:
            return self._clock.to_host(ticks) if self._clock else None

    def health(self) -> LinkHealth:
        """Return a thread-safe snapshot of the link state and counters."""
        with self._lock:
            now = time.monotonic()
            frame_rate = byte_rate = 0.0
            if len(self._rates) >= 2 and self._rates[-1][0] > self._rates[0][0]:
                (t0, f0, b0), (t1, f1, b1) = self._rates[0], self._rates[-1]
                frame_rate, byte_rate = (f1 - f0) / (t1 - t0), (b1 - b0) / (t1 - t0)
            c = self._c
            return LinkHealth(
                connected=self._connected, streaming=self._streaming, port=self.port,
                device_path=self._device_path, device_info=self._info,
                frames_received=c['frames_received'], frames_delivered=c['frames_delivered'],
                frames_dropped=c['frames_dropped'], messages_lost=c['messages_lost'],
                queue_overflows=c['queue_overflows'], callback_errors=c['callback_errors'],
                bytes_received=c['bytes_received'], connects=c['connects'],
                connect_attempts=c['connect_attempts'], stalls=c['stalls'], nacks=c['nacks'],
                frame_rate_hz=frame_rate, byte_rate_bps=byte_rate,
                time_since_last_frame_s=(None if self._last_frame_s is None
                                         else now - self._last_frame_s),
                last_error=self._last_error,
                last_error_age_s=(None if self._last_error_s is None
                                  else now - self._last_error_s),
                decoder=self._decoder.stats.as_dict(),
                clock=self._clock.estimate() if self._clock else None,
                last_status=self._last_status, channels=list(self._channels))

    def _error(self, text: str) -> None:
        self._log.warning(f'echoloc serial {self.port}: {text}')
        with self._lock:
            self._last_error = text
            self._last_error_s = time.monotonic()

    def _read_loop(self) -> None:
        backoff_s = self.backoff_min_s
        while not self._stop.is_set():
            try:
                self._connect()
                backoff_s = self.backoff_min_s
                self._stream()
            except (serial.SerialException, OSError, LinkError) as exc:
                self._error(f'{type(exc).__name__}: {exc}')
            except Exception as exc:  # noqa: BLE001 - the reader must outlive a bug; log it
                self._log.error(f'echoloc serial {self.port}: reader failed\n'
                                f'{traceback.format_exc()}')
                self._error(f'internal error {type(exc).__name__}: {exc}')
            finally:
                self._disconnect()
            if not self._stop.is_set():
                self._wait_for_port(backoff_s)
                backoff_s = min(2 * backoff_s, self.backoff_max_s)

    def _wait_for_port(self, delay_s: float) -> None:
        """Sleep ``delay_s``, but retry at once when the device node (re)appears."""
        watch = '://' not in self.port
        before = os.path.realpath(self.port) if os.path.exists(self.port) else None
        deadline_s = time.monotonic() + delay_s
        while not self._stop.wait(min(0.05, max(0.0, deadline_s - time.monotonic()))):
            if time.monotonic() >= deadline_s:
                return
            if watch and os.path.exists(self.port):
                now = os.path.realpath(self.port)
                if now != before:
                    return

    def _connect(self) -> None:
        with self._lock:
            self._c['connect_attempts'] += 1
        self._ser = serial.serial_for_url(self.port, baudrate=self.baudrate,
                                          timeout=self.read_timeout_s, write_timeout=0.5)
        self._decoder.reset()
        with self._lock:
            self._connected = True
            self._device_path = os.path.realpath(self.port) if '://' not in self.port else ''
        self._last_rx_seq = self._last_device_seq = None
        with self._lock:
            self._clock = None
        self._request(p.Stop())
        info = self._request(p.GetInfo())
        if info.protocol_version != p.PROTOCOL_VERSION:
            raise LinkError(f'device speaks protocol v{info.protocol_version}, host '
                            f'v{p.PROTOCOL_VERSION}')
        with self._lock:
            self._info = info
            self._clock = ClockModel(info.tick_rate_hz, self._clock_window)
        if self.config is not None:
            problem = p.configure_problem(self.config, info.max_window_samples)
            if problem:
                raise LinkError(f'configuration rejected before sending: {problem}')
            self._request(self.config)
        self._request(p.Start())
        with self._lock:
            self._streaming = True
            self._c['connects'] += 1
            self._last_rx_s = time.monotonic()

    def _disconnect(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            if self._stop.is_set() and self._streaming:
                try:
                    ser.write(p.encode(p.Stop(), self._next_seq()))
                except (serial.SerialException, OSError):
                    pass  # closing anyway; the device stops on its own when USB goes away
            ser.close()
        with self._lock:
            self._connected = self._streaming = False

    def _next_seq(self) -> int:
        seq = self._tx_seq
        self._tx_seq = (self._tx_seq + 1) & 0xFFFFFFFF
        return seq

    def _request(self, msg: p.Message):
        """Send a handshake command until its reply arrives; dispatch everything else."""
        name = type(msg).__name__
        for _ in range(self.reply_attempts):
            seq = self._next_seq()
            self._ser.write(p.encode(msg, seq))
            deadline_s = time.monotonic() + self.reply_timeout_s
            while time.monotonic() < deadline_s and not self._stop.is_set():
                for decoded in self._poll():
                    reply = decoded.msg
                    if isinstance(msg, p.GetInfo) and isinstance(reply, p.Info):
                        return reply
                    if isinstance(reply, (p.Ack, p.Nack)) and reply.command_seq == seq:
                        if isinstance(reply, p.Nack):
                            with self._lock:
                                self._c['nacks'] += 1
                            raise LinkError(f'{name} refused: {reply.error.name}')
                        return reply
                    self._dispatch(decoded)
            if self._stop.is_set():
                break
        raise LinkError(f'no reply to {name} after {self.reply_attempts} tries')

    def _stream(self) -> None:
        stall_s = self.stall_timeout_s
        if self.config is not None:
            stall_s = max(stall_s, 3.0 / float(self.config.frame_rate_hz))
        while not self._stop.is_set():
            while not self._commands.empty():
                self._ser.write(p.encode(self._commands.get_nowait(), self._next_seq()))
            for decoded in self._poll():
                self._dispatch(decoded)
            silent_s = time.monotonic() - self._last_rx_s
            if silent_s > stall_s:
                with self._lock:
                    self._c['stalls'] += 1
                raise LinkError(f'stall: no message for {1000 * silent_s:.0f} ms')

    def _poll(self) -> list[p.Decoded]:
        ser = self._ser
        waiting = ser.in_waiting
        data = ser.read(min(waiting, _READ_CHUNK_BYTES) if waiting else 1)
        if data and not waiting:
            data += ser.read(min(ser.in_waiting, _READ_CHUNK_BYTES))
        decoded = self._decoder.feed(data) if data else []
        now = time.monotonic()
        with self._lock:
            self._c['bytes_received'] += len(data)
            if not self._rates or now - self._rates[-1][0] >= 0.1:
                self._rates.append((now, self._c['frames_received'], self._c['bytes_received']))
                while now - self._rates[0][0] > 2.0:
                    self._rates.popleft()
        if decoded:
            self._last_rx_s = now
            self._count_lost(decoded)
        return decoded

    def _count_lost(self, decoded: list[p.Decoded]) -> None:
        lost = 0
        for seq, _ in decoded:
            if self._last_rx_seq is not None:
                lost += (seq - self._last_rx_seq - 1) & 0xFFFFFFFF
            self._last_rx_seq = seq
        if lost:
            with self._lock:
                self._c['messages_lost'] += lost

    def _dispatch(self, decoded: p.Decoded) -> None:
        msg = decoded.msg
        if isinstance(msg, p.EchoFrame):
            self._on_echo(msg)
        elif isinstance(msg, p.Status):
            with self._lock:
                self._last_status = msg
            self._enqueue(StatusEvent(msg, time.monotonic(), time.time()))
        elif isinstance(msg, p.Info):
            with self._lock:
                self._info = msg
        elif isinstance(msg, p.Nack):
            with self._lock:
                self._c['nacks'] += 1
            self._error(f'device refused command seq {msg.command_seq}: {msg.error.name}')

    def _on_echo(self, frame: p.EchoFrame) -> None:
        receive_s = time.monotonic()
        wall_minus_mono_s = time.time() - receive_s
        dropped = 0
        last = self._last_device_seq
        if last is not None and frame.device_seq > last:
            dropped = frame.device_seq - last - 1
        self._last_device_seq = frame.device_seq
        window_s = frame.samples.shape[1] / frame.fs_hz if frame.fs_hz else 0.0
        with self._lock:
            # A frame cannot arrive before its window has been recorded: compare the tick of
            # the first sample with the arrival time minus the window length.
            stamp_mono_s = receive_s - window_s
            if self._clock is not None:  # None until INFO gives the tick rate
                self._clock.add(frame.acq_ticks, stamp_mono_s)
                stamp_mono_s = self._clock.to_host(frame.acq_ticks)
            self._c['frames_received'] += 1
            self._c['frames_dropped'] += dropped
            self._last_frame_s = receive_s
        self._enqueue(EchoFrameEvent(frame.samples, frame.fs_hz, frame.device_seq,
                                     frame.acq_ticks, stamp_mono_s + wall_minus_mono_s,
                                     stamp_mono_s, receive_s, dropped))

    def _enqueue(self, event) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._queue.get_nowait()
            with self._lock:
                self._c['queue_overflows'] += 1
            self._queue.put_nowait(event)

    def _deliver_loop(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                if isinstance(event, EchoFrameEvent):
                    self._check_channels(event)
                    if self.on_frame is not None:
                        self.on_frame(event)
                    with self._lock:
                        self._c['frames_delivered'] += 1
                elif self.on_status is not None:
                    self.on_status(event)
            except Exception as exc:  # noqa: BLE001 - a user callback must not end delivery
                with self._lock:
                    self._c['callback_errors'] += 1
                self._error(f'callback raised {type(exc).__name__}: {exc}')

    def _check_channels(self, event: EchoFrameEvent) -> None:
        if event.receive_mono_s - self._last_health_s < self.channel_health_period_s:
            return
        self._last_health_s = event.receive_mono_s
        channels = channel_health(event.samples)
        with self._lock:
            self._channels = channels
