"""MCAP in rosbag2 layout: writing (losing at most about a second on a kill), repair, reading.

A recording is a directory, as ``ros2 bag record -s mcap`` makes it: ``metadata.yaml`` plus
``<name>_0.mcap`` (profile ``ros2``, ``ros2msg`` schemas read from the installed ``.msg`` files,
CDR messages). ``rosbags.rosbag2.Reader``, ``ros2 bag`` and the MCAP tools open it as it is.

Crash safety. Messages are written as they arrive, uncompressed (echo frames are noise-like int16
and do not compress), into a chunk held in memory; every ``flush_period_s`` (1 s) the chunk is
closed and written to the file in one ``pwrite`` together with a provisional end of file (a
``DataEnd`` and a ``Footer`` with no summary, which MCAP allows: readers then scan the data
section), and ``metadata.yaml`` is replaced atomically with the counts written so far. The next
write overwrites that provisional end. So after every flush the directory is a complete, valid
recording, and a clean stop (Ctrl-C, end of ``duration_s``) adds the summary section (chunk
indexes, statistics) that makes reading it fast.

What a ``kill -9`` loses: the messages received since the last flush (at most ``flush_period_s``)
and those still queued in DDS. If the kill lands inside the flush's ``pwrite`` itself (a
millisecond or so per second; Linux may stop a multi-page write between pages) the file's end is
torn and ``repair_bag`` cuts it back to the last complete chunk. A power loss or kernel crash
also loses what the kernel had not yet written back, unless ``fsync=True``.
"""
import importlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from mcap.data_stream import RecordBuilder
from mcap.records import DataEnd, Footer
from mcap.writer import CompressionType, Writer as McapWriter
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.errors import ReaderError

from echoloc_ros.core.stamps import StampBuffer, paired

MCAP_MAGIC = b'\x89MCAP0\r\n'
ROSBAG2_VERSION = 9
_MSG_DELIMITER = '=' * 80 + '\n'
_PRIMITIVES = {'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16',
               'int32', 'uint32', 'int64', 'uint64', 'string', 'wstring'}


@dataclass(frozen=True)
class TopicSpec:
    """A topic to record.

    :param topic: absolute topic name.
    :param msgtype: ``package/msg/Type``.
    :param best_effort: subscribe best effort (sensor data: it matches both reliable and
        best-effort publishers); otherwise reliable, so nothing a reliable publisher sends is lost.
    """

    topic: str
    msgtype: str
    best_effort: bool = False


DEFAULT_TOPICS = (
    TopicSpec('/echoloc/echoes', 'echoloc/msg/EchoFrame', best_effort=True),
    TopicSpec('/echoloc/features', 'echoloc/msg/EchoFeatures'),
    TopicSpec('/echoloc/pose', 'geometry_msgs/msg/PoseWithCovarianceStamped'),
    TopicSpec('/echoloc/ground_truth', 'geometry_msgs/msg/PoseStamped'),
    TopicSpec('/imu/data', 'sensor_msgs/msg/Imu', best_effort=True),
    TopicSpec('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray'),
)
_SENSOR_TYPES = {'echoloc/msg/EchoFrame', 'sensor_msgs/msg/Imu'}


def topic_spec(value: 'TopicSpec | tuple[str, str] | str') -> TopicSpec:
    """A TopicSpec from a TopicSpec, a ``(topic, type)`` pair or ``'topic:type'``.

    Pairs and strings of sensor types (EchoFrame, Imu) are recorded best effort.
    """
    if isinstance(value, TopicSpec):
        return value
    if isinstance(value, str):
        topic, sep, msgtype = value.partition(':')
        if not sep:
            raise ValueError(f'topic {value!r}: expected TOPIC:package/msg/Type')
        value = (topic, msgtype)
    topic, msgtype = value
    if not topic.startswith('/') or msgtype.count('/') != 2:
        raise ValueError(f'topic {topic!r} of type {msgtype!r}: expected an absolute topic '
                         'and a package/msg/Type')
    return TopicSpec(topic, msgtype, best_effort=msgtype in _SENSOR_TYPES)


def message_class(msgtype: str) -> type:
    """The rclpy message class of ``package/msg/Type``."""
    package, kind, name = msgtype.split('/')
    try:
        return getattr(importlib.import_module(f'{package}.{kind}'), name)
    except (ImportError, AttributeError):
        raise ValueError(f'message type {msgtype!r} is not importable; is its package built '
                         'and on PYTHONPATH?') from None


def _share_file(msgtype: str, suffix: str) -> Path | None:
    package, kind, name = msgtype.split('/')
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        path = Path(prefix, 'share', package, kind, name + suffix)
        if prefix and path.is_file():
            return path
    return None


def _field_types(text: str, package: str) -> list[str]:
    """The non-primitive field types (``package/msg/Type``) a ``.msg`` text refers to."""
    types = []
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        # Constants are always primitive, so the type alone decides.
        base = re.split(r'[\[<]', line.split()[0], maxsplit=1)[0]
        if base in _PRIMITIVES:
            continue
        parts = base.split('/')
        if len(parts) == 1:
            types.append(f'{package}/msg/{base}')
        elif len(parts) == 2:
            types.append(f'{parts[0]}/msg/{parts[1]}')
        else:
            types.append(base)
    return types


def message_definition(msgtype: str) -> str:
    """The ``ros2msg`` definition of a type with its dependencies, as rosbag2 writes it.

    Read from the installed ``share/<package>/msg/<Type>.msg`` files on ``AMENT_PREFIX_PATH``.

    :raises ValueError: when a ``.msg`` file is not installed.
    """
    texts: dict[str, str] = {}
    pending = [msgtype]
    while pending:
        current = pending.pop(0)
        if current in texts:
            continue
        path = _share_file(current, '.msg')
        if path is None:
            raise ValueError(f'no .msg file for {current!r} under AMENT_PREFIX_PATH '
                             f'{os.environ.get("AMENT_PREFIX_PATH", "")!r}')
        texts[current] = path.read_text()
        pending += _field_types(texts[current], current.split('/')[0])
    definition = texts.pop(msgtype).rstrip('\n')
    for name, text in texts.items():
        package, _, type_name = name.split('/')
        definition += f'\n{_MSG_DELIMITER}MSG: {package}/{type_name}\n{text.rstrip()}'
    return definition + '\n'


def type_hash(msgtype: str) -> str:
    """The type's ``RIHS01_...`` hash from its installed type description, '' if absent."""
    path = _share_file(msgtype, '.json')
    if path is None:
        return ''
    for entry in json.loads(path.read_text()).get('type_hashes', []):
        if entry.get('type_name') == msgtype:
            return entry['hash_string']
    return ''


def qos_dict(profile) -> dict:
    """An rclpy QoSProfile in rosbag2's metadata form (version 9)."""
    def duration(d) -> dict:
        sec, nsec = divmod(d.nanoseconds, 1_000_000_000)
        return {'sec': sec, 'nsec': nsec}
    return {'history': profile.history.name.lower(), 'depth': profile.depth,
            'reliability': profile.reliability.name.lower(),
            'durability': profile.durability.name.lower(),
            'deadline': duration(profile.deadline), 'lifespan': duration(profile.lifespan),
            'liveliness': profile.liveliness.name.lower(),
            'liveliness_lease_duration': duration(profile.liveliness_lease_duration),
            'avoid_ros_namespace_conventions': bool(profile.avoid_ros_namespace_conventions)}


class _CommittingFile:
    """The stream mcap's Writer writes to: bytes reach the file only on ``commit``.

    Each commit writes the pending bytes and a provisional end of file in one ``pwrite`` at the
    end of the committed data, so the file on disk always ends in a valid MCAP footer.
    """

    def __init__(self, path: Path, fsync: bool):
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._fsync = fsync
        self._committed = 0
        self._pending = bytearray()

    def write(self, data) -> int:
        self._pending += data
        return len(data)

    def tell(self) -> int:
        return self._committed + len(self._pending)

    def flush(self) -> None:
        # mcap's Writer.flush() calls this once its chunk is written; commit there.
        self.commit(_provisional_end())

    def commit(self, tail: bytes = b'') -> None:
        data = memoryview(bytes(self._pending) + tail)
        offset = self._committed
        while data:
            written = os.pwrite(self._fd, data, offset)
            data, offset = data[written:], offset + written
        self._committed += len(self._pending)
        self._pending.clear()
        if self._fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        """Write what is pending (the summary and the real footer) and cut off the rest."""
        self.commit()
        os.ftruncate(self._fd, self._committed)
        os.close(self._fd)


def _provisional_end() -> bytes:
    builder = RecordBuilder()
    DataEnd(data_section_crc=0).write(builder)
    Footer(summary_start=0, summary_offset_start=0, summary_crc=0).write(builder)
    return builder.end() + MCAP_MAGIC


@dataclass
class _Channel:
    topic: str
    msgtype: str
    channel_id: int
    qos: list
    count: int = 0


class BagWriter:
    """A rosbag2 directory with one MCAP file, valid on disk after every ``flush()``.

    :param path: the directory to create (must not exist); the file is ``<name>_0.mcap``.
    :param fsync: fsync after every flush (survives power loss; costs disk latency).
    :raises FileExistsError: when ``path`` exists.
    """

    def __init__(self, path: Path, fsync: bool = False):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=False)
        self.mcap_path = self.path / f'{self.path.name}_0.mcap'
        self._stream = _CommittingFile(self.mcap_path, fsync)
        self._writer = McapWriter(self._stream, chunk_size=4 * 2**20,
                                  compression=CompressionType.NONE)
        self._writer.start(profile='ros2', library='echoloc')
        self._schemas: dict[str, int] = {}
        self.channels: dict[str, _Channel] = {}
        self.start_ns: int | None = None
        self.end_ns = 0
        self._closed = False
        self.flush()

    def add_topic(self, topic: str, msgtype: str, offered_qos: Sequence[dict] = ()) -> None:
        """Register a topic; ``offered_qos`` are its publishers' QoS in rosbag2's form."""
        if topic in self.channels:
            raise ValueError(f'topic {topic!r} is already in {self.path}')
        if msgtype not in self._schemas:
            self._schemas[msgtype] = self._writer.register_schema(
                msgtype, 'ros2msg', message_definition(msgtype).encode())
        qos = list(offered_qos)
        channel_id = self._writer.register_channel(
            topic, 'cdr', self._schemas[msgtype],
            {'offered_qos_profiles': yaml.safe_dump(qos, sort_keys=False) if qos else '',
             'topic_type_hash': type_hash(msgtype)})
        self.channels[topic] = _Channel(topic, msgtype, channel_id, qos)

    def write(self, topic: str, log_time_ns: int, data: bytes) -> None:
        """Append one serialized (CDR) message; log times must not decrease."""
        channel = self.channels[topic]
        self._writer.add_message(channel.channel_id, log_time=log_time_ns, data=data,
                                 publish_time=log_time_ns, sequence=channel.count)
        channel.count += 1
        if self.start_ns is None:
            self.start_ns = log_time_ns
        self.end_ns = log_time_ns

    @property
    def message_count(self) -> int:
        return sum(c.count for c in self.channels.values())

    def flush(self) -> None:
        """Put everything written so far on disk as a valid recording."""
        self._writer.flush()
        self._write_metadata()

    def close(self) -> None:
        """Finish the file with its summary (indexes, statistics) and the final metadata."""
        if self._closed:
            return
        self._closed = True
        self._writer.finish()
        self._stream.close()
        self._write_metadata()

    def _write_metadata(self) -> None:
        start = self.start_ns or 0
        duration = self.end_ns - start if self.start_ns is not None else 0
        count = self.message_count
        info = {
            'version': ROSBAG2_VERSION,
            'storage_identifier': 'mcap',
            'duration': {'nanoseconds': duration},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': count,
            'topics_with_message_count': [
                {'topic_metadata': {'name': c.topic, 'type': c.msgtype,
                                    'serialization_format': 'cdr',
                                    'offered_qos_profiles': c.qos,
                                    'type_description_hash': type_hash(c.msgtype)},
                 'message_count': c.count}
                for c in self.channels.values()],
            'compression_format': '',
            'compression_mode': '',
            'relative_file_paths': [self.mcap_path.name],
            'files': [{'path': self.mcap_path.name,
                       'starting_time': {'nanoseconds_since_epoch': start},
                       'duration': {'nanoseconds': duration}, 'message_count': count}],
            'custom_data': {},
            'ros_distro': os.environ.get('ROS_DISTRO', 'kilted'),
        }
        tmp = self.path / 'metadata.yaml.tmp'
        tmp.write_text(yaml.safe_dump({'rosbag2_bagfile_information': info}, sort_keys=False))
        os.replace(tmp, self.path / 'metadata.yaml')


def repair_bag(path: Path) -> int:
    """Cut a torn MCAP file back to its last complete record and end it validly.

    Only needed when a kill or a power loss hit the middle of a flush; a file that already ends
    in a valid footer is left alone.

    :param path: a recording directory or its ``.mcap`` file.
    :return: the bytes of torn data cut off (0 when the file was intact).
    """
    path = Path(path)
    mcap_path = next(path.glob('*.mcap')) if path.is_dir() else path
    data = mcap_path.read_bytes()
    if not data.startswith(MCAP_MAGIC):
        raise ValueError(f'{mcap_path} is not an MCAP file')
    if len(data) >= 37 and data.endswith(MCAP_MAGIC) and data[-37] == 0x02:
        return 0
    end = offset = len(MCAP_MAGIC)
    while offset + 9 <= len(data):
        opcode = data[offset]
        length = int.from_bytes(data[offset + 1:offset + 9], 'little')
        if opcode in (0x02, 0x0F) or offset + 9 + length > len(data):
            break  # the data section ends (DataEnd, Footer) or this record is torn
        offset += 9 + length
        end = offset
    with open(mcap_path, 'r+b') as f:
        f.seek(end)
        f.write(_provisional_end())
        f.truncate()
    return len(data) - end


def read_bag(path: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """Every message of a recording in log-time order: ``(topic, msgtype, log_time_ns, cdr)``.

    :raises ValueError: ``path`` is not a readable recording (named, with the reason).
    """
    try:
        reader = Reader(Path(path))
        reader.open()
    except (FileNotFoundError, ReaderError) as err:
        raise ValueError(f'{path} is not a readable recording (metadata.yaml and its MCAP '
                         f'file, as echoloc record writes them): {err}') from None
    try:
        for connection, log_time_ns, rawdata in reader.messages():
            yield connection.topic, connection.msgtype, log_time_ns, bytes(rawdata)
    finally:
        reader.close()


def deserialize(msgtype: str, rawdata: bytes):
    """A recorded message as its rclpy message object."""
    return deserialize_message(rawdata, message_class(msgtype))


def read_messages(path: Path) -> Iterator[tuple[str, int, object]]:
    """Every message of a recording, deserialized: ``(topic, log_time_ns, message)``."""
    for topic, msgtype, log_time_ns, rawdata in read_bag(path):
        yield topic, log_time_ns, deserialize(msgtype, rawdata)


def recorded_tilts(path: Path, topic: str) -> StampBuffer:
    """The array's roll and pitch (rad) from a recording's sensor_msgs/Imu orientations on
    ``topic``, by header stamp (s), as the localizer takes them
    (:func:`~echoloc_ros.ros.conversions.quaternion_to_roll_pitch`).

    :raises ValueError: ``topic`` is of another type, or holds a message the localizer would
        refuse (a non-finite or non-unit quaternion, no orientation), naming it and why.
    """
    from echoloc_ros.ros import conversions
    from echoloc_ros.ros.imu_heading import heading_refusal
    tilts = StampBuffer(horizon_s=float('inf'))
    for name, msgtype, _, rawdata in read_bag(path):
        if name != topic:
            continue
        if msgtype != 'sensor_msgs/msg/Imu':
            raise ValueError(f'topic {topic!r} in {path} is of type {msgtype!r}, expected '
                             'sensor_msgs/msg/Imu')
        msg = deserialize(msgtype, rawdata)
        refusal = heading_refusal(msg, None)
        if refusal is not None:
            raise ValueError(f'the Imu message on {topic!r} stamped '
                             f'{conversions.stamp_to_s(msg.header.stamp):.6f} s has a '
                             f'{refusal[0]} ({refusal[1]}): no tilt can be read from it')
        tilts.add(conversions.stamp_to_s(msg.header.stamp),
                  conversions.quaternion_to_roll_pitch(msg.orientation))
    return tilts


def posed_frames(path: Path, features_topic: str = '/echoloc/features',
                 pose_topic: str = '/echoloc/pose', every: int = 1,
                 max_pose_std_m: float = 0.02, max_yaw_std_deg: float = 0.5,
                 tilts: StampBuffer | None = None,
                 tilt_tolerance_s: float = 0.2) -> tuple[list, dict[str, int]]:
    """The recorded echo features paired with the pose published for them (the localizer
    copies a frame's stamp onto its pose): what :class:`FurnitureSurvey` reads.

    :param every: keep every ``every``-th pair.
    :param max_pose_std_m: drop pairs whose position standard deviation exceeds this on any
        axis (fixes the localizer was unsure of).
    :param max_yaw_std_deg: drop pairs whose heading standard deviation exceeds this (the
        localizer publishes the heading given, an IMU's, when the tracker refused its fix).
    :param tilts: the array's ``(roll, pitch)`` by stamp (:func:`recorded_tilts`): each frame
        then carries the one stamped nearest it after its yaw; a frame with none within
        ``tilt_tolerance_s`` (s) is dropped (its tilt is not known) and counted ``no_tilt``.
    :return: ``[(EchoFeatures, position_m (3,), yaw_rad[, (roll, pitch)]), ...]`` and counts:
        ``features``, ``poses``, ``paired``, ``uncertain`` (dropped for their covariances),
        ``bad`` (features that failed validation), with ``tilts``: ``no_tilt``; ``used``.
    :raises ValueError: ``every`` below 1.
    """
    from echoloc_ros.ros import conversions
    if every < 1:
        raise ValueError(f'every must be >= 1, got {every}')
    features, poses = {}, {}
    counts = {'features': 0, 'poses': 0, 'paired': 0, 'uncertain': 0, 'bad': 0, 'used': 0}
    for topic, _, msg in read_messages(path):
        if topic not in (features_topic, pose_topic):
            continue
        stamp = conversions.stamp_key(msg.header.stamp)
        if topic == features_topic:
            counts['features'] += 1
            features[stamp] = msg
        else:
            counts['poses'] += 1
            poses[stamp] = msg
    frames = []
    if tilts is not None:
        counts['no_tilt'] = 0
    for stamp, features_msg, pose in paired(features, poses):
        counts['paired'] += 1
        if (counts['paired'] - 1) % every:
            continue
        tilt = () if tilts is None else (tilts.at(stamp[0] + 1e-9 * stamp[1],
                                                  tilt_tolerance_s),)
        if tilt == (None,):
            counts['no_tilt'] += 1
            continue
        position, covariance = conversions.pose_position_covariance(pose)
        yaw_var = float(pose.pose.covariance[35])
        if not (np.all(np.diag(covariance) <= max_pose_std_m ** 2)
                and yaw_var <= np.deg2rad(max_yaw_std_deg) ** 2):
            counts['uncertain'] += 1
            continue
        try:
            frame = conversions.features_from_msg(features_msg)
        except ValueError:
            counts['bad'] += 1
            continue
        yaw = conversions.quaternion_to_yaw(pose.pose.pose.orientation)
        frames.append((frame, position, yaw, *tilt))
    counts['used'] = len(frames)
    return frames, counts
