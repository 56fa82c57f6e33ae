"""`echoloc hw-test`: talk to an array on a port and say plainly whether it works."""
import time
from dataclasses import dataclass, field

import numpy as np
import serial

from echoloc_ros.device import protocol as p
from echoloc_ros.device.decoder import FrameDecoder
from echoloc_ros.core.channel_health import CHANNEL_OK, channel_health

# What a working array can report in STATUS: its MCU die sensor's range, and a supply between
# the MCU's brown-out and a 12 V VIN (USB gives 5 V). NaN or infinity is a broken sensor or
# firmware, never "ok".
TEMPERATURE_RANGE_C = (-40.0, 125.0)
SUPPLY_RANGE_V = (3.0, 13.0)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    data: dict = field(default_factory=dict)


class _Session:
    """Request/response over an open port with a decoder; ignores unrelated messages."""

    def __init__(self, port: serial.SerialBase):
        self.port = port
        self.decoder = FrameDecoder()
        self.seq = 0

    def request(self, msg, want: tuple[type, ...], timeout_s: float):
        self.seq += 1
        sent = time.perf_counter()
        self.port.write(p.encode(msg, self.seq))
        return self.wait_for(want, timeout_s), time.perf_counter() - sent

    def wait_for(self, want: tuple[type, ...], timeout_s: float):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for decoded in self.decoder.feed(self.port.read(self.port.in_waiting or 1)):
                if isinstance(decoded.msg, want):
                    return decoded.msg
        return None


def run_hw_test(port_path: str, timeout_s: float = 1.0, frame_timeout_s: float = 3.0,
                n_pings: int = 10) -> list[Check]:
    """PING, GET_INFO, STATUS and one echo frame; each step a :class:`Check`.

    :raises serial.SerialException: the port cannot be opened (the message names it).
    """
    checks = []
    with serial.serial_for_url(port_path, baudrate=115200, timeout=0.01) as port:
        session = _Session(port)
        session.request(p.Stop(), (p.Ack, p.Nack), timeout_s)
        port.reset_input_buffer()
        rtts = []
        for token in range(n_pings):
            reply, rtt = session.request(p.Ping(token), (p.Pong,), timeout_s)
            if reply is not None and reply.token == token:
                rtts.append(rtt)
        checks.append(Check('ping', len(rtts) == n_pings,
                            f'{len(rtts)}/{n_pings} replies' + (
                                f', round trip median {1e3 * np.median(rtts):.2f} ms, max '
                                f'{1e3 * max(rtts):.2f} ms' if rtts else ''),
                            {'replies': len(rtts), 'rtt_ms_median':
                             round(1e3 * float(np.median(rtts)), 3) if rtts else None}))
        info, _ = session.request(p.GetInfo(), (p.Info,), timeout_s)
        checks.append(Check('info', info is not None and info.protocol_version ==
                            p.PROTOCOL_VERSION,
                            'no INFO reply' if info is None else
                            f'firmware {info.firmware_version}, array {info.array_id}, '
                            f'{info.n_channels} channels at {info.fs_hz} Hz, protocol '
                            f'v{info.protocol_version} (host speaks v{p.PROTOCOL_VERSION})',
                            {} if info is None else {'firmware': info.firmware_version,
                                                     'array_id': info.array_id,
                                                     'fs_hz': info.fs_hz,
                                                     'n_channels': info.n_channels}))
        status, _ = session.request(p.GetStatus(), (p.Status,), timeout_s)
        checks.append(status_check(status))
        session.request(p.Start(), (p.Ack, p.Nack), timeout_s)
        frame = session.wait_for((p.EchoFrame,), frame_timeout_s)
        session.request(p.Stop(), (p.Ack, p.Nack), timeout_s)
        if frame is None:
            checks.append(Check('frame', False, f'no echo frame within {frame_timeout_s} s'))
        else:
            checks.append(frame_check(np.asarray(frame.samples),
                                      None if info is None else info.n_channels))
    return checks


def _finite_or_none(value: float) -> float | None:
    # JSON has no NaN or infinity.
    return float(value) if np.isfinite(value) else None


def status_check(status: p.Status | None) -> Check:
    """The STATUS reply: present, with a temperature and a supply voltage a working array
    can have."""
    if status is None:
        return Check('status', False, 'no STATUS reply')
    problems = []
    low, high = TEMPERATURE_RANGE_C
    if not low <= status.temperature_c <= high:
        problems.append(f'temperature {status.temperature_c} C outside [{low:g}, {high:g}]')
    low, high = SUPPLY_RANGE_V
    if not low <= status.supply_v <= high:
        problems.append(f'supply {status.supply_v} V outside [{low:g}, {high:g}]')
    detail = (f'{status.temperature_c:.1f} C, supply {status.supply_v:.2f} V, '
              f'{status.clip_count} clipped samples, {status.overrun_count} overruns since boot')
    return Check('status', not problems, '; '.join(problems + [detail]),
                 {'temperature_c': _finite_or_none(status.temperature_c),
                  'supply_v': _finite_or_none(status.supply_v),
                  'clip_count': status.clip_count, 'overrun_count': status.overrun_count})


def frame_check(samples: np.ndarray, expected_channels: int | None) -> Check:
    """One echo frame ``(n_channels, n_samples)``: channels and samples there, as many
    channels as INFO announced, and every channel healthy."""
    n_channels, n_samples = samples.shape if samples.ndim == 2 else (0, samples.size)
    if n_channels == 0 or n_samples == 0:
        return Check('frame', False, f'empty frame: {n_channels} channels x {n_samples} samples',
                     {'channels': []})
    health = channel_health(samples)
    bad = [h for h in health if h['state'] != CHANNEL_OK]
    problems = []
    if expected_channels is not None and n_channels != expected_channels:
        problems.append(f'{n_channels} channels, but INFO announced {expected_channels}')
    return Check(
        'frame', not bad and not problems,
        '; '.join(problems + [f'{n_channels} x {n_samples} samples']) + '; ' + ', '.join(
            f"ch{h['channel']} {h['state']} snr {h['snr_db']:.1f} dB"
            + (f" ({h['reason']})" if h['reason'] else '') for h in health),
        {'channels': [{k: h[k] for k in ('channel', 'state', 'snr_db', 'rms')}
                      for h in health]})
