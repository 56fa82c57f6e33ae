"""The one-echo delay fit of :meth:`EchoProcessor.fit_delays`, compiled (numba).

Each frame fits the direct arrival and, for the range sensors, the first echo on every
channel: a window of some twenty bins, a grid of 33 delays and a parabola. Written in numpy,
that was about twenty calls on arrays of a few dozen values each, twice a frame, which cost
more than the frame's transforms; here each channel is one loop over its window, in double
precision as numpy computed it (the window's single-precision values widened).
"""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model='numpy')
def response_at(g, g_start, g_step, u):
    """The tabulated point response ``g`` (first lag ``g_start``, step ``g_step``) at offset
    ``u``, s, interpolated linearly: :meth:`EchoProcessor.point_response` at one offset."""
    x = (u - g_start) / g_step
    i = int(np.floor(x))
    frac = x - i
    if i < 0 or i >= g.size - 1:
        return 0j
    lo = g[i]
    return lo + (g[i + 1] - lo) * frac


@numba.njit(cache=True, nogil=True, error_model='numpy')
def fit_delays(baseband, times_s, guess_s, half, steps, conj_model, norm, g, g_start,
               g_step):
    """Delay and complex amplitude of one echo per channel (:meth:`EchoProcessor.fit_delays`,
    whose docstring gives the method).

    :param baseband: ``(n_ch, n_bins)`` complex64. :param times_s: bin times ``(n_bins,)``.
    :param guess_s: initial delay per channel ``(n_ch,)``; NaN skips the channel.
    :param half: the main lobe's half width in bins; ``steps`` the delay grid ``(s,)`` over
        +-1 bin, s; ``conj_model`` the conjugate point response at the window's bins for
        every step ``(2 half + 1, s)``; ``norm`` its energy per step ``(s,)``
        (:meth:`EchoProcessor._delay_grid`).
    :param g: the point response's table, from lag ``g_start`` in steps of ``g_step``, s.
    :return: ``(tau_s (n_ch,), amplitude (n_ch,) complex)``; NaN and 0 where skipped.
    """
    n_ch, n_bins = baseband.shape
    width, n_steps = conj_model.shape
    dt = times_s[1] - times_s[0]
    last = n_bins - half - 1
    tau = np.full(n_ch, np.nan)
    amp = np.zeros(n_ch, np.complex128)
    power = np.empty(n_steps)
    for r in range(n_ch):
        if not np.isfinite(guess_s[r]):
            continue
        guess = int(np.rint((guess_s[r] - times_s[0]) / dt))
        guess = min(max(guess, half), last)
        # The envelope peak within two bins of the guess (the first of equal ones).
        centre, peak = min(max(guess - 2, half), last), -1.0
        for k in range(-2, 3):
            b = min(max(guess + k, half), last)
            level = abs(baseband[r, b])
            if level > peak:
                centre, peak = b, level
        for s in range(n_steps):
            acc = 0j
            for m in range(width):
                acc += np.complex128(baseband[r, centre - half + m]) * conj_model[m, s]
            power[s] = abs(acc) ** 2 / norm[s]
        best = min(max(np.argmax(power), 1), n_steps - 2)
        y0, y1, y2 = power[best - 1], power[best], power[best + 1]
        denom = y0 - 2 * y1 + y2
        offset = min(max(0.5 * (y0 - y2) / denom, -1.0), 1.0) if denom < 0 else 0.0
        tau[r] = times_s[centre] + steps[best] + offset * (steps[1] - steps[0])
        cross, energy = 0j, 0.0
        for m in range(width):
            b = centre - half + m
            value = response_at(g, g_start, g_step, times_s[b] - tau[r])
            cross += np.conj(value) * np.complex128(baseband[r, b])
            energy += abs(value) ** 2
        amp[r] = cross / energy
    return tau, amp


@numba.njit(cache=True, nogil=True, error_model='numpy')
def subtract_echoes(baseband, times_s, tau, amp, first, stop, g, g_start, g_step):
    """``baseband[i, first:stop] -= amp[i] g(t - tau[i])`` on each channel, in place (the
    removal of the direct arrival, :meth:`EchoProcessor.process`), each product in double
    precision and the difference rounded to the baseband's single precision."""
    for r in range(baseband.shape[0]):
        for b in range(first, stop):
            value = amp[r] * response_at(g, g_start, g_step, times_s[b] - tau[r])
            baseband[r, b] = np.complex64(np.complex128(baseband[r, b]) - value)


@numba.njit(cache=True, nogil=True, error_model='numpy')
def direct_residual(envelope, times_s, direct_tof_s, direct_amp, g_peak, after_s):
    """The largest ``envelope`` within ``after_s`` after each channel's direct arrival over
    that arrival's peak (``direct_amp * g_peak``), the largest over the channels that heard
    it (a finite delay, an amplitude above 0); NaN where none did
    (:meth:`EchoProcessor._direct_residual_db` takes its dB). One loop over the first bins of
    each channel instead of a dozen numpy calls; the same values to the bit: the
    single-precision envelope's maximum, widened and divided in double precision, a NaN
    carried as ``np.max`` carries it."""
    worst = np.nan
    heard_any = False
    for r in range(envelope.shape[0]):
        if not (np.isfinite(direct_tof_s[r]) and direct_amp[r] > 0):
            continue
        limit = direct_tof_s[r] + after_s
        residual = envelope.dtype.type(0.0)
        b = 0
        while b < times_s.size and times_s[b] < limit:
            value = envelope[r, b]
            if value != value or value > residual:
                residual = value
            b += 1
        ratio = np.float64(residual) / (direct_amp[r] * g_peak)
        if not heard_any or ratio != ratio or ratio > worst:
            worst = ratio
        heard_any = True
    return worst
