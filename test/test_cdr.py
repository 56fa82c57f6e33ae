"""The hot topics' messages read from their serialized bytes (echoloc_ros.ros.cdr) are rclpy's,
field for field and bit for bit, and the pose written as bytes is rclpy's pose message."""
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import (Point, Pose, PoseWithCovariance, PoseWithCovarianceStamped,
                               Quaternion, Vector3)
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Imu
from std_msgs.msg import Header

from echoloc.msg import EchoFeatures, EchoFrame
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.room import load_room
from echoloc_ros.ros import cdr, conversions
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FEATURE_ARRAYS = ('envelope', 'baseband_real', 'baseband_imag',
                  *conversions.PER_CHANNEL_FIELDS)


def _same(ours, theirs, name: str) -> None:
    """A field read from the bytes is rclpy's: the same value, arrays the same bits."""
    if name == 'header':
        assert (ours.stamp.sec, ours.stamp.nanosec, ours.frame_id) == (
            theirs.stamp.sec, theirs.stamp.nanosec, theirs.frame_id)
    elif name == 'emitter_position':
        assert ours.tolist() == [theirs.x, theirs.y, theirs.z]
    elif name == 'receiver_positions':
        assert ours.shape == (len(theirs), 3)
        assert ours.tolist() == [[p.x, p.y, p.z] for p in theirs]
    elif isinstance(ours, np.ndarray):
        expected = np.asarray(theirs, dtype=ours.dtype)
        assert ours.tobytes() == expected.tobytes(), name
    elif isinstance(ours, float) and np.isnan(ours):
        assert np.isnan(theirs), name
    else:
        assert type(ours) is type(theirs) and ours == theirs, name


def _features(rng, length: int) -> EchoFeatures:
    """Features whose strings and arrays have lengths that move every later field off its
    alignment in turn."""
    msg = EchoFeatures(seq=int(rng.integers(0, 2**32)), array_id='a' * (3 * length % 7),
                       n_channels=length, n_bins=11 * length, bin_width_s=float(rng.normal()),
                       start_s=1e-3, carrier_hz=4e4, processing_time_s=float(rng.random()))
    msg.header.stamp = Time(sec=int(rng.integers(-5, 2**31)), nanosec=int(rng.integers(1e9)))
    msg.header.frame_id = 'f' * length
    for name in FEATURE_ARRAYS:
        setattr(msg, name, rng.normal(size=int(rng.integers(0, 9))).astype(np.float32))
    msg.tof_s = np.append(np.nan, rng.normal(size=length)).astype(np.float32)
    return msg


def _frame(rng, length: int) -> EchoFrame:
    msg = EchoFrame(seq=length, array_id='y' * (length % 5), chirp_kind='l' * (length % 3),
                    chirp_f0_hz=3.5e4, chirp_f1_hz=4.5e4, chirp_duration_s=2e-3,
                    chirp_window='w' * (length % 6), sample_rate_hz=25e4, n_channels=length,
                    n_samples=3 * length, temperature_c=float('nan') if length % 2 else 21.5)
    msg.header.frame_id = 'x' * length
    msg.emitter_position = Point(x=1.0, y=-2.0, z=float(rng.normal()))
    msg.receiver_positions = [Point(x=float(i), y=2.0 * i, z=float(rng.normal()))
                              for i in range(length % 4)]
    msg.data = rng.integers(-2**15, 2**15, size=3 * length).astype(np.int16)
    return msg


@pytest.mark.parametrize('length', range(9))
def test_each_message_read_from_its_bytes_is_rclpys(length):
    rng = np.random.default_rng(length)
    for build, read, msg_type in ((_features, cdr.features_view, EchoFeatures),
                                  (_frame, cdr.frame_view, EchoFrame)):
        data = serialize_message(build(rng, length))
        theirs, ours = deserialize_message(data, msg_type), read(data)
        assert not isinstance(ours, msg_type)  # read here, not by rclpy
        for name in msg_type.get_fields_and_field_types():
            _same(getattr(ours, name), getattr(theirs, name), name)
    imu = Imu()
    imu.header.frame_id = 'i' * length
    imu.orientation.z, imu.orientation.w = 0.1 * length, 0.9
    imu.orientation_covariance = rng.normal(size=9)
    imu.angular_velocity_covariance[0] = -1.0
    data = serialize_message(imu)
    theirs, ours = deserialize_message(data, Imu), cdr.imu_view(data)
    _same(ours.header, theirs.header, 'header')
    assert [getattr(ours.orientation, axis) for axis in 'xyzw'] == [
        getattr(theirs.orientation, axis) for axis in 'xyzw']
    _same(ours.orientation_covariance, theirs.orientation_covariance, 'covariance')


def test_the_localizer_reads_the_processors_features_bit_for_bit():
    array_geometry, chirp = load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(load_room('default_room'), array_geometry, chirp)
    samples = simulator.simulate([2.0, 1.5, 0.3], 0.4, Scenario(snr_db=10.0),
                                 np.random.default_rng(5))
    processor = EchoProcessor(chirp, 250e3, array=array_geometry)
    data = serialize_message(conversions.echo_frame_msg(
        samples, Time(sec=9, nanosec=40), 'echoloc_array', 11, array_geometry, chirp, 250e3))
    frame = cdr.frame_view(data)
    expected = processor.process(samples)
    features = processor.process(conversions.echo_frame_samples(frame))
    wire = serialize_message(conversions.features_msg(features, frame, 0.002))
    ours = conversions.features_from_msg(cdr.features_view(wire))
    theirs = conversions.features_from_msg(deserialize_message(wire, EchoFeatures))
    for name in ('baseband', 'envelope', *conversions.PER_CHANNEL_FIELDS):
        assert getattr(ours, name).tobytes() == getattr(theirs, name).tobytes(), name
    assert ours.baseband.tobytes() == expected.baseband.tobytes()
    assert (ours.bin_width_s, ours.start_s, ours.carrier_hz) == (
        theirs.bin_width_s, theirs.start_s, theirs.carrier_hz)


@pytest.mark.parametrize('read, build', [(cdr.features_view, _features),
                                         (cdr.frame_view, _frame)])
def test_bytes_that_end_before_the_message_are_refused_by_name(read, build):
    data = serialize_message(build(np.random.default_rng(0), 5))
    for cut in (3, len(data) // 2, len(data) - 1):
        # Down to the encapsulation's first byte: rosbags' refusal, rclpy's for that last.
        with pytest.raises(ValueError, match=rf'serialized Echo\w+ of {len(data) - cut} bytes '
                                             'unreadable'):
            read(data[:-cut])
    with pytest.raises(ValueError, match='serialized Imu of 20 bytes unreadable'):
        cdr.imu_view(serialize_message(Imu())[:20])


def test_big_endian_bytes_are_read_as_the_little_endian_ones():
    # A big-endian peer's bytes: the hand-written reader left them to rclpy.
    little = serialize_message(_features(np.random.default_rng(1), 4))
    view = cdr.features_view(little)
    big = bytes(cdr.typestore().serialize_cdr(view, 'echoloc/msg/EchoFeatures',
                                              little_endian=False))
    assert big[:2] == b'\x00\x00' and big != little
    theirs, ours = deserialize_message(big, EchoFeatures), cdr.features_view(big)
    assert not isinstance(ours, EchoFeatures)
    for name in EchoFeatures.get_fields_and_field_types():
        _same(getattr(ours, name), getattr(theirs, name), name)
        _same(getattr(ours, name), getattr(view, name), name)


def test_a_big_endian_peers_frame_is_the_little_endian_one():
    """A big-endian peer's frame reads as the same frame as the little-endian one; more bytes
    after the samples than padding are refused in either byte order."""
    for length in (3, 4):
        little = serialize_message(_frame(np.random.default_rng(length), length))
        store = cdr.typestore()
        big = bytes(store.serialize_cdr(store.deserialize_cdr(little, 'echoloc/msg/EchoFrame'),
                                        'echoloc/msg/EchoFrame', little_endian=False))
        assert big[:2] == b'\x00\x00'
        theirs = deserialize_message(little, EchoFrame)
        for ours in (cdr.frame_view(little), cdr.frame_view(big)):
            assert isinstance(ours, cdr.FrameView)
            for name in EchoFrame.get_fields_and_field_types():
                _same(getattr(ours, name), getattr(theirs, name), name)
        for data in (little, big):
            assert cdr.frame_view(data + bytes(3)).seq == length
            with pytest.raises(ValueError, match=f'serialized EchoFrame of {len(data) + 4} '
                                                 'bytes unreadable'):
                cdr.frame_view(data + bytes(4))


def test_bytes_of_another_encapsulation_go_to_rclpy():
    data = serialize_message(_features(np.random.default_rng(1), 4))
    # Parameter-list CDR (PL_CDR_LE): not plain CDR, which rosbags alone reads; rclpy reads
    # these bytes as the plain ones.
    other = b'\x00\x03' + data[2:]
    ours = cdr.features_view(other)
    assert isinstance(ours, EchoFeatures)
    theirs = deserialize_message(data, EchoFeatures)
    for name in EchoFeatures.get_fields_and_field_types():  # tof_s holds a NaN: field by field
        _same(np.asarray(getattr(ours, name)) if name != 'header' else ours.header,
              getattr(theirs, name), name)


def test_garbage_is_refused_naming_the_type_and_what_was_expected():
    data = bytearray(serialize_message(_features(np.random.default_rng(2), 3)))
    data[24:28] = (2**31).to_bytes(4, 'little')  # the array_id's length, past the end
    with pytest.raises(ValueError, match=r'serialized EchoFeatures of \d+ bytes unreadable '
                                         r'\(.+\); expected a echoloc/msg/EchoFeatures in CDR'):
        cdr.features_view(bytes(data))
    data = bytearray(serialize_message(_frame(np.random.default_rng(2), 3)))
    data[28:30] = b'\xff\xfe'  # in array_id 'yyy': not UTF-8
    with pytest.raises(ValueError, match='serialized EchoFrame .* unreadable'):
        cdr.frame_view(bytes(data))


@pytest.mark.parametrize('msg_type', [Header, Time, Point, Quaternion, Pose, PoseWithCovariance,
                                      PoseWithCovarianceStamped, Imu, Vector3])
def test_the_typestores_standard_messages_are_the_installed_ones(msg_type):
    """The typestore's definitions (rosbags' ROS 2 Kilted store) have the fields, in the same
    order, of the messages rclpy has installed."""
    module = msg_type.__module__.split('.')[0]
    typename = f'{module}/msg/{msg_type.__name__}'
    ours = cdr.typestore().fielddefs[typename][1]
    theirs = msg_type.get_fields_and_field_types()
    assert [name for name, _ in ours] == list(theirs)


def test_echolocs_messages_are_found_installed_or_in_the_source(monkeypatch, tmp_path):
    installed = cdr._msg_file('EchoFrame')
    assert installed.read_text() == (cdr.SOURCE_MSG_DIR / 'EchoFrame.msg').read_text()
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    assert cdr._msg_file('EchoFeatures') == cdr.SOURCE_MSG_DIR / 'EchoFeatures.msg'
    monkeypatch.setattr(cdr, 'SOURCE_MSG_DIR', tmp_path)
    with pytest.raises(FileNotFoundError, match='echoloc/msg/EchoFrame.msg'):
        cdr._msg_file('EchoFrame')


@pytest.mark.parametrize('frame_id', ['', 'm', 'map', 'mapp', 'odom_frame'])
def test_the_pose_written_as_bytes_is_rclpys_pose_message(frame_id):
    rng = np.random.default_rng(len(frame_id))
    root = rng.normal(size=(3, 3))
    args = (rng.normal(size=3), 1e-4 * root @ root.T, float(rng.normal()), 1e-3,
            Time(sec=12, nanosec=345), frame_id)
    data = conversions.pose_bytes(*args)
    expected = conversions.pose_msg(*args)
    assert deserialize_message(data, PoseWithCovarianceStamped) == expected
    # rclpy's bytes, bit for bit, but for the padding before the pose (8-byte aligned after
    # the frame_id), which rclpy leaves as it found it in its buffer and rosbags zeroes.
    theirs = bytearray(serialize_message(expected))
    padding = slice(4 + 12 + len(frame_id) + 1, 4 + 8 * -(-(12 + len(frame_id) + 1) // 8))
    theirs[padding] = bytes(padding.stop - padding.start)
    assert data == bytes(theirs)


def test_the_features_written_as_bytes_are_rclpys_features_message():
    array_geometry, chirp = load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(load_room('furnished_room'), array_geometry, chirp)
    samples = simulator.simulate([1.0, 1.2, 0.5], -0.7, Scenario(snr_db=20.0),
                                 np.random.default_rng(6))
    features = EchoProcessor(chirp, 250e3, array=array_geometry).process(samples)
    for frame_id, array_id in (('', ''), ('echoloc_array', 'square_4sensor'), ('abc', 'ab')):
        frame = EchoFrame(seq=2**32 - 1, array_id=array_id)
        frame.header.stamp, frame.header.frame_id = Time(sec=-3, nanosec=999_999_999), frame_id
        data = cdr.features_bytes(conversions.features_view(features, frame, 0.0125))
        expected = conversions.features_msg(features, frame, 0.0125)
        assert len(data) == len(serialize_message(expected))
        theirs = deserialize_message(data, EchoFeatures)
        assert theirs == deserialize_message(serialize_message(expected), EchoFeatures)
        ours = cdr.features_view(data)
        for name in EchoFeatures.get_fields_and_field_types():
            _same(getattr(ours, name), getattr(theirs, name), name)


@pytest.mark.parametrize('length', range(9))
def test_the_features_bytes_are_rosbags_at_every_alignment(length):
    """features_bytes gives rosbags' bytes for the same fields, bit for bit, with strings of
    every length modulo the alignment; an array not contiguous in memory is written as its
    values lie in order (rosbags alone refuses it)."""
    view = cdr.features_view(serialize_message(_features(np.random.default_rng(length),
                                                         length)))
    view.n_channels = 7 * length
    theirs = bytes(cdr.typestore().serialize_cdr(view, 'echoloc/msg/EchoFeatures'))
    assert cdr.features_bytes(view) == theirs
    view.tof_s = view.tof_s[::-1]  # not contiguous: written as its values lie in order
    assert cdr.features_view(cdr.features_bytes(view)).tof_s.tobytes() == view.tof_s.tobytes()


def test_the_features_handed_over_in_one_process_are_the_message_the_processor_built():
    """Before they went as bytes, the processor handed the localizer in its process the
    message it built (its scalars not rounded to single precision): the view holds the same."""
    array_geometry, chirp = load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(load_room('default_room'), array_geometry, chirp)
    samples = simulator.simulate([2.5, 1.0, 0.4], 1.1, Scenario(snr_db=10.0),
                                 np.random.default_rng(7))
    features = EchoProcessor(chirp, 250e3, array=array_geometry).process(samples)
    frame = EchoFrame(seq=3, array_id='square_4sensor')
    frame.header.stamp, frame.header.frame_id = Time(sec=4, nanosec=5), 'echoloc_array'
    view = conversions.features_view(features, frame, 0.0031)
    msg = conversions.features_msg(features, frame, 0.0031)
    for name in EchoFeatures.get_fields_and_field_types():
        _same(getattr(view, name), getattr(msg, name), name)
    assert (view.bin_width_s, view.start_s, view.carrier_hz) == (
        features.bin_width_s, features.start_s, features.carrier_hz)
