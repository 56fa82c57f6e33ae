"""BagRecorder in its own process over real DDS: every message lands in an MCAP rosbag2 that the
rosbags library opens as it is, after a clean stop and after a SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from ros_testing import wait_for

N = 20


def _start_recorder(out: Path, topics: list[str], env: dict) -> subprocess.Popen:
    args = [sys.executable, '-m', 'echoloc_ros.cli', 'record', str(out), '--flush-period', '0.3']
    for topic in topics:
        args += ['--topic', topic]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _flushed_count(out: Path) -> int:
    meta = out / 'metadata.yaml'
    if not meta.is_file():
        return 0
    return yaml.safe_load(meta.read_text())['rosbag2_bagfile_information']['message_count']


def _stop(process: subprocess.Popen, sig=signal.SIGINT) -> str:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        out, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out.decode(errors='replace')


def _summary_start(mcap_path: Path) -> int:
    """The footer's summary offset: 0 when the file has no summary (index) section."""
    footer = mcap_path.read_bytes()[-37:]
    assert footer[0] == 0x02 and footer[-8:] == b'\x89MCAP0\r\n'
    return int.from_bytes(footer[9:17], 'little')


def _messages(out: Path) -> dict[str, list]:
    from echoloc_ros.ros.bag import read_messages
    by_topic: dict[str, list] = {}
    for topic, log_time_ns, msg in read_messages(out):
        by_topic.setdefault(topic, []).append((log_time_ns, msg))
    return by_topic


def test_records_every_message_of_several_types(ros_env, recorder, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.qos import QoSProfile, qos_profile_sensor_data
    from rosbags.rosbag2 import Reader

    from echoloc.msg import EchoFrame

    out = tmp_path / 'run'
    process = _start_recorder(out, ['/rec/echoes:echoloc/msg/EchoFrame',
                                    '/rec/pose:geometry_msgs/msg/PoseWithCovarianceStamped',
                                    '/rec/diagnostics:diagnostic_msgs/msg/DiagnosticArray'],
                              ros_env)
    try:
        echoes = recorder.publisher(EchoFrame, '/rec/echoes', qos_profile_sensor_data)
        poses = recorder.publisher(PoseWithCovarianceStamped, '/rec/pose', QoSProfile(depth=50))
        diags = recorder.publisher(DiagnosticArray, '/rec/diagnostics', QoSProfile(depth=50))
        assert wait_for(lambda: all(p.get_subscription_count() for p in (echoes, poses, diags)),
                        15.0), _stop(process)
        # Our writers see the recorder before its readers see us; best-effort samples sent in
        # between are dropped, so let discovery finish on both sides.
        time.sleep(1.0)
        for i in range(N):
            frame = EchoFrame(seq=i, n_channels=2, n_samples=3, sample_rate_hz=250000.0)
            frame.header.stamp.sec, frame.header.stamp.nanosec = 100 + i, 7
            frame.data = [i, -i, 32767, -32768, 0, 3 * i]
            echoes.publish(frame)
            pose = PoseWithCovarianceStamped()
            pose.header.frame_id = 'map'
            pose.pose.pose.position.x = 0.1 * i
            pose.pose.covariance[0] = 1e-4 * (i + 1)
            poses.publish(pose)
            status = DiagnosticStatus(level=DiagnosticStatus.WARN, name=f'driver: Link {i}',
                                      hardware_id='sim:square_4sensor',
                                      values=[KeyValue(key='rate', value=str(i))])
            diags.publish(DiagnosticArray(status=[status]))
            time.sleep(0.01)
        assert wait_for(lambda: _flushed_count(out) == 3 * N, 10.0), _flushed_count(out)
        log = _stop(process)
        assert process.returncode == 0, log
    finally:
        _stop(process, signal.SIGKILL)

    assert json.loads(log.strip().splitlines()[-1])['messages'] == {
        '/rec/echoes': N, '/rec/pose': N, '/rec/diagnostics': N}
    assert sorted(p.name for p in out.iterdir()) == ['metadata.yaml', 'run_0.mcap']
    assert _summary_start(out / 'run_0.mcap') > 0  # a clean stop writes the index
    with Reader(out) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        qos = {c.topic: c.ext.offered_qos_profiles[0].reliability.name
               for c in reader.connections}
        assert reader.message_count == 3 * N
        assert sum(1 for _ in reader.messages()) == 3 * N
    assert counts == {'/rec/echoes': N, '/rec/pose': N, '/rec/diagnostics': N}
    assert qos == {'/rec/echoes': 'BEST_EFFORT', '/rec/pose': 'RELIABLE',
                   '/rec/diagnostics': 'RELIABLE'}

    by_topic = _messages(out)
    log_times = [t for msgs in by_topic.values() for t, _ in msgs]
    assert all(t > 0 for t in log_times)
    frames = [m for _, m in by_topic['/rec/echoes']]
    assert [f.seq for f in frames] == list(range(N))
    for i in (0, 7, N - 1):
        assert list(frames[i].data) == [i, -i, 32767, -32768, 0, 3 * i]
        assert (frames[i].header.stamp.sec, frames[i].header.stamp.nanosec) == (100 + i, 7)
        pose = by_topic['/rec/pose'][i][1]
        assert pose.pose.pose.position.x == 0.1 * i
        assert pose.pose.covariance[0] == 1e-4 * (i + 1)
        status = by_topic['/rec/diagnostics'][i][1].status[0]
        assert (status.name, status.level, status.values[0].value) == (
            f'driver: Link {i}', DiagnosticStatus.WARN, str(i))


def test_sigkill_keeps_what_was_flushed(ros_env, recorder, tmp_path):
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import QoSProfile
    from rosbags.rosbag2 import Reader

    from echoloc_ros.ros.bag import deserialize

    out = tmp_path / 'killed'
    process = _start_recorder(out, ['/kill/pose:geometry_msgs/msg/PoseStamped'], ros_env)
    publisher = recorder.publisher(PoseStamped, '/kill/pose', QoSProfile(depth=100))
    stop = threading.Event()

    def publish():
        i = 0
        while not stop.is_set():
            msg = PoseStamped()
            msg.pose.position.x = float(i)
            publisher.publish(msg)
            i += 1
            stop.wait(0.005)

    thread = threading.Thread(target=publish)
    try:
        assert wait_for(lambda: publisher.get_subscription_count() > 0, 15.0), _stop(process)
        thread.start()
        assert wait_for(lambda: _flushed_count(out) >= 100, 10.0)
        flushed = _flushed_count(out)
        process.kill()
        process.wait(5)
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        _stop(process, signal.SIGKILL)

    # No summary was written, yet the directory opens as it is.
    assert _summary_start(out / 'killed_0.mcap') == 0
    with Reader(out) as reader:
        xs = [deserialize(c.msgtype, raw).pose.position.x for c, _, raw in reader.messages()]
    assert len(xs) >= flushed
    # Reliable and in order: what survived is exactly the first messages published.
    assert xs == [float(i) for i in range(len(xs))]


def test_repair_cuts_a_torn_flush_back_to_the_last_complete_chunk(tmp_path):
    from geometry_msgs.msg import PoseStamped
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import Reader
    from rosbags.rosbag2.errors import ReaderError

    from echoloc_ros.ros.bag import BagWriter, read_bag, repair_bag

    bag = BagWriter(tmp_path / 'torn')
    bag.add_topic('/p', 'geometry_msgs/msg/PoseStamped')
    for i in range(10):
        msg = PoseStamped()
        msg.pose.position.x = float(i)
        bag.write('/p', 1000 + i, serialize_message(msg))
        if i == 5:
            bag.flush()
            first_size = bag.mcap_path.stat().st_size
    bag.flush()
    assert len(list(read_bag(bag.path))) == 10
    # A kill inside the second flush's write: only the start of its chunk made it to disk.
    with open(bag.mcap_path, 'r+b') as f:
        f.truncate((first_size + bag.mcap_path.stat().st_size) // 2)
    with pytest.raises(ReaderError):
        with Reader(bag.path):
            pass
    assert repair_bag(bag.path) > 0
    assert [t for _, _, t, _ in read_bag(bag.path)] == list(range(1000, 1006))
    assert repair_bag(bag.path) == 0


def _unwritable_dirs(tmp_path: Path) -> list[Path]:
    # sysfs refuses a new directory to root too; a read-only directory only to others.
    dirs = [Path('/sys/echoloc_recording')]
    if os.geteuid() != 0:
        locked = tmp_path / 'locked'
        locked.mkdir(mode=0o500)
        dirs.append(locked / 'bag')
    return dirs


def test_an_unwritable_directory_is_one_clear_error(ros_env, tmp_path):
    for out in _unwritable_dirs(tmp_path):
        result = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'record', str(out),
                                 '--duration', '1'], env=ros_env, capture_output=True,
                                text=True, timeout=60)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert f'echoloc record: cannot write {out}: ' in output, output
        assert 'Traceback' not in output, output
