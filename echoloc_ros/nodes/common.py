"""What every echoloc node shares: declaring described parameters and the main() loop."""
import math
import re
import signal
import threading
import time
from typing import Any, Callable

import rclpy
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from threadpoolctl import threadpool_limits

from echoloc_ros.core.chirp import Chirp
from echoloc_ros.ros import cdr
from echoloc_ros.ros.diagnostics import Updater

# Gaps in seq up to this many frames (40 s at 25 Hz) count as frames lost; a seq that goes
# back, or jumps further, is a restarted driver or another publisher.
MAX_SEQ_GAP = 1000


def declare(node: Node, name: str, default: Any, description: str, *,
            read_only: bool = False, on_set: Callable[[Any], None] | None = None,
            min_value: float | None = None, max_value: float | None = None,
            choices: tuple[str, ...] = ()) -> Any:
    """Declare a parameter with a ParameterDescriptor and return its value.

    Every parameter is either read-only or applied live: ``ros2 param set`` must not report
    success for a value the node never reads again.

    :param description: what it is, with its unit.
    :param read_only: the value is only read at start-up; changing it needs a restart (a set
        is refused by rclpy, naming the parameter).
    :param on_set: for a parameter that is not read-only, applies a new value while the node
        runs (called after the range and choices have been checked, before the value is
        stored); it raises ``ValueError`` to refuse the value, and its message is the reason
        the caller gets.
    :param min_value: inclusive lower bound for numbers (with ``max_value``).
    :param choices: allowed values for strings, checked here and on every later set.
    :raises TypeError: the parameter is neither read-only nor given ``on_set``.
    """
    if read_only == (on_set is not None):
        raise TypeError(f'parameter {name}: either read_only or on_set, exactly one')
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if choices:
        descriptor.additional_constraints = 'one of: ' + ', '.join(choices)
    if min_value is not None and max_value is not None:
        if isinstance(default, bool):
            pass
        elif isinstance(default, int):
            descriptor.integer_range = [IntegerRange(
                from_value=int(min_value), to_value=int(max_value), step=1)]
        elif isinstance(default, float):
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(min_value), to_value=float(max_value), step=0.0)]
    value = node.declare_parameter(name, default, descriptor).value
    if choices and value not in choices:
        raise ValueError(f'parameter {name}={value!r}: expected one of {", ".join(choices)}')
    if on_set is not None:
        apply_live(node, name, on_set, choices)
    return value


def apply_live(node: Node, name: str, on_set: Callable[[Any], None],
               choices: tuple[str, ...] = ()) -> None:
    """Call ``on_set(value)`` whenever parameter ``name`` (declared already) is set.

    One on-set callback per node serves every live parameter: it checks the choices of all
    the parameters of a set first, so that a refused set leaves none of them applied.
    """
    appliers = getattr(node, '_echoloc_appliers', None)
    if appliers is None:
        appliers = node._echoloc_appliers = {}

        def check_and_apply(params) -> SetParametersResult:
            live = [p for p in params if p.name in appliers]
            for param in live:
                allowed = appliers[param.name][1]
                if allowed and param.value not in allowed:
                    return SetParametersResult(
                        successful=False, reason=f'{param.name}={param.value!r}: expected one '
                        f'of {", ".join(allowed)}')
            for param in live:
                try:
                    appliers[param.name][0](param.value)
                except ValueError as exc:
                    return SetParametersResult(successful=False,
                                               reason=f'{param.name}={param.value!r}: {exc}')
            return SetParametersResult(successful=True)

        node.add_on_set_parameters_callback(check_and_apply)
    appliers[name] = (on_set, choices)


def subscribe_serialized(node: Node, msg_type, topic: str, read: Callable[[bytes], Any],
                         callback: Callable[[Any], None], qos,
                         unreadable: Callable[[ValueError], None]):
    """Subscribe ``callback`` to ``topic``, each message taken serialized and read by ``read``
    (:mod:`echoloc_ros.ros.cdr`: only the fields the node reads, without rclpy's conversion
    of every field into a Python object, 0.13 ms a message on this project's machine). The
    reader's typestore is built here, at start-up, not at the first message.

    :param unreadable: called with the ``ValueError`` of bytes ``read`` refuses (they are not
        one message), instead of ``callback``.
    """
    cdr.typestore()

    def take(data: bytes) -> None:
        try:
            msg = read(data)
        except ValueError as exc:
            unreadable(exc)
            return
        callback(msg)

    return node.create_subscription(msg_type, topic, take, qos, raw=True)


class PolledSubscription:
    """A subscription whose messages wait in its queue until :meth:`take_all` reads them, in
    the order they came: the executor does not wake for them.

    For a stream that only matters when another message is handled (the IMU's headings, read
    at each frame): each wake of a node's executor costs its own CPU (0.2-0.4 ms of cold Python
    after the 40 ms between frames, docs/results.md), at the stream's rate, not the frames'.
    rclpy has no public way to leave one subscription out of the executor (rclcpp's is a
    callback group not added to it), so it is left out of the node's list, where every rclpy
    executor looks for them; it is still the node's in the ROS graph (``ros2 node info``).
    Made before the node is added to an executor; :meth:`destroy` before the node is.

    :param read: reads each message's bytes (:func:`subscribe_serialized`).
    :param depth: the queue's depth: the messages that may arrive between two takes.
    """

    def __init__(self, node: Node, msg_type, topic: str, read: Callable[[bytes], Any],
                 callback: Callable[[Any], None], qos,
                 unreadable: Callable[[ValueError], None]):
        self.subscription = subscribe_serialized(node, msg_type, topic, read, callback, qos,
                                                 unreadable)
        # The node's own list (name-mangled in older rclpy releases).
        owned = getattr(node, '_subscriptions', None)
        if owned is None:
            owned = node._Node__subscriptions
        owned.remove(self.subscription)

    def take_all(self) -> int:
        """Hand every message waiting to the callback; return how many."""
        handle, msg_type, taken = self.subscription.handle, self.subscription.msg_type, 0
        while (got := handle.take_message(msg_type, True)) is not None:
            self.subscription.callback(got[0])
            taken += 1
        return taken

    def destroy(self) -> None:
        self.subscription.destroy()


def diagnostic_updater(node: Node, hardware_id: str, period_s: float = 1.0) -> Updater:
    """The node's diagnostic Updater: ``diagnostic_updater.period`` applies live,
    ``diagnostic_updater.use_fqn`` is read at start-up (read-only)."""
    declare(node, 'diagnostic_updater.use_fqn', False, 'diagnostics name statuses with the '
            'node\'s fully qualified name (with its namespace)', read_only=True)
    updater = Updater(node, period=period_s)
    updater.setHardwareID(hardware_id)

    def set_period(period: float) -> None:
        if not (math.isfinite(period) and 0.01 <= period <= 60.0):
            raise ValueError('expected a period in [0.01, 60] s')
        old = updater.timer
        updater.period = period
        # diagnostic_updater's setter resets the old timer (restarts it) instead of cancelling
        # it: without this, the diagnostics would go out at both periods.
        node.destroy_timer(old)

    apply_live(node, 'diagnostic_updater.period', set_period)
    return updater


def limit_threads(node: Node) -> int:
    """Declare ``num_threads`` and hold numpy's BLAS (and OpenMP) to it in this process.

    Three nodes on a small CPU each spawning a BLAS thread per core fight over the cores: on
    two cores it cut the graph from 25 to 22 frames/s and doubled the latency.
    """
    threads = declare(node, 'num_threads', 1, 'threads for numpy/BLAS in this node; 1 keeps '
                      'the nodes from competing for cores', read_only=True, min_value=1,
                      max_value=256)
    node._thread_limits = threadpool_limits(limits=threads)
    return threads


def warm_up(node: Node, what: str, work: Callable[[], None]) -> None:
    """Declare ``warm_up`` and, if true, call ``work`` once: the node's code run on a synthetic
    frame (:mod:`echoloc_ros.core.warm_up`) before the first real one, so that the first frame
    does not pay for loading it; say in the log what it took. A warm-up that fails is logged
    and the node goes on (its first frame then loads the code).

    :param what: what is warmed, in words, for the log.
    """
    if not declare(node, 'warm_up', True, 'at start-up, run the node\'s code once on a '
                   'synthetic frame (its results thrown away), so that the first real frame '
                   'does not pay for loading the compiled code (0.3 s and more)',
                   read_only=True):
        return
    start_s, start_cpu_s = time.perf_counter(), time.process_time()
    try:
        work()
    except (ValueError, OSError) as exc:
        node.get_logger().warning(f'warm-up of {what} failed (the first frame will load the '
                                  f'code): {exc}')
        return
    node.get_logger().info(
        f'warmed up {what} on a synthetic frame in {1e3 * (time.perf_counter() - start_s):.0f}'
        f' ms ({1e3 * (time.process_time() - start_cpu_s):.0f} ms of CPU)')


def declare_chirp(node: Node) -> Chirp:
    """The chirp the array sends, from the ``chirp_*`` parameters (read-only)."""
    return Chirp(
        kind=declare(node, 'chirp_kind', 'lfm', 'chirp: lfm, hfm or barker', read_only=True,
                     choices=('lfm', 'hfm', 'barker')),
        f0_hz=declare(node, 'chirp_f0_hz', 35000.0, 'chirp start frequency [Hz]',
                      read_only=True, min_value=1000.0, max_value=200000.0),
        f1_hz=declare(node, 'chirp_f1_hz', 45000.0, 'chirp end frequency [Hz]',
                      read_only=True, min_value=1000.0, max_value=200000.0),
        duration_s=declare(node, 'chirp_duration_s', 0.002, 'chirp duration [s]',
                           read_only=True, min_value=1e-4, max_value=0.02),
        window=declare(node, 'chirp_window', 'hann', 'chirp amplitude window (a scipy '
                       'window name)', read_only=True))


class RefusalLog:
    """Logs refused messages: each new kind of refusal at once, a repeat of the last kind at
    most every ``throttle_s`` (the count belongs in diagnostics), so a hostile stream names
    every reason it provokes without flooding the log.

    Two refusals are of one kind when they differ only in their numbers.
    """

    def __init__(self, logger, throttle_s: float = 5.0) -> None:
        self.logger = logger
        self.throttle_s = throttle_s
        self.kind = ''
        self.logged_s = -float('inf')

    def error(self, text: str) -> None:
        kind = re.sub(r'[\d.]+', '#', text)
        now_s = time.monotonic()
        if kind != self.kind or now_s - self.logged_s >= self.throttle_s:
            self.kind, self.logged_s = kind, now_s
            self.logger.error(text)


def _executor():
    """The executor a node spins in: rclpy's C++ events executor where it has one (Jazzy on).

    rclpy's Python executor rebuilds its wait set in Python at every wake-up, for every
    subscription, timer, parameter service and QoS event: with the events executor the CPU a
    frame costs outside the callbacks fell from 1.1 to 0.7 ms in echo_processor and from 1.6
    to 0.8 ms in the localizer (docs/results.md), and the frame-to-pose latency fell too.
    """
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:  # Humble
        return rclpy.executors.SingleThreadedExecutor()
    return EventsExecutor()


def run(node_factory: Callable[[], Node | list[Node]], args=None) -> int:
    """Init rclpy, spin the node (or the nodes, in one executor, where ``node_factory`` returns
    several) until Ctrl-C, SIGTERM or shutdown, clean up (Humble to Kilted).

    rclpy's own signal handler shuts the context down at once, while the events executor may
    still run a timer that publishes on it ("publisher's context is invalid", a traceback at
    every Ctrl-C). So SIGINT and SIGTERM only end the spin loop here, and the node is destroyed
    (its timers and subscriptions with it) before the context is shut down.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    nodes: list[Node] = []
    try:
        try:
            made = node_factory()
        except (ValueError, FileNotFoundError, ParameterException) as exc:
            # A bad parameter or config file (out of its range, of the wrong type): say which
            # and exit non-zero, not a traceback.
            rclpy.logging.get_logger('echoloc').fatal(str(exc))
            return 2
        nodes = made if isinstance(made, list) else [made]
        executor = _executor()
        for node in nodes:
            executor.add_node(node)
        # spin_once in a loop, not spin(): rclpy.spin() with the events executor never ran a
        # callback here (a bringup of it published nothing and ignored Ctrl-C). The timeout
        # bounds how long a signal waits to be seen.
        while rclpy.ok() and not stop.is_set():
            executor.spin_once(timeout_sec=0.2)
        for node in nodes:
            executor.remove_node(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
