"""The calibrated room's scale as one correlated term: a room larger than its file by a
fraction ``s`` moves a fix by ``s`` times its offset from the room's centre, along that offset
alone (not by a tolerance per surface); the file states that doubt as ``scale_std``, read,
checked and written back; the localizer's covariance carries it."""

from dataclasses import replace

import numpy as np
import pytest
import yaml

from echoloc_ros.core.paths import config_dir
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.room import load_room, room_from_dict, room_from_yaml
from echoloc_ros.core.room_calibration import RoomCalibrationResult, room_yaml
from echoloc_ros.core.room_tolerance import (room_covariance, scale_covariance,
                                             tolerance_covariance, with_room_tolerance)
from echoloc_ros.sim.simulator import EchoSimulator, Scenario


def default_room_dict():
    return yaml.safe_load((config_dir() / 'rooms' / 'default_room.yaml').read_text())


def test_scale_std_is_read_defaults_to_none_and_a_bad_one_is_named():
    assert load_room('default_room').scale_std == 0.0
    assert room_from_dict({**default_room_dict(), 'scale_std': 0.0018}).scale_std == 0.0018
    for bad in (-0.001, 0.2):
        with pytest.raises(ValueError, match=rf'scale_std must be a fraction in \[0, 0.05\], '
                                             rf'got {bad}'):
            room_from_dict({**default_room_dict(), 'scale_std': bad})
    with pytest.raises(ValueError, match=r'scale_std must be a fraction in .*, got nan'):
        replace(load_room('default_room'), scale_std=float('nan'))
    for bad, named in ((float('nan'), 'nan'), ('1 %', "'1 %'")):
        with pytest.raises(ValueError, match=rf'scale_std must be a finite number, got {named}'):
            room_from_dict({**default_room_dict(), 'scale_std': bad})


def test_the_calibrated_room_file_carries_its_scale_doubt():
    room = replace(load_room('default_room'), tolerance_m=0.0006, scale_std=0.0018)
    result = RoomCalibrationResult(room, np.zeros(6), np.full(6, 3e-4), np.full(6, 100),
                                   np.zeros(3))
    written = room_from_yaml(room_yaml('default_room', result))
    assert written.scale_std == pytest.approx(0.0018)
    assert written.tolerance_m == pytest.approx(0.0006)
    assert result.to_dict()['scale_std_pct'] == pytest.approx(0.18)


def test_the_scale_term_grows_from_the_centre_and_adds_to_the_tolerance():
    room = replace(load_room('default_room'), scale_std=0.002)
    centre = np.array([3.0, 2.25, 1.4])
    assert np.all(scale_covariance(room, centre) == 0.0)
    at = np.array([1.0, 1.0, 0.3])
    cov = scale_covariance(room, at)
    # Near the south-west corner and the floor: between the offset from the centre
    # (-2, -1.25, -1.1) and the nearer surfaces' (-3, -2.25, -1.4), a quarter of the way.
    m = np.array([-2.25, -1.5, -1.175])
    assert np.sqrt(np.diag(cov)) == pytest.approx(
        0.002 * np.sqrt(m ** 2 + 0.25 ** 2 * (4 * (m - np.array([-2, -1.25, -1.1]))) ** 2))
    assert np.all(np.linalg.eigvalsh(cov) >= -1e-15)
    farther = scale_covariance(room, np.array([0.3, 0.3, 0.1]))
    assert np.trace(farther) > np.trace(cov)
    # With a tolerance too, both terms; a file with neither adds nothing.
    both = replace(room, tolerance_m=0.001)
    np.testing.assert_allclose(room_covariance(both, at),
                               tolerance_covariance(both, at) + cov)
    estimate = Estimate(position_m=at, covariance_m2=1e-8 * np.eye(3),
                        speed_of_sound_mps=343.0, confidence=1.0, score=0.0, n_echoes=6)
    assert with_room_tolerance(estimate, load_room('default_room')) is estimate
    np.testing.assert_allclose(with_room_tolerance(estimate, room).covariance_m2,
                               estimate.covariance_m2 + cov)


def test_a_room_larger_than_its_file_moves_the_fix_by_the_scale_times_its_offset(
        array, chirp, processor):
    """The room 0.5 % larger (or smaller) than the file about its centre (2.8 degC of air as
    a ruler): the fix in the file's room is off by 5-11 mm, 0.5 % of its offset from the
    centre moved a quarter of the way toward its nearer surfaces' (the speed of sound the
    localizer fits takes up most of the scale, not all): the scale term's mean response, and
    within about one of its standard deviations."""
    file_room = load_room('default_room')
    centre = np.append(file_room.vertices_m.mean(axis=0), 0.5 * file_room.height_m)
    localizer = PhysicsLocalizer(file_room, array, chirp, processor=processor)
    told = replace(file_room, scale_std=0.005)
    for k, position in enumerate(([1.2, 1.0, 0.4], [4.8, 3.4, 0.6], [1.5, 3.6, 0.35])):
        s = (-1) ** k * 0.005
        larger = replace(file_room, vertices_m=(1.0 + s) * file_room.vertices_m,
                         height_m=(1.0 + s) * file_room.height_m)
        simulator = EchoSimulator(larger, array, chirp)
        # The pose in the larger room, and where it is in the file's frame (centres aligned).
        truth = np.array(position) * (1.0 + s)
        in_file_frame = truth - s * centre
        frame = simulator.simulate(truth, 0.3, Scenario(snr_db=30.0, seed=k))
        fix = localizer.localize(processor.process(frame), 0.3, file_room.temperature_c)
        error = fix.position_m - in_file_frame
        cov = scale_covariance(told, in_file_frame)
        assert np.linalg.norm(error) > 0.004
        # The term's mean response: its larger eigenvector, scale_std times m.
        values, vectors = np.linalg.eigh(cov)
        response = np.sqrt(values[2]) * vectors[:, 2] * np.sign(vectors[:, 2] @ error)
        np.testing.assert_allclose(error, response, atol=0.0012)
        # With 0.2 mm of the fix's own (a 30 dB fix's), inside the 95 % ellipsoid
        # (chi-square, 3 degrees of freedom: 7.81).
        published = cov + 0.0002 ** 2 * np.eye(3)
        assert error @ np.linalg.solve(published, error) < 7.81
