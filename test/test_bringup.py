"""`echoloc bringup` as a user runs it: poses flow, Ctrl-C stops every node."""
import os
import signal
import subprocess
import sys
from pathlib import Path

from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy

from echoloc_ros.ros.graph import graph_specs
from ros_testing import wait_for


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_bringup_publishes_and_ctrl_c_leaves_no_process(ros_env, recorder):
    recorder.subscribe(PoseWithCovarianceStamped, '/echoloc/pose',
                       QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    proc = subprocess.Popen([sys.executable, '-m', 'echoloc_ros.cli', 'bringup'], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # The default graph: the echo processor and the localizer in one process.
        assert wait_for(lambda: len(_children(proc.pid)) == len(graph_specs()), timeout_s=20.0)
        nodes = _children(proc.pid)
        assert wait_for(lambda: recorder.get('/echoloc/pose'), timeout_s=60.0)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert 'stopped' in output
    # A node stops between callbacks: no callback runs on a context already shut down (rclpy's
    # own handler let a timer publish on it: "publisher's context is invalid" and a traceback).
    assert 'Traceback' not in output and 'context is invalid' not in output, output
    assert 'Exception in' not in output, output
    assert not [pid for pid in nodes if os.path.exists(f'/proc/{pid}')]
