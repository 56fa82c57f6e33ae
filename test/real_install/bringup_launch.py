"""What the real-install tests share: the installed bringup.launch.py and a look at processes.

The tier needs what a ROS 2 install has and the PyPI wheels lack (launch, launch_ros,
launch_pytest, ros2cli): `source /opt/ros/<distro>/setup.bash`, or `make test-ros`, which builds
the upstream code from ../shared/ros-underlay. Without them each module is skipped, saying so.
"""
import os
import subprocess
import time
from pathlib import Path

SKIP_REASON = ('the real-install tier needs launch_pytest, launch and ros2cli: source a ROS 2 '
               'install (/opt/ros/<distro>/setup.bash) or run `make test-ros` (builds them from '
               '../shared/ros-underlay)')


def bringup(**arguments: str):
    """The installed ``bringup.launch.py`` with ``arguments``, then ready to test.

    :param arguments: launch arguments, e.g. ``method='nn'``.
    :return: the launch description for a ``launch_pytest.fixture``.
    """
    import launch_pytest
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    path = Path(get_package_share_directory('echoloc')) / 'launch' / 'bringup.launch.py'
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(path)),
                                 launch_arguments=arguments.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


def echoloc_processes(domain_id: str) -> dict[int, str]:
    """Processes of echoloc's installed executables running in ROS domain ``domain_id``.

    Matching the domain tells this test's nodes from other runs on the same machine.

    :return: pid → command line.
    """
    found = {}
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / 'cmdline').read_bytes().replace(b'\0', b' ').decode()
            environ = (entry / 'environ').read_bytes().split(b'\0')
        except OSError:
            continue
        if 'lib/echoloc/' in cmdline and f'ROS_DOMAIN_ID={domain_id}'.encode() in environ:
            found[int(entry.name)] = cmdline
    return found


def cpu_s(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far [s]."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def ros2_param(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """``ros2 param ARGS`` as a user types it, again while the node is not discovered yet.

    No daemon: it would outlive the test. Each call discovers the graph anew, which takes up
    to a few seconds on a busy machine.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = subprocess.run(['ros2', 'param', *args, '--no-daemon', '--spin-time', '3'],
                                capture_output=True, text=True, timeout=timeout_s,
                                env=dict(os.environ))
        if 'Node not found' not in result.stderr or time.monotonic() > deadline:
            return result
