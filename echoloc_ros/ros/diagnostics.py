"""diagnostic_updater's API for echoloc's nodes.

The nodes' diagnostic tasks are written against diagnostic_updater (``DiagnosticTask.run(stat)``,
``DiagnosticStatusWrapper``, ``FrequencyStatus``, ``Updater``). A ROS 2 install has that package
(``rosdep install`` brings it: it is an exec_depend) and then it is used. The ROS 2 wheels this
project also runs on do not ship it; only there does the small equivalent below stand in, and it
behaves as upstream's Python diagnostic_updater 3.x does where a user or a test can see it:

- every task's status starts as ERROR 'No message was set' (a task that forgets its summary is an
  error, not a silent OK), and adding a task publishes OK 'Node starting up' for it at once;
- status names are ``<node>: <task>``, the hardware id is the one set (empty until then);
- the period is the ``diagnostic_updater.period`` parameter (the constructor's ``period`` is its
  default), the node name may be fully qualified with ``diagnostic_updater.use_fqn``;
- a value given to ``DiagnosticStatusWrapper.add`` must be a ``str``: upstream stores any value
  and its publish then fails with ``TypeError``; here ``add`` raises the ``TypeError`` at once,
  naming the key, instead of turning the value into a string that would hide the bug.

``ECHOLOC_DIAGNOSTIC_UPDATER=fallback`` uses the equivalent even where the real package is
importable, so that the same checks can run against both (``test/test_diagnostics_contract.py``);
the equivalent itself is :mod:`echoloc_ros.ros.diagnostic_fallback`.
"""
import importlib.util
import os

from diagnostic_msgs.msg import DiagnosticStatus

# Levels are one-byte ``bytes`` in rclpy messages (b'\x00' OK ... b'\x03' STALE); they compare
# correctly with < and max().
OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR
STALE = DiagnosticStatus.STALE

FORCE_FALLBACK = os.environ.get('ECHOLOC_DIAGNOSTIC_UPDATER', '') == 'fallback'
USING_UPSTREAM = (not FORCE_FALLBACK
                  and importlib.util.find_spec('diagnostic_updater') is not None)

if USING_UPSTREAM:
    from diagnostic_updater import (  # noqa: F401  (re-exported)
        DiagnosticStatusWrapper, DiagnosticTask, FrequencyStatus, FrequencyStatusParam,
        FunctionDiagnosticTask, Updater)
else:
    from echoloc_ros.ros.diagnostic_fallback import (  # noqa: F401  (re-exported)
        DiagnosticStatusWrapper, DiagnosticTask, FrequencyStatus, FrequencyStatusParam,
        FunctionDiagnosticTask, Updater)


def level_of(status: DiagnosticStatus) -> int:
    """The level of a received status as an int (0 OK, 1 WARN, 2 ERROR, 3 STALE)."""
    level = status.level
    return level[0] if isinstance(level, bytes) else int(level)
