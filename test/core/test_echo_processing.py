"""Matched filtering against the Cramer-Rao bound, plus the ping's design figures and input
validation."""

import numpy as np
import pytest
from scipy import signal

from echoloc_ros.core.chirp import Chirp, design_figures
from echoloc_ros.core.echo_processing import EchoProcessor, median_square
from echoloc_ros.sim.simulator import Scenario

FS_HZ = 250e3


def delayed(wave: np.ndarray, delay_s: float, n: int) -> np.ndarray:
    """``wave`` delayed by a fractional number of samples (exact for band-limited signals)."""
    freq = np.fft.rfftfreq(2 * n, 1 / FS_HZ)
    return np.fft.irfft(np.fft.rfft(wave, 2 * n) * np.exp(-2j * np.pi * freq * delay_s))[:n]


def test_tof_error_within_twice_the_cramer_rao_bound():
    chirp = Chirp()
    processor = EchoProcessor(chirp, FS_HZ, remove_direct=False)
    ping = chirp.samples(FS_HZ)
    rng = np.random.default_rng(0)
    n, amplitude, sigma = 3000, 1600.0, 100.0
    # CRLB with unknown amplitude and phase: sigma_tau = 1 / (2 pi B_rms sqrt(2E/N0)), B_rms
    # about the spectral centroid, 2E/N0 = sum(s^2) / sigma^2 for real white noise.
    b_rms = design_figures(chirp, FS_HZ, 343.0)['rms_bandwidth_hz']
    crlb_s = 1.0 / (2 * np.pi * b_rms * np.sqrt(np.sum((amplitude * ping) ** 2) / sigma ** 2))
    errors = []
    for _ in range(150):
        tau = 3e-3 + rng.uniform(0, 1 / FS_HZ)
        x = amplitude * delayed(ping, tau, n) + sigma * rng.standard_normal(n)
        features = processor.process(x[None])
        errors.append(features.tof_s[0] - tau)
    errors = np.array(errors)
    assert crlb_s < 2e-6
    assert np.std(errors) < 2.0 * crlb_s
    assert abs(np.mean(errors)) < 0.5 * crlb_s
    # An estimator cannot beat the bound by much (150 trials: std within ~12 %).
    assert np.std(errors) > 0.8 * crlb_s


def test_constant_fraction_and_peak_agree_on_clean_echo():
    chirp = Chirp()
    processor = EchoProcessor(chirp, FS_HZ, remove_direct=False)
    x = 500.0 * delayed(chirp.samples(FS_HZ), 4.321e-3, 4000)
    features = processor.process(np.vstack([x, 2 * x]))
    assert np.allclose(features.tof_s, 4.321e-3, atol=0.1e-6)
    assert np.allclose(features.tof_cfd_s, 4.321e-3, atol=2e-6)
    # Amplitudes are in input units per unit of the ping.
    assert np.abs(features.baseband[1]).max() == pytest.approx(
        2 * np.abs(features.baseband[0]).max(), rel=1e-3)
    assert np.abs(features.baseband[0]).max() == pytest.approx(500.0, rel=0.02)


def test_direct_path_is_removed_with_its_sidelobes(simulator, processor):
    position, yaw = np.array([2.0, 2.0, 0.22]), 0.3
    clean = simulator.clean_signals(position, yaw)
    paths = simulator.paths(position, yaw)
    floor = next(p for p in paths if p.surfaces == ('floor',))
    features = processor.process(clean)
    assert np.allclose(features.direct_tof_s, paths[0].delay_s, atol=0.1e-6)
    # The floor echo 0.44 m away, ~30 dB under the direct arrival, is the first echo.
    assert np.allclose(features.tof_s, floor.delay_s, atol=0.5e-6)
    # What is left of the direct arrival is far below the floor echo.
    times = features.times_s
    early = (times > paths[0].delay_s[0] + 0.3e-3) & (times < floor.delay_s[0] - 0.3e-3)
    peak = np.abs(features.baseband).max(axis=1)
    floor_level = floor.amplitude[0] * simulator.counts_per_unit
    assert np.all(np.abs(features.baseband[:, early]).max(axis=1) < 0.03 * floor_level)
    assert np.all(peak < 2 * floor_level)


@pytest.mark.parametrize('bad, match', [
    (np.full((4, 4000), np.nan), 'nan'),
    (np.where(np.arange(4000) == 7, np.inf, 0.0)[None].repeat(4, 0), 'inf'),
    (np.zeros(4000), 'ndim 1'),
    (np.zeros((4, 100)), '100 samples'),
    (np.zeros((0, 0)), 'empty'),
    (np.zeros((2, 4000), dtype=complex), 'complex'),
    (np.zeros((1000, 4000), dtype=np.int16),
     "1000 channels, but array 'square_4sensor' has 4 receivers"),
])
def test_bad_input_raises_naming_value(processor, bad, match):
    with pytest.raises(ValueError, match=match):
        processor.process(bad)


def test_frame_from_simulator_processes_to_expected_shapes(simulator, processor):
    frame = simulator.simulate([3.0, 2.0, 0.7], 1.0)
    features = processor.process(frame)
    n_bins = -(-simulator.n_samples // processor.decimation)
    assert features.baseband.shape == (4, n_bins)
    assert features.baseband.dtype == np.complex64
    assert features.envelope.dtype == np.float32
    assert features.bin_width_s == pytest.approx(16e-6)
    assert features.carrier_hz == 40e3
    assert np.all(features.snr_db > 20)


def test_chirp_samples_and_validation():
    chirp = Chirp()
    x = chirp.samples(FS_HZ)
    assert x.shape == (500,) and x.dtype == np.float64
    assert np.max(np.abs(x)) == pytest.approx(1.0)
    # The instantaneous frequency sweeps 35 -> 45 kHz.
    phase = np.unwrap(np.angle(signal.hilbert(Chirp(window='rect').samples(FS_HZ))))
    inst = np.diff(phase) * FS_HZ / (2 * np.pi)
    assert inst[50] == pytest.approx(36e3, rel=0.01)
    assert inst[450] == pytest.approx(44e3, rel=0.01)
    assert Chirp.from_dict(chirp.to_dict()) == chirp
    with pytest.raises(ValueError, match='130000'):
        Chirp(f1_hz=130e3).samples(FS_HZ)
    with pytest.raises(ValueError, match='chirp'):
        Chirp(kind='sine')
    with pytest.raises(ValueError, match='colour'):
        Chirp.from_dict({'colour': 'red'})
    assert Chirp(kind='hfm').samples(FS_HZ).shape == (500,)


def test_design_figures():
    figures = design_figures(Chirp(), FS_HZ, 343.4)
    assert figures['range_resolution_m'] == pytest.approx(343.4 / 2e4)
    assert figures['time_bandwidth'] == pytest.approx(20.0)
    # Hann taper: low sidelobes, main lobe about 6 cm of path wide (DESIGN.md).
    assert figures['peak_sidelobe_db'] < -35.0
    assert 343.4 * figures['mainlobe_width_s'] == pytest.approx(0.06, abs=0.01)
    # Barker-13: peak sidelobe 1/13 of the peak (-22.3 dB).
    barker = design_figures(Chirp(kind='barker', window='rect'), FS_HZ, 343.4)
    assert barker['peak_sidelobe_db'] == pytest.approx(20 * np.log10(1 / 13), abs=1.0)


def test_fft_plans_are_bounded(processor):
    """A stream of every frame length keeps only the last few plans."""
    from echoloc_ros.core.echo_processing import MAX_PLANS
    for n in range(4000, 4000 + 20 * 64, 64):
        processor.process(np.zeros((4, n), dtype=np.int16))
    assert len(processor._plans) == MAX_PLANS
    assert 4000 + 19 * 64 in processor._plans


@pytest.mark.parametrize('changes, match', [
    ({'duration_s': 1e6}, 'duration_s must be at most 0.1 s, got 1000000.0'),
    ({'f1_hz': 1e12}, 'at most 1e.06 Hz'),
    ({'f0_hz': float('nan')}, 'f0_hz must be positive and finite, got nan'),
    ({'window': 'kaiser'}, "unknown chirp window 'kaiser'"),
    ({'kind': 'x' * 1000}, 'chirp kind must be one of'),
])
def test_absurd_chirps_are_refused(changes, match):
    from echoloc_ros.core.chirp import Chirp
    with pytest.raises(ValueError, match=match):
        Chirp(**changes)


@pytest.mark.parametrize('name', ['/proc/self/status', '../config/arrays/square_4sensor',
                                  'square_4sensor.yaml', '', 'a' * 65])
def test_an_array_id_from_the_wire_is_a_name_never_a_path(name):
    from echoloc_ros.core.array_geometry import load_named_array
    with pytest.raises(ValueError, match='is not an array name'):
        load_named_array(name)
    assert load_named_array('square_4sensor').n_receivers == 4


def test_median_square_is_numpys_median_of_the_squares_to_the_bit():
    # The noise floor's median, from a partition of the envelope itself: odd and even
    # lengths, ties, a frame's length, values over many decades.
    rng = np.random.default_rng(4)
    for n in [1, 2, 3, 4, 7, 10, 2410, 2411]:
        for trial in range(20):
            values = np.abs(rng.normal(size=n) * 10.0 ** rng.uniform(-3, 4)).astype(np.float32)
            if trial % 4 == 0:
                values[rng.integers(0, n, size=max(1, n // 3))] = values[0]
            assert median_square(values) == np.median(np.square(values, dtype=np.float64))


def test_without_the_first_echo_every_other_field_is_the_same_to_the_bit(simulator, processor):
    # The localizer reads the baseband and the direct arrival alone: skipping the first echo
    # (in one process with it) must not change them, and must say the first echo is unknown.
    rng = np.random.default_rng(4)
    for snr_db in (20.0, 10.0):
        position = np.array([rng.uniform(1.0, 4.0), rng.uniform(1.0, 3.0), 0.3])
        samples = simulator.simulate(position, rng.uniform(-np.pi, np.pi),
                                     Scenario(snr_db=snr_db), rng)
        full = processor.process(samples)
        lean = processor.process(samples, first_echo=False)
        assert np.all(np.isfinite(full.tof_s)) and np.all(np.isfinite(full.noise_floor))
        for name in ('tof_s', 'tof_cfd_s', 'snr_db', 'noise_floor'):
            assert np.all(np.isnan(getattr(lean, name))), name
        for name in ('baseband', 'envelope', 'direct_tof_s', 'direct_amplitude'):
            assert np.array_equal(getattr(full, name), getattr(lean, name)), name
        for name in ('bin_width_s', 'start_s', 'carrier_hz', 'direct_residual_db'):
            assert getattr(full, name) == getattr(lean, name), name
