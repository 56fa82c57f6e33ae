"""The localizer takes the air's temperature from a sensor_msgs/Temperature topic: over real
DDS, the diagnostic reports the reading it uses (source, value, std with its floor, age), a
NaN or an absurd reading is refused with its value named while the poses go on, and a topic
gone quiet falls back to the parameter with a WARN."""
import time

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Temperature

from ros_testing import TopicRecorder, wait_for
from echoloc_ros.ros.diagnostics import level_of
from echoloc_ros.ros.graph import GRAPH
from echoloc_ros.ros.process_graph import NodeProcesses

TOPIC = '/air/temperature'
# Long enough that a loaded machine's refusals are seen before the good reading goes stale.
STALE_S = 8.0


@pytest.fixture(scope='module')
def graph(ros_env, tmp_path_factory):
    """Driver (simulated array), processor and localizer reading ``TOPIC``."""
    import rclpy
    log_dir = tmp_path_factory.mktemp('temperature')
    rec = TopicRecorder(rclpy)
    rec.subscribe(PoseWithCovarianceStamped, '/echoloc/pose',
                  QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE))
    rec.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=500))
    air = rec.publisher(Temperature, TOPIC, qos_profile_sensor_data)
    specs = tuple(s for s in GRAPH if s.name in ('driver', 'echo_processor', 'localizer'))
    with NodeProcesses(specs, env=ros_env, log_dir=log_dir, overrides={'localizer': {
            'temperature_topic': TOPIC, 'temperature_stale_s': STALE_S}}) as nodes:
        yield rec, air, nodes, log_dir
    rec.close()


def _reading(temperature_c: float, variance_c2: float) -> Temperature:
    msg = Temperature()
    now = time.time()
    msg.header.stamp = Time(sec=int(now), nanosec=int(now % 1 * 1e9))
    msg.temperature, msg.variance = temperature_c, variance_c2
    return msg


def _status(rec, t0: float):
    """The latest Localization status received after ``t0`` (its fields as a dict)."""
    found = [s for t, m in rec.get('/diagnostics') if t > t0 for s in m.status
             if s.name == 'localizer: Localization']
    return (found[-1], {v.key: v.value for v in found[-1].values}) if found else (None, {})


def _publishing_until(rec, air, msg, t0: float, condition, timeout_s: float = 20.0):
    """Publish ``msg`` at 5 Hz until the latest status after ``t0`` meets ``condition``."""
    def check():
        air.publish(msg)
        time.sleep(0.15)
        status, values = _status(rec, t0)
        return status is not None and condition(status, values)
    return wait_for(check, timeout_s=timeout_s)


def test_the_reading_is_used_and_a_bad_one_refused_by_value(graph):
    rec, air, nodes, log_dir = graph
    assert wait_for(lambda: len(rec.get('/echoloc/pose')) >= 5, timeout_s=120.0), (
        f'no poses; logs in {log_dir}')
    # Nothing on the topic yet: the parameter, with a WARN that names the topic.
    # The updater's first status says only 'Node starting up': wait for the node's own report
    # (with the graph now up within a few seconds, 5 poses can come before it).
    assert wait_for(lambda: 'temperature source' in _status(rec, 0.0)[1], timeout_s=10.0)
    status, values = _status(rec, 0.0)
    assert values['temperature source'] == f'parameter (stale topic): {TOPIC}'
    assert values['temperature (C)'] == '20.00'
    assert level_of(status) >= 1 and f'temperature on {TOPIC} stale' in status.message
    # A reading: used (23.5 degC), its variance 0.0025 degC^2 floored at 0.1 degC.
    t0 = time.time()
    assert _publishing_until(rec, air, _reading(23.5, 0.0025), t0, lambda s, v: v.get(
        'temperature source') == f'topic: {TOPIC}'), _status(rec, t0)
    _, values = _status(rec, t0)
    assert values['temperature (C)'] == '23.50'
    assert values['temperature std (C)'] == '0.10'
    assert float(values['temperature age (s)']) < STALE_S
    # NaN and 80 degC: refused, named, counted; the last good reading stays in use and the
    # poses go on.
    for bad, named in ((float('nan'), 'nan'), (80.0, '80.0')):
        air.publish(_reading(23.5, 0.0025))
        t1 = time.time()
        assert _publishing_until(rec, air, _reading(bad, 0.01), t1, lambda s, v: named in v.get(
            'last temperature refused', '')), _status(rec, t1)
        _, values = _status(rec, t1)
        assert values['temperature (C)'] == '23.50'
        assert f'temperature reading {named} degC is not air a room holds' in values[
            'last temperature refused']
    assert int(values['temperatures refused']) >= 2
    poses_before = len(rec.get('/echoloc/pose'))
    assert wait_for(lambda: len(rec.get('/echoloc/pose')) > poses_before + 5, timeout_s=10.0)
    assert not nodes.exited()
    log = (log_dir / 'localizer.log').read_text()
    assert 'temperature refused: temperature reading nan degC' in log
    # Quiet for longer than temperature_stale_s: the parameter again, with a WARN.
    t2 = time.time() + STALE_S
    assert wait_for(lambda: _status(rec, t2)[1].get('temperature source', '').startswith(
        'parameter (stale topic)'), timeout_s=STALE_S + 20.0), _status(rec, t2)
    status, values = _status(rec, t2)
    assert values['temperature (C)'] == '20.00' and level_of(status) >= 1
    assert f'temperature on {TOPIC} stale (last reading' in (log_dir / 'localizer.log'
                                                             ).read_text()
