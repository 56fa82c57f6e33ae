"""diagnostic_updater's API for echoloc's nodes.

The nodes' diagnostic tasks are written against diagnostic_updater (``DiagnosticTask.run(stat)``,
``DiagnosticStatusWrapper``, ``FrequencyStatus``, ``Updater``). A full ROS 2 install has that
package and it is used. The ROS 2 wheels this project also runs on do not ship it; there the small
equivalent below publishes the same ``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics``, with
the same status names (``<node>: <task>``) and hardware ids, so tools see no difference.
"""
import importlib.util
import threading
import time
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

# Levels are one-byte ``bytes`` in rclpy messages (b'\x00' OK ... b'\x03' STALE); they compare
# correctly with < and max().
OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR
STALE = DiagnosticStatus.STALE

if importlib.util.find_spec('diagnostic_updater') is not None:
    from diagnostic_updater import (  # noqa: F401  (re-exported)
        DiagnosticStatusWrapper, DiagnosticTask, FrequencyStatus, FrequencyStatusParam,
        FunctionDiagnosticTask, Updater)
else:
    class DiagnosticStatusWrapper(DiagnosticStatus):
        """A DiagnosticStatus with diagnostic_updater's summary/add helpers."""

        def summary(self, level: bytes, message: str) -> None:
            self.level = level
            self.message = message

        def mergeSummary(self, level: bytes, message: str) -> None:  # noqa: N802 (upstream name)
            current = self.level
            if (level > OK) == (current > OK):
                if self.message:
                    self.message += '; '
                self.message += message
            elif level > current:
                self.message = message
            self.summary(max(level, current), self.message)

        def clearSummary(self) -> None:  # noqa: N802 (upstream name)
            self.summary(OK, '')

        def add(self, key: str, value) -> None:
            self.values.append(KeyValue(key=key, value=str(value)))

    class DiagnosticTask:
        """A named check that fills in a status."""

        def __init__(self, name: str):
            self.name = name

        def getName(self) -> str:  # noqa: N802 (upstream name)
            return self.name

        def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
            return stat

    class FunctionDiagnosticTask(DiagnosticTask):
        """A task whose run() is a plain function."""

        def __init__(self, name: str, fn: Callable):
            super().__init__(name)
            self.fn = fn

        def run(self, stat):
            return self.fn(stat)

    class FrequencyStatusParam:
        """Bounds for FrequencyStatus: ``freq_bound = {'min': hz, 'max': hz}``."""

        def __init__(self, freq_bound: dict, tolerance: float = 0.1, window_size: int = 5):
            self.freq_bound = freq_bound
            self.tolerance = tolerance
            self.window_size = window_size

    class FrequencyStatus(DiagnosticTask):
        """Event rate over the last ``window_size`` updates, checked against bounds."""

        def __init__(self, params: FrequencyStatusParam, name: str = 'FrequencyStatus'):
            super().__init__(name)
            self.params = params
            self._lock = threading.Lock()
            self._count = 0
            self._history = [(time.monotonic(), 0)] * params.window_size
            self._index = 0

        def tick(self) -> None:
            with self._lock:
                self._count += 1

        def run(self, stat):
            with self._lock:
                now = time.monotonic()
                then, count_then = self._history[self._index]
                events = self._count - count_then
                self._history[self._index] = (now, self._count)
                self._index = (self._index + 1) % self.params.window_size
            window_s = now - then
            freq = events / window_s if window_s > 0 else 0.0
            lo = self.params.freq_bound['min'] * (1 - self.params.tolerance)
            hi = self.params.freq_bound['max'] * (1 + self.params.tolerance)
            if events == 0:
                stat.summary(ERROR, 'No events recorded.')
            elif freq < lo:
                stat.summary(WARN, 'Frequency too low.')
            elif freq > hi:
                stat.summary(WARN, 'Frequency too high.')
            else:
                stat.summary(OK, 'Desired frequency met')
            stat.add('Events in window', events)
            stat.add('Events since startup', self._count)
            stat.add('Duration of window (s)', f'{window_s:.3f}')
            stat.add('Actual frequency (Hz)', f'{freq:.3f}')
            stat.add('Minimum acceptable frequency (Hz)', f'{lo:.3f}')
            stat.add('Maximum acceptable frequency (Hz)', f'{hi:.3f}')
            return stat

    class Updater:
        """Runs the tasks every ``period`` seconds and publishes them on /diagnostics."""

        def __init__(self, node, period: float = 1.0):
            self.node = node
            self.period = period
            self.hwid = ''
            self.tasks: list[DiagnosticTask] = []
            self.publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 1)
            self.timer = node.create_timer(period, self.update)

        def setHardwareID(self, hwid: str) -> None:  # noqa: N802 (upstream name)
            self.hwid = hwid

        def add(self, task, fn: Callable | None = None) -> None:
            self.tasks.append(FunctionDiagnosticTask(task, fn) if fn is not None else task)

        def removeByName(self, name: str) -> bool:  # noqa: N802 (upstream name)
            kept = [t for t in self.tasks if t.name != name]
            removed = len(kept) != len(self.tasks)
            self.tasks = kept
            return removed

        def update(self) -> None:
            statuses = []
            for task in self.tasks:
                stat = DiagnosticStatusWrapper()
                stat.name = f'{self.node.get_name()}: {task.name}'
                stat.hardware_id = self.hwid
                stat.summary(OK, '')
                task.run(stat)
                statuses.append(stat)
            self.publish(statuses)

        def force_update(self) -> None:
            self.update()

        def broadcast(self, level: bytes, message: str) -> None:
            statuses = []
            for task in self.tasks:
                stat = DiagnosticStatusWrapper()
                stat.name = f'{self.node.get_name()}: {task.name}'
                stat.hardware_id = self.hwid
                stat.summary(level, message)
                statuses.append(stat)
            self.publish(statuses)

        def publish(self, statuses: list) -> None:
            msg = DiagnosticArray()
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.status = [_as_status(s) for s in statuses]
            self.publisher.publish(msg)


def _as_status(stat) -> DiagnosticStatus:
    return DiagnosticStatus(level=stat.level, name=stat.name, message=stat.message,
                            hardware_id=stat.hardware_id, values=list(stat.values))


def level_of(status: DiagnosticStatus) -> int:
    """The level of a received status as an int (0 OK, 1 WARN, 2 ERROR, 3 STALE)."""
    level = status.level
    return level[0] if isinstance(level, bytes) else int(level)
