"""What every echoloc node shares: declaring described parameters and the main() loop."""
import re
import time
from typing import Any, Callable

import rclpy
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from threadpoolctl import threadpool_limits

from echoloc_ros.core.chirp import Chirp


def declare(node: Node, name: str, default: Any, description: str, *,
            read_only: bool = False, min_value: float | None = None,
            max_value: float | None = None, choices: tuple[str, ...] = ()) -> Any:
    """Declare a parameter with a ParameterDescriptor and return its value.

    :param description: what it is, with its unit.
    :param read_only: the value is only read at start-up; changing it needs a restart.
    :param min_value: inclusive lower bound for numbers (with ``max_value``).
    :param choices: allowed values for strings, checked here and on every later set.
    """
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
    return value


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


def reject_bad_choices(node: Node, choices: dict[str, tuple[str, ...]]) -> None:
    """Refuse later ``set_parameters`` calls whose string value is not among its choices."""

    def check(params) -> SetParametersResult:
        for param in params:
            allowed = choices.get(param.name)
            if allowed and param.value not in allowed:
                return SetParametersResult(
                    successful=False,
                    reason=f'{param.name}={param.value!r}: expected one of {", ".join(allowed)}')
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(check)


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


def run(node_factory: Callable[[], Node], args=None) -> int:
    """Init rclpy, spin the node until Ctrl-C or shutdown, clean up (Humble to Kilted)."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        try:
            node = node_factory()
        except (ValueError, FileNotFoundError, ParameterException) as exc:
            # A bad parameter or config file (out of its range, of the wrong type): say which
            # and exit non-zero, not a traceback.
            rclpy.logging.get_logger('echoloc').fatal(str(exc))
            return 2
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # A message that arrives while Ctrl-C shuts the context down can fail to be taken
        # ("Unable to convert call argument"); once shutdown has begun that is part of it.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code
