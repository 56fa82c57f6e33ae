"""bringup.launch.py's arguments on a real install: method:=nn, one_process:=false,
backend:=serial with port:=, NODE.PARAM:= overrides, and rviz:=true without rviz2
(launch_pytest, the real launch)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy

from bringup_launch import SKIP_REASON, bringup, echoloc_processes, ros2_param
from echoloc_ros.core.room import load_room
from ros_testing import wait_for

launch_pytest = pytest.importorskip('launch_pytest', reason=SKIP_REASON)

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
# Where `echoloc fake-device` holds the emulated array (its defaults, written out).
DEVICE_POSITION_M = (2.0, 1.5, 0.3)
DEVICE_YAW_RAD = 0.0


@launch_pytest.fixture
def nn_graph(ros_env):
    return bringup(method='nn')


@pytest.mark.launch(fixture=nn_graph)
def test_method_nn_gives_poses_from_the_network(recorder):
    recorder.subscribe(PoseWithCovarianceStamped, '/echoloc/pose', RELIABLE)
    recorder.subscribe(DiagnosticArray, '/diagnostics', RELIABLE)

    def methods() -> set[str]:
        return {value.value for _, array in recorder.get('/diagnostics')
                for status in array.status if status.name.startswith('localizer: ')
                for value in status.values if value.key == 'method'}

    assert wait_for(lambda: len(recorder.get('/echoloc/pose')) >= 25 and methods(),
                    timeout_s=120.0), (
        f'{len(recorder.get("/echoloc/pose"))} poses in 120 s, methods {methods()}')
    # 'nn', not the physics fallback the localizer takes when the model cannot be used.
    assert methods() == {'nn'}


@launch_pytest.fixture
def two_process_graph(ros_env):
    return bringup(**{'one_process': 'false', 'localizer.target_latency_ms': '75.0'})


@pytest.mark.launch(fixture=two_process_graph)
def test_one_process_false_runs_each_node_in_its_own_executable(ros_env, recorder):
    recorder.subscribe(PoseWithCovarianceStamped, '/echoloc/pose', RELIABLE)
    assert wait_for(lambda: len(recorder.get('/echoloc/pose')) >= 25, timeout_s=120.0), (
        f'{len(recorder.get("/echoloc/pose"))} poses in 120 s')
    commands = echoloc_processes(ros_env['ROS_DOMAIN_ID']).values()
    executables = sorted(c.split('lib/echoloc/')[1].split()[0] for c in commands)
    # The default (test_bringup_launch.py) runs echo_localizer in their place.
    assert executables == ['driver', 'echo_processor', 'furniture_survey', 'localizer'], \
        executables
    # Each node of the process is itself, with the override given to it.
    got = ros2_param('get', '/localizer', 'target_latency_ms')
    assert 'Double value is: 75.0' in got.stdout, got.stdout + got.stderr
    got = ros2_param('get', '/echo_processor', 'decimation')
    assert 'Integer value is: 4' in got.stdout, got.stdout + got.stderr


@pytest.fixture
def fake_device(tmp_path):
    """`echoloc fake-device` on a pseudo-terminal, 10 frames a second, no IMU anywhere."""
    link = tmp_path / 'array'
    proc = subprocess.Popen([sys.executable, '-m', 'echoloc_ros.cli', 'fake-device', '--link',
                             str(link), '--position', *map(str, DEVICE_POSITION_M), '--yaw',
                             str(DEVICE_YAW_RAD), '--rate', '10'],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())['port'] == str(link)
        yield link
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@launch_pytest.fixture
def serial_graph(ros_env, fake_device):
    return bringup(**{'backend': 'serial', 'port': str(fake_device), 'driver.rate_hz': '10',
                      'echo_processor.expected_rate_hz': '10', 'localizer.expected_rate_hz': '10'})


@pytest.mark.launch(fixture=serial_graph)
def test_serial_backend_without_imu_gives_poses_where_the_device_is(recorder):
    recorder.subscribe(PoseWithCovarianceStamped, '/echoloc/pose', RELIABLE)
    assert wait_for(lambda: len(recorder.get('/echoloc/pose')) >= 10, timeout_s=90.0), (
        f'{len(recorder.get("/echoloc/pose"))} poses in 90 s')
    position = recorder.get('/echoloc/pose')[-1][1].pose.pose.position
    estimate_m = np.array([position.x, position.y, position.z])
    # Without an IMU the heading comes from the echoes, which cannot tell the truth from its
    # half-turn mirror about the room's centre: either is a right answer (the covariance holds
    # both), anything else is not.
    truth_m = np.array(DEVICE_POSITION_M)
    plan_m = load_room('default_room').vertices_m
    centre_m = np.array([*(plan_m.min(axis=0) + plan_m.max(axis=0)) / 2, truth_m[2]])
    errors_m = [np.linalg.norm(estimate_m - truth_m),
                np.linalg.norm(estimate_m - (2 * centre_m - truth_m))]
    assert min(errors_m) < 0.1, (estimate_m, truth_m, errors_m)


def test_rviz_without_rviz2_fails_before_starting_any_node(ros_env):
    try:
        get_package_prefix('rviz2')
        pytest.skip('rviz2 is installed here: rviz:=true would start it')
    except PackageNotFoundError:
        pass
    result = subprocess.run(['ros2', 'launch', 'echoloc', 'bringup.launch.py', 'rviz:=true'],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert 'rviz:=true but rviz2 is not installed' in output
    assert 'process started' not in output
    assert not echoloc_processes(ros_env['ROS_DOMAIN_ID'])


def test_echoloc_command_is_installed_beside_the_nodes():
    # bin/ of the package's install prefix: what sourcing the workspace puts on PATH.
    command = os.path.join(get_package_prefix('echoloc'), 'bin', 'echoloc')
    result = subprocess.run([command, 'hw-test', '--help'], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert '--port' in result.stdout
