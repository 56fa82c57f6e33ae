"""Prometheus metrics and a health check for a running echoloc graph, over plain HTTP.

``GET /metrics`` serves the text exposition format 0.0.4: every diagnostic status's level and
numeric values, and the pose stream's rate, latency, covariance and (in simulation) error
against ground truth. ``GET /health`` answers 200 with a JSON summary while every status is OK
or WARN and fresh, 503 when one is ERROR or STALE, has not been refreshed for ``stale_after_s``,
or no diagnostics have been heard at all. Anything else is 404.

With a token (``token_file``) every request needs ``Authorization: Bearer <token>`` (401
otherwise); with ``tls_cert`` and ``tls_key`` the server speaks HTTPS. It refuses to bind an
address other than loopback without a token. Connections are limited in number and time.
"""
import hmac
import ipaddress
import json
import math
import re
import ssl
import threading
import time
from pathlib import Path
from collections import OrderedDict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy

from echoloc_ros.core.stamps import StampPairs
from echoloc_ros.nodes.common import declare, run
from echoloc_ros.ros import conversions

CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
LEVEL_NAMES = ('OK', 'WARN', 'ERROR', 'STALE')
_MATCH_HISTORY = 200
# Bounds against a peer that publishes diagnostics under ever new names (20,000 spoofed names
# once made a 4.7 MB /metrics): at most this many statuses are held, the least recently heard
# dropped first; one not heard for forget_after_s leaves /metrics (/health still reports it
# STALE while it is held, so a node that died is not forgotten).
MAX_STATUSES = 512
# Concurrent connections served; more are closed at once. Each has this long per read/write.
MAX_CONNECTIONS = 16
CONNECTION_TIMEOUT_S = 5.0


def sanitize_metric_name(key: str) -> str:
    """A diagnostic key as part of a metric name: ``Actual rate (Hz)`` -> ``actual_rate_hz``."""
    name = re.sub(r'[^a-zA-Z0-9]+', '_', key).strip('_').lower()
    return f'_{name}' if name[:1].isdigit() else name


def _label_value(value: str) -> str:
    return value.replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def _labels(labels: dict) -> str:
    return '{' + ','.join(f'{k}="{_label_value(str(v))}"' for k, v in labels.items()) + '}'


def _number(value: float) -> str:
    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    return repr(float(value))


def _numeric(text: str) -> float | None:
    """The value of a diagnostic value that is a number (``'25.0'``, ``'nan'``), else None."""
    try:
        return float(text)
    except ValueError:
        return None


def _level(status: DiagnosticStatus) -> int:
    level = status.level
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


def _split_name(name: str) -> tuple[str, str]:
    # diagnostic_updater names statuses '<node>: <task>'.
    node, sep, task = name.partition(': ')
    return (node, task) if sep else ('', name)


@dataclass
class _Status:
    status: DiagnosticStatus
    received_s: float


class MetricsExporter(Node):
    """Listens to /diagnostics, the pose and ground truth; serves /metrics and /health.

    :param port: TCP port (None: the ``port`` parameter; 0 picks a free one).
    :param host: address to bind (None: the ``host`` parameter, 127.0.0.1 by default).
    :param token_file: file holding the bearer token every request must carry (None: the
        ``token_file`` parameter; empty: no token).
    :param tls_cert: PEM certificate chain for HTTPS (None: the ``tls_cert`` parameter;
        empty: plain HTTP); needs ``tls_key``.
    :param tls_key: PEM private key for HTTPS.
    :raises ValueError: a non-loopback ``host`` without a token, an unreadable or empty token
        file, a certificate without a key or one that does not load, a port in use.
    """

    def __init__(self, port: int | None = None, host: str | None = None,
                 node_name: str = 'echoloc_metrics', token_file: str | None = None,
                 tls_cert: str | None = None, tls_key: str | None = None):
        overrides = [Parameter(name, value=value)
                     for name, value in (('port', port), ('host', host),
                                         ('token_file', token_file), ('tls_cert', tls_cert),
                                         ('tls_key', tls_key)) if value is not None]
        super().__init__(node_name, parameter_overrides=overrides)
        # Set before anything can refuse: a node whose __init__ raised is still destroyed
        # with the context, and must then have nothing to stop.
        self.server: _BoundedServer | None = None
        host = declare(self, 'host', '127.0.0.1', 'address the HTTP server binds to',
                       read_only=True)
        port = declare(self, 'port', 9101, 'HTTP port of /metrics and /health; 0 picks a free '
                       'one', read_only=True, min_value=0, max_value=65535)
        self.stale_after_s = declare(
            self, 'stale_after_s', 5.0, 'a status not refreshed for this long makes /health '
            'fail [s]', min_value=0.1, max_value=3600.0,
            on_set=lambda value: setattr(self, 'stale_after_s', value))
        self.rate_window_s = declare(
            self, 'rate_window_s', 5.0, 'window of the pose rate [s]', min_value=0.5,
            max_value=600.0, on_set=lambda value: setattr(self, 'rate_window_s', value))
        self.forget_after_s = declare(
            self, 'forget_after_s', 30.0, 'a status not heard for this long leaves /metrics '
            '[s]', min_value=1.0, max_value=86400.0,
            on_set=lambda value: setattr(self, 'forget_after_s', value))
        token_path = declare(self, 'token_file', '', 'file holding the bearer token every '
                             'request must carry; empty: none (loopback only)', read_only=True)
        cert = declare(self, 'tls_cert', '', 'PEM certificate for HTTPS; empty: plain HTTP',
                       read_only=True)
        key = declare(self, 'tls_key', '', 'PEM private key for HTTPS', read_only=True)
        self.token = _read_token(token_path) if token_path else None
        if self.token is None and not _is_loopback(host):
            raise ValueError(f'refusing to serve metrics on {host!r} without a token: anyone '
                             'who can reach it could read the graph; give --token-file, or '
                             'bind 127.0.0.1')
        tls = _tls_context(cert, key) if cert or key else None
        self._lock = threading.Lock()
        self._statuses: dict[str, _Status] = {}
        self._pose_times_s: deque[float] = deque()
        self._pose_count = 0
        self._latency_s: float | None = None
        self._cov_trace_m2: float | None = None
        self._error_m: float | None = None
        # Each pose with the ground truth of its frame, whichever comes first.
        self._pairs = StampPairs(capacity=_MATCH_HISTORY)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics,
                                 QoSProfile(depth=50))
        self.create_subscription(PoseWithCovarianceStamped, 'echoloc/pose', self.on_pose,
                                 reliable)
        self.create_subscription(PoseStamped, 'echoloc/ground_truth', self.on_truth, reliable)
        try:
            self.server = _BoundedServer((host, port), _handler(self))
        except OSError as exc:
            raise ValueError(f'cannot serve metrics on {host}:{port}: {exc}') from None
        if tls is not None:
            # The handshake runs in the connection's own thread (on its first read, under
            # its timeout), so a client that stalls it cannot hold up accept().
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        scheme = 'https' if tls is not None else 'http'
        self.get_logger().info(f'serving {scheme}://{host}:{self.port}/metrics and /health'
                               + (' (bearer token required)' if self.token else ''))

    def authorized(self, header: str | None) -> bool:
        """Whether a request's ``Authorization`` header carries the token (always, with no
        token). Compared in constant time."""
        if self.token is None:
            return True
        scheme, _, given = (header or '').partition(' ')
        return scheme.lower() == 'bearer' and hmac.compare_digest(
            given.strip().encode('utf-8', 'replace'), self.token.encode('utf-8'))

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        now_s = time.monotonic()
        with self._lock:
            for status in msg.status:
                # Re-inserted at the end: the dict stays in order of last hearing.
                self._statuses.pop(status.name, None)
                self._statuses[status.name] = _Status(status, now_s)
            while len(self._statuses) > MAX_STATUSES:
                del self._statuses[next(iter(self._statuses))]

    def on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        now_s = time.monotonic()
        latency_s = (self.get_clock().now().nanoseconds
                     - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) * 1e-9
        p = msg.pose.pose.position
        position = np.array([p.x, p.y, p.z])
        cov = np.asarray(msg.pose.covariance, dtype=float).reshape(6, 6)[:3, :3]
        with self._lock:
            self._pose_count += 1
            self._pose_times_s.append(now_s)
            self._latency_s = latency_s
            self._cov_trace_m2 = float(np.trace(cov))
            self._pair(0, msg.header.stamp, position)

    def on_truth(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        position = np.array([p.x, p.y, p.z])
        with self._lock:
            self._pair(1, msg.header.stamp, position)

    def _pair(self, side: int, stamp, position: np.ndarray) -> None:
        """Offer a pose (side 0) or a truth (1); a completed pair sets the position error."""
        pair = self._pairs.add(side, conversions.stamp_key(stamp), position)
        if pair is not None:
            self._error_m = float(np.linalg.norm(pair[0] - pair[1]))

    def pose_rate_hz(self, now_s: float | None = None) -> float:
        """Poses per second over the last ``rate_window_s``."""
        now_s = time.monotonic() if now_s is None else now_s
        window_s = self.rate_window_s
        with self._lock:
            times = self._pose_times_s
            while times and times[0] < now_s - window_s:
                times.popleft()
            if len(times) < 2:
                return 0.0
            return (len(times) - 1) / (times[-1] - times[0])

    def health(self) -> tuple[int, dict]:
        """HTTP status code and JSON body of ``/health``."""
        now_s = time.monotonic()
        with self._lock:
            statuses = dict(self._statuses)
        if not statuses:
            return 503, {'status': 'STALE', 'worst': None,
                         'reason': 'no diagnostics received yet'}
        stale_after_s = self.stale_after_s
        stale = sorted(name for name, s in statuses.items()
                       if now_s - s.received_s > stale_after_s)
        worst_name = max(statuses, key=lambda name: _level(statuses[name].status))
        worst = statuses[worst_name].status
        level = min(_level(worst), 3)
        if stale and level < 3:
            level = 3
            worst_name, worst = stale[0], statuses[stale[0]].status
        body = {'status': LEVEL_NAMES[level],
                'worst': {'name': worst_name, 'level': LEVEL_NAMES[min(_level(worst), 3)],
                          'message': worst.message, 'hardware_id': worst.hardware_id},
                'stale': stale, 'statuses': len(statuses)}
        return (200 if level <= 1 else 503), body

    def metrics_text(self) -> str:
        """The ``/metrics`` body in Prometheus text format 0.0.4."""
        now_s = time.monotonic()
        rate_hz = self.pose_rate_hz(now_s)
        with self._lock:
            statuses = dict(self._statuses)
            pose_count, latency_s = self._pose_count, self._latency_s
            cov_trace_m2, error_m = self._cov_trace_m2, self._error_m
        families: dict[str, tuple[str, str, list[str]]] = OrderedDict()

        def add(name: str, kind: str, help_text: str, labels: dict, value: float) -> None:
            family = families.setdefault(name, (kind, help_text, []))
            family[2].append(f'{name}{_labels(labels) if labels else ""} {_number(value)}')

        forget_after_s = self.forget_after_s
        for name in sorted(statuses):
            status, received_s = statuses[name].status, statuses[name].received_s
            if now_s - received_s > forget_after_s:
                continue
            node, task = _split_name(name)
            labels = {'node': node, 'name': task, 'hardware_id': status.hardware_id}
            add('echoloc_diagnostic_level', 'gauge',
                'Diagnostic level: 0 OK, 1 WARN, 2 ERROR, 3 STALE.', labels, _level(status))
            add('echoloc_diagnostic_age_seconds', 'gauge',
                'Seconds since the status was last received.', labels, now_s - received_s)
            seen = set()
            for kv in status.values:
                value = _numeric(kv.value)
                metric = 'echoloc_diagnostic_' + sanitize_metric_name(kv.key)
                if value is None or metric in seen or not sanitize_metric_name(kv.key):
                    continue
                seen.add(metric)
                add(metric, 'gauge', f'Diagnostic value {kv.key!r}.', labels, value)
        add('echoloc_poses_total', 'counter', 'Poses received.', {}, pose_count)
        add('echoloc_pose_rate_hz', 'gauge',
            'Pose rate over the last rate_window_s [Hz].', {}, rate_hz)
        if latency_s is not None:
            add('echoloc_pose_latency_seconds', 'gauge',
                'Receive time minus acquisition stamp of the last pose [s].', {}, latency_s)
            add('echoloc_pose_covariance_trace_m2', 'gauge',
                'Trace of the last pose\'s position covariance [m^2].', {}, cov_trace_m2)
        if error_m is not None:
            add('echoloc_position_error_meters', 'gauge',
                'Distance from the last pose with a ground truth of the same stamp [m].', {},
                error_m)
        lines = []
        for name, (kind, help_text, samples) in families.items():
            lines += [f'# HELP {name} {help_text}', f'# TYPE {name} {kind}', *samples]
        return '\n'.join(lines) + '\n'

    def destroy_node(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self._thread.join(timeout=2.0)
        super().destroy_node()


def _is_loopback(host: str) -> bool:
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_text(encoding='utf-8').strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f'cannot read token file {path}: {exc}') from None
    if not token:
        raise ValueError(f'token file {path} is empty')
    return token


def _tls_context(cert: str, key: str) -> ssl.SSLContext:
    if not cert or not key:
        raise ValueError('HTTPS needs both a certificate and a key (--tls-cert, --tls-key)')
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f'cannot load TLS certificate {cert} with key {key}: {exc}') from None
    return context


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``MAX_CONNECTIONS`` at once: more are closed at once
    rather than queued behind slow ones."""

    daemon_threads = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        # A client that drops, stalls past the timeout or fails the TLS handshake is its own
        # problem, not a traceback on the server's stderr.
        pass


def _handler(exporter: MetricsExporter) -> type:
    class Handler(BaseHTTPRequestHandler):
        timeout = CONNECTION_TIMEOUT_S

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split('?', 1)[0]
            if not exporter.authorized(self.headers.get('Authorization')):
                self.send_response(401)
                self.send_header('WWW-Authenticate', 'Bearer realm="echoloc"')
                body = b'bearer token required\n'
                self.send_header('Content-Type', 'text/plain; charset=utf-8')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif path == '/metrics':
                self._send(200, CONTENT_TYPE, exporter.metrics_text())
            elif path == '/health':
                code, body = exporter.health()
                self._send(code, 'application/json', json.dumps(body))
            else:
                self._send(404, 'text/plain; charset=utf-8', 'not found: /metrics, /health\n')

        def _send(self, code: int, content_type: str, body: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args) -> None:  # noqa: A002 (http.server's signature)
            exporter.get_logger().debug(format % args)

    return Handler


def serve_metrics(port: int = 9101, host: str = '127.0.0.1', token_file: str = '',
                  tls_cert: str = '', tls_key: str = '') -> int:
    """Serve /metrics and /health until Ctrl-C or SIGTERM (see :class:`MetricsExporter`)."""
    return run(lambda: MetricsExporter(port=port, host=host, token_file=token_file,
                                       tls_cert=tls_cert, tls_key=tls_key))


def main(args=None) -> int:
    """Run as a node: ``--ros-args -p port:=9101 -p host:=0.0.0.0 -p token_file:=/path``."""
    return run(MetricsExporter, args)


if __name__ == '__main__':
    raise SystemExit(main())
