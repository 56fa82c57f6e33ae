"""Receiver phase-centre calibration: receivers drawn up to 0.5 mm off the array file are
found, from the carrier phases of isolated echoes at known poses, within a small fraction of
that (up to their common shift, which the phases cannot see)."""

from dataclasses import replace

import numpy as np
import pytest
import yaml
from scipy.stats import chi2

from echoloc_ros.core.array_geometry import array_from_dict
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.receiver_calibration import (ReceiverCalibration, array_yaml,
                                                   calibrated_from_fixes, calibrated_localizer,
                                                   localized)
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.simulator import Scenario


@pytest.fixture(scope='module')
def drawn(room, array, chirp, processor, simulator):
    hardware = ModelError(receiver_offset_m=0.0005, seed=5).draw_hardware(array)
    frames = [(processor.process(frame), position, yaw) for _, frame, position, yaw, _, _ in
              random_frames(simulator, Scenario(snr_db=20.0, hardware=hardware), 40, seed=11)]
    localizer = PhysicsLocalizer(room, array, chirp, processor=processor)
    offsets = hardware.receivers_m - array.receivers_m
    return localizer, frames, offsets - offsets.mean(axis=0), offsets


def test_the_phase_centres_are_found_within_a_twentieth_of_a_millimetre(drawn):
    localizer, frames, truth, _ = drawn
    calibrated, result = calibrated_localizer(localizer, frames)
    assert np.sqrt(np.mean(truth ** 2)) > 1e-4
    assert np.max(np.abs(result.offsets_m - truth)) < 5e-5
    assert np.allclose(result.offsets_m.mean(axis=0), 0.0, atol=1e-9)
    assert np.all(result.std_m < 5e-5)
    assert np.allclose(calibrated.array.receivers_m,
                       localizer.array.receivers_m + result.offsets_m)


def test_the_file_array_is_found_unmoved(room, array, chirp, processor, simulator):
    localizer = PhysicsLocalizer(room, array, chirp, processor=processor)
    frames = [(processor.process(frame), position, yaw) for _, frame, position, yaw, _, _ in
              random_frames(simulator, Scenario(snr_db=20.0), 15, seed=12)]
    result = calibrated_localizer(localizer, frames)[1]
    assert np.max(np.abs(result.offsets_m)) < 3e-5


def test_too_few_echoes_are_named(drawn):
    localizer, frames, _, _ = drawn
    calibration = ReceiverCalibration(localizer)
    calibration.add(*frames[0])
    with pytest.raises(ValueError, match='isolated echoes collected; need at least 50'):
        calibration.solve()


def test_at_the_localizers_own_fixes_the_phase_centres_are_found_but_for_a_turn(drawn):
    # No pose known: pass one at the file array's fixes, pass two at the calibrated array's.
    localizer, frames, truth, _ = drawn
    fixed = localized(localizer, frames[:30], np.deg2rad(1.0))
    assert len(fixed) == 30
    _, result, passes = calibrated_from_fixes(localizer, fixed, 2, np.deg2rad(1.0))
    assert [p['echoes'] > 50 for p in passes] == [True, True]
    # A turn of every receiver about the array's axis is a heading, which the fixes refine:
    # the phases at them cannot see it. Compare without it.
    arm = localizer.array.receivers_m - localizer.array.receivers_m.mean(axis=0)
    turn = np.stack([-arm[:, 1], arm[:, 0], np.zeros(len(arm))], axis=1)
    error = result.offsets_m - truth
    error -= np.sum(turn * error) / np.sum(turn ** 2) * turn
    assert np.sqrt(np.mean(error ** 2)) < 0.1 * np.sqrt(np.mean(truth ** 2))
    with pytest.raises(ValueError, match='passes must be >= 1, got 0'):
        calibrated_from_fixes(localizer, fixed, 0)


def test_the_array_file_written_keeps_its_name_and_moves_its_receivers(drawn, array):
    localizer, frames, _, _ = drawn
    _, result = calibrated_localizer(localizer, frames)
    written = array_from_dict(yaml.safe_load(array_yaml('square_4sensor', result)))
    assert written.name == array.name
    np.testing.assert_allclose(written.receivers_m, array.receivers_m + result.offsets_m,
                               atol=1e-6)
    np.testing.assert_array_equal(written.emitter_m, array.emitter_m)
    # The doubt the calibration achieved, and of the common shift it cannot see the larger of
    # the file's and the file's error it measured (the shipped array's own is none).
    np.testing.assert_allclose(written.position_std_m, result.std_m, atol=1e-7)
    measured = result.spread_m / 2.0 * np.sqrt(9 / 7)
    np.testing.assert_allclose(written.common_std_m, measured, atol=1e-7)
    assert measured > 1e-4
    told = replace(array, position_std_m=4e-4)
    np.testing.assert_allclose(result.array(told).common_std_m, 2e-4)
    np.testing.assert_allclose(result.array(told).position_std_m, result.std_m)


def test_the_stated_doubt_covers_the_calibrations_real_error(drawn):
    """Receivers drawn within +-0.5 mm of a file that states none, calibrated at known poses:
    the offsets' error against the drawn receivers, their common shift included (the phases
    cannot see it), lies within the stated doubt as a draw of it would (its squared distance
    in the stated covariance below chi-square's 99 % point of 12; measured 12.7). Before
    (stop 33) each offset stated its least squares' std (micrometres) and the common shift the
    file's (none): 2.8e4; without the common shift's share 904, without the floor
    (RESOLUTION_M) 201."""
    localizer, frames, _, offsets = drawn
    calibrated, result = calibrated_localizer(localizer, frames)
    error = (result.offsets_m - offsets).ravel()
    common = calibrated.array.common_std_m
    covariance = (np.diag(calibrated.array.position_std_m.ravel() ** 2)
                  + np.kron(np.ones((4, 4)), np.diag(common ** 2)))
    assert np.linalg.norm(offsets.mean(axis=0)) > 1e-4
    assert error @ np.linalg.solve(covariance, error) < chi2.ppf(0.99, 12)


def test_with_the_array_calibrated_the_equalisers_advance_is_not_taken_for_an_offset(
        room, array, chirp, simulator):
    """The equaliser maps each channel's direct arrival onto the file's, delay included, so a
    receiver 0.5 mm farther from the emitter has all its echoes advanced by 0.5 mm of path: the
    phases see ``g - u / c``, which the calibration models (equaliser_advance). Afterwards the
    processor reads the calibrated array (equalised_with) and the advance is gone."""
    from echoloc_ros.core.echo_processing import EchoProcessor
    from echoloc_ros.core.receiver_calibration import equaliser_advance, equalised_with
    from echoloc_ros.offline.evaluation import self_calibrate
    hardware = ModelError(receiver_offset_m=0.0005, seed=5).draw_hardware(array)
    scenario = Scenario(snr_db=20.0, hardware=hardware)
    processor = EchoProcessor(chirp, simulator.fs_hz, array=array)
    processor.set_calibration(self_calibrate(simulator, processor, scenario, 24, seed=3))
    frames = [(processor.process(frame), position, yaw) for _, frame, position, yaw, _, _ in
              random_frames(simulator, scenario, 40, seed=11)]
    localizer = PhysicsLocalizer(room, array, chirp, processor=processor)
    # The receivers lie in the emitter's plane: their common shift in it moves each direct
    # path by its own amount and is seen; the vertical one is not (held at zero).
    truth = hardware.receivers_m - array.receivers_m
    truth[:, 2] -= truth[:, 2].mean()
    assert np.max(np.abs(truth.mean(axis=0)[:2])) > 5e-5
    advance, gradient = equaliser_advance(localizer)
    np.testing.assert_allclose(advance, 0.0, atol=1e-15)
    # 0.5 mm along the direct path is 1.5 us: a tenth of the carrier's period.
    assert np.max(np.abs(gradient @ np.ones(3))) * 5e-4 > 1e-6
    calibrated, result = calibrated_localizer(localizer, frames)
    assert np.max(np.abs(result.offsets_m - truth)) < 5e-5
    equalised_with(processor, calibrated.array)
    assert processor.array is calibrated.array
    advance, _ = equaliser_advance(localizer)
    assert np.max(np.abs(advance)) > 5e-7
    assert np.max(np.abs(equaliser_advance(calibrated)[0])) < 1e-15
    with pytest.raises(ValueError, match='is not the processor'):
        equalised_with(processor, array_from_dict({**yaml.safe_load(array_yaml(
            'square_4sensor', result)), 'receivers_m': [[0.05, 0.0, 0.0], [-0.05, 0.0, 0.0]],
            'gains': [1.0, 1.0], 'position_std_m': 0.0}))


def test_a_tilt_the_imu_reports_is_not_taken_for_receivers_moved(room, array, chirp,
                                                                 processor, simulator):
    """An array tilted up to 1 deg (the receivers 7 cm out move up to 1.2 mm up or down) and
    its receivers 0.5 mm off the file: told the tilt while calibrating, the offsets are found
    in the array's own frame, the tilt left out; not told it, they take it up as heights (and a
    localizer told the IMU's tilt too counts it twice)."""
    hardware = ModelError(receiver_offset_m=0.0005, tilt_deg=1.0, seed=5).draw_hardware(array)
    tilt = (hardware.roll_rad, hardware.pitch_rad)
    assert np.rad2deg(np.max(np.abs(tilt))) > 0.5
    drawn = random_frames(simulator, Scenario(snr_db=20.0, hardware=hardware), 40, seed=11)
    frames = [(processor.process(frame), position, yaw) for _, frame, position, yaw, _, _
              in drawn]
    localizer = PhysicsLocalizer(room, array, chirp, processor=processor)
    truth = hardware.receivers_m - array.receivers_m
    truth -= truth.mean(axis=0)
    told = calibrated_localizer(localizer, [(*f, tilt) for f in frames])[1]
    assert np.max(np.abs(told.offsets_m - truth)) < 5e-5
    level = calibrated_localizer(localizer, frames)[1]
    assert np.max(np.abs(level.offsets_m - truth)) > 3e-4
    # Localized again (the passes without known poses), each frame keeps its tilt.
    again = localized(localizer.with_array(told.array(array)), [(*f, tilt) for f in frames[:3]])
    assert [kept for *_, kept in again] == [tilt] * 3
