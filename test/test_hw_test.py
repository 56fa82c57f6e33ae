"""`echoloc hw-test` against the fake array on a real pty: a broken sensor, supply or frame is
a failure, never "ok"."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from echoloc_ros.device.fake_device import FakeArrayDevice
from echoloc_ros.device.hw_test import run_hw_test


def _hw_test(tmp_path, **device_kwargs) -> dict:
    device = FakeArrayDevice(link_path=str(tmp_path / 'echoloc_fake'), **device_kwargs)
    device.start()
    try:
        return {c.name: c for c in run_hw_test(device.path, timeout_s=1.0)}
    finally:
        device.stop()


def test_a_working_array_passes(tmp_path):
    checks = _hw_test(tmp_path)
    assert all(c.ok for c in checks.values()), {n: c.detail for n, c in checks.items()}


@pytest.mark.parametrize('kwargs, failing, detail', [
    ({'temperature_c': math.nan}, 'status', 'temperature nan C outside [-40, 125]'),
    ({'supply_v': math.inf}, 'status', 'supply inf V outside [3, 13]'),
    ({'supply_v': 0.0}, 'status', 'supply 0.0 V outside [3, 13]'),
    ({'frame_source': lambda seq: np.zeros((0, 2500), dtype=np.int16)}, 'frame',
     'empty frame: 0 channels x 2500 samples'),
])
def test_broken_readings_fail(tmp_path, kwargs, failing, detail):
    checks = _hw_test(tmp_path, **kwargs)
    assert not checks[failing].ok and detail in checks[failing].detail, checks[failing].detail
    assert all(c.ok for name, c in checks.items() if name != failing)


def test_the_command_says_fail_and_writes_valid_json(tmp_path):
    device = FakeArrayDevice(link_path=str(tmp_path / 'echoloc_fake'), temperature_c=math.nan)
    device.start()
    try:
        result = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'hw-test',
                                 '--port', device.path, '--json'], capture_output=True, text=True,
                                timeout=60)
    finally:
        device.stop()
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'FAIL  status' in result.stdout
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['status']['ok'] is False and report['status']['temperature_c'] is None
