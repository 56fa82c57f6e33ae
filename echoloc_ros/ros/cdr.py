"""The hot topics' messages read from, and the pose written to, their serialized form.

Taking a message as rclpy's Python message costs the node's main thread about 0.13 ms more
than taking its serialized bytes, whatever its size (``scripts/executor-take-cpu.py``): the
conversion builds a Python object for every field. The echo processor reads a frame's few
fields and its samples, the localizer a feature message's arrays and an IMU message's
orientation: read from the bytes by rosbags' typestore (its primitive arrays ``numpy`` views
of the bytes), they cost a few microseconds. Publishing a pose or the features as bytes
likewise skips building rclpy's message.

The typestore is rosbags' for ROS 2 Kilted, the distro the project installs, with echoloc's
own messages registered from their installed ``.msg`` files; it is built on first use (a
driver that only publishes frames never loads rosbags), by the nodes at start-up
(:func:`typestore`). It reads plain CDR (XCDR1) of either byte order, the form every ROS 2
middleware writes for these types; another encapsulation goes through rclpy's own
``deserialize_message``. What is read is what rclpy would give, field for field
(``test/test_cdr.py`` checks it against rclpy on every type, with strings of every length
modulo the alignment).
"""
import functools
import os
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Imu
from std_msgs.msg import Header

from echoloc.msg import EchoFeatures, EchoFrame

# The encapsulations of plain CDR, big- and little-endian (rosbags reads both).
PLAIN_CDR = (b'\x00\x00', b'\x00\x01')
# echoloc's messages that the typestore learns from their .msg files.
ECHOLOC_MESSAGES = ('EchoFeatures', 'EchoFrame')
# The package's own msg/, where it is run from its source tree without an install.
SOURCE_MSG_DIR = Path(__file__).resolve().parents[2] / 'msg'


class Unreadable(ValueError):
    """Serialized bytes that are not one message of the type they were read as."""


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
    """A ``sensor_msgs/Imu`` read from its bytes as far as the localizer uses it: ``header``,
    ``orientation`` (x, y, z, w) and ``orientation_covariance`` (9 float64, row-major)."""

    header: Header
    orientation: QuaternionView
    orientation_covariance: np.ndarray


def _msg_file(name: str) -> Path:
    """``echoloc/msg/<name>.msg``: installed (on ``AMENT_PREFIX_PATH``), else the source's."""
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        path = Path(prefix, 'share', 'echoloc', 'msg', f'{name}.msg')
        if prefix and path.is_file():
            return path
    path = SOURCE_MSG_DIR / f'{name}.msg'
    if not path.is_file():
        raise FileNotFoundError(f'echoloc/msg/{name}.msg: neither under AMENT_PREFIX_PATH '
                                f'{os.environ.get("AMENT_PREFIX_PATH", "")!r} nor in {path}')
    return path


@functools.cache
def typestore():
    """The rosbags typestore of ROS 2 Kilted's messages and echoloc's (built once, about 0.1 s:
    the nodes build it at start-up rather than at their first message)."""
    from rosbags.typesys import get_typestore, get_types_from_msg, Stores

    store = get_typestore(Stores.ROS2_KILTED)
    for name in ECHOLOC_MESSAGES:
        store.register(get_types_from_msg(_msg_file(name).read_text(), f'echoloc/msg/{name}'))
    return store


def _read(data: bytes, msg_type, typename: str):
    """The rosbags message of ``typename`` read from ``data`` where they are plain CDR, else
    rclpy's ``msg_type``.

    :raises Unreadable: naming the type, where neither reads the bytes as one message.
    """
    what = msg_type.__name__
    if bytes(data[:2]) not in PLAIN_CDR:
        try:
            return deserialize_message(data, msg_type)
        except RuntimeError as exc:  # rclpy's: the middleware could not read them either
            raise Unreadable(f'serialized {what} of {len(data)} bytes unreadable ({exc}); '
                             f'expected a {typename} in CDR') from None
    from rosbags.serde import SerdeError

    try:
        # A memoryview: rosbags slices off the encapsulation, which would copy bytes.
        return typestore().deserialize_cdr(memoryview(data), typename)
    except SerdeError as exc:
        raise Unreadable(f'serialized {what} of {len(data)} bytes unreadable ({exc}); '
                         f'expected a {typename} in CDR') from None


def _header(header) -> Header:
    """The rclpy Header of a header read by rosbags (the nodes put it in rclpy's messages)."""
    return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec),
                  frame_id=header.frame_id)


def features_view(data: bytes) -> 'FeaturesView | EchoFeatures':
    """An ``EchoFeatures`` from its serialized bytes (rclpy's message where they are not
    plain CDR).

    :raises Unreadable: (a ``ValueError``) the bytes are not one such message: they end
        before it does, or hold a string that is not UTF-8 or a length past their end.
    """
    msg = _read(data, EchoFeatures, 'echoloc/msg/EchoFeatures')
    if isinstance(msg, EchoFeatures):
        return msg
    return FeaturesView(_header(msg.header), msg.seq, msg.array_id, msg.n_channels, msg.n_bins,
                        msg.bin_width_s, msg.start_s, msg.carrier_hz, msg.envelope,
                        msg.baseband_real, msg.baseband_imag, msg.tof_s, msg.tof_cfd_s,
                        msg.snr_db, msg.noise_floor, msg.direct_tof_s, msg.direct_amplitude,
                        msg.processing_time_s)


def frame_view(data: bytes) -> 'FrameView | EchoFrame':
    """An ``EchoFrame`` from its serialized bytes (rclpy's message where they are not plain
    CDR).

    :raises Unreadable: as :func:`features_view`.
    """
    msg = _read(data, EchoFrame, 'echoloc/msg/EchoFrame')
    if isinstance(msg, EchoFrame):
        return msg
    emitter = msg.emitter_position
    receivers = np.array([(p.x, p.y, p.z) for p in msg.receiver_positions],
                         dtype=np.float64).reshape(-1, 3)
    return FrameView(_header(msg.header), msg.seq, msg.array_id,
                     np.array((emitter.x, emitter.y, emitter.z)), receivers, msg.chirp_kind,
                     msg.chirp_f0_hz, msg.chirp_f1_hz, msg.chirp_duration_s, msg.chirp_window,
                     msg.sample_rate_hz, msg.n_channels, msg.n_samples, msg.temperature_c,
                     msg.data)


def imu_view(data: bytes) -> 'ImuOrientationView | Imu':
    """An ``Imu``'s header and orientation from its serialized bytes (rclpy's message where
    they are not plain CDR).

    :raises Unreadable: as :func:`features_view`.
    """
    msg = _read(data, Imu, 'sensor_msgs/msg/Imu')
    if isinstance(msg, Imu):
        return msg
    q = msg.orientation
    return ImuOrientationView(_header(msg.header), QuaternionView(q.x, q.y, q.z, q.w),
                              msg.orientation_covariance)


def features_bytes(msg: FeaturesView) -> bytes:
    """An ``EchoFeatures`` serialized (plain CDR, this host's byte order) from its fields: the
    bytes rclpy's ``serialize_message`` gives for the message of the same fields, but for the
    padding (rclpy leaves what was in its buffer there).

    :raises ValueError: an array that is not float32 (rosbags writes an array's bytes as
        they lie, so an array not contiguous in memory is written from a contiguous copy).
    """
    strided = {}
    for name in FEATURE_ARRAYS:
        values = getattr(msg, name)
        if not (isinstance(values, np.ndarray) and values.dtype == np.float32
                and values.ndim == 1):
            raise ValueError(f'features seq={msg.seq}: {name} is {type(values).__name__} '
                             f'{getattr(values, "dtype", "")} {np.shape(values)}, expected a '
                             'float32 ndarray of one dimension')
        if not values.flags.c_contiguous:
            strided[name] = np.ascontiguousarray(values)
    if strided:
        msg = dataclasses.replace(msg, **strided)
    return bytes(typestore().serialize_cdr(msg, 'echoloc/msg/EchoFeatures'))


def pose_bytes(position_m, orientation_xyzw, covariance_6x6: np.ndarray, stamp: Time,
               frame_id: str) -> bytes:
    """A ``geometry_msgs/PoseWithCovarianceStamped`` serialized (plain CDR, this host's byte
    order), the bytes rclpy's ``serialize_message`` gives for the same values.

    :param position_m: x, y, z.
    :param orientation_xyzw: the orientation quaternion.
    :param covariance_6x6: the pose's covariance ``(6, 6)``, row-major.
    """
    store = typestore()
    types = store.types
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=stamp.sec, nanosec=stamp.nanosec),
        frame_id=frame_id)
    pose = types['geometry_msgs/msg/Pose'](
        position=types['geometry_msgs/msg/Point'](*position_m),
        orientation=types['geometry_msgs/msg/Quaternion'](*orientation_xyzw))
    covariance = np.ascontiguousarray(covariance_6x6, dtype=np.float64).reshape(36)
    msg = types['geometry_msgs/msg/PoseWithCovarianceStamped'](
        header=header, pose=types['geometry_msgs/msg/PoseWithCovariance'](pose, covariance))
    return bytes(store.serialize_cdr(msg, 'geometry_msgs/msg/PoseWithCovarianceStamped'))
