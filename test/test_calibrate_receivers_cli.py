"""`echoloc calibrate-receivers` on a recording of the running graph (echo features and the
poses it published, no pose known) from an array whose receivers stand up to 0.5 mm off their
file: the array file it writes has them closer to where they are; a recording without poses,
or with too few echoes, is named."""
import json
import subprocess
import sys

import numpy as np
import pytest
from recording_testing import write_recording

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.sim.model_error import ModelError

# The recordings' poses and noise.
SEED = 6
# The command localizes every frame again: a subprocess over a simulated drive.
pytestmark = pytest.mark.long


def calibrate(bag, out, *more):
    return subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'calibrate-receivers',
                           str(bag), '--out', str(out), *more], capture_output=True, text=True,
                          timeout=300)


def test_calibrate_receivers_writes_the_phase_centres(tmp_path):
    array = load_array('square_4sensor')
    hardware = ModelError(receiver_offset_m=0.0005, seed=3).draw_hardware(array)
    write_recording(tmp_path / 'drive', hardware, 50, SEED)
    out = tmp_path / 'array_now.yaml'
    run = calibrate(tmp_path / 'drive', out)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report['out'] == str(out) and report['frames']['used'] == 50
    assert len(report['passes']) == 2 and report['n_echoes'] >= 50
    now = load_array(out)
    # The frames name the array: the written file keeps its name.
    assert now.name == array.name
    # The phases cannot see a shift common to every receiver: compare without it.
    truth = hardware.receivers_m - hardware.receivers_m.mean(axis=0)
    before = array.receivers_m - array.receivers_m.mean(axis=0) - truth
    after = now.receivers_m - now.receivers_m.mean(axis=0) - truth
    rms_before, rms_after = (float(np.sqrt(np.mean(e ** 2))) for e in (before, after))
    assert rms_before > 0.15e-3
    assert rms_after < 0.3 * rms_before, (rms_before, rms_after)
    offsets = np.array(report['offsets_mm']) * 1e-3
    np.testing.assert_allclose(now.receivers_m, array.receivers_m + offsets, atol=2e-6)
    assert np.all(np.array(report['std_mm']) > 0)


def test_calibrate_receivers_names_what_is_missing(tmp_path):
    missing = calibrate(tmp_path / 'nowhere', tmp_path / 'x.yaml')
    assert missing.returncode != 0
    assert 'nowhere' in missing.stderr and 'is not a directory' in missing.stderr
    hardware = ModelError(receiver_offset_m=0.0005, seed=3).draw_hardware(
        load_array('square_4sensor'))
    write_recording(tmp_path / 'unposed', hardware, 3, SEED, poses=False)
    unposed = calibrate(tmp_path / 'unposed', tmp_path / 'y.yaml')
    assert unposed.returncode != 0
    assert "'features': 3, 'poses': 0" in unposed.stderr, unposed.stderr
    write_recording(tmp_path / 'short', hardware, 3, SEED)
    short = calibrate(tmp_path / 'short', tmp_path / 'y.yaml')
    assert short.returncode != 0
    assert 'isolated echoes collected; need at least 50' in short.stderr, short.stderr
    absent = calibrate(tmp_path / 'short', tmp_path / 'y.yaml', '--array-calibration',
                       str(tmp_path / 'none.yaml'))
    assert absent.returncode != 0
    assert 'none.yaml' in absent.stderr and 'echoloc calibrate-array' in absent.stderr
    assert not (tmp_path / 'y.yaml').exists()
