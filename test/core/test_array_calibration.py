"""Array self-calibration: transducers 1 kHz off their file leave a direct-path residual that
the processor flags, and after calibrating on frames at other poses every receiver's first echo
is the first room echo again; a constant-height drive keeps its floor echo; the calibration
survives its file."""

import numpy as np
import pytest

from echoloc_ros.core.array_calibration import ArrayCalibration, DirectPathCalibrator
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor, direct_explained
from echoloc_ros.sim.model_error import Hardware
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario


@pytest.fixture(scope='module')
def world():
    room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
    hardware = Hardware.nominal(array)
    hardware.emitter_center_hz = 41e3
    hardware.receiver_center_hz[:] = [41e3, 40.8e3, 41.2e3, 41.1e3]
    hardware.receiver_bandwidth_hz[:] = 10.5e3
    return room, array, chirp, EchoSimulator(room, array, chirp), Scenario(hardware=hardware)


def calibrated(world, poses):
    room, array, chirp, sim, scenario = world
    processor = EchoProcessor(chirp, array=array)
    calibrator = DirectPathCalibrator(processor.calibration_window, sim.fs_hz,
                                      min_frames=len(poses), max_frames=len(poses), every=1)
    calibration = None
    rng = np.random.default_rng(3)
    for position, yaw in poses:
        calibration = calibrator.add(sim.simulate(position, yaw, scenario, rng)) or calibration
    processor.set_calibration(calibration)
    return processor


def first_room_echo_s(sim, position, yaw):
    delays = np.array([p.delay_s for p in sim.paths(position, yaw) if p.kind != 'direct'])
    heard = np.array([p.amplitude > 0 for p in sim.paths(position, yaw) if p.kind != 'direct'])
    return np.min(np.where(heard, delays, np.inf), axis=0)


def test_calibration_removes_the_residual_that_passed_for_the_floor(world):
    room, array, chirp, sim, scenario = world
    rng = np.random.default_rng(7)
    poses = [room.random_pose(rng) for _ in range(24)]
    tests = [room.random_pose(rng) for _ in range(8)]
    model = EchoProcessor(chirp, array=array)
    processor = calibrated(world, poses)
    frame_rng = np.random.default_rng(11)
    hits = []
    for position, yaw in tests:
        frame = sim.simulate(position, yaw, scenario, frame_rng)
        before, after = model.process(frame), processor.process(frame)
        assert not direct_explained(before), before.direct_residual_db
        assert direct_explained(after), after.direct_residual_db
        hits.append(np.abs(after.tof_s - first_room_echo_s(sim, position, yaw)) < 20e-6)
    assert np.mean(hits) >= 0.99, np.mean(hits)
    fitted = processor.calibration.fitted_response(chirp, array)
    # The pair of resonators seen as one squared: between the emitter's and receiver's.
    assert np.all((fitted['center_hz'] > 40.7e3) & (fitted['center_hz'] < 41.3e3))
    assert np.all(np.abs(fitted['delay_s']) < 2e-6)


def test_constant_height_drive_keeps_its_floor_echo(world):
    room, array, chirp, sim, scenario = world
    rng = np.random.default_rng(8)
    poses = [(np.array([*rng.uniform([1, 1], [5, 3.5]), 0.3]), rng.uniform(-np.pi, np.pi))
             for _ in range(24)]
    processor = calibrated(world, poses)
    position, yaw = np.array([3.1, 2.0, 0.3]), 0.7
    features = processor.process(sim.simulate(position, yaw, scenario,
                                              np.random.default_rng(1)))
    np.testing.assert_allclose(features.tof_s, first_room_echo_s(sim, position, yaw),
                               atol=20e-6)


def test_calibration_file_round_trip_and_mismatch_named(world, tmp_path):
    room, array, chirp, sim, scenario = world
    rng = np.random.default_rng(9)
    processor = calibrated(world, [room.random_pose(rng) for _ in range(4)])
    path = processor.calibration.save(tmp_path / 'square_4sensor.calibration.yaml')
    loaded = ArrayCalibration.load(path)
    np.testing.assert_allclose(loaded.template, processor.calibration.template, atol=0.01)
    assert loaded.n_frames == 4
    other = EchoProcessor(chirp, array=array)
    with pytest.raises(ValueError, match='array calibration has 2 channels; array '
                                         "'square_4sensor' has 4"):
        other.set_calibration(ArrayCalibration(loaded.template[:2], 250e3, 4))
    with pytest.raises(ValueError, match='measured at 192000.0 Hz; the processor samples at '
                                         '250000.0 Hz'):
        other.set_calibration(ArrayCalibration(loaded.template, 192e3, 4))
    with pytest.raises(ValueError, match=r"array calibration lacks \['template'\]"):
        ArrayCalibration.from_dict({'fs_hz': 250e3, 'n_frames': 3})
