"""`ros2 launch echoloc bringup.launch.py` on a real install: poses, diagnostics, parameters,
shutdown (launch_pytest, the real launch and launch_ros)."""
import os
import re
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy

from bringup_launch import SKIP_REASON, bringup, cpu_s, echoloc_processes, ros2_param
from echoloc.msg import EchoFrame
from echoloc_ros.ros.graph import GRAPH, ONE_PROCESS, graph_specs
from ros_testing import wait_for

launch_pytest = pytest.importorskip('launch_pytest', reason=SKIP_REASON)

WINDOW_S = 20.0
MIN_RATE_HZ = 20.0
# Filled while the graph runs, read after it has shut down.
seen = {'pids': {}, 'exits': {}}


@launch_pytest.fixture(scope='module')
def graph(ros_env):
    from launch.actions import RegisterEventHandler, SetLaunchConfiguration
    from launch.event_handlers import OnProcessExit
    description = bringup()
    # Launch sends SIGTERM 5 s after SIGINT. On a machine shared with other work the survey,
    # at niceness 10, can need longer to get the CPU to stop: give SIGINT the time, so that an
    # exit code other than 0 means the node failed to stop by itself.
    description.entities.insert(0, SetLaunchConfiguration('sigterm_timeout', '30'))

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
    node_pids = {cmdline.split('lib/echoloc/')[1].split()[0]: pid
                 for pid, cmdline in seen['pids'].items()}
    cpu_start_s = {node: cpu_s(pid) for node, pid in node_pids.items()}
    start = time.time()
    time.sleep(WINDOW_S)
    cpu_used_s = {node: cpu_s(pid) - cpu_start_s[node] for node, pid in node_pids.items()}

    def count(topic: str) -> int:
        return sum(start <= t < start + WINDOW_S for t, _ in recorder.get(topic))

    poses, frames = count('/echoloc/pose'), count('/echoloc/echoes')
    # The default graph runs the echo processor and the localizer in one process.
    cpu_ms = {'driver': 1e3 * cpu_used_s['driver'] / frames,
              ONE_PROCESS.executable: 1e3 * cpu_used_s[ONE_PROCESS.executable] / poses}
    print(f'over {WINDOW_S:.0f} s: {poses / WINDOW_S:.1f} poses/s from '
          f'{frames / WINDOW_S:.1f} frames/s; CPU ms per frame: '
          + ', '.join(f'{node} {ms:.1f}' for node, ms in cpu_ms.items()))
    # 20 poses a second is 50 ms of CPU per frame for each process of the pipeline. CPU time,
    # unlike the rate seen here, hardly depends on what else the machine runs; the rate itself
    # must not collapse (a stall, frames dropped wholesale).
    for node, ms in cpu_ms.items():
        assert ms <= 1e3 / MIN_RATE_HZ, f'{node}: {ms:.1f} ms of CPU per frame'
    assert poses >= 0.5 * frames, f'{poses} poses from {frames} frames in {WINDOW_S} s'
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
    assert len(seen['pids']) == len(graph_specs()), seen['pids']
    assert wait_for(lambda: not any(os.path.exists(f'/proc/{pid}') for pid in seen['pids']),
                    timeout_s=10.0), f'still running: {seen["pids"]}'
    assert not echoloc_processes(ros_env['ROS_DOMAIN_ID'])
    assert seen['exits'] == {spec.executable: 0 for spec in graph_specs()}
