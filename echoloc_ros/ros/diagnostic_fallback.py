"""An equivalent of diagnostic_updater's Python API for where the real package is not installed
(the ROS 2 wheels); :mod:`echoloc_ros.ros.diagnostics` says when and how it stands in.

It behaves as upstream's diagnostic_updater 3.x where a user or a test can see it (see
:mod:`echoloc_ros.ros.diagnostics`), and is stricter in one place: ``add`` refuses a
non-string value at once, where upstream's publish fails on it later.
"""
import threading
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR


class DiagnosticStatusWrapper(DiagnosticStatus):
    """A DiagnosticStatus with diagnostic_updater's summary/add helpers."""

    def summary(self, *args) -> None:
        """``summary(level, message)``, or ``summary(status)`` to copy another's."""
        if len(args) == 1:
            self.level, self.message = args[0].level, args[0].message
        else:
            self.level, self.message = args[0], str(args[1])

    def mergeSummary(self, *args) -> None:  # noqa: N802 (upstream name)
        """Keep the worse level; join the messages of statuses at the same side of OK."""
        level, message = ((args[0].level, args[0].message) if len(args) == 1 else args)
        if (level > OK) == (self.level > OK):
            if self.message:
                self.message += '; '
            self.message += message
        elif level > self.level:
            self.message = message
        if level > self.level:
            self.level = level

    def clearSummary(self) -> None:  # noqa: N802 (upstream name)
        self.summary(OK, '')

    def add(self, key: str, value: str) -> None:
        """Add a key-value pair; the value must already be a string (see module doc)."""
        if not isinstance(value, str):
            raise TypeError(f'diagnostic value for key {key!r} is {type(value).__name__} '
                            f'{value!r}; expected str (diagnostic_updater publishes only '
                            'strings)')
        self.values.append(KeyValue(key=key, value=value))

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
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self.count = 0
            now = Clock(clock_type=ClockType.ROS_TIME).now()
            self.times = [now] * self.params.window_size
            self.seq_nums = [0] * self.params.window_size
            self.hist_indx = 0

    def tick(self) -> None:
        with self.lock:
            self.count += 1

    def run(self, stat):
        bound, tolerance = self.params.freq_bound, self.params.tolerance
        with self.lock:
            now = Clock(clock_type=ClockType.ROS_TIME).now()
            events = self.count - self.seq_nums[self.hist_indx]
            window_s = (now - self.times[self.hist_indx]).nanoseconds * 1e-9
            freq = events / window_s
            self.seq_nums[self.hist_indx] = self.count
            self.times[self.hist_indx] = now
            self.hist_indx = (self.hist_indx + 1) % self.params.window_size
            if events == 0:
                stat.summary(ERROR, 'No events recorded.')
            elif freq < bound['min'] * (1 - tolerance):
                stat.summary(WARN, 'Frequency too low.')
            elif 'max' in bound and freq > bound['max'] * (1 + tolerance):
                stat.summary(WARN, 'Frequency too high.')
            else:
                stat.summary(OK, 'Desired frequency met')
            stat.add('Events in window', '%d' % events)
            stat.add('Events since startup', '%d' % self.count)
            stat.add('Duration of window (s)', '%f' % window_s)
            stat.add('Actual frequency (Hz)', '%f' % freq)
            if 'max' in bound and bound['min'] == bound['max']:
                stat.add('Target frequency (Hz)', '%f' % bound['min'])
            if bound['min'] > 0:
                stat.add('Minimum acceptable frequency (Hz)',
                         '%f' % (bound['min'] * (1 - tolerance)))
            if 'max' in bound:
                stat.add('Maximum acceptable frequency (Hz)',
                         '%f' % (bound['max'] * (1 + tolerance)))
        return stat

class Updater:
    """Runs the tasks every ``diagnostic_updater.period`` seconds and publishes them on
    /diagnostics."""

    def __init__(self, node, period: float = 1.0):
        self.node = node
        self.publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 1)
        self.lock = threading.Lock()
        self.tasks: list[FunctionDiagnosticTask] = []
        self.hwid = ''
        self.warn_nohwid_done = False
        self._period = node.declare_parameter('diagnostic_updater.period', period).value
        self.timer = node.create_timer(self._period, self.update)
        use_fqn = 'diagnostic_updater.use_fqn'
        fqn = (node.get_parameter(use_fqn).value if node.has_parameter(use_fqn)
               else node.declare_parameter(use_fqn, False).value)
        self.node_name = ('/'.join([node.get_namespace(), node.get_name()]) if fqn
                          else node.get_name())

    @property
    def period(self) -> float:
        return self._period

    @period.setter
    def period(self, period: float) -> None:
        self._period = period
        self.timer.reset()
        self.timer = self.node.create_timer(self._period, self.update)

    def setHardwareID(self, hwid: str) -> None:  # noqa: N802 (upstream name)
        self.hwid = hwid

    def add(self, task, fn: Callable | None = None) -> None:
        """``add(task)`` or ``add(name, fn)``; publishes 'Node starting up' for it."""
        task = FunctionDiagnosticTask(task, fn) if fn is not None else (
            FunctionDiagnosticTask(task.getName(), task.run))
        with self.lock:
            self.tasks.append(task)
            stat = DiagnosticStatusWrapper(name=task.name)
            stat.summary(OK, 'Node starting up')
            self.publish(stat)

    def removeByName(self, name: str) -> bool:  # noqa: N802 (upstream name)
        with self.lock:
            for i, task in enumerate(self.tasks):
                if task.name == name:
                    del self.tasks[i]
                    return True
        return False

    def update(self) -> None:
        statuses = []
        all_ok = not self.hwid
        with self.lock:
            for task in self.tasks:
                stat = DiagnosticStatusWrapper(level=ERROR, name=task.name,
                                               message='No message was set',
                                               hardware_id=self.hwid)
                stat = task.run(stat)
                statuses.append(stat)
                all_ok = all_ok and stat.level == OK
        if all_ok and not self.warn_nohwid_done:
            self.node.get_logger().warning('diagnostic_updater: No HW_ID was set.')
            self.warn_nohwid_done = True
        self.publish(statuses)

    def force_update(self) -> None:
        self.update()

    def broadcast(self, level: bytes, message: str) -> None:
        statuses = []
        for task in self.tasks:
            stat = DiagnosticStatusWrapper(name=task.name)
            stat.summary(level, message)
            statuses.append(stat)
        self.publish(statuses)

    def publish(self, statuses) -> None:
        if not isinstance(statuses, list):
            statuses = [statuses]
        msg = DiagnosticArray()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        for stat in statuses:
            stat.name = f'{self.node_name}: {stat.name}'
            msg.status.append(DiagnosticStatus(
                level=stat.level, name=stat.name, message=stat.message,
                hardware_id=stat.hardware_id, values=list(stat.values)))
        self.publisher.publish(msg)
