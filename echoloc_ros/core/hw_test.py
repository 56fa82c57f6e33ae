"""`echoloc hw-test`: talk to an array on a port and say plainly whether it works."""
import time
from dataclasses import dataclass, field

import numpy as np
import serial

from echoloc_ros.core import protocol as p
from echoloc_ros.core.channel_health import CHANNEL_OK, channel_health


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
        self.decoder = p.FrameDecoder()
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
        checks.append(Check('status', status is not None,
                            'no STATUS reply' if status is None else
                            f'{status.temperature_c:.1f} C, supply {status.supply_v:.2f} V, '
                            f'{status.clip_count} clipped samples, {status.overrun_count} '
                            'overruns since boot',
                            {} if status is None else {'temperature_c': status.temperature_c,
                                                       'supply_v': status.supply_v,
                                                       'clip_count': status.clip_count,
                                                       'overrun_count': status.overrun_count}))
        session.request(p.Start(), (p.Ack, p.Nack), timeout_s)
        frame = session.wait_for((p.EchoFrame,), frame_timeout_s)
        session.request(p.Stop(), (p.Ack, p.Nack), timeout_s)
        if frame is None:
            checks.append(Check('frame', False, f'no echo frame within {frame_timeout_s} s'))
        else:
            health = channel_health(np.asarray(frame.samples))
            bad = [h for h in health if h['state'] != CHANNEL_OK]
            checks.append(Check(
                'frame', not bad,
                f'{frame.samples.shape[0]} x {frame.samples.shape[1]} samples; ' + ', '.join(
                    f"ch{h['channel']} {h['state']} snr {h['snr_db']:.1f} dB"
                    + (f" ({h['reason']})" if h['reason'] else '') for h in health),
                {'channels': [{k: h[k] for k in ('channel', 'state', 'snr_db', 'rms')}
                              for h in health]}))
    return checks
