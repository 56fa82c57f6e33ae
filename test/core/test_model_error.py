"""The model-error knobs change the simulated signal as physics says: a channel's delay is a
linear phase, an off-nominal resonance the ratio of two resonators, a tilt rotates the array
about its centre and a room surface off the file moves its echo by twice the offset."""

import numpy as np
import pytest

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.array_geometry import load_array, resonator_response
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.sim.model_error import Hardware, ModelError
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator

POSITION = np.array([2.2, 1.9, 0.6])
YAW = 0.3


@pytest.fixture(scope='module')
def simulator():
    return EchoSimulator(load_room('default_room'), load_array('square_4sensor'), Chirp())


def band_spectra(simulator, hardware):
    """Spectra of the nominal and the real array's clean signals over 37-43 kHz."""
    nominal = np.fft.rfft(simulator.clean_signals(POSITION, YAW), axis=1)
    real = np.fft.rfft(simulator.clean_signals(POSITION, YAW, hardware=hardware), axis=1)
    freq = np.fft.rfftfreq(simulator.n_samples, 1.0 / simulator.fs_hz)
    band = (freq > 37e3) & (freq < 43e3)
    return freq[band], nominal[:, band], real[:, band]


def test_channel_delay_is_a_linear_phase_on_that_channel_only(simulator):
    hardware = Hardware.nominal(simulator.array)
    hardware.delay_s[1] = 3e-6
    freq, nominal, real = band_spectra(simulator, hardware)
    np.testing.assert_allclose(real[1] / nominal[1], np.exp(-2j * np.pi * freq * 3e-6),
                               atol=1e-6)
    np.testing.assert_allclose(real[[0, 2, 3]], nominal[[0, 2, 3]], rtol=1e-9)


def test_resonance_off_nominal_is_the_ratio_of_the_resonators(simulator):
    hardware = Hardware.nominal(simulator.array)
    hardware.emitter_center_hz = 41e3
    hardware.receiver_center_hz[:] = 41.5e3
    hardware.receiver_bandwidth_hz[:] = 10e3
    freq, nominal, real = band_spectra(simulator, hardware)
    expected = (resonator_response(freq, 41e3, 12e3) * resonator_response(freq, 41.5e3, 10e3)
                / resonator_response(freq, 40e3, 12e3) ** 2)
    np.testing.assert_allclose(real / nominal, np.broadcast_to(expected, real.shape), atol=1e-6)


def test_tilt_rotates_the_array_about_its_origin():
    array = load_array('square_4sensor')
    hardware = Hardware.nominal(array)
    hardware.roll_rad = np.deg2rad(3.0)
    emitter, receivers = hardware.to_world(np.zeros(3), 0.0)
    _, level = array.to_world(np.zeros(3), 0.0)
    # Roll about x lifts the receivers on +y and lowers those on -y by y sin(roll).
    np.testing.assert_allclose(receivers[:, 2] - level[:, 2],
                               array.receivers_m[:, 1] * np.sin(np.deg2rad(3.0)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(receivers - emitter, axis=1),
                               np.linalg.norm(array.receivers_m - array.emitter_m, axis=1))


def test_surface_offsets_move_the_room_and_its_echoes():
    room = load_room('default_room')
    error = ModelError(surface_offset_m=0.03, seed=5)
    truth = error.draw_room(room)
    south, east, north, west, floor, ceiling = truth.offsets_m
    assert np.all(np.abs(truth.offsets_m) <= 0.03) and np.any(np.abs(truth.offsets_m) > 0.01)
    assert truth.room.width_m == pytest.approx(room.width_m + east - west)
    assert truth.room.length_m == pytest.approx(room.length_m + north - south)
    assert truth.room.height_m == pytest.approx(room.height_m + ceiling - floor)
    np.testing.assert_allclose(truth.origin_m, [west, south, floor])
    # The floor echo of an array at file height z comes from z - floor: timed by the processor.
    array, chirp = load_array('square_4sensor'), Chirp()
    position = np.array([3.0, 2.2, 0.3])
    processor = EchoProcessor(chirp, array=array)
    c = speed_of_sound_mps(room.temperature_c)
    for world, height in ((room, position[2]), (truth.room, position[2] - floor)):
        sim = EchoSimulator(world, array, chirp)
        shifted = position - (truth.origin_m if world is truth.room else 0.0)
        features = processor.process(sim.clean_signals(shifted, YAW))
        emitter, receivers = array.to_world(np.array([0, 0, height]), YAW)
        image = emitter * [1, 1, -1]
        np.testing.assert_allclose(features.tof_s, np.linalg.norm(receivers - image, axis=1) / c,
                                   atol=2e-6)


def test_draws_are_fixed_per_seed_and_bad_knobs_are_named():
    array = load_array('square_4sensor')
    error = ModelError(resonance_offset_hz=1500, bandwidth_range_hz=(9e3, 15e3), seed=2)
    a, b = error.draw_hardware(array), error.draw_hardware(array)
    assert a.summary() == b.summary()
    assert abs(a.emitter_center_hz - 40e3) <= 1500 and 9e3 <= a.emitter_bandwidth_hz <= 15e3
    np.testing.assert_allclose(a.receiver_center_hz, a.emitter_center_hz)
    with pytest.raises(ValueError, match='tilt_deg must be a finite number >= 0, got -1'):
        ModelError(tilt_deg=-1)
    with pytest.raises(ValueError, match=r'bandwidth_range_hz .* got \(15000.0, 9000.0\)'):
        ModelError(bandwidth_range_hz=(15e3, 9e3))


def test_the_air_is_drawn_per_world_about_the_temperature_told():
    """Each world's air is normal about the temperature told with the stated doubt: fixed per
    seed, different between seeds, and exactly as told with no doubt."""
    draws = np.array([ModelError(air_std_c=1.0, seed=seed).draw_air_c(20.0)
                      for seed in range(400)])
    assert ModelError(air_std_c=1.0, seed=7).draw_air_c(20.0) == draws[7]
    assert draws[0] != draws[1]
    # 400 draws: the mean within 5 standard errors (0.05 degC each), the std within 15 %.
    assert abs(np.mean(draws) - 20.0) < 0.25
    assert 0.85 < np.std(draws) < 1.15
    assert ModelError(seed=7).draw_air_c(20.0) == 20.0
    with pytest.raises(ValueError, match='air_std_c must be a finite number >= 0, got -0.5'):
        ModelError(air_std_c=-0.5)
