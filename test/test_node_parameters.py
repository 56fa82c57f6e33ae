"""A node given a parameter out of its range, or of the wrong type, says which and exits 2:
a named error, not a traceback."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize('assignment, expected', [
    ('tracker_accel_std_mps2:=0.0', 'tracker_accel_std_mps2 out of range Min: 0.01, Max: 50.0, '
                                    'value: 0.0'),
    ('tracker_memory_s:=600.0', 'tracker_memory_s out of range Min: 0.1, Max: 60.0'),
    ('target_latency_ms:=fast', "'target_latency_ms' to 'fast' of type 'STRING', expecting "
                                "type 'DOUBLE'"),
])
def test_bad_localizer_parameter_is_named_and_the_node_exits(ros_env, assignment, expected):
    proc = subprocess.run([sys.executable, '-m', 'echoloc_ros.nodes.localizer', '--ros-args',
                           '-p', assignment], env=ros_env, capture_output=True, text=True,
                          timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert expected in output, output
    assert 'Traceback' not in output, output
