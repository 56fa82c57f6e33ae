"""The only module that knows both numpy/core types and ROS messages."""
import array

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseStamped, PoseWithCovarianceStamped, Quaternion
from sensor_msgs.msg import Imu, Range

from echoloc.msg import EchoFeatures as EchoFeaturesMsg
from echoloc.msg import EchoFrame
from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoFeatures
from echoloc_ros.ros import cdr

# EchoFeatures fields with one value per channel, named alike in the message and the core.
PER_CHANNEL_FIELDS = ('tof_s', 'tof_cfd_s', 'snr_db', 'noise_floor', 'direct_tof_s',
                      'direct_amplitude')
# The largest frame taken, per channel: 0.26 s at 250 kHz, echoes from 45 m away (the
# default room's window is 40 ms); beyond this a frame is refused, not processed (one 10 MB
# frame grew the processor by 125 MB).
MAX_SAMPLES_PER_CHANNEL = 65536
MAX_SAMPLE_RATE_HZ = 10e6
# The most receivers a frame or its features may carry (the shipped arrays have 4).
MAX_CHANNELS = 64


def _float32_array(values: np.ndarray) -> array.array:
    # Assigning an ndarray to a message field copies element by element (~1 ms per 16k
    # values); array.array from raw bytes is ~100x faster.
    out = array.array('f')
    out.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return out


def stamp_to_s(stamp: Time) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def stamp_key(stamp: Time) -> tuple[int, int]:
    """An exact, hashable key of a stamp, to pair messages by (:mod:`echoloc_ros.core.stamps`)."""
    return stamp.sec, stamp.nanosec


def yaw_to_quaternion(yaw_rad: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=float(np.sin(yaw_rad / 2)), w=float(np.cos(yaw_rad / 2)))


def quaternion_to_yaw(q: Quaternion) -> float:
    return float(np.arctan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z)))


def quaternion_to_roll_pitch(q: Quaternion) -> tuple[float, float]:
    """Roll and pitch (rad) of an orientation, z-y-x Euler angles (what
    :func:`~echoloc_ros.core.array_geometry.tilt_matrix` takes)."""
    sin_pitch = 2.0 * (q.w * q.y - q.z * q.x)
    return (float(np.arctan2(2.0 * (q.w * q.x + q.y * q.z), 1.0 - 2.0 * (q.x * q.x + q.y * q.y))),
            float(np.arcsin(np.clip(sin_pitch, -1.0, 1.0))))


def echo_frame_msg(samples: np.ndarray, stamp: Time, frame_id: str, seq: int,
                   array_geometry: ArrayGeometry, chirp: Chirp, fs_hz: float,
                   temperature_c: float = float('nan')) -> EchoFrame:
    """Build an EchoFrame from int16 samples ``(n_channels, n_samples)``."""
    n_channels, n_samples = samples.shape
    msg = EchoFrame()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.seq = seq & 0xFFFFFFFF
    msg.array_id = array_geometry.name
    msg.emitter_position = Point(x=float(array_geometry.emitter_m[0]),
                                 y=float(array_geometry.emitter_m[1]),
                                 z=float(array_geometry.emitter_m[2]))
    msg.receiver_positions = [Point(x=float(r[0]), y=float(r[1]), z=float(r[2]))
                              for r in array_geometry.receivers_m]
    msg.chirp_kind = chirp.kind
    msg.chirp_f0_hz = float(chirp.f0_hz)
    msg.chirp_f1_hz = float(chirp.f1_hz)
    msg.chirp_duration_s = float(chirp.duration_s)
    msg.chirp_window = chirp.window
    msg.sample_rate_hz = float(fs_hz)
    msg.n_channels = n_channels
    msg.n_samples = n_samples
    msg.temperature_c = float(temperature_c)
    data = array.array('h')
    data.frombytes(np.ascontiguousarray(samples, dtype='<i2').tobytes())
    msg.data = data
    return msg


def echo_frame_samples(msg: EchoFrame) -> np.ndarray:
    """The samples of an EchoFrame as int16 ``(n_channels, n_samples)``, validated.

    :raises ValueError: naming the field when the frame is inconsistent.
    """
    if msg.n_channels == 0 or msg.n_samples == 0:
        raise ValueError(f'empty frame: n_channels={msg.n_channels}, n_samples={msg.n_samples}')
    if msg.n_samples > MAX_SAMPLES_PER_CHANNEL:
        raise ValueError(f'frame seq={msg.seq}: n_samples={msg.n_samples}, more than the '
                         f'{MAX_SAMPLES_PER_CHANNEL} per channel taken')
    expected = msg.n_channels * msg.n_samples
    if len(msg.data) != expected:
        raise ValueError(
            f'truncated frame seq={msg.seq}: {len(msg.data)} samples, expected '
            f'n_channels*n_samples = {msg.n_channels}*{msg.n_samples} = {expected}')
    if len(msg.receiver_positions) not in (0, msg.n_channels):
        raise ValueError(f'frame seq={msg.seq} has {len(msg.receiver_positions)} receiver '
                         f'positions for n_channels={msg.n_channels}')
    if not 0 < msg.sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise ValueError(f'frame seq={msg.seq}: sample_rate_hz={msg.sample_rate_hz}, '
                         f'expected a positive rate up to {MAX_SAMPLE_RATE_HZ:g}')
    return np.frombuffer(msg.data, dtype=np.int16).reshape(msg.n_channels, msg.n_samples)


def echo_frame_chirp(msg: EchoFrame) -> Chirp:
    """The chirp an EchoFrame says was sent."""
    return Chirp(kind=msg.chirp_kind, f0_hz=float(msg.chirp_f0_hz),
                 f1_hz=float(msg.chirp_f1_hz), duration_s=float(msg.chirp_duration_s),
                 window=msg.chirp_window)


def features_msg(features: EchoFeatures, frame: EchoFrame,
                 processing_time_s: float) -> EchoFeaturesMsg:
    """Build EchoFeatures for ``frame``, copying its header (acquisition stamp)."""
    n_channels, n_bins = features.baseband.shape
    msg = EchoFeaturesMsg()
    msg.header = frame.header
    msg.seq = frame.seq
    msg.array_id = frame.array_id
    msg.n_channels = n_channels
    msg.n_bins = n_bins
    msg.bin_width_s = float(features.bin_width_s)
    msg.start_s = float(features.start_s)
    msg.carrier_hz = float(features.carrier_hz)
    # The envelope is |baseband|: left empty, the reader computes it, and the 39 KB a frame
    # it would take (a third of the message) are not serialized, carried and copied for each
    # subscriber.
    msg.baseband_real = _float32_array(features.baseband.real)
    msg.baseband_imag = _float32_array(features.baseband.imag)
    for name in PER_CHANNEL_FIELDS:
        setattr(msg, name, _float32_array(getattr(features, name)))
    msg.processing_time_s = float(processing_time_s)
    return msg


def _float32s(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32).ravel()


def features_view(features: EchoFeatures, frame: 'EchoFrame | cdr.FrameView',
                  processing_time_s: float) -> cdr.FeaturesView:
    """:func:`features_msg`'s fields without the message: what the localizer in the same
    process reads (the same values, its scalars not yet rounded to single precision), and
    what :func:`~echoloc_ros.ros.cdr.features_bytes` serializes where it is published."""
    n_channels, n_bins = features.baseband.shape
    return cdr.FeaturesView(
        frame.header, frame.seq, frame.array_id, n_channels, n_bins,
        float(features.bin_width_s), float(features.start_s), float(features.carrier_hz),
        np.empty(0, dtype=np.float32), _float32s(features.baseband.real),
        _float32s(features.baseband.imag),
        *(_float32s(getattr(features, name)) for name in PER_CHANNEL_FIELDS),
        float(processing_time_s))


def _check_features(seq: int, n_channels: int, n_bins: int, scalars) -> None:
    """The features' shape and scalars within what the localizer takes.

    :param scalars: ``bin_width_s``, ``start_s``, ``carrier_hz``.
    :raises ValueError: naming the field and what was expected.
    """
    if not (0 < n_channels <= MAX_CHANNELS and 0 < n_bins <= MAX_SAMPLES_PER_CHANNEL):
        raise ValueError(f'features seq={seq}: n_channels={n_channels}, '
                         f'n_bins={n_bins}; expected 1 to {MAX_CHANNELS} channels of 1 to '
                         f'{MAX_SAMPLES_PER_CHANNEL} bins')
    for name, value, low, high in zip(('bin_width_s', 'start_s', 'carrier_hz'), scalars,
                                      (1e-8, 0.0, 1.0), (1e-2, 1.0, 1e6)):
        if not low <= value <= high:
            raise ValueError(f'features seq={seq}: {name}={value}, expected '
                             f'[{low:g}, {high:g}]')


def features_from_msg(msg: 'EchoFeaturesMsg | cdr.FeaturesView') -> EchoFeatures:
    """The core EchoFeatures of a message (or of its fields read from its bytes), validated.

    :raises ValueError: naming the field when lengths disagree with n_channels * n_bins.
    """
    shape = (msg.n_channels, msg.n_bins)
    size = shape[0] * shape[1]
    _check_features(msg.seq, msg.n_channels, msg.n_bins,
                    (msg.bin_width_s, msg.start_s, msg.carrier_hz))
    for name in ('envelope', 'baseband_real', 'baseband_imag'):
        if len(getattr(msg, name)) != size and not (name == 'envelope'
                                                    and not len(msg.envelope)):
            raise ValueError(f'features seq={msg.seq}: {name} has {len(getattr(msg, name))} '
                             f'values, expected n_channels*n_bins = {size}'
                             + (' or none' if name == 'envelope' else ''))
    for name in PER_CHANNEL_FIELDS:
        if len(getattr(msg, name)) != msg.n_channels:
            raise ValueError(f'features seq={msg.seq}: {name} has {len(getattr(msg, name))} '
                             f'values, expected n_channels = {msg.n_channels}')
    baseband = np.empty(shape, dtype=np.complex64)
    baseband.real = np.frombuffer(msg.baseband_real, dtype=np.float32).reshape(shape)
    baseband.imag = np.frombuffer(msg.baseband_imag, dtype=np.float32).reshape(shape)
    if not np.all(np.isfinite(np.ascontiguousarray(baseband).view(np.float32))):
        raise ValueError(f'features seq={msg.seq}: baseband holds NaN or inf')
    # Recordings made before the envelope was left out carry it.
    envelope = (np.frombuffer(msg.envelope, dtype=np.float32).reshape(shape)
                if len(msg.envelope) else np.abs(baseband))
    return EchoFeatures(
        baseband=baseband, envelope=envelope,
        bin_width_s=float(msg.bin_width_s), start_s=float(msg.start_s),
        carrier_hz=float(msg.carrier_hz),
        **{name: np.frombuffer(getattr(msg, name), dtype=np.float32).astype(np.float64)
           for name in PER_CHANNEL_FIELDS})


def features_handed(features: EchoFeatures, seq: int) -> EchoFeatures:
    """The echo processor's ``features`` as the localizer in the same process reads them: what
    :func:`features_from_msg` makes of :func:`features_view`'s fields, to the bit (the
    per-channel values rounded to single precision as the message carries them, the scalars
    as the view holds them), validated alike, without the single-precision copies made and
    read back (nodes/echo_localizer.py).

    :param seq: the frame's, for the errors.
    :raises ValueError: as :func:`features_from_msg`.
    """
    baseband = features.baseband
    if baseband.dtype != np.complex64 or baseband.ndim != 2:
        raise ValueError(f'features seq={seq}: baseband is {baseband.dtype} '
                         f'{baseband.shape}, expected complex64 (n_channels, n_bins)')
    scalars = (float(features.bin_width_s), float(features.start_s),
               float(features.carrier_hz))
    _check_features(seq, *baseband.shape, scalars)
    for name in PER_CHANNEL_FIELDS:
        if getattr(features, name).shape != baseband.shape[:1]:
            raise ValueError(f'features seq={seq}: {name} has shape '
                             f'{getattr(features, name).shape}, expected (n_channels,) = '
                             f'({baseband.shape[0]},)')
    # Read as its real and imaginary parts (a value is finite where both are): the same
    # answer as the complex isfinite, at half its cost (a contiguous baseband is not copied).
    if not np.all(np.isfinite(np.ascontiguousarray(baseband).view(np.float32))):
        raise ValueError(f'features seq={seq}: baseband holds NaN or inf')
    # The processor's envelope is np.abs of this same baseband (EchoProcessor.process), as
    # features_from_msg computes it from the message's.
    return EchoFeatures(
        baseband=baseband, envelope=features.envelope, bin_width_s=scalars[0],
        start_s=scalars[1], carrier_hz=scalars[2],
        **{name: getattr(features, name).astype(np.float32).astype(np.float64)
           for name in PER_CHANNEL_FIELDS})


def _pose_covariance(covariance_m2: np.ndarray, yaw_variance_rad2: float) -> np.ndarray:
    """The 6x6 covariance of a pose, row-major over (x, y, z, roll, pitch, yaw); roll and
    pitch are not observed, so their variance is large rather than zero (REP-145 style for
    unknowns)."""
    cov = np.zeros((6, 6))
    cov[:3, :3] = covariance_m2
    cov[3, 3] = cov[4, 4] = 1e6
    cov[5, 5] = yaw_variance_rad2
    return cov


def pose_msg(position_m: np.ndarray, covariance_m2: np.ndarray, yaw_rad: float,
             yaw_variance_rad2: float, stamp: Time, frame_id: str) -> PoseWithCovarianceStamped:
    """A PoseWithCovarianceStamped; orientation is the fused heading (roll, pitch unknown),
    the covariance as :func:`_pose_covariance`."""
    msg = PoseWithCovarianceStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.pose.pose.position = Point(x=float(position_m[0]), y=float(position_m[1]),
                                   z=float(position_m[2]))
    msg.pose.pose.orientation = yaw_to_quaternion(yaw_rad)
    msg.pose.covariance = _pose_covariance(covariance_m2, yaw_variance_rad2).ravel().tolist()
    return msg


def pose_bytes(position_m: np.ndarray, covariance_m2: np.ndarray, yaw_rad: float,
               yaw_variance_rad2: float, stamp: Time, frame_id: str) -> bytes:
    """:func:`pose_msg`'s message serialized, without building it (published as it is)."""
    quaternion = yaw_to_quaternion(yaw_rad)
    return cdr.pose_bytes(
        (float(position_m[0]), float(position_m[1]), float(position_m[2])),
        (quaternion.x, quaternion.y, quaternion.z, quaternion.w),
        _pose_covariance(covariance_m2, yaw_variance_rad2), stamp, frame_id)


def pose_position_covariance(msg: PoseWithCovarianceStamped) -> tuple[np.ndarray, np.ndarray]:
    """Position (3,) and its 3x3 covariance from a PoseWithCovarianceStamped."""
    p = msg.pose.pose.position
    cov = np.asarray(msg.pose.covariance, dtype=float).reshape(6, 6)[:3, :3]
    return np.array([p.x, p.y, p.z]), cov


def pose_stamped_msg(position_m: np.ndarray, yaw_rad: float, stamp: Time,
                     frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.pose.position = Point(x=float(position_m[0]), y=float(position_m[1]),
                              z=float(position_m[2]))
    msg.pose.orientation = yaw_to_quaternion(yaw_rad)
    return msg


def imu_msg(yaw_rad: float, yaw_variance_rad2: float, stamp: Time, frame_id: str) -> Imu:
    """An Imu carrying only orientation (heading); rates and accelerations marked unknown."""
    msg = Imu()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.orientation = yaw_to_quaternion(yaw_rad)
    msg.orientation_covariance = [1e6, 0.0, 0.0, 0.0, 1e6, 0.0, 0.0, 0.0, yaw_variance_rad2]
    # sensor_msgs/Imu: element 0 = -1 means "not provided".
    msg.angular_velocity_covariance[0] = -1.0
    msg.linear_acceleration_covariance[0] = -1.0
    return msg


def range_msgs(features: EchoFeatures, header, speed_of_sound_mps: float,
               window_s: float) -> list[Range]:
    """One sensor_msgs/Range per receiver: the first echo after the direct path, as a range.

    Range is half the round trip; a channel with no echo reports +inf (REP-117: nothing
    detected within range). The field of view is the transducers' -6 dB beam (~60 degrees).
    """
    out = []
    for tof_s in features.tof_s:
        msg = Range()
        msg.header = header
        msg.radiation_type = Range.ULTRASOUND
        msg.field_of_view = float(np.deg2rad(60.0))
        msg.min_range = float(speed_of_sound_mps * features.start_s / 2)
        msg.max_range = float(speed_of_sound_mps * window_s / 2)
        msg.range = float(speed_of_sound_mps * tof_s / 2) if np.isfinite(tof_s) else float('inf')
        out.append(msg)
    return out
