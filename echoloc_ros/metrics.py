"""Prometheus metrics and a health check for a running echoloc graph, over plain HTTP.

``GET /metrics`` serves the text exposition format 0.0.4: every diagnostic status's level and
numeric values, and the pose stream's rate, latency, covariance and (in simulation) error
against ground truth. ``GET /health`` answers 200 with a JSON summary while every status is OK
or WARN and fresh, 503 when one is ERROR or STALE, has not been refreshed for ``stale_after_s``,
or no diagnostics have been heard at all. Anything else is 404.
"""
import json
import math
import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy

from echoloc_ros.nodes.common import declare, run

CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
LEVEL_NAMES = ('OK', 'WARN', 'ERROR', 'STALE')
_MATCH_HISTORY = 200


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
    """

    def __init__(self, port: int | None = None, host: str | None = None,
                 node_name: str = 'echoloc_metrics'):
        overrides = [Parameter(name, value=value)
                     for name, value in (('port', port), ('host', host)) if value is not None]
        super().__init__(node_name, parameter_overrides=overrides)
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
        self._lock = threading.Lock()
        self._statuses: dict[str, _Status] = {}
        self._pose_times_s: deque[float] = deque()
        self._pose_count = 0
        self._latency_s: float | None = None
        self._cov_trace_m2: float | None = None
        self._error_m: float | None = None
        self._poses: OrderedDict = OrderedDict()   # stamp -> position, awaiting truth
        self._truths: OrderedDict = OrderedDict()  # stamp -> position
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics,
                                 QoSProfile(depth=50))
        self.create_subscription(PoseWithCovarianceStamped, 'echoloc/pose', self.on_pose,
                                 reliable)
        self.create_subscription(PoseStamped, 'echoloc/ground_truth', self.on_truth, reliable)
        try:
            self.server = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:
            raise ValueError(f'cannot serve metrics on {host}:{port}: {exc}') from None
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        self.get_logger().info(f'serving http://{host}:{self.port}/metrics and /health')

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        now_s = time.monotonic()
        with self._lock:
            for status in msg.status:
                self._statuses[status.name] = _Status(status, now_s)

    def on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        now_s = time.monotonic()
        latency_s = (self.get_clock().now().nanoseconds
                     - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) * 1e-9
        p = msg.pose.pose.position
        position = np.array([p.x, p.y, p.z])
        cov = np.asarray(msg.pose.covariance, dtype=float).reshape(6, 6)[:3, :3]
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self._lock:
            self._pose_count += 1
            self._pose_times_s.append(now_s)
            self._latency_s = latency_s
            self._cov_trace_m2 = float(np.trace(cov))
            if key in self._truths:
                self._error_m = float(np.linalg.norm(position - self._truths[key]))
            else:
                _remember(self._poses, key, position)

    def on_truth(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        position = np.array([p.x, p.y, p.z])
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self._lock:
            if key in self._poses:
                self._error_m = float(np.linalg.norm(self._poses.pop(key) - position))
            _remember(self._truths, key, position)

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

        for name in sorted(statuses):
            status, received_s = statuses[name].status, statuses[name].received_s
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
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2.0)
        super().destroy_node()


def _remember(history: OrderedDict, key, value) -> None:
    history[key] = value
    while len(history) > _MATCH_HISTORY:
        history.popitem(last=False)


def _handler(exporter: MetricsExporter) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split('?', 1)[0]
            if path == '/metrics':
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


def serve_metrics(port: int = 9101, host: str = '127.0.0.1') -> int:
    """Serve /metrics and /health until Ctrl-C or SIGTERM."""
    return run(lambda: MetricsExporter(port=port, host=host))


def main(args=None) -> int:
    """Run as a node: ``--ros-args -p port:=9101 -p host:=0.0.0.0``."""
    return run(MetricsExporter, args)


if __name__ == '__main__':
    raise SystemExit(main())
