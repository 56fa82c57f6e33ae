"""Binary serial protocol between the host and the echoloc array (v1, see docs/protocol.md).

Pure Python + numpy: the frame layout, the message dataclasses, :func:`encode` and
:func:`decode_payload` (one intact payload to its message).  The streaming decoder that finds
frames in a raw byte stream is :mod:`echoloc_ros.device.decoder`.  ``firmware/echoloc_protocol.c``
is the C twin of both; they are tested bit-exactly against each other.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
import zlib
from typing import NamedTuple, Union

import numpy as np

PROTOCOL_VERSION = 1
SYNC = b'\xec\xa5\x5a\xc3'
HEADER = struct.Struct('<4sBBHIII')  # sync, version, type, reserved, seq, payload_len, header_crc
HEADER_SIZE = HEADER.size  # 20
HEADER_CRC_SPAN = HEADER_SIZE - 4
TRAILER_SIZE = 4
MAX_PAYLOAD_BYTES = 1 << 20
MAX_FRAME_BYTES = HEADER_SIZE + MAX_PAYLOAD_BYTES + TRAILER_SIZE
MAX_STRING_BYTES = 64

_U32 = struct.Struct('<I')
_PING = struct.Struct('<I')
_CONFIGURE = struct.Struct('<BBHfffIIf')
_INFO = struct.Struct('<BBHIII')
_ACK = struct.Struct('<IB')
_NACK = struct.Struct('<IBB')
_STATUS = struct.Struct('<QffIIB3x')
# acq_ticks, device_seq, fs_hz, n_channels, reserved, n_samples
ECHO_HEADER = struct.Struct('<QIIHHI')


class MsgType(enum.IntEnum):
    """Message type codes; the high bit marks device-to-host messages."""

    PING = 0x01
    GET_INFO = 0x02
    CONFIGURE = 0x03
    START = 0x04
    STOP = 0x05
    GET_STATUS = 0x06
    PONG = 0x81
    INFO = 0x82
    ACK = 0x83
    NACK = 0x84
    STATUS = 0x85
    ECHO_FRAME = 0x86


class ChirpKind(enum.IntEnum):
    """Emitted waveform, as echoloc_ros.core.chirp.Chirp.kind: linear FM, hyperbolic FM, or a
    13-chip Barker code phase-modulating a carrier at (f0 + f1) / 2."""

    LFM = 0
    HFM = 1
    BARKER = 2


class Taper(enum.IntEnum):
    """Amplitude window applied to the emitted chirp."""

    RECT = 0
    HANN = 1


class ErrorCode(enum.IntEnum):
    """NACK reasons."""

    UNKNOWN_TYPE = 1
    BAD_LENGTH = 2
    BAD_VERSION = 3
    BAD_CRC = 4
    INVALID_PARAM = 5
    BUSY = 6
    INTERNAL = 7


class DeviceState(enum.IntEnum):
    """Acquisition state reported in STATUS."""

    IDLE = 0
    STREAMING = 1


@dataclasses.dataclass(frozen=True)
class Ping:
    """Host to device: liveness check; the device answers PONG with the same token."""

    token: int = 0


@dataclasses.dataclass(frozen=True)
class GetInfo:
    """Host to device: ask for INFO."""


@dataclasses.dataclass(frozen=True)
class Configure:
    """Host to device: acquisition settings; answered by ACK or NACK (BUSY while streaming).

    Floats travel as float32: decoded values are the float32 roundings of the sent ones.
    """

    chirp_kind: ChirpKind = ChirpKind.LFM
    f0_hz: float = 35_000.0
    f1_hz: float = 45_000.0
    duration_s: float = 0.002
    fs_hz: int = 250_000
    window_samples: int = 10_000
    frame_rate_hz: float = 20.0
    taper: Taper = Taper.HANN


@dataclasses.dataclass(frozen=True)
class Start:
    """Host to device: start streaming ECHO_FRAMEs; answered by ACK."""


@dataclasses.dataclass(frozen=True)
class Stop:
    """Host to device: stop streaming; answered by ACK."""


@dataclasses.dataclass(frozen=True)
class GetStatus:
    """Host to device: ask for one STATUS now (the device also sends one every second)."""


@dataclasses.dataclass(frozen=True)
class Pong:
    """Device to host: answer to PING."""

    token: int = 0


@dataclasses.dataclass(frozen=True)
class Info:
    """Device to host: identity and fixed capabilities of the array."""

    firmware_version: str
    array_id: str
    fs_hz: int
    n_channels: int
    protocol_version: int = PROTOCOL_VERSION
    tick_rate_hz: int = 1_000_000
    max_window_samples: int = 0


@dataclasses.dataclass(frozen=True)
class Ack:
    """Device to host: the command with header sequence ``command_seq`` was applied."""

    command_seq: int
    command_type: int


@dataclasses.dataclass(frozen=True)
class Nack:
    """Device to host: the command with header sequence ``command_seq`` was refused."""

    command_seq: int
    command_type: int
    error: ErrorCode


@dataclasses.dataclass(frozen=True)
class Status:
    """Device to host: housekeeping, sent every second and on GET_STATUS.

    ``clip_count`` counts ADC samples at full scale and ``overrun_count`` acquisitions lost
    because the previous frame had not left the device; both count since boot.
    """

    uptime_ticks: int
    temperature_c: float
    supply_v: float
    clip_count: int
    overrun_count: int
    state: DeviceState = DeviceState.IDLE


@dataclasses.dataclass(frozen=True, eq=False)
class EchoFrame:
    """Device to host: one acquisition.

    :param device_seq: acquisition counter since boot (gaps are lost frames)
    :param acq_ticks: device tick at the first sample (the chirp starts at that sample)
    :param fs_hz: sample rate
    :param samples: int16 ``(n_channels, n_samples)``, channel-major on the wire
    """

    device_seq: int
    acq_ticks: int
    fs_hz: int
    samples: np.ndarray

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EchoFrame):
            return NotImplemented
        return (self.device_seq == other.device_seq and self.acq_ticks == other.acq_ticks
                and self.fs_hz == other.fs_hz and self.samples.shape == other.samples.shape
                and bool(np.array_equal(self.samples, other.samples)))


Message = Union[Ping, GetInfo, Configure, Start, Stop, GetStatus,
                Pong, Info, Ack, Nack, Status, EchoFrame]


class Decoded(NamedTuple):
    """A decoded frame: the header sequence number and the message."""

    seq: int
    msg: Message


_MSG_TYPES = {Ping: MsgType.PING, GetInfo: MsgType.GET_INFO, Configure: MsgType.CONFIGURE,
              Start: MsgType.START, Stop: MsgType.STOP, GetStatus: MsgType.GET_STATUS,
              Pong: MsgType.PONG, Info: MsgType.INFO, Ack: MsgType.ACK, Nack: MsgType.NACK,
              Status: MsgType.STATUS, EchoFrame: MsgType.ECHO_FRAME}


def msg_type_of(msg: Message) -> MsgType:
    """Return the wire type code of a message dataclass."""
    return _MSG_TYPES[type(msg)]


def configure_problem(cfg: Configure, max_window_samples: int) -> Union[str, None]:
    """Check a CONFIGURE against the rules the firmware enforces (it NACKs INVALID_PARAM).

    :param cfg: requested settings
    :param max_window_samples: the device's limit, from INFO
    :return: None if acceptable, else why not
    """
    fs = cfg.fs_hz
    if not 1_000 <= fs <= 1_000_000:
        return f'fs_hz {fs} outside [1000, 1000000]'
    if not 0 < cfg.window_samples <= max_window_samples:
        return f'window_samples {cfg.window_samples} outside (0, {max_window_samples}]'
    for name, f_hz in (('f0_hz', cfg.f0_hz), ('f1_hz', cfg.f1_hz)):
        if not 0 < f_hz < fs / 2:
            return f'{name} {f_hz} outside (0, fs/2 = {fs / 2})'
    if cfg.chirp_kind == ChirpKind.HFM and cfg.f0_hz == cfg.f1_hz:
        return 'a hyperbolic chirp needs f0_hz != f1_hz'
    window_s = cfg.window_samples / fs
    if not 0 < cfg.duration_s < window_s:
        return f'duration_s {cfg.duration_s} outside (0, window = {window_s} s)'
    if not 0 < cfg.frame_rate_hz <= 1 / window_s:
        return f'frame_rate_hz {cfg.frame_rate_hz} outside (0, 1/window = {1 / window_s}]'
    return None


def _pack_str(text: str) -> bytes:
    raw = text.encode('utf-8')
    if len(raw) > MAX_STRING_BYTES:
        raise ValueError(f'string longer than {MAX_STRING_BYTES} bytes: {text!r}')
    return bytes((len(raw),)) + raw


def _payload(msg: Message) -> tuple[int, bytes]:
    if isinstance(msg, Ping):
        return MsgType.PING, _PING.pack(msg.token)
    if isinstance(msg, Pong):
        return MsgType.PONG, _PING.pack(msg.token)
    if isinstance(msg, GetInfo):
        return MsgType.GET_INFO, b''
    if isinstance(msg, Start):
        return MsgType.START, b''
    if isinstance(msg, Stop):
        return MsgType.STOP, b''
    if isinstance(msg, GetStatus):
        return MsgType.GET_STATUS, b''
    if isinstance(msg, Configure):
        return MsgType.CONFIGURE, _CONFIGURE.pack(
            int(msg.chirp_kind), int(msg.taper), 0, msg.f0_hz, msg.f1_hz, msg.duration_s,
            msg.fs_hz, msg.window_samples, msg.frame_rate_hz)
    if isinstance(msg, Info):
        return MsgType.INFO, (_INFO.pack(msg.protocol_version, msg.n_channels, 0, msg.fs_hz,
                                         msg.tick_rate_hz, msg.max_window_samples)
                              + _pack_str(msg.firmware_version) + _pack_str(msg.array_id))
    if isinstance(msg, Ack):
        return MsgType.ACK, _ACK.pack(msg.command_seq, msg.command_type)
    if isinstance(msg, Nack):
        return MsgType.NACK, _NACK.pack(msg.command_seq, msg.command_type, int(msg.error))
    if isinstance(msg, Status):
        return MsgType.STATUS, _STATUS.pack(msg.uptime_ticks, msg.temperature_c, msg.supply_v,
                                            msg.clip_count, msg.overrun_count, int(msg.state))
    if isinstance(msg, EchoFrame):
        samples = msg.samples
        if samples.ndim != 2 or samples.dtype.kind not in 'iu':
            raise ValueError(f'samples must be an int16 (n_channels, n_samples) array, got '
                             f'{samples.dtype} {samples.shape}')
        n_channels, n_samples = samples.shape
        head = ECHO_HEADER.pack(msg.acq_ticks, msg.device_seq, msg.fs_hz, n_channels, 0,
                                n_samples)
        return MsgType.ECHO_FRAME, head + np.ascontiguousarray(samples, dtype='<i2').tobytes()
    raise ValueError(f'not a protocol message: {msg!r}')


def encode_frame(msg_type: int, seq: int, payload: bytes,
                 version: int = PROTOCOL_VERSION) -> bytes:
    """Frame a raw payload (tests and tools use this to build frames :func:`encode` refuses).

    :param msg_type: type code (u8), known or not
    :param seq: header sequence number (u32)
    :param payload: payload bytes, at most 1 MiB
    :param version: protocol version byte
    :return: header + payload + CRC-32
    :raises ValueError: a header field does not fit, or the payload exceeds 1 MiB
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f'payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}')
    try:
        head = HEADER.pack(SYNC, version, msg_type, 0, seq, len(payload), 0)
    except struct.error as exc:
        raise ValueError(f'bad header field (type={msg_type} seq={seq}): {exc}') from exc
    head = head[:HEADER_CRC_SPAN] + _U32.pack(zlib.crc32(head[:HEADER_CRC_SPAN]))
    return head + payload + _U32.pack(zlib.crc32(payload, zlib.crc32(head)))


def encode(msg: Message, seq: int) -> bytes:
    """Encode one message as a complete frame.

    :param msg: any message dataclass of this module
    :param seq: header sequence number (u32), incremented by the sender per frame
    :return: the frame bytes, header + payload + CRC-32
    :raises ValueError: a field does not fit its wire type, or the payload exceeds 1 MiB
    """
    try:
        msg_type, payload = _payload(msg)
    except struct.error as exc:
        raise ValueError(f'cannot encode {type(msg).__name__}: {exc}') from exc
    return encode_frame(msg_type, seq, payload)


def _unpack_exact(fmt: struct.Struct, src, off: int, length: int) -> tuple:
    if length != fmt.size:
        raise ValueError(f'payload length {length} != {fmt.size}')
    return fmt.unpack_from(src, off)


def _read_str(src, off: int, end: int) -> tuple[str, int]:
    if off >= end:
        raise ValueError('string runs past the payload')
    n = src[off]
    if off + 1 + n > end:
        raise ValueError('string runs past the payload')
    return bytes(src[off + 1:off + 1 + n]).decode('utf-8'), off + 1 + n


def decode_payload(msg_type: int, src, off: int, length: int, zero_copy: bool) -> Message:
    """Parse a payload whose frame already passed both CRCs; raise ValueError if malformed."""
    if msg_type == MsgType.ECHO_FRAME:
        acq_ticks, device_seq, fs_hz, n_ch, _, n_samples = ECHO_HEADER.unpack_from(src, off)
        n_bytes = 2 * n_ch * n_samples
        if length != ECHO_HEADER.size + n_bytes:
            raise ValueError(f'echo payload {length} B does not hold {n_ch}x{n_samples} int16')
        start = off + ECHO_HEADER.size
        if zero_copy:
            samples = np.frombuffer(src, dtype='<i2', count=n_ch * n_samples, offset=start)
        else:
            samples = np.frombuffer(bytes(src[start:start + n_bytes]), dtype='<i2')
        return EchoFrame(device_seq, acq_ticks, fs_hz, samples.reshape(n_ch, n_samples))
    if msg_type in (MsgType.PING, MsgType.PONG):
        (token,) = _unpack_exact(_PING, src, off, length)
        return Ping(token) if msg_type == MsgType.PING else Pong(token)
    if msg_type == MsgType.STATUS:
        uptime, temp, supply, clips, overruns, state = _unpack_exact(_STATUS, src, off, length)
        return Status(uptime, temp, supply, clips, overruns, DeviceState(state))
    if msg_type == MsgType.ACK:
        return Ack(*_unpack_exact(_ACK, src, off, length))
    if msg_type == MsgType.NACK:
        cmd_seq, cmd_type, err = _unpack_exact(_NACK, src, off, length)
        return Nack(cmd_seq, cmd_type, ErrorCode(err))
    if msg_type == MsgType.CONFIGURE:
        kind, taper, _, f0, f1, dur, fs, window, rate = _unpack_exact(_CONFIGURE, src, off,
                                                                      length)
        return Configure(ChirpKind(kind), f0, f1, dur, fs, window, rate, Taper(taper))
    if msg_type == MsgType.INFO:
        if length < _INFO.size:
            raise ValueError(f'INFO payload {length} B too short')
        version, n_ch, _, fs, tick_rate, max_window = _INFO.unpack_from(src, off)
        end = off + length
        firmware, pos = _read_str(src, off + _INFO.size, end)
        array_id, pos = _read_str(src, pos, end)
        if pos != end:
            raise ValueError('trailing bytes after INFO strings')
        return Info(firmware, array_id, fs, n_ch, version, tick_rate, max_window)
    empty = {MsgType.GET_INFO: GetInfo, MsgType.START: Start, MsgType.STOP: Stop,
             MsgType.GET_STATUS: GetStatus}
    if length != 0:
        raise ValueError(f'{MsgType(msg_type).name} carries no payload, got {length} B')
    return empty[MsgType(msg_type)]()
