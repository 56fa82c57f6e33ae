"""The hot topics' messages read from, and the pose written to, their serialized form.

Taking a message as rclpy's Python message costs the node's main thread about 0.13 ms more
than taking its serialized bytes, whatever its size (``scripts/executor-take-cpu.py``): the
conversion builds a Python object for every field. The echo processor reads a frame's few
fields and its samples, the localizer a feature message's arrays and an IMU message's
orientation: read here straight from the bytes (``np.frombuffer`` at each array's offset), they
cost a few microseconds. Publishing a pose as bytes likewise skips building the message.

The form is the one every ROS 2 middleware writes for these types: an encapsulation header of
four bytes, then plain CDR (XCDR1), each primitive aligned to its size counted from after the
header. Only the little-endian form is read here, on a little-endian machine; anything else
(another encapsulation, a big-endian peer or host) goes through rclpy's own
``deserialize_message``. What is read is what rclpy would give, field for field
(``test/ros/test_cdr.py`` checks it against rclpy on every type, with strings of every length
modulo the alignment).
"""
import struct
import sys
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Imu
from std_msgs.msg import Header

from echoloc.msg import EchoFeatures, EchoFrame

# The encapsulation header of plain little-endian CDR (its two option bytes are not read).
CDR_LE = b'\x00\x01'
HEADER_BYTES = 4
LITTLE_ENDIAN_HOST = sys.byteorder == 'little'

_U32 = struct.Struct('<I')
_STAMP = struct.Struct('<iI')
_STAMP_AND_LENGTH = struct.Struct('<iII')
_U16 = struct.Struct('<H')
_FEATURES_SCALARS = struct.Struct('<Ifff')
_F32 = struct.Struct('<f')
_CHIRP_BAND = struct.Struct('<fffI')
_FRAME_SCALARS = struct.Struct('<fH')
_FRAME_SIZES = struct.Struct('<If')
_ORIENTATION = struct.Struct('<13d')
_POSE = struct.Struct('<7d')


class Truncated(ValueError):
    """Serialized bytes that end before the message does."""


# The float32 sequences of an EchoFeatures, in the message's order.
FEATURE_ARRAYS = ('envelope', 'baseband_real', 'baseband_imag', 'tof_s', 'tof_cfd_s', 'snr_db',
                  'noise_floor', 'direct_tof_s', 'direct_amplitude')


@dataclass(slots=True)
class FeaturesView:
    """An ``echoloc/EchoFeatures`` read from its bytes: the message's fields by the same names,
    its arrays as read-only float32 ``ndarray`` views of the bytes (rclpy's are
    ``array.array``)."""

    header: Header
    seq: int
    array_id: str
    n_channels: int
    n_bins: int
    bin_width_s: float
    start_s: float
    carrier_hz: float
    envelope: np.ndarray
    baseband_real: np.ndarray
    baseband_imag: np.ndarray
    tof_s: np.ndarray
    tof_cfd_s: np.ndarray
    snr_db: np.ndarray
    noise_floor: np.ndarray
    direct_tof_s: np.ndarray
    direct_amplitude: np.ndarray
    processing_time_s: float


@dataclass(slots=True)
class FrameView:
    """An ``echoloc/EchoFrame`` read from its bytes, the fields the echo processor reads by the
    message's names: ``emitter_position`` and ``receiver_positions`` as float64 ``ndarray``
    ``(3,)`` and ``(n, 3)`` (rclpy's are ``Point`` messages), ``data`` as a read-only int16
    view of the bytes."""

    header: Header
    seq: int
    array_id: str
    emitter_position: np.ndarray
    receiver_positions: np.ndarray
    chirp_kind: str
    chirp_f0_hz: float
    chirp_f1_hz: float
    chirp_duration_s: float
    chirp_window: str
    sample_rate_hz: float
    n_channels: int
    n_samples: int
    temperature_c: float
    data: np.ndarray


@dataclass(slots=True)
class QuaternionView:
    """A ``geometry_msgs/Quaternion``'s four values."""

    x: float
    y: float
    z: float
    w: float


@dataclass(slots=True)
class ImuOrientationView:
    """A ``sensor_msgs/Imu`` read from its bytes as far as its orientation: ``header``,
    ``orientation`` (x, y, z, w) and ``orientation_covariance`` (9 float64, row-major); the
    rates and accelerations after them are not read."""

    header: Header
    orientation: QuaternionView
    orientation_covariance: np.ndarray


class _Reader:
    """A position in serialized bytes, aligned as CDR aligns, counted after the header."""

    __slots__ = ('data', 'pos')

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = HEADER_BYTES

    def align(self, size: int) -> None:
        self.pos += -(self.pos - HEADER_BYTES) % size

    def unpack(self, layout: struct.Struct, alignment: int = 4) -> tuple:
        self.align(alignment)
        values = layout.unpack_from(self.data, self.pos)
        self.pos += layout.size
        return values

    def string(self, length: int | None = None) -> str:
        """A string; ``length`` (with its NUL) where it has been read already."""
        if length is None:
            (length,) = self.unpack(_U32)
        end = self.pos + length
        if length == 0 or end > len(self.data):
            raise Truncated(f'a string of {length} bytes at byte {self.pos}')
        text = self.data[self.pos:end - 1].decode()
        self.pos = end
        return text

    def array(self, dtype: str, itemsize: int, count: int | None = None) -> np.ndarray:
        """A sequence (its count first) or, given ``count``, a fixed-size array."""
        if count is None:
            (count,) = self.unpack(_U32)
        if count:  # an empty sequence is not aligned for its elements
            self.align(itemsize)
        end = self.pos + count * itemsize
        if end > len(self.data):
            raise Truncated(f'{count} values of {itemsize} bytes at byte {self.pos}')
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos = end
        return values

    def header(self) -> Header:
        sec, nanosec, length = self.unpack(_STAMP_AND_LENGTH)
        return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=self.string(length))


def _readable(data: bytes) -> bool:
    """Whether ``data`` is little-endian plain CDR that this host reads as it is."""
    return LITTLE_ENDIAN_HOST and data[:2] == CDR_LE


def _read(data: bytes, msg_type, read):
    """``read(data)`` where this host reads ``data`` as it lies, else rclpy's message; a
    ``ValueError`` naming ``msg_type`` where the bytes are not one."""
    what = msg_type.__name__
    try:
        if not _readable(data):
            return deserialize_message(data, msg_type)
        return read(_Reader(data))
    except RuntimeError as exc:  # rclpy's: the middleware could not read them either
        raise ValueError(f'serialized {what} of {len(data)} bytes unreadable ({exc})') from None
    except (struct.error, Truncated) as exc:
        raise ValueError(f'serialized {what} of {len(data)} bytes ends before the message '
                         f'does ({exc})') from None
    except UnicodeDecodeError as exc:
        raise ValueError(f'serialized {what}: a string that is not UTF-8 ({exc})') from None


def _features(reader: _Reader) -> FeaturesView:
    header = reader.header()
    (seq,) = reader.unpack(_U32)
    array_id = reader.string()
    (n_channels,) = reader.unpack(_U16, 2)
    n_bins, bin_width_s, start_s, carrier_hz = reader.unpack(_FEATURES_SCALARS)
    arrays = [reader.array('<f4', 4) for _ in FEATURE_ARRAYS]
    (processing_time_s,) = reader.unpack(_F32)
    return FeaturesView(header, seq, array_id, n_channels, n_bins, bin_width_s, start_s,
                        carrier_hz, *arrays, processing_time_s)


def features_view(data: bytes) -> 'FeaturesView | EchoFeatures':
    """An ``EchoFeatures`` from its serialized bytes (rclpy's message where they are not
    little-endian CDR).

    :raises ValueError: the bytes end before the message does, or hold a string that is not
        UTF-8.
    """
    return _read(data, EchoFeatures, _features)


def _frame(reader: _Reader) -> FrameView:
    header = reader.header()
    (seq,) = reader.unpack(_U32)
    array_id = reader.string()
    emitter = reader.array('<f8', 8, 3)
    (n_receivers,) = reader.unpack(_U32)
    receivers = reader.array('<f8', 8, 3 * n_receivers).reshape(n_receivers, 3)
    chirp_kind = reader.string()
    f0_hz, f1_hz, duration_s, window_length = reader.unpack(_CHIRP_BAND)
    chirp_window = reader.string(window_length)
    sample_rate_hz, n_channels = reader.unpack(_FRAME_SCALARS)
    n_samples, temperature_c = reader.unpack(_FRAME_SIZES)
    data = reader.array('<i2', 2)
    return FrameView(header, seq, array_id, emitter, receivers, chirp_kind, f0_hz, f1_hz,
                     duration_s, chirp_window, sample_rate_hz, n_channels, n_samples,
                     temperature_c, data)


def frame_view(data: bytes) -> 'FrameView | EchoFrame':
    """An ``EchoFrame`` from its serialized bytes (rclpy's message where they are not
    little-endian CDR).

    :raises ValueError: as :func:`features_view`.
    """
    return _read(data, EchoFrame, _frame)


def _imu(reader: _Reader) -> ImuOrientationView:
    header = reader.header()
    reader.align(8)
    orientation = reader.array('<f8', 8, 13)
    x, y, z, w = orientation[:4].tolist()
    return ImuOrientationView(header, QuaternionView(x, y, z, w), orientation[4:])


def imu_view(data: bytes) -> 'ImuOrientationView | Imu':
    """An ``Imu``'s header and orientation from its serialized bytes (rclpy's message where
    they are not little-endian CDR).

    :raises ValueError: as :func:`features_view`.
    """
    return _read(data, Imu, _imu)


class _Writer:
    """Serialized bytes written in order, aligned as CDR aligns, counted after the header."""

    __slots__ = ('chunks', 'pos')

    def __init__(self) -> None:
        self.chunks = [CDR_LE + b'\x00\x00']
        self.pos = 0

    def add(self, data: bytes) -> None:
        self.chunks.append(data)
        self.pos += len(data)

    def pack(self, layout: struct.Struct, *values, alignment: int = 4) -> None:
        padding = -self.pos % alignment
        if padding:
            self.add(b'\x00' * padding)
        self.add(layout.pack(*values))

    def string(self, text: str) -> None:
        data = text.encode() + b'\x00'
        self.pack(_U32, len(data))
        self.add(data)

    def float32s(self, values: np.ndarray) -> None:
        self.pack(_U32, len(values))
        self.add(np.asarray(values, dtype='<f4').tobytes())

    def joined(self) -> bytes:
        return b''.join(self.chunks)


def features_bytes(msg: FeaturesView) -> bytes:
    """An ``EchoFeatures`` serialized (little-endian CDR) from its fields: the bytes rclpy's
    ``serialize_message`` gives for the message of the same fields, but for the padding (rclpy
    leaves what was in its buffer there)."""
    writer = _Writer()
    writer.pack(_STAMP, msg.header.stamp.sec, msg.header.stamp.nanosec)
    writer.string(msg.header.frame_id)
    writer.pack(_U32, msg.seq)
    writer.string(msg.array_id)
    writer.pack(_U16, msg.n_channels, alignment=2)
    writer.pack(_FEATURES_SCALARS, msg.n_bins, msg.bin_width_s, msg.start_s, msg.carrier_hz)
    for name in FEATURE_ARRAYS:
        writer.float32s(getattr(msg, name))
    writer.pack(_F32, msg.processing_time_s)
    return writer.joined()


def pose_bytes(position_m, orientation_xyzw, covariance_6x6: np.ndarray, stamp: Time,
               frame_id: str) -> bytes:
    """A ``geometry_msgs/PoseWithCovarianceStamped`` serialized (little-endian CDR), the bytes
    rclpy's ``serialize_message`` gives for the same values.

    :param position_m: x, y, z.
    :param orientation_xyzw: the orientation quaternion.
    :param covariance_6x6: the pose's covariance ``(6, 6)``, row-major.
    """
    frame = frame_id.encode() + b'\x00'
    head = _STAMP_AND_LENGTH.pack(stamp.sec, stamp.nanosec, len(frame)) + frame
    padding = b'\x00' * (-len(head) % 8)
    return b''.join((CDR_LE, b'\x00\x00', head, padding,
                     _POSE.pack(*position_m, *orientation_xyzw),
                     np.ascontiguousarray(covariance_6x6, dtype='<f8').tobytes()))
