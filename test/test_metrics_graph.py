"""`echoloc metrics` against running nodes, read with a real HTTP client."""
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

from echoloc_ros.ros.graph import GRAPH
from echoloc_ros.ros.process_graph import NodeProcesses
from ros_testing import wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ''


def _metrics(proc_port: int) -> str:
    return _get(f'http://127.0.0.1:{proc_port}/metrics')[1]


def _serve(env, port):
    return subprocess.Popen([sys.executable, '-m', 'echoloc_ros.cli', 'metrics', '--port',
                             str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _stop(server) -> None:
    server.send_signal(signal.SIGINT)
    try:
        assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()


def test_metrics_per_node_during_bringup(ros_env, tmp_path):
    port = _free_port()
    server = _serve(ros_env, port)
    try:
        with NodeProcesses(env=ros_env, log_dir=tmp_path) as graph:
            assert wait_for(lambda: 'echoloc_position_error_meters' in _metrics(port)
                            and all(f'node="{n}"' in _metrics(port) for n in
                                    ('driver', 'echo_processor', 'localizer')),
                            timeout_s=60.0), _metrics(port)[:2000]
            text = _metrics(port)
            assert not graph.exited()
        for node in ('driver', 'echo_processor', 'localizer'):
            assert re.search(rf'echoloc_diagnostic_level{{[^}}]*node="{node}"', text), node
        # Rate, latency and error gauges with numeric values.
        for gauge in ('echoloc_pose_rate_hz', 'echoloc_pose_latency_seconds',
                      'echoloc_position_error_meters',
                      'echoloc_diagnostic_actual_frequency_hz'):
            assert re.search(rf'^{gauge}(\{{[^}}]*\}})? [0-9.e+-]+$', text, re.M), gauge
        error = float(re.search(r'^echoloc_position_error_meters (\S+)$', text, re.M)[1])
        assert 0 <= error < 0.5
    finally:
        _stop(server)


def test_health_is_503_while_a_node_reports_error(ros_env, tmp_path):
    port = _free_port()
    server = _serve(ros_env, port)
    driver = tuple(s for s in GRAPH if s.name == 'driver')
    missing = tmp_path / 'no_such_port'
    try:
        with NodeProcesses(driver, env=ros_env, log_dir=tmp_path,
                           overrides={'driver': {'backend': 'serial', 'port': str(missing)}}) \
                as graph:
            assert wait_for(lambda: _get(f'http://127.0.0.1:{port}/health')[0] == 503
                            and 'driver' in _get(f'http://127.0.0.1:{port}/health')[1],
                            timeout_s=30.0)
            code, body = _get(f'http://127.0.0.1:{port}/health')
            assert 'ERROR' in body
            # The driver keeps running, retrying the port, and says which port is missing.
            assert not graph.exited()
        assert str(missing) in (tmp_path / 'driver.log').read_text()
    finally:
        _stop(server)
