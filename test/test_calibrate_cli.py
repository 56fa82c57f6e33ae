"""`echoloc calibrate-array` on a recording of raw frames from an array whose transducers are off
their file: the calibration file it writes makes a fresh processor explain the direct arrival
from the first frame; a recording without frames is named."""
import json
import subprocess
import sys

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message

from echoloc_ros.ros import conversions
from echoloc_ros.core.array_calibration import ArrayCalibration
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor, direct_explained
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.ros.bag import BagWriter


def test_calibrate_writes_a_file_the_processor_starts_from(tmp_path):
    room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
    hardware = ModelError(resonance_offset_hz=1500, bandwidth_range_hz=(9e3, 15e3),
                          resonance_spread_hz=200, seed=4).draw_hardware(array)
    sim = EchoSimulator(room, array, chirp)
    scenario = Scenario(hardware=hardware)
    rng = np.random.default_rng(2)
    bag = BagWriter(tmp_path / 'drive')
    bag.add_topic('/echoloc/echoes', 'echoloc/msg/EchoFrame')
    for k in range(30):
        position, yaw = room.random_pose(rng)
        msg = conversions.echo_frame_msg(sim.simulate(position, yaw, scenario, rng),
                                         Time(sec=k), 'echoloc_array', k, array, chirp, 250e3)
        bag.write('/echoloc/echoes', k * 40_000_000, serialize_message(msg))
    bag.close()
    out = tmp_path / 'square_4sensor.calibration.yaml'
    run = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'calibrate-array',
                          str(tmp_path / 'drive'), '--out', str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report['frames'] == 30
    true_centre = 0.5 * (hardware.emitter_center_hz + hardware.receiver_center_hz)
    np.testing.assert_allclose(report['fitted']['center_hz'], true_centre, atol=400)

    processor = EchoProcessor(chirp, array=array)
    frame = sim.simulate(np.array([2.5, 2.0, 0.8]), 0.2, scenario, rng)
    assert not direct_explained(processor.process(frame))
    processor.set_calibration(ArrayCalibration.load(out))
    assert direct_explained(processor.process(frame))

    empty = tmp_path / 'empty'
    bag = BagWriter(empty)
    bag.add_topic('/echoloc/echoes', 'echoloc/msg/EchoFrame')
    bag.close()
    run = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'calibrate-array',
                          str(empty), '--out', str(tmp_path / 'x.yaml')],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert (f"echoloc calibrate-array: {empty} holds 0 frames of array 'square_4sensor' on "
            "/echoloc/echoes; need at least 24 (--min-frames)") in run.stderr
