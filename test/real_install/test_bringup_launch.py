"""`ros2 launch echoloc bringup.launch.py` on a real install: poses, diagnostics, parameters,
shutdown (launch_pytest, the real launch and launch_ros)."""
import os
import re
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy

from bringup_launch import SKIP_REASON, bringup, echoloc_processes, ros2_param
from echoloc.msg import EchoFrame
from echoloc_ros.graph import GRAPH
from ros_testing import wait_for

launch_pytest = pytest.importorskip('launch_pytest', reason=SKIP_REASON)

WINDOW_S = 20.0
# 20 poses/s from the driver's 25 frames/s.
MIN_POSE_SHARE = 0.8
# Filled while the graph runs, read after it has shut down.
seen = {'pids': {}, 'exits': {}}


@launch_pytest.fixture(scope='module')
def graph(ros_env):
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    description = bringup()

    def record(event, context):
        # The process is named after its executable: driver-1, ...
        seen['exits'][event.action.name.rsplit('-', 1)[0]] = event.returncode

    description.add_action(RegisterEventHandler(OnProcessExit(on_exit=record)))
    return description


@pytest.mark.launch(fixture=graph)
def test_poses_at_rate_and_diagnostics_ok_from_every_node(ros_env, recorder):
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    recorder.subscribe(PoseWithCovarianceStamped, '/echoloc/pose', reliable)
    recorder.subscribe(EchoFrame, '/echoloc/echoes', qos_profile_sensor_data)
    recorder.subscribe(DiagnosticArray, '/diagnostics', reliable)
    assert wait_for(lambda: recorder.get('/echoloc/pose'), timeout_s=90.0), 'no pose in 90 s'
    seen['pids'] = echoloc_processes(ros_env['ROS_DOMAIN_ID'])
    start = time.time()
    time.sleep(WINDOW_S)

    def rate_hz(topic: str) -> float:
        return sum(start <= t < start + WINDOW_S for t, _ in recorder.get(topic)) / WINDOW_S

    pose_hz, frame_hz = rate_hz('/echoloc/pose'), rate_hz('/echoloc/echoes')
    print(f'over {WINDOW_S:.0f} s: {pose_hz:.1f} poses/s from {frame_hz:.1f} frames/s')
    # A pose for at least 20 of the driver's 25 frames a second. Relative to the frames that
    # came, because on a machine shared with other work the simulated driver itself slows down.
    assert pose_hz >= MIN_POSE_SHARE * frame_hz, f'{pose_hz:.1f} poses/s, {frame_hz:.1f} frames/s'
    assert {msg.header.frame_id for _, msg in recorder.get('/echoloc/pose')} == {'map'}

    levels, warnings = {}, set()
    for t, array in recorder.get('/diagnostics'):
        if t >= start:
            for status in array.status:
                level = ord(status.level)
                levels.setdefault(status.name, set()).add(level)
                if level != 0:
                    warnings.add(f'{status.name}: {status.message}')
    print('diagnostics:', levels, 'not OK:', sorted(warnings))
    for spec in GRAPH:
        mine = {name: lv for name, lv in levels.items() if name.startswith(f'{spec.name}: ')}
        assert mine, f'no diagnostics from {spec.name}; got {sorted(levels)}'
        assert max(max(lv) for lv in mine.values()) <= 1, (spec.name, sorted(warnings))
    # OK, or a WARN only where the machine is too busy for the rates and the latency target
    # (it is shared with other work); never an ERROR or STALE, nor any other WARN.
    load_bound = re.compile(r'(Frequency too low\.|latency p95 [0-9.]+ ms above target '
                            r'[0-9.]+ ms)$')
    assert not [w for w in warnings if not load_bound.search(w)], sorted(warnings)


@pytest.mark.launch(fixture=graph)
def test_ros2_param_refuses_read_only_and_applies_live():
    got = ros2_param('get', '/localizer', 'method')
    assert 'String value is: physics' in got.stdout, got.stdout + got.stderr
    refused = ros2_param('set', '/localizer', 'method', 'nn')
    assert 'Setting parameter failed' in refused.stderr, refused.stdout + refused.stderr
    assert 'read-only parameter: method' in refused.stderr
    assert 'String value is: physics' in ros2_param('get', '/localizer', 'method').stdout

    applied = ros2_param('set', '/localizer', 'target_latency_ms', '80.0')
    assert 'Set parameter successful' in applied.stdout, applied.stdout + applied.stderr
    got = ros2_param('get', '/localizer', 'target_latency_ms')
    assert 'Double value is: 80.0' in got.stdout, got.stdout + got.stderr


@pytest.mark.launch(fixture=graph, shutdown=True)
def test_shutdown_stops_every_node_cleanly(ros_env):
    assert len(seen['pids']) == len(GRAPH), seen['pids']
    assert wait_for(lambda: not any(os.path.exists(f'/proc/{pid}') for pid in seen['pids']),
                    timeout_s=10.0), f'still running: {seen["pids"]}'
    assert not echoloc_processes(ros_env['ROS_DOMAIN_ID'])
    assert seen['exits'] == {spec.executable: 0 for spec in GRAPH}
