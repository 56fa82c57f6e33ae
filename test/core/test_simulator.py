"""The simulator against the physics it models: image-source delays, spreading plus ISO 9613-1
absorption, the speed of sound, determinism, noise level and configuration errors."""

import numpy as np
import pytest

from echoloc_ros.core.acoustics import air_absorption_db_per_m, speed_of_sound_mps
from echoloc_ros.core.array_geometry import array_from_dict, load_array
from echoloc_ros.core.room import Box, load_room, room_from_dict
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3
# Here first-order echoes are over 1 m of path apart at both test headings, so each can be
# timed on its own to a fraction of a sample (nearby echoes bias a fit by microseconds).
POSITION = np.array([1.70, 3.44, 0.50])
YAW = 0.4


def image_delays(simulator, position, yaw, surface, temperature_c=20.0):
    """Analytic first-order delays in the 6.0 x 4.5 x 2.8 m shoebox (Allen & Berkley 1979)."""
    emitter, receivers = simulator.array.to_world(position, yaw)
    image = emitter.copy()
    axis, plane = {'west': (0, 0.0), 'east': (0, 6.0), 'south': (1, 0.0), 'north': (1, 4.5),
                   'floor': (2, 0.0), 'ceiling': (2, 2.8)}[surface]
    image[axis] = 2 * plane - emitter[axis]
    return np.linalg.norm(receivers - image, axis=1) / speed_of_sound_mps(temperature_c)


def measured_delays(simulator, processor, signals, expected):
    features = processor.process(signals)
    # Start half a bin off so the fit has to find the echo.
    tau, amp = processor.fit_delays(features.baseband, features.times_s, expected + 8e-6)
    return tau, np.abs(amp)


@pytest.fixture(scope='module')
def first_order(room, array, chirp):
    """Only first-order reflections, so that each echo can be timed on its own."""
    return EchoSimulator(room, array, chirp, FS_HZ, max_order=1)


@pytest.mark.parametrize('surface', ['west', 'south', 'floor', 'north', 'ceiling', 'east'])
def test_first_order_delays_match_image_sources(simulator, first_order, processor, surface):
    expected = image_delays(simulator, POSITION, YAW, surface)
    paths = {p.surfaces: p for p in simulator.paths(POSITION, YAW)}
    assert np.allclose(paths[(surface,)].delay_s, expected, atol=1e-9)
    clean = first_order.clean_signals(POSITION, YAW)
    tau, _ = measured_delays(simulator, processor, clean, expected)
    assert np.all(np.abs(tau - expected) < 1.0 / FS_HZ)


def test_echo_amplitude_follows_spreading_and_iso9613(simulator, first_order, processor):
    # West wall at 1.7 m and east wall at 4.3 m: same material and angle, paths ~3.4 m and
    # ~8.6 m.
    clean = first_order.clean_signals(POSITION, 0.0)
    near_delay = image_delays(simulator, POSITION, 0.0, 'west')
    far_delay = image_delays(simulator, POSITION, 0.0, 'east')
    _, near = measured_delays(simulator, processor, clean, near_delay)
    _, far = measured_delays(simulator, processor, clean, far_delay)
    c = speed_of_sound_mps(20.0)
    r_near, r_far = near_delay * c, far_delay * c
    alpha = air_absorption_db_per_m(40e3, 20.0, 50.0)
    predicted = r_far / r_near * 10 ** (-alpha * (r_near - r_far) / 20.0)
    assert np.allclose(near / far, predicted, rtol=0.03)
    # Spreading alone gives ~2.5x; ISO 9613-1 over the extra 5.2 m adds ~6.9 dB (~5.6x).
    assert np.all(near / far > 1.8 * r_far / r_near)


def test_ten_degrees_moves_echoes_by_speed_ratio(simulator, first_order, processor):
    delays = {}
    for temperature in (20.0, 30.0):
        expected = image_delays(simulator, POSITION, YAW, 'west', temperature)
        clean = first_order.clean_signals(POSITION, YAW, temperature_c=temperature)
        delays[temperature], _ = measured_delays(simulator, processor, clean, expected)
    ratio = speed_of_sound_mps(20.0) / speed_of_sound_mps(30.0)
    assert np.all(np.abs(delays[30.0] - delays[20.0] * ratio) < 1.0 / FS_HZ)
    # The shift itself (about 50 samples for this 3.4 m path) is far above the tolerance.
    assert np.all(delays[20.0] - delays[30.0] > 20.0 / FS_HZ)


def test_same_seed_gives_byte_identical_frames(simulator):
    scenario = Scenario(snr_db=10.0, gain_mismatch_db=1.0, n_random_clutter=1)
    first = simulator.simulate(POSITION, YAW, scenario, np.random.default_rng(5))
    second = simulator.simulate(POSITION, YAW, scenario, np.random.default_rng(5))
    other = simulator.simulate(POSITION, YAW, scenario, np.random.default_rng(6))
    assert first.dtype == np.int16
    assert first.shape == (4, simulator.n_samples)
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() != other.tobytes()
    assert simulator.simulate(POSITION, YAW, Scenario(seed=3)).tobytes() == \
        simulator.simulate(POSITION, YAW, Scenario(seed=3)).tobytes()


def test_noise_follows_snr_definition(simulator):
    clean = simulator.clean_signals(POSITION, YAW)
    stds = []
    for snr_db in (30.0, 10.0):
        frame = simulator.simulate(POSITION, YAW, Scenario(snr_db=snr_db),
                                   np.random.default_rng(1))
        stds.append(np.std(frame - clean))
    # 20 dB less SNR is 10x more noise; each matches the documented level.
    assert stds[1] / stds[0] == pytest.approx(10.0, rel=0.05)
    assert stds[1] == pytest.approx(simulator.noise_std_counts(POSITION, YAW, 10.0), rel=0.03)


def test_dead_channel_and_gain_mismatch(simulator):
    clean = simulator.clean_signals(POSITION, YAW)
    frame = simulator.simulate(POSITION, YAW, Scenario(snr_db=20.0, dead_channel=2),
                               np.random.default_rng(2))
    noise_std = simulator.noise_std_counts(POSITION, YAW, 20.0)
    assert np.std(frame[2]) == pytest.approx(noise_std, rel=0.05)
    assert abs(np.corrcoef(frame[2], clean[2])[0, 1]) < 0.05
    mismatched = simulator.simulate(POSITION, YAW, Scenario(snr_db=60.0, gain_mismatch_db=3.0),
                                    np.random.default_rng(3))
    ratios = np.std(mismatched, axis=1) / np.std(clean, axis=1)
    assert np.ptp(20 * np.log10(ratios)) > 0.5


def test_direct_coupling_dominates_and_fits_int16(simulator):
    paths = simulator.paths(POSITION, YAW)
    direct = paths[0]
    walls = [p for p in paths if p.kind == 'room' and p.order == 1]
    assert direct.kind == 'direct'
    level_db = 20 * np.log10(direct.amplitude.max() / max(p.amplitude.max() for p in walls))
    # About 35 dB (DESIGN.md); it varies with the pose since the echoes do.
    assert 25.0 < level_db < 50.0
    frame = simulator.simulate(POSITION, YAW, Scenario(snr_db=20.0))
    assert 0.3 * 32767 < np.abs(frame).max() < 32767


def test_window_fits_the_farthest_wall(simulator, room, chirp):
    # 2 x 6 m at 10 degC below nominal plus the ping and 1 ms: ~38.6 ms.
    assert 0.035 < simulator.window_s < 0.040
    assert simulator.window_s > 2 * room.max_extent_m / speed_of_sound_mps(10.0)


def test_box_occludes_wall_and_reflects(array, chirp):
    room = load_room('default_room')
    sim = EchoSimulator(room, array, chirp, FS_HZ)
    panel = Box('panel', [0.3, 2.8, 0.0], [0.33, 4.1, 1.5], absorption=0.1)
    plain = {p.surfaces: p for p in sim.paths(POSITION, 0.0)}
    blocked = {p.surfaces: p for p in sim.paths(POSITION, 0.0, extra_boxes=[panel])}
    assert np.all(plain[('west',)].amplitude > 0)
    assert np.all(blocked[('west',)].amplitude == 0)
    face = blocked[('panel:+x',)]
    emitter, receivers = array.to_world(POSITION, 0.0)
    image = emitter * [1, 1, 1]
    image[0] = 2 * 0.33 - emitter[0]
    assert np.allclose(face.delay_s, np.linalg.norm(receivers - image, axis=1)
                       / speed_of_sound_mps(20.0))


def test_l_shaped_room_simulates(array, chirp):
    room = load_room('l_shaped_room')
    sim = EchoSimulator(room, array, chirp, FS_HZ)
    frame = sim.simulate([1.5, 4.0, 0.5], 0.0, Scenario(snr_db=20.0))
    assert frame.shape == (4, sim.n_samples)
    names = {p.surfaces for p in sim.paths([1.5, 4.0, 0.5], 0.0) if np.any(p.amplitude > 0)}
    # wall_3 is the inner wall x = 3 facing the array; wall_1 (x = 6) is hidden behind it.
    assert ('wall_3',) in names
    assert ('wall_1',) not in names


def test_pose_outside_room_raises(simulator):
    with pytest.raises(ValueError, match='not inside'):
        simulator.simulate([7.0, 1.0, 0.5], 0.0)
    with pytest.raises(ValueError, match='position_m'):
        simulator.simulate([1.0, np.nan, 0.5], 0.0)


def test_room_and_array_errors_name_the_field():
    base = dict(name='r', plan={'shoebox': {'width_m': 4, 'length_m': 3}}, height_m=2.5,
                materials={'walls': 'painted_plaster', 'floor': 'vinyl', 'ceiling': 0.1})
    assert room_from_dict(base).is_shoebox
    with pytest.raises(ValueError, match='height_m'):
        room_from_dict({**base, 'height_m': -1})
    with pytest.raises(ValueError, match='unobtainium'):
        room_from_dict({**base, 'materials': {**base['materials'], 'floor': 'unobtainium'}})
    with pytest.raises(ValueError, match='colour'):
        room_from_dict({**base, 'colour': 'blue'})
    with pytest.raises(ValueError, match='counter-clockwise'):
        room_from_dict({**base, 'plan': {'polygon': [[0, 0], [0, 3], [4, 3], [4, 0]]}})
    with pytest.raises(ValueError, match='default_room'):
        load_room('no_such_room')
    with pytest.raises(ValueError, match='receivers_m'):
        array_from_dict({'name': 'a', 'emitter_m': [0, 0, 0], 'receivers_m': [[0, 0]]})
    assert load_array('linear_4sensor').n_receivers == 4
