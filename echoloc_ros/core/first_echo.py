"""The first of two overlapping echoes: a joint fit of two point responses.

The first echo of a receiver is often a wall a few centimetres of path before the stronger
floor echo (0.1-0.3 ms before it): the two overlap in the matched filter's point response,
the envelope has one peak (or a shoulder) and a single-echo fit lands on the stronger one or
between them. Here the complex baseband around the single fit is fitted with every pair of
point responses ``A g(t - a) + B g(t - b)`` on a grid of one bin (both amplitudes complex, so
each echo's carrier phase is free), the best pair by the least-squares residual. Its earlier
echo is reported when it is one: above the echo detection threshold; the pair explaining
more of the window than the best single response by :data:`MIN_GAIN` of it (more than a
strong echo's own model error leaves) and by a threshold echo's energy (more than noise);
and away from the single fit by :data:`MIN_SHIFT_S` (before it: the fit took the later echo
or a point between; after it: the two echoes' interference moved the envelope's first peak
ahead of the first echo). The reported delay is the pair's, refined on a grid of an eighth
of a bin.

The pairs are fitted from tables made once per bin width (the window's point responses at
the grid's delays, their Gram matrix, the closed-form 2 x 2 solution's coefficients per
pair); a frame costs one compiled loop over its channels, and a refinement where an earlier
echo was found (a fifth of frames).
"""

import numba
import numpy as np

# The earlier echo is looked for up to this long before the single fit's delay, s: the wall
# echo arrives 0.1-0.27 ms before the floor's where they overlap (9.4 cm of path at most).
LOOK_BACK_S = 0.32e-3
# ... and the later one up to this long after it, s.
LOOK_AHEAD_S = 0.3e-3
# A pair whose two responses are this correlated (|rho|^2) is one echo, not two.
MAX_CORRELATION = 0.8
# A pair must explain at least this share of the window's energy more than the best single
# response: the model error of one strong echo (a calibration not quite the transducers', the
# path's own response) leaves 0.1-1 % unexplained, which a second response just ahead of it
# takes up (measured on dev seed 1, 200 frames); a real earlier echo adds 2.5-70 %.
MIN_GAIN = 0.02
# The pair's earlier echo replaces the single fit only when at least this far from it, s
# (closer, the single fit is that echo). Before it: the single fit took the later echo or a
# point between; after it: the two echoes' interference moved the envelope's first peak
# ahead of the first echo (on dev seeds 1 and 2 this took the early picks from 0.5 % to
# 0.125 %).
MIN_SHIFT_S = 15e-6
# The refinement's grid: this many steps per bin, over +-1 bin around the coarse pair.
FINE_STEPS = 8


class OverlapSplitter:
    """Separates the first echo from a stronger echo overlapping it (module docstring).

    :param point_response: the processor's ``g(u)`` (:meth:`EchoProcessor.point_response`).
    :param mainlobe_half_width_s: half width of its main lobe at half height, s.
    """

    def __init__(self, point_response, mainlobe_half_width_s: float) -> None:
        self.point_response = point_response
        self.half_width_s = float(mainlobe_half_width_s)
        self._peak = float(np.abs(point_response(np.zeros(1)))[0])
        self._dt = None
        self._tables: tuple = ()

    def _table(self, dt: float) -> tuple:
        """At bin width ``dt``: ``(margin, width, conj atoms (J, w), power (J,), pairs)``; atom
        ``j`` lies at ``(margin + j) dt`` from the window's first bin, and ``pairs`` is
        ``(i, j, power_j / det, power_i / det, G_ij / det, det)`` over the pairs that can be
        two echoes (``j`` after ``i``, not one echo by :data:`MAX_CORRELATION`)."""
        if self._dt != dt:
            margin = int(np.ceil(2 * self.half_width_s / dt)) + 1
            n_atoms = int(np.ceil((LOOK_BACK_S + LOOK_AHEAD_S) / dt)) + 1
            width = 2 * margin + n_atoms
            atoms = self.point_response(np.arange(width)[None] * dt
                                        - (margin + np.arange(n_atoms))[:, None] * dt)
            gram = np.conj(atoms) @ atoms.T
            power = np.real(np.diag(gram))
            det = np.outer(power, power) - np.abs(gram) ** 2
            i, j = np.nonzero((np.arange(n_atoms)[None] > np.arange(n_atoms)[:, None])
                              & (det > (1.0 - MAX_CORRELATION) * np.outer(power, power)))
            pairs = (i, j, power[j] / det[i, j], power[i] / det[i, j], gram[i, j] / det[i, j],
                     det[i, j])
            # The refinement's atoms: row q at q / FINE_STEPS bins past a bin, every shift by
            # whole bins a slice (:meth:`_refine`).
            steps = np.arange(-FINE_STEPS, FINE_STEPS + 1) / FINE_STEPS
            u = np.arange(width + n_atoms + 3) - (n_atoms + 1 + margin)
            fine = self.point_response((u[None] - steps[:, None]) * dt)
            self._dt = dt
            self._tables = (margin, width, np.conj(atoms), power, pairs, fine)
        return self._tables

    def earliest(self, baseband: np.ndarray, times_s: np.ndarray, tau_s: np.ndarray,
                 threshold: np.ndarray) -> np.ndarray:
        """The first echo per channel: ``tau_s``, or the earlier of two overlapping echoes
        where a pair explains the baseband and its earlier echo is significant.

        :param baseband: ``(n_ch, n_bins)`` complex baseband, direct arrival removed.
        :param times_s: bin times ``(n_bins,)``, uniform from 0.
        :param tau_s: the single fit's delay per channel ``(n_ch,)``; NaN: none.
        :param threshold: the envelope an echo must exceed per channel ``(n_ch,)``.
        :return: delays ``(n_ch,)``.
        """
        dt = float(times_s[1] - times_s[0])
        margin, width, conj_atoms, power, pairs, fine = self._table(dt)
        out = np.array(tau_s, dtype=float)
        earlier, start, first, second = _split(
            baseband, out, np.asarray(threshold, dtype=float) / self._peak,
            float(times_s[0]), dt, margin, conj_atoms, power, *pairs,
            (LOOK_BACK_S, MIN_GAIN, MIN_SHIFT_S))
        for r in np.flatnonzero(earlier):
            window = baseband[r, start[r]:start[r] + width]
            out[r] = float(times_s[start[r]]) + _refine(
                np.ascontiguousarray(window), fine, len(conj_atoms), first[r], second[r],
                margin, dt)
        return out


@numba.njit(cache=True, nogil=True, error_model='numpy')
def _refine(window, fine, n_atoms, first, second, margin, dt):
    """The earlier delay of the best pair within +-1 bin of atoms ``(first, second)`` on a
    grid of ``dt / FINE_STEPS``, then a parabola along the earlier delay: s from the window's
    first bin. ``fine`` is :meth:`OverlapSplitter._table`'s (atom ``k`` shifted by ``q``
    steps is row ``q`` from column ``n_atoms + 1 - k``)."""
    n_steps, width = fine.shape[0], window.size
    ca = np.zeros(n_steps, np.complex128)
    cb = np.zeros(n_steps, np.complex128)
    pa = np.zeros(n_steps)
    pb = np.zeros(n_steps)
    col_a, col_b = n_atoms + 1 - first, n_atoms + 1 - second
    for q in range(n_steps):
        for m in range(width):
            fa, fb = fine[q, col_a + m], fine[q, col_b + m]
            ca[q] += np.conj(fa) * window[m]
            cb[q] += np.conj(fb) * window[m]
            pa[q] += fa.real ** 2 + fa.imag ** 2
            pb[q] += fb.real ** 2 + fb.imag ** 2
    explained = np.empty((n_steps, n_steps))
    for qa in range(n_steps):
        for qb in range(n_steps):
            gab = 0j
            for m in range(width):
                gab += np.conj(fine[qa, col_a + m]) * fine[qb, col_b + m]
            det = max(pa[qa] * pb[qb] - (gab.real ** 2 + gab.imag ** 2), 1e-30)
            explained[qa, qb] = (pb[qb] * (ca[qa].real ** 2 + ca[qa].imag ** 2)
                                 + pa[qa] * (cb[qb].real ** 2 + cb[qb].imag ** 2)
                                 - 2 * (np.conj(ca[qa]) * gab * cb[qb]).real) / det
    flat = np.argmax(explained)
    ia, ib = flat // n_steps, flat % n_steps
    k = min(max(ia, 1), n_steps - 2)
    y0, y1, y2 = explained[k - 1, ib], explained[k, ib], explained[k + 1, ib]
    denom = y0 - 2 * y1 + y2
    offset = min(max(0.5 * (y0 - y2) / denom, -1.0), 1.0) if denom < 0 else 0.0
    return (margin + first + (k - FINE_STEPS + offset) / FINE_STEPS) * dt


@numba.njit(cache=True, nogil=True, error_model='numpy')
def _split(baseband, tau, limit, t0, dt, margin, conj_atoms, power, i, j, wa, wb, g, det,
           constants):
    """Per channel with a first echo (``tau`` finite, its window inside the frame): the
    window's correlations with the atoms, the pair ``(i[p], j[p])`` whose two responses
    explain most of it (``|c_i|^2 wa + |c_j|^2 wb - 2 Re(conj(c_i) c_j g)``:
    :meth:`OverlapSplitter._table`), and whether its earlier echo is a first echo the single
    fit missed: above ``limit`` (the detection threshold over the response's peak) in
    amplitude, the pair explaining more than the best single response by :data:`MIN_GAIN` of
    it and by the energy of an echo at ``limit``, and away from ``tau`` by :data:`MIN_SHIFT_S`.

    :return: ``(earlier, window start bin, i, j)`` per channel.
    """
    look_back_s, min_gain, min_shift_s = constants
    n_ch, n_bins = baseband.shape
    n_atoms, width = conj_atoms.shape
    earlier = np.zeros(n_ch, np.bool_)
    start = np.zeros(n_ch, np.int64)
    first = np.zeros(n_ch, np.int64)
    second = np.zeros(n_ch, np.int64)
    c = np.empty(n_atoms, np.complex128)
    for r in range(n_ch):
        if not np.isfinite(tau[r]):
            continue
        s = int(np.floor((tau[r] - look_back_s - t0) / dt)) - margin
        if s < 0 or s + width > n_bins:
            continue
        single = 0.0
        for k in range(n_atoms):
            acc = 0j
            for m in range(width):
                acc += conj_atoms[k, m] * baseband[r, s + m]
            c[k] = acc
            single = max(single, (acc.real ** 2 + acc.imag ** 2) / power[k])
        best, value = 0, -np.inf
        for p in range(i.size):
            ci, cj = c[i[p]], c[j[p]]
            e = ((ci.real * ci.real + ci.imag * ci.imag) * wa[p]
                 + (cj.real * cj.real + cj.imag * cj.imag) * wb[p]
                 - 2.0 * (np.conj(ci) * cj * g[p]).real)
            if e > value:
                value, best = e, p
        a, b = i[best], j[best]
        amp = abs(power[b] * c[a] - g[best] * det[best] * c[b]) / det[best]
        gain = value - single
        shift = tau[r] - (t0 + (s + margin + a) * dt)
        earlier[r] = (amp > limit[r] and gain >= min_gain * single
                      and gain >= power[a] * limit[r] ** 2
                      and abs(shift) > min_shift_s)
        start[r], first[r], second[r] = s, a, b
    return earlier, start, first, second
