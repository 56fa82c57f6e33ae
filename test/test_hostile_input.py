"""A hostile peer on the graph's domain: every known bad message, then a seeded fuzzer of
EchoFrame, Imu and /echoloc/room messages, sent to the running graph. Every node stays up,
poses keep coming, every refusal is named in the logs and counted in diagnostics, and no node
grows by more than 20 MB."""
import array
import copy
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import (DurabilityPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from sensor_msgs.msg import Imu
from std_msgs.msg import String

from echoloc.msg import EchoFeatures, EchoFrame
from echoloc_ros.ros import conversions
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator
from echoloc_ros.ros.process_graph import NodeProcesses
from ros_testing import wait_for

ROOM_TEXT = (Path(__file__).resolve().parents[1] / 'config' / 'rooms'
             / 'default_room.yaml').read_text()
ROOM_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
RSS_GROWTH_LIMIT_KB = 20 * 1024


def _rss_kb(pid: int) -> int:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    raise AssertionError(f'no VmRSS for {pid}')


def _room(**fields) -> str:
    data = yaml.safe_load(ROOM_TEXT)
    data.update(fields)
    return yaml.safe_dump(data)


def _alias_bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip('abcdefgh', 'bcdefghi'):
        lines.append(f'{name}: &{name} [' + ','.join([f'*{prev}'] * 9) + ']')
    return '\n'.join(lines) + '\nname: *i\n'


# Each hostile room and the reason the localizer must give for it.
HOSTILE_ROOMS = [
    (_room(furniture=5), 'furniture must be a list of boxes'),
    (_room(height_m=[2.8]), 'height_m must be a finite number'),
    (_alias_bomb(), 'more than 32 aliases'),
    (_room(furniture=[{'min_m': [0.1 * i, 0.1, 0.0], 'max_m': [0.1 * i + 0.05, 0.2, 0.5]}
                      for i in range(1000)]), 'more than the 65536 allowed'),
    (_room(furniture=[{'min_m': [0.05 * i, 0.1, 0.0], 'max_m': [0.05 * i + 0.04, 0.2, 0.5]}
                      for i in range(65)]), '65 furniture boxes, more than the 64 allowed'),
    ('[' * 3000, 'room'),
]


def _hostile_frames(good: EchoFrame) -> list[tuple[EchoFrame, str]]:
    """Each hostile frame and the reason the processor must give for it."""
    cases = []

    def variant(reason, **changes):
        msg = copy.deepcopy(good)
        for name, value in changes.items():
            setattr(msg, name, value)
        cases.append((msg, reason))

    variant('is not an array name', array_id='/proc/self/status')
    variant('is not an array name', array_id='../../etc/passwd')
    variant('chirp duration_s must be at most 0.1 s', chirp_duration_s=1e6)
    variant('chirp f0_hz must be positive and finite', chirp_f0_hz=float('nan'))
    variant('at most 1e+06 Hz', chirp_f1_hz=1e30)
    variant("unknown chirp window", chirp_window='kaiser')
    # The frame's fields are checked before its samples are touched, so these two need not
    # be megabytes long to be refused (the fuzzer sends consistent frames up to the limit;
    # best-effort DDS often loses a frame of megabytes before it arrives).
    variant("1000 channels, but array 'square_4sensor' has 4 receivers", n_channels=1000,
            n_samples=1, data=array.array('h', bytes(2 * 1000)), receiver_positions=[])
    variant('n_samples=1300000, more than the 65536 per channel taken', n_samples=1300000)
    return cases


def _fuzzed_frame(rng: np.random.Generator, good: EchoFrame, now) -> EchoFrame:
    msg = copy.deepcopy(good)
    msg.header.stamp = now
    numbers = [0.0, -1.0, float('nan'), float('inf'), 1e6, 1e-9, 3.4e38, 40000.0, 0.002]
    for _ in range(int(rng.integers(1, 4))):
        field = rng.choice(['array_id', 'chirp_kind', 'chirp_window', 'chirp_f0_hz',
                            'chirp_f1_hz', 'chirp_duration_s', 'sample_rate_hz', 'n_channels',
                            'n_samples', 'data', 'temperature_c', 'receiver_positions',
                            'size'])
        if field == 'array_id':
            msg.array_id = str(rng.choice(['square_4sensor', 'linear_4sensor', '/dev/zero',
                                           '', 'x' * 500, 'default_room', '.', '..']))
        elif field in ('chirp_kind', 'chirp_window'):
            setattr(msg, field, str(rng.choice(['lfm', 'hfm', 'barker', 'hann', 'kaiser',
                                                '', 'tukey', '\x00', 'gaussian'])))
        elif field in ('n_channels', 'n_samples'):
            limit = 65535 if field == 'n_channels' else 2 ** 32 - 1
            setattr(msg, field, int(rng.choice([0, 1, 3, 4, 5, 1000, limit])))
        elif field == 'data':
            msg.data = array.array('h', rng.integers(-32768, 32767, int(rng.integers(
                0, 50000)), dtype=np.int16).tobytes())
        elif field == 'size':
            # A consistent frame of another length, up to the largest taken.
            msg.n_samples = int(rng.choice([100, 1001, 5000, 9643, 50000, 65536]))
            msg.data = array.array('h', rng.integers(-32768, 32767, 4 * msg.n_samples,
                                                     dtype=np.int16).tobytes())
        elif field == 'receiver_positions':
            msg.receiver_positions = msg.receiver_positions[:int(rng.integers(0, 6))]
        else:
            setattr(msg, field, float(rng.choice(numbers)))
    return msg


def _hostile_features(good: EchoFeatures) -> list[EchoFeatures]:
    """Features a peer may publish in the processor's place, each one the localizer refuses."""
    cases = []
    for name, value in (('bin_width_s', 0.0), ('bin_width_s', float('nan')),
                        ('start_s', -1.0), ('carrier_hz', 1e30), ('n_channels', 1000),
                        ('n_bins', 0), ('array_id', '/proc/self/status'),
                        ('envelope', array.array('f', [1.0] * 10)),
                        ('tof_s', array.array('f', [1.0] * 3))):
        msg = copy.deepcopy(good)
        setattr(msg, name, value)
        cases.append(msg)
    nan = copy.deepcopy(good)
    nan.baseband_real = array.array('f', [float('nan')] * len(good.baseband_real))
    # One inf in the baseband (an IndexError deep in the search, had the message's conversion
    # let it through); an infinite direct delay (it did: an OverflowError ended the callback).
    inf = copy.deepcopy(good)
    inf.baseband_imag[len(good.baseband_imag) // 3] = float('inf')
    direct = copy.deepcopy(good)
    direct.direct_tof_s = array.array('f', [float('inf')] * good.n_channels)
    return cases + [nan, inf, direct]


def _fuzzed_features(rng: np.random.Generator, good: EchoFeatures, now) -> EchoFeatures:
    msg = copy.deepcopy(good)
    msg.header.stamp = now
    numbers = [0.0, -1.0, float('nan'), float('inf'), 1e30, 1e-30, 4e-6, 40000.0]
    for _ in range(int(rng.integers(1, 3))):
        name = str(rng.choice(['bin_width_s', 'start_s', 'carrier_hz', 'n_channels', 'n_bins',
                               'envelope', 'baseband_imag', 'snr_db', 'processing_time_s']))
        if name in ('n_channels', 'n_bins'):
            setattr(msg, name, int(rng.choice([0, 1, 3, 4, 5, 65535])))
        elif name in ('envelope', 'baseband_imag', 'snr_db'):
            values = getattr(msg, name)
            setattr(msg, name, array.array('f', rng.choice(numbers, int(rng.choice(
                [0, 4, len(values)]))).astype(np.float32).tobytes()))
        else:
            setattr(msg, name, float(rng.choice(numbers)))
    return msg


def _fuzzed_imu(rng: np.random.Generator, now) -> Imu:
    msg = Imu()
    # Stamped now: a far-future or far-past heading is the heading subscription's own
    # validation (another test); here the values are hostile.
    msg.header.stamp = now
    msg.header.frame_id = 'echoloc_array'
    values = [0.0, 1.0, -1.0, 0.5, float('nan'), float('inf'), 1e30, -1e-30]
    q = msg.orientation
    q.x, q.y, q.z, q.w = (float(v) for v in rng.choice(values, 4))
    msg.orientation_covariance = [float(v) for v in rng.choice(values, 9)]
    return msg


def _fuzzed_room(rng: np.random.Generator) -> str:
    data = yaml.safe_load(ROOM_TEXT)
    junk = [5, [2.8], 'x', None, {'a': 1}, -1.0, float('nan'), True, [[0, 0]] * 3, 1e308]
    kind = rng.integers(0, 3)
    if kind == 0:
        key = str(rng.choice(sorted(data) + ['furniture', 'extra']))
        data[key] = junk[int(rng.integers(0, len(junk)))]
        return yaml.safe_dump(data)
    if kind == 1:
        text = yaml.safe_dump(data)
        cut = int(rng.integers(0, len(text)))
        return text[:cut] + ''.join(map(chr, rng.integers(32, 127, 8))) + text[cut:]
    return rng.bytes(int(rng.integers(1, 2000))).decode('latin-1')


def _last_status(recorder, name: str):
    statuses = [s for _, m in recorder.get('/diagnostics') for s in m.status if s.name == name]
    return statuses[-1] if statuses else None


def _value(status, key: str) -> str | None:
    return next((kv.value for kv in status.values if kv.key == key), None) if status else None


def _run_hostile_graph(ros_env, recorder, tmp_path, fuzz_s: float) -> dict:
    sim = EchoSimulator(load_room('default_room'), load_array('square_4sensor'), Chirp(),
                        fs_hz=250e3)
    good = conversions.echo_frame_msg(
        sim.simulate(np.array([2.0, 1.5, 0.3]), 0.0, rng=np.random.default_rng(0)),
        recorder.node.get_clock().now().to_msg(), 'echoloc_array', 0,
        load_array('square_4sensor'), Chirp(), 250e3)
    recorder.subscribe(PoseWithCovarianceStamped, '/echoloc/pose',
                       QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    recorder.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=100))
    recorder.subscribe(EchoFeatures, '/echoloc/features', QoSProfile(depth=2))
    features_pub = recorder.publisher(EchoFeatures, '/echoloc/features', QoSProfile(depth=10))
    frame_pub = recorder.publisher(EchoFrame, '/echoloc/echoes', qos_profile_sensor_data)
    imu_pub = recorder.publisher(Imu, '/imu/data', qos_profile_sensor_data)
    room_pub = recorder.publisher(String, '/echoloc/room', ROOM_QOS)
    sent = {'hostile frames': 0, 'hostile rooms': 0, 'hostile features': 0, 'fuzzed frames': 0,
            'fuzzed imu': 0, 'fuzzed rooms': 0, 'fuzzed features': 0}
    # 10 frames a second: at 25 the localizer on a busy 2-core machine falls behind and its
    # queue sheds messages, hostile ones among them, and the counts below could not be exact.
    overrides = {'driver': {'rate_hz': 10.0}, 'localizer': {'publish_markers': False}}
    with NodeProcesses(env=ros_env, log_dir=tmp_path, overrides=overrides) as graph:
        assert wait_for(lambda: len(recorder.get('/echoloc/pose')) >= 25, timeout_s=90.0), \
            f'no poses; logs in {tmp_path}'
        pids = graph.pids()
        rss_start = {name: _rss_kb(pid) for name, pid in pids.items()}
        assert wait_for(lambda: recorder.get('/echoloc/features'), timeout_s=10.0)
        good_features = recorder.get('/echoloc/features')[-1][1]
        def refused() -> tuple[int, int]:
            values = _last_status(recorder, 'localizer: Localization')
            return (int(_value(values, 'frames failed') or 0),
                    int(_value(values, 'frames without heading') or 0))

        # The hostile features add to what the localizer had refused (a frame whose heading
        # is not there in time is counted apart: that is where a hostile one may go too).
        failed_before, no_heading_before = refused()
        def logged(name: str, reason: str) -> bool:
            return reason in (tmp_path / f'{name}.log').read_text()

        def send(pub, msg, counter: str) -> None:
            pub.publish(msg)
            sent[counter] += 1

        # Features a peer publishes in the processor's place (first: this process's DDS
        # participant sends them less reliably once it has sent the frames of megabytes).
        for msg in _hostile_features(good_features):
            # Stamped as the newest real frame, whose heading the localizer holds: it gets as
            # far as the features themselves.
            msg.header.stamp = recorder.get('/echoloc/features')[-1][1].header.stamp
            send(features_pub, msg, 'hostile features')
            time.sleep(0.3)
        # Each one that arrives is refused. The localizer's queue (depth 5, shared with the
        # processor's features) sheds the oldest when the node stalls on a loaded machine: in
        # about one run in seven one of the ten did not arrive, so two may be missing.
        assert wait_for(lambda: sum(refused()) >= failed_before + no_heading_before
                        + sent['hostile features'] - 2, timeout_s=10.0), refused()
        assert refused()[0] - failed_before >= sent['hostile features'] // 2, refused()
        # Every known hostile message until its refusal is logged: the sensor-data queue is
        # best effort, and a frame of megabytes may not arrive the first time.
        for msg, reason in _hostile_frames(good):
            assert wait_for(lambda: send(frame_pub, msg, 'hostile frames')
                            or logged('echo_processor', reason), timeout_s=20.0,
                            interval_s=0.5), reason
        for text, reason in HOSTILE_ROOMS:
            room_pub.publish(String(data=text))
            sent['hostile rooms'] += 1
            assert wait_for(lambda: logged('localizer', reason), timeout_s=10.0), reason
        # Then the fuzzer: about 20 messages a second, of the four kinds.
        rng = np.random.default_rng(21)
        end = time.monotonic() + fuzz_s
        while time.monotonic() < end:
            kind = rng.integers(0, 12)
            if kind >= 10:
                features_pub.publish(_fuzzed_features(
                    rng, good_features, recorder.node.get_clock().now().to_msg()))
                sent['fuzzed features'] += 1
            elif kind < 5:
                frame_pub.publish(_fuzzed_frame(rng, good,
                                                recorder.node.get_clock().now().to_msg()))
                sent['fuzzed frames'] += 1
            elif kind < 9:
                imu_pub.publish(_fuzzed_imu(rng, recorder.node.get_clock().now().to_msg()))
                sent['fuzzed imu'] += 1
            else:
                room_pub.publish(String(data=_fuzzed_room(rng)))
                sent['fuzzed rooms'] += 1
            time.sleep(0.05)
        assert not graph.exited(), f'a node died: {graph.exited()}; logs in {tmp_path}'
        # The graph still localizes: fresh poses.
        count = len(recorder.get('/echoloc/pose'))
        assert wait_for(lambda: len(recorder.get('/echoloc/pose')) >= count + 25,
                        timeout_s=60.0), f'poses stopped; logs in {tmp_path}'
        rss_end = {name: _rss_kb(pid) for name, pid in pids.items()}
        # Counted in diagnostics (the refusals of the last period and all of them).
        assert wait_for(lambda: int(_value(_last_status(recorder, 'echo_processor: Frames'),
                                           'frames rejected') or 0)
                        >= len(_hostile_frames(good)), timeout_s=10.0)
        assert wait_for(lambda: int(_value(_last_status(recorder, 'localizer: Localization'),
                                           'room updates refused') or 0)
                        >= sent['hostile rooms'], timeout_s=10.0)
        assert not graph.exited()
    logs = {name: (tmp_path / f'{name}.log').read_text() for name in pids}
    for name, log in logs.items():
        assert 'Traceback' not in log, f'{name}: {log[log.index("Traceback"):][:2000]}'
    growth = {name: rss_end[name] - rss_start[name] for name in pids}
    assert all(g <= RSS_GROWTH_LIMIT_KB for g in growth.values()), growth
    return {'sent': sent, 'rss_growth_kb': growth, 'rss_start_kb': rss_start,
            'processor_rejected': int(_value(_last_status(recorder, 'echo_processor: Frames'),
                                             'frames rejected')),
            'rooms_refused': int(_value(_last_status(recorder, 'localizer: Localization'),
                                        'room updates refused'))}


def test_hostile_peer_cannot_stop_the_graph(ros_env, recorder, tmp_path):
    report = _run_hostile_graph(ros_env, recorder, tmp_path, fuzz_s=6.0)
    print(report)


@pytest.mark.slow
def test_hostile_peer_for_a_minute(ros_env, recorder, tmp_path):
    report = _run_hostile_graph(ros_env, recorder, tmp_path, fuzz_s=60.0)
    print(report)
