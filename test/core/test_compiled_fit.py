"""The echo processor's delay fit and direct removal, and a fix's residual floor, path misfit
and covariance, compiled: each against the numpy form it replaced, written out here (the
same arithmetic in another order: equal to rounding); the processor's transform length."""

import numpy as np
import pytest

from echoloc_ros.core.acoustics import air_absorption_db_per_m
from echoloc_ros.core.delay_fit import subtract_echoes
from echoloc_ros.core.echo_processing import DIRECT_RESIDUAL_S, EchoProcessor
from echoloc_ros.core.physics.config import N_THETA, YAW
from echoloc_ros.core.physics.covariance import Covariance
from echoloc_ros.core.physics.localizer import PhysicsLocalizer

from dev_frames_testing import posed_frames

FS_HZ = 250e3


def _fit_delays_as_before(processor: EchoProcessor, baseband, times_s, guess_s):
    """:meth:`EchoProcessor.fit_delays` as numpy computed it."""
    dt = times_s[1] - times_s[0]
    half, steps, model, norm = processor._delay_grid(dt)
    valid = np.isfinite(guess_s)
    last = times_s.size - half - 1
    rows = np.arange(baseband.shape[0])
    centre = np.clip(np.rint((np.where(valid, guess_s, 0.0) - times_s[0]) / dt).astype(int),
                     half, last)
    near = np.clip(centre[:, None] + np.arange(-2, 3), half, last)
    centre = near[rows, np.argmax(np.abs(baseband[rows[:, None], near]), axis=1)]
    idx = centre[:, None] + np.arange(-half, half + 1)
    window = baseband[rows[:, None], idx]
    tau_grid = times_s[centre][:, None] + steps
    power = np.abs(window @ model) ** 2 / norm
    best = np.clip(np.argmax(power, axis=1), 1, steps.size - 2)
    y0, y1, y2 = power[rows, best - 1], power[rows, best], power[rows, best + 1]
    denom = y0 - 2 * y1 + y2
    offset = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, 1.0), 0.0)
    tau = tau_grid[rows, best] + np.clip(offset, -1.0, 1.0) * (steps[1] - steps[0])
    g = processor.point_response(times_s[idx] - tau[:, None])
    amp = np.sum(np.conj(g) * window, axis=1) / np.sum(np.abs(g) ** 2, axis=1)
    return np.where(valid, tau, np.nan), np.where(valid, amp, 0.0)


def test_the_compiled_delay_fit_is_the_numpy_one(room, simulator, processor):
    """Direct arrivals, first echoes, guesses off by up to two bins, at the window's edges,
    and NaN (skipped)."""
    rng = np.random.default_rng(5)
    checked = 0
    for samples, _ in posed_frames(room, simulator, 4, 10.0, 43):
        features = processor.process(samples)
        times = features.times_s
        for guess in (features.direct_tof_s, features.tof_s,
                      features.tof_s + rng.uniform(-2, 2, 4) * features.bin_width_s,
                      np.array([np.nan, 0.0, times[-1], times[7]])):
            tau, amp = processor.fit_delays(features.baseband, times, guess)
            tau0, amp0 = _fit_delays_as_before(processor, features.baseband, times, guess)
            np.testing.assert_array_equal(np.isnan(tau), np.isnan(guess))
            np.testing.assert_allclose(tau, tau0, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(amp, amp0, rtol=1e-9)
            checked += np.count_nonzero(np.isfinite(guess))
    assert checked >= 50


def _direct_residual_db_as_before(processor: EchoProcessor, envelope, times, direct_tof,
                                  direct_amp) -> float:
    """:meth:`EchoProcessor._direct_residual_db` as numpy computed it."""
    heard = np.isfinite(direct_tof) & (direct_amp > 0)
    if not np.any(heard):
        return float('nan')
    limit = np.where(heard, direct_tof, 0.0) + DIRECT_RESIDUAL_S
    last = max(int(np.searchsorted(times, np.max(limit))), 1)
    near = (times[None, :last] < limit[:, None]) & heard[:, None]
    residual = np.max(np.where(near, envelope[:, :last], 0.0), axis=1)
    peak = np.where(heard, direct_amp * processor._g_peak, 1.0)
    return float(20.0 * np.log10(max(np.max(residual[heard] / peak[heard]), 1e-12)))


def test_the_compiled_direct_residual_is_the_numpy_one_to_the_bit(room, simulator, processor):
    """Frames at 20 and 0 dB, with channels that heard no direct arrival (NaN, 0), one that
    arrives before bin 0, a NaN in the envelope, and none heard at all."""
    cases = 0
    for snr_db, seed in ((20.0, 45), (0.0, 46)):
        for samples, _ in posed_frames(room, simulator, 3, snr_db, seed):
            features = processor.process(samples, first_echo=False)
            times, envelope = features.times_s, features.envelope
            tof, amp = features.direct_tof_s, features.direct_amplitude
            spoiled = envelope.copy()
            spoiled[2, 3] = np.nan
            for case in ((envelope, tof, amp),
                         (envelope, np.array([np.nan, tof[1], tof[2], tof[3]]), amp),
                         (envelope, tof, np.array([amp[0], 0.0, amp[2], amp[3]])),
                         (envelope, np.array([-1e-3, tof[1], tof[2], tof[3]]), amp),
                         (spoiled, tof, amp),
                         (envelope, np.full(4, np.nan), amp)):
                got = processor._direct_residual_db(case[0], times, *case[1:])
                expected = _direct_residual_db_as_before(processor, case[0], times, *case[1:])
                assert np.array_equal(got, expected, equal_nan=True), (got, expected)
                cases += 1
    assert cases == 36
    assert np.isnan(processor._direct_residual_db(spoiled, times, tof, amp))


def test_the_compiled_direct_removal_is_the_numpy_one(room, simulator, processor):
    features = processor.process(posed_frames(room, simulator, 1, 20.0, 44)[0][0],
                                 first_echo=False)
    rng = np.random.default_rng(6)
    baseband = (rng.normal(size=(4, 600)) + 1j * rng.normal(size=(4, 600))).astype(np.complex64)
    times = np.arange(600) * features.bin_width_s
    tau = features.direct_tof_s + np.array([0.0, 1e-3, 2e-3, 3e-3])
    amp = np.array([1.0, -2.0j, 0.5 + 0.5j, 3.0])
    got = baseband.copy()
    subtract_echoes(got, times, tau, amp, 10, 590, processor._g, processor._g_start,
                    processor._g_step)
    expected = baseband.copy()
    expected[:, 10:590] -= amp[:, None] * processor.point_response(times[None, 10:590]
                                                                   - tau[:, None])
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got[:, :10], baseband[:, :10])
    np.testing.assert_array_equal(got[:, 590:], baseband[:, 590:])
    assert np.abs(got - baseband)[:, 10:590].max() > 0.5


@pytest.mark.parametrize('n_samples', [2 * 500, 4000, 9643, 9644, 12500])
def test_the_forward_transform_is_a_length_the_real_transform_is_fast_at(processor, n_samples):
    """5-smooth (pocketfft's real transform has no radix-7 or -11 pass), a whole number of
    decimated bins on each side of the carrier, and long enough for the ping to wrap into
    nothing the frame holds."""
    n_fft = processor._plan(n_samples)[0]
    rest = n_fft
    for radix in (2, 3, 5):
        while rest % radix == 0:
            rest //= radix
    assert rest == 1
    assert n_fft % (2 * processor.decimation) == 0
    assert n_fft >= n_samples + processor._ping.size + 256


@pytest.fixture(scope='module')
def final_fits(room, array, chirp, simulator, processor):
    """Final fits (the final model, from the search's best candidate) of frames at 20 and
    10 dB: ``(model, frame, tau, amp, coef)`` each."""
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
    fits = []
    for snr_db, seed in ((20.0, 45), (10.0, 46)):
        for samples, yaw in posed_frames(room, simulator, 3, snr_db, seed):
            proposal = localizer.propose(processor.process(samples), yaw, None,
                                         np.deg2rad(1.0))
            fr, theta = proposal.frame, proposal.thetas[:1]
            model, valid = localizer._final_model(fr, theta)
            free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
            fit = model._newton(fr, theta, valid, free, 3)
            fits.append((model, fr, fit.tau[0], fit.amp[0], fit.coef[0]))
    return fits


def _residual_floor_as_before(model, fr, tau, amp, coef):
    """:meth:`Evidence._residual_floor` and :meth:`Evidence._path_misfit` as numpy computed
    them."""
    features = fr.features
    dt = features.bin_width_s
    fitted = model.synthesise(fr, tau, amp, coef)
    residual = np.abs(features.baseband - fitted) ** 2 * fr.weights[:, None]
    first = min(max(int(np.ceil((fr.t_min - features.start_s) / dt)), 0),
                residual.shape[1] - 1)
    floor = float(np.quantile(residual[:, first:], 0.25)) / np.log(4.0 / 3.0)
    residual = residual / floor
    half = int(np.ceil(1.2 * model.processor.mainlobe_half_width_s / dt))
    centre = np.rint((tau - features.start_s) / dt).astype(np.int64)
    bins = np.clip(centre[..., None] + np.arange(-half, half + 1), 0, residual.shape[1] - 1)
    received = amp > 0
    power = np.sum(residual[np.arange(residual.shape[0])[None, :, None], bins]
                   * received[..., None], axis=(1, 2))
    counted = np.count_nonzero(received, axis=1) * (2 * half + 1)
    energy = np.abs(coef) ** 2 * np.sum(amp ** 2 * fr.weights, axis=1)
    used = (counted > 0) & (energy > 0)
    dof = np.maximum(counted[used] - model._correlation_factor, 0.25 * counted[used])
    misfit = np.maximum(power[used] / dof, 1.0)
    return floor, float(np.sum(energy[used] * misfit) / np.sum(energy[used]))


def test_the_compiled_residual_floor_and_misfit_are_the_numpy_ones(final_fits):
    misfits = []
    for model, fr, tau, amp, coef in final_fits:
        floor, misfit = model._residual_floor(fr, tau, amp, coef)
        floor0, misfit0 = _residual_floor_as_before(model, fr, tau, amp, coef)
        assert floor == pytest.approx(floor0, rel=1e-12)
        assert misfit == pytest.approx(misfit0, rel=1e-12)
        misfits.append(misfit)
    # Fits whose paths' lobes hold more than noise: the misfit is not only its floor of 1.
    assert max(misfits) > 1.0


def test_the_compiled_covariance_is_the_numpy_one():
    """Informations of every scale, a heading fixed and free, a direction without any."""
    rng = np.random.default_rng(7)
    scale = np.array([1.0, 1.0, 1.0, 0.1, 1.0])
    for k in range(60):
        a = rng.normal(size=(5, 5))
        info = a @ a.T * 10.0 ** rng.uniform(2, 10)
        if k % 3 == 0:
            info[:, YAW] = info[YAW, :] = 0.0
        ratio, yaw_info = rng.uniform(0.5, 3.0), (0.0, 3000.0)[k % 2]
        got = Covariance._covariance(info.copy(), ratio, yaw_info)
        total = info / ratio
        total[YAW, YAW] += yaw_info if yaw_info > 0 else 1.0
        scaled = total * np.outer(scale, scale)
        values, vectors = np.linalg.eigh(0.5 * (scaled + scaled.T))
        values = np.maximum(values, 1.0 / (0.1 ** 2 * ratio))
        expected = (vectors / values) @ vectors.T * np.outer(scale, scale)
        np.testing.assert_allclose(got, expected, rtol=1e-9,
                                   atol=1e-12 * np.max(np.abs(expected)))


def test_one_tones_absorption_is_kept_per_air_and_still_checked():
    """The carrier's absorption, asked for every frame, is the array form's to the bit, per
    temperature; an air out of range is still refused after one in range was kept."""
    for temperature_c in (20.0, np.float64(21.5), -5.0, 20.0):
        tone = air_absorption_db_per_m(40e3, temperature_c, 50.0)
        assert isinstance(tone, float)
        assert tone == air_absorption_db_per_m(np.array([40e3, 41e3]), temperature_c, 50.0)[0]
    with pytest.raises(ValueError, match='temperature_c must be in'):
        air_absorption_db_per_m(40e3, 99.0, 50.0)
    with pytest.raises(ValueError, match='humidity_pct must be in'):
        air_absorption_db_per_m(40e3, 20.0, 150.0)
