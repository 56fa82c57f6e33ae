"""MetricsExporter over real DDS and real HTTP: Prometheus gauges and the /health verdict."""
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from ros_testing import wait_for

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{port}{path}', timeout=5) as response:
            return response.status, response.headers['Content-Type'], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers['Content-Type'], err.read().decode()


def parse_metrics(text: str) -> dict:
    """Text format 0.0.4 -> {(name, ((label, value), ...)): float}; every line must parse."""
    samples, typed = {}, {}
    for line in text.splitlines():
        if line.startswith('# TYPE '):
            _, _, name, kind = line.split(' ')
            typed[name] = kind
            continue
        if line.startswith('# HELP ') or not line:
            continue
        match = _SAMPLE.match(line)
        assert match, f'malformed sample line {line!r}'
        name, labels, value = match.groups()
        assert name in typed, f'{name} has no TYPE line before it'
        key = (name, tuple(sorted(_LABEL.findall(labels or ''))))
        assert key not in samples, f'duplicate sample {key}'
        samples[key] = float(value)
    return samples


def _value(samples: dict, metric: str, **labels) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


@pytest.fixture
def exporter(ros_env):
    from rclpy.executors import SingleThreadedExecutor

    from echoloc_ros.nodes.metrics_exporter import MetricsExporter
    node = MetricsExporter(port=0, node_name='test_metrics_exporter')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield node
    finally:
        executor.shutdown()
        thread.join(timeout=2.0)
        node.destroy_node()


def _statuses(driver_level, localizer_level):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    return DiagnosticArray(status=[
        DiagnosticStatus(level=driver_level, name='driver: Frame rate', message='rate',
                         hardware_id='sim:square_4sensor',
                         values=[KeyValue(key='Actual frequency (Hz)', value='25.0'),
                                 KeyValue(key='Events in window', value='125'),
                                 KeyValue(key='backend', value='sim')]),
        DiagnosticStatus(level=localizer_level, name='localizer: Localization',
                         message='slow', hardware_id='',
                         values=[KeyValue(key='latency_ms', value='14.5')]),
    ])


def test_metrics_and_health_follow_diagnostics_and_poses(exporter, recorder):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile

    port = exporter.port
    code, _, body = _get(port, '/health')
    assert (code, json.loads(body)['status']) == (503, 'STALE')
    assert _get(port, '/nothing')[0] == 404

    diagnostics = recorder.publisher(DiagnosticArray, '/diagnostics', QoSProfile(depth=10))
    poses = recorder.publisher(PoseWithCovarianceStamped, '/echoloc/pose', QoSProfile(depth=50))
    truths = recorder.publisher(PoseStamped, '/echoloc/ground_truth', QoSProfile(depth=50))
    assert wait_for(lambda: all(p.get_subscription_count() for p in (diagnostics, poses, truths)))
    # The exporter's readers match our writers too (each side discovers the other on its own).
    assert wait_for(lambda: all(exporter.count_publishers(topic) for topic in
                                ('/diagnostics', '/echoloc/pose', '/echoloc/ground_truth')))

    diagnostics.publish(_statuses(DiagnosticStatus.OK, DiagnosticStatus.WARN))
    n_poses = 10
    for i in range(n_poses):
        stamp = recorder.node.get_clock().now().to_msg()
        truth = PoseStamped()
        truth.header.stamp = stamp
        truth.pose.position.x, truth.pose.position.y = 1.0 + i, 2.0
        truths.publish(truth)
        pose = PoseWithCovarianceStamped()
        pose.header.stamp = stamp
        pose.pose.pose.position.x, pose.pose.pose.position.y = 1.03 + i, 2.04
        pose.pose.covariance[0], pose.pose.covariance[7], pose.pose.covariance[14] = (
            1e-4, 2e-4, 3e-4)
        poses.publish(pose)
        time.sleep(0.05)

    def scraped():
        return parse_metrics(_get(port, '/metrics')[2])
    assert wait_for(lambda: scraped().get(('echoloc_poses_total', ())) == n_poses, 5.0)
    code, content_type, text = _get(port, '/metrics')
    assert code == 200 and content_type.startswith('text/plain; version=0.0.4')
    assert '# TYPE echoloc_poses_total counter' in text
    samples = parse_metrics(text)
    driver = dict(node='driver', name='Frame rate', hardware_id='sim:square_4sensor')
    localizer = dict(node='localizer', name='Localization', hardware_id='')
    assert _value(samples, 'echoloc_diagnostic_level', **driver) == 0
    assert _value(samples, 'echoloc_diagnostic_level', **localizer) == 1
    assert _value(samples, 'echoloc_diagnostic_actual_frequency_hz', **driver) == 25.0
    assert _value(samples, 'echoloc_diagnostic_events_in_window', **driver) == 125
    assert _value(samples, 'echoloc_diagnostic_latency_ms', **localizer) == 14.5
    assert not any(name == 'echoloc_diagnostic_backend' for name, _ in samples)
    assert _value(samples, 'echoloc_position_error_meters') == pytest.approx(0.05, abs=1e-9)
    assert _value(samples, 'echoloc_pose_covariance_trace_m2') == pytest.approx(6e-4)
    assert 0.0 <= _value(samples, 'echoloc_pose_latency_seconds') < 2.0
    # Published every 50 ms (at most 20 Hz, slower when the machine is busy).
    assert 5.0 < _value(samples, 'echoloc_pose_rate_hz') < 40.0

    code, _, body = _get(port, '/health')
    health = json.loads(body)
    assert (code, health['status'], health['worst']['name']) == (
        200, 'WARN', 'localizer: Localization')

    diagnostics.publish(_statuses(DiagnosticStatus.ERROR, DiagnosticStatus.OK))
    assert wait_for(lambda: _get(port, '/health')[0] == 503, 5.0)
    health = json.loads(_get(port, '/health')[2])
    assert (health['status'], health['worst']['name']) == ('ERROR', 'driver: Frame rate')
    assert _value(scraped(), 'echoloc_diagnostic_level', **driver) == 2

    diagnostics.publish(_statuses(DiagnosticStatus.OK, DiagnosticStatus.OK))
    assert wait_for(lambda: _get(port, '/health')[0] == 200, 5.0)
    assert json.loads(_get(port, '/health')[2])['status'] == 'OK'

    # Nobody refreshes the statuses any more: after stale_after_s they are STALE.
    exporter.set_parameters([Parameter('stale_after_s', value=0.5)])
    assert wait_for(lambda: _get(port, '/health')[0] == 503, 5.0)
    health = json.loads(_get(port, '/health')[2])
    assert health['status'] == 'STALE'
    assert health['stale'] == ['driver: Frame rate', 'localizer: Localization']


def test_node_process_logs_its_port_and_serves(ros_env):
    process = subprocess.Popen(
        [sys.executable, '-m', 'echoloc_ros.nodes.metrics_exporter', '--ros-args', '-p',
         'port:=0'],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = None
        for line in process.stdout:
            match = re.search(r'http://127\.0\.0\.1:(\d+)/metrics', line)
            if match:
                port = int(match.group(1))
                break
        assert port, 'the node did not log its port'
        code, _, body = _get(port, '/health')
        assert (code, json.loads(body)['reason']) == (503, 'no diagnostics received yet')
        code, _, body = _get(port, '/metrics')
        assert code == 200 and 'echoloc_poses_total 0' in body
        assert _get(port, '/metrics/extra')[0] == 404
        process.send_signal(2)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
