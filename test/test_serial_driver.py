"""The driver's serial backend against `echoloc fake-device` through a real pseudo-terminal."""
import json
import subprocess
import sys

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rcl_interfaces.msg import Log
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from echoloc.msg import EchoFrame
from echoloc_ros.ros.diagnostics import level_of
from echoloc_ros.ros.graph import GRAPH
from echoloc_ros.ros.process_graph import NodeProcesses
from ros_testing import wait_for

POSITION = (2.0, 1.5, 0.3)
YAW = 0.3


@pytest.fixture
def fake_device(tmp_path, request):
    """`echoloc fake-device` in its own process; parametrise with extra CLI arguments."""
    link = tmp_path / 'array'
    args = getattr(request, 'param', [])
    proc = subprocess.Popen([sys.executable, '-m', 'echoloc_ros.cli', 'fake-device',
                             '--link', str(link), '--position', *map(str, POSITION),
                             '--yaw', str(YAW), '--rate', '10', *args],
                            stdout=subprocess.PIPE, text=True)
    assert json.loads(proc.stdout.readline())['port'] == str(link)
    yield link
    proc.terminate()
    proc.wait(timeout=10)


def _graph(env, link, log_dir, nodes=('driver', 'echo_processor', 'localizer')):
    return NodeProcesses(
        specs=tuple(s for s in GRAPH if s.name in nodes), env=env, log_dir=log_dir,
        overrides={'driver': {'backend': 'serial', 'port': str(link), 'rate_hz': 10.0},
                   'echo_processor': {'expected_rate_hz': 10.0},
                   'localizer': {'heading_source': 'fixed', 'fixed_yaw_rad': YAW,
                                 'expected_rate_hz': 10.0}})


def _statuses(recorder, name):
    return [s for _, m in recorder.get('/diagnostics') for s in m.status if s.name == name]


def test_poses_flow_from_a_serial_array(ros_env, recorder, fake_device, tmp_path):
    recorder.subscribe(PoseWithCovarianceStamped, '/echoloc/pose',
                       QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    recorder.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=50))
    with _graph(ros_env, fake_device, tmp_path) as graph:
        assert wait_for(lambda: len(recorder.get('/echoloc/pose')) >= 10, timeout_s=60.0), (
            f"{len(recorder.get('/echoloc/pose'))} poses; last statuses: "
            + '; '.join(f'{s.name}: {s.message}' for s in
                        {s.name: s for _, m in recorder.get('/diagnostics')
                         for s in m.status}.values()))
        assert wait_for(lambda: _statuses(recorder, 'driver: Link'), timeout_s=5.0)
        assert not graph.exited()
    positions = np.array([[m.pose.pose.position.x, m.pose.pose.position.y,
                           m.pose.pose.position.z] for _, m in recorder.get('/echoloc/pose')])
    errors = np.linalg.norm(positions - POSITION, axis=1)
    assert np.median(errors) < 0.05, f'median error {100 * np.median(errors):.1f} cm'
    link = _statuses(recorder, 'driver: Link')[-1]
    assert link.hardware_id.startswith(f'serial:{fake_device}')
    assert level_of(link) == 0, link.message


@pytest.mark.parametrize('fake_device', [['--dead-channel', '2']], indirect=True)
def test_dead_channel_is_an_error_naming_it(ros_env, recorder, fake_device, tmp_path):
    recorder.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=50))
    with _graph(ros_env, fake_device, tmp_path, nodes=('driver',)):
        assert wait_for(lambda: any(level_of(s) == 2 for s in
                                    _statuses(recorder, 'driver: Receiver channels')),
                        timeout_s=30.0), f'logs in {tmp_path}'
    status = next(s for s in _statuses(recorder, 'driver: Receiver channels')
                  if level_of(s) == 2)
    assert status.message.startswith('channel 2 dead')


@pytest.mark.parametrize('fake_device', [['--disappear-at', '4', '--disappear-for', '2']],
                         indirect=True)
def test_unplug_and_replug_recovers(ros_env, recorder, fake_device, tmp_path):
    recorder.subscribe(EchoFrame, '/echoloc/echoes', qos_profile_sensor_data)
    recorder.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=100))
    recorder.subscribe(Log, '/rosout', QoSProfile(depth=100))
    with _graph(ros_env, fake_device, tmp_path, nodes=('driver',)) as graph:
        # Streaming, then an ERROR while unplugged, then streaming again (the device
        # reboots, so its sequence numbers restart from 0).
        assert wait_for(lambda: recorder.get('/echoloc/echoes'), timeout_s=30.0)
        assert wait_for(lambda: any(level_of(s) == 2 for s in
                                    _statuses(recorder, 'driver: Link')), timeout_s=15.0)
        unplugged = max(t for t, _ in recorder.get('/echoloc/echoes'))
        # The link logs through the driver's logger: its warning reaches /rosout.
        assert wait_for(lambda: any(
            m.name == 'driver' and m.level == Log.WARN
            and m.msg.startswith(f'echoloc serial {fake_device}: ')
            for _, m in recorder.get('/rosout')), timeout_s=10.0), [
                m.msg for _, m in recorder.get('/rosout')]
        assert wait_for(lambda: any(t > unplugged + 1.0 and m.seq < 20
                                    for t, m in recorder.get('/echoloc/echoes')),
                        timeout_s=15.0), f'no frames after replug; logs in {tmp_path}'
        assert wait_for(lambda: level_of(_statuses(recorder, 'driver: Link')[-1]) == 0,
                        timeout_s=10.0), _statuses(recorder, 'driver: Link')[-1].message
        assert not graph.exited()
