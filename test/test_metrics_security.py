"""The metrics endpoint's defences: bearer token over HTTPS with a real client, loopback-only
without a token, bounded connections, and spoofed diagnostics that do not pile up."""
import http.client
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter

from ros_testing import wait_for

TOKEN = 's3cret-token-for-tests'


@pytest.fixture(scope='module')
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made with openssl."""
    if shutil.which('openssl') is None:
        pytest.skip('openssl is not installed')
    folder = tmp_path_factory.mktemp('tls')
    cert, key = folder / 'cert.pem', folder / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
                    '-keyout', str(key), '-out', str(cert)], check=True,
                   capture_output=True)
    return cert, key


def _spin(node):
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    return executor, thread


@pytest.fixture
def secure_exporter(ros_env, certificate, tmp_path):
    from echoloc_ros.nodes.metrics_exporter import MetricsExporter
    token_file = tmp_path / 'token'
    token_file.write_text(TOKEN + '\n')
    cert, key = certificate
    node = MetricsExporter(port=0, node_name='test_secure_metrics', token_file=str(token_file),
                           tls_cert=str(cert), tls_key=str(key))
    executor, thread = _spin(node)
    try:
        yield node
    finally:
        executor.shutdown()
        thread.join(timeout=2.0)
        node.destroy_node()


def _https(port: int, path: str, cert, token: str | None) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(cert))
    connection = http.client.HTTPSConnection('127.0.0.1', port, context=context, timeout=10)
    headers = {'Authorization': f'Bearer {token}'} if token is not None else {}
    try:
        connection.request('GET', path, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read().decode()
    finally:
        connection.close()


def test_https_with_a_bearer_token(secure_exporter, certificate):
    cert, _ = certificate
    port = secure_exporter.port
    assert _https(port, '/metrics', cert, None)[0] == 401
    assert _https(port, '/health', cert, None)[0] == 401
    assert _https(port, '/metrics', cert, 'wrong')[0] == 401
    assert _https(port, '/metrics', cert, TOKEN[:-1])[0] == 401
    code, body = _https(port, '/metrics', cert, TOKEN)
    assert code == 200 and 'echoloc_poses_total 0' in body
    # No diagnostics yet: /health answers, with the token, that the graph is not healthy.
    assert _https(port, '/health', cert, TOKEN)[0] == 503
    # Plain HTTP to the HTTPS port gets no answer, and the server goes on serving.
    with pytest.raises((http.client.HTTPException, OSError)):
        plain = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        plain.request('GET', '/metrics')
        plain.getresponse().read()
    assert _https(port, '/metrics', cert, TOKEN)[0] == 200


def test_no_token_no_network_address(ros_env, tmp_path):
    from echoloc_ros.nodes.metrics_exporter import MetricsExporter
    with pytest.raises(ValueError, match="refusing to serve metrics on '0.0.0.0' without a "
                                         'token'):
        MetricsExporter(port=0, host='0.0.0.0', node_name='test_open_metrics')
    empty = tmp_path / 'empty'
    empty.write_text('\n')
    with pytest.raises(ValueError, match='is empty'):
        MetricsExporter(port=0, node_name='test_empty_token', token_file=str(empty))
    with pytest.raises(ValueError, match='needs both a certificate and a key'):
        MetricsExporter(port=0, node_name='test_half_tls', tls_cert=str(empty))
    # The command says so and exits non-zero, with no traceback.
    result = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'metrics', '--host',
                             '0.0.0.0', '--port', '0'], env=ros_env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert 'without a token' in result.stderr + result.stdout
    assert 'Traceback' not in result.stderr


def test_connections_are_bounded_and_time_out(ros_env):
    from echoloc_ros.nodes.metrics_exporter import MAX_CONNECTIONS, MetricsExporter
    node = MetricsExporter(port=0, node_name='test_bounded_metrics')
    executor, thread = _spin(node)
    idle = []
    try:
        # Connections that never send a request hold every slot ...
        idle = [socket.create_connection(('127.0.0.1', node.port)) for _ in
                range(MAX_CONNECTIONS)]
        time.sleep(0.5)
        # ... so one more is closed at once instead of waiting in line.
        extra = socket.create_connection(('127.0.0.1', node.port), timeout=10)
        extra.sendall(b'GET /metrics HTTP/1.0\r\n\r\n')
        try:
            assert extra.recv(100) == b''
        except ConnectionResetError:
            pass
        extra.close()
        # The server drops an idle connection after its timeout, which frees its slot.
        idle[0].settimeout(30)
        assert idle[0].recv(100) == b''
        for s in idle:
            s.close()
        idle = []

        def answers():
            try:
                connection = http.client.HTTPConnection('127.0.0.1', node.port, timeout=5)
                connection.request('GET', '/metrics')
                return connection.getresponse().status == 200
            except OSError:
                return False

        assert wait_for(answers, timeout_s=30.0)
    finally:
        for s in idle:
            s.close()
        executor.shutdown()
        thread.join(timeout=2.0)
        node.destroy_node()


def test_spoofed_diagnostic_names_are_bounded_and_expire(ros_env):
    from echoloc_ros.nodes.metrics_exporter import MAX_STATUSES, MetricsExporter
    node = MetricsExporter(port=0, node_name='test_spoofed_metrics')
    try:
        node.set_parameters([Parameter('forget_after_s', value=1.0),
                             Parameter('stale_after_s', value=1.0)])
        for batch in range(20):
            node.on_diagnostics(DiagnosticArray(status=[
                DiagnosticStatus(name=f'spoof_{batch}_{i}: x', message='m', hardware_id='')
                for i in range(100)]))
        assert len(node._statuses) == MAX_STATUSES
        # The newest are kept.
        assert 'spoof_19_99: x' in node._statuses and 'spoof_0_0: x' not in node._statuses
        assert node.metrics_text().count('echoloc_diagnostic_level{') == MAX_STATUSES
        time.sleep(1.5)
        node.on_diagnostics(DiagnosticArray(status=[
            DiagnosticStatus(name='localizer: Localization', message='ok')]))
        text = node.metrics_text()
        assert 'spoof_' not in text and 'name="Localization"' in text
        # /health still holds the silent ones as STALE: a node that died is not forgotten.
        assert node.health()[0] == 503
    finally:
        node.destroy_node()
