"""Compiled loops of the physics localizer's scans (numba): the coherent scores of a wall
family along one axis and of the floor and ceiling against their distance, which read the
baseband by linear interpolation in single precision.

As :mod:`~echoloc_ros.core.physics.kernels`, each replaces numpy expressions whose dispatch
and temporaries cost more than their arithmetic, with the same arithmetic; cached on disk.
"""

import math

import numba
import numpy as np

# numpy's floating-point semantics (x / 0 is inf or NaN, not an exception), as the numpy code
# these loops replace.
_JIT = {'cache': True, 'nogil': True, 'error_model': 'numpy'}

# exp(j 2 pi k / N) for k = 0..N: the scans' carrier rotation by linear interpolation in this
# table is within 3e-7 of the exact one (the scans' single-precision outputs carry 6e-8 and
# their linear interpolation of the baseband 2e-3), and costs a tenth of a sine and cosine.
_N_ROTATION = 4096
_ROTATION = np.exp(2j * np.pi * np.arange(_N_ROTATION + 1) / _N_ROTATION).astype(np.complex64)


@numba.njit(**_JIT)
def _locate(t, g, start_s, per_s, last, carrier_hz, t_min, t_max, inside, index, frac, turn,
            turn_frac):
    """Slot ``g`` of the reads at delay ``t``: inside the window, the baseband table's index
    and fraction, and the carrier table's."""
    inside[g] = t > t_min and t < t_max
    x = (t - start_s) * per_s
    k = min(max(int(x), 1), last)
    index[g] = k
    frac[g] = np.float32(x - k)
    cycles = carrier_hz * t
    u = (cycles - math.floor(cycles)) * _N_ROTATION
    k = int(u)
    turn[g] = k
    turn_frac[g] = np.float32(u - k)


@numba.njit(**_JIT)
def _read(table, i, g, index, frac, turn, turn_frac):
    """Receiver ``i``'s baseband at slot ``g`` (:func:`_locate`), carrier removed: both
    tables read by linear interpolation."""
    k = index[g]
    p1 = table[i, k]
    r0 = _ROTATION[turn[g]]
    return ((p1 + (table[i, k + 1] - p1) * frac[g])
            * (r0 + (_ROTATION[turn[g] + 1] - r0) * turn_frac[g]))


@numba.njit(**_JIT)
def family_scores(base, axis, offsets, img_m, img_t, coords, speed, weights, weight_sum,
                  exists, table, start_s, per_s, carrier_hz, t_min, t_max):
    """Scores of a scan along one axis (:meth:`CandidateSearch._family_scan`): per
    coordinate and heading offset, the sum over paths heard on every receiver (and existing)
    of ``log1p`` of their receivers' coherent power over the noise.

    The emitter is at ``base`` with coordinate ``axis`` replaced by the scanned one ``c``:
    receiver minus image is then ``d0 + c v``, and the delay of path p at receiver i is
    ``sqrt(a0 + a1 c + a2 c^2) / speed``. The delays of one path and receiver are computed
    for every coordinate in one loop (which the compiler vectorises), then sampled.

    :param offsets: receivers relative to the emitter per heading offset ``(J, n, 3)``.
    :param img_m: the paths' image maps ``(P, 3, 3)``, with ``img_t (P, 3)``.
    :param coords: the scanned coordinate's values ``(G,)``.
    :param weights: float32 receiver weights summing to 1 ``(n,)``; ``weight_sum`` the sum of
        the unnormalised ones. :param exists: ``(G, P)`` bool, or ``(0, 0)``: all exist.
    :return: ``(G, J)``.
    """
    n_psi, n_ch = offsets.shape[0], offsets.shape[1]
    n_paths, n_coords = img_m.shape[0], coords.size
    score = np.zeros((n_coords, n_psi))
    # Per coordinate: inside the window, the table's index and fraction, and the carrier
    # table's (computed in a loop the compiler vectorises, then read).
    inside = np.empty(n_coords, dtype=np.bool_)
    index = np.empty(n_coords, dtype=np.int64)
    frac = np.empty(n_coords, dtype=np.float32)
    turn = np.empty(n_coords, dtype=np.int64)
    turn_frac = np.empty(n_coords, dtype=np.float32)
    last = table.shape[1] - 3
    acc = np.empty(n_coords, dtype=np.complex64)
    heard = np.empty(n_coords, dtype=np.bool_)
    image = np.empty(3)
    v = np.empty(3)
    for p in range(n_paths):
        a2 = 0.0
        for a in range(3):
            image[a] = (img_m[p, a, 0] * base[0] + img_m[p, a, 1] * base[1]
                        + img_m[p, a, 2] * base[2] + img_t[p, a])
            v[a] = (1.0 if a == axis else 0.0) - img_m[p, a, axis]
            a2 += v[a] * v[a]
        for j in range(n_psi):
            acc[:] = 0.0
            heard[:] = True
            for i in range(n_ch):
                a0 = 0.0
                a1 = 0.0
                for a in range(3):
                    d0 = base[a] + offsets[j, i, a] - image[a]
                    a0 += d0 * d0
                    a1 += d0 * v[a]
                a1 *= 2.0
                for g in range(n_coords):
                    c = coords[g]
                    t = math.sqrt(a0 + a1 * c + a2 * c * c) / speed
                    _locate(t, g, start_s, per_s, last, carrier_hz, t_min, t_max, inside,
                            index, frac, turn, turn_frac)
                for g in range(n_coords):
                    if inside[g]:
                        acc[g] += _read(table, i, g, index, frac, turn, turn_frac) * weights[i]
                    else:
                        heard[g] = False
            for g in range(n_coords):
                if heard[g] and (exists.shape[0] == 0 or exists[g, p]):
                    score[g, j] += math.log1p(abs(acc[g]) ** 2 * weight_sum)
    return score


@numba.njit(**_JIT)
def surface_scores(dn, d2, distance_m, c0, table, start_s, per_s, carrier_hz, t_min, t_max,
                   weight_mean):
    """Coherent scores of surfaces' first-order echoes against the emitter's distance to them
    (:meth:`CandidateSearch._surface_scores`): ``log1p(|sum_i z_i(tau_i)|^2 w / n)`` with
    ``tau_i = sqrt(d2_i + 4 d dn_i + 4 d^2) / c0``, z read as
    :func:`~echoloc_ros.core.physics.matched_filter.sample` reads it without ``smooth``
    (linear, in single precision) with the carrier from the table the family scans read,
    and w the receivers' mean weight.

    :param dn: each surface's inward normal dotted with each receiver's offset ``(S, n)``.
    :param d2: the offsets' squared lengths ``(n,)``. :param distance_m: ``(G,)``.
    :return: ``(S, G)``.
    """
    n_surfaces, n_ch = dn.shape
    n_grid = distance_m.size
    last = table.shape[1] - 3
    score = np.empty((n_surfaces, n_grid))
    # As family_scores: the indices of every distance in one vectorised loop, then the reads.
    inside = np.empty(n_grid, dtype=np.bool_)
    index = np.empty(n_grid, dtype=np.int64)
    frac = np.empty(n_grid, dtype=np.float32)
    turn = np.empty(n_grid, dtype=np.int64)
    turn_frac = np.empty(n_grid, dtype=np.float32)
    total = np.empty(n_grid, dtype=np.complex64)
    for s in range(n_surfaces):
        total[:] = 0.0
        for i in range(n_ch):
            for g in range(n_grid):
                d = distance_m[g]
                tau = math.sqrt(d2[i] + 4.0 * d * dn[s, i] + 4.0 * (d * d)) / c0
                _locate(tau, g, start_s, per_s, last, carrier_hz, t_min, t_max, inside, index,
                        frac, turn, turn_frac)
            for g in range(n_grid):
                if inside[g]:
                    total[g] += _read(table, i, g, index, frac, turn, turn_frac)
        for g in range(n_grid):
            score[s, g] = math.log1p(np.float64(abs(total[g]) ** 2) * weight_mean / n_ch)
    return score


@numba.njit(**_JIT)
def separated(order, grid, k, separation):
    """The first ``k`` of the indices ``order`` (best first) whose ``grid`` values are at
    least ``separation`` from those of every index taken before (a scan's peaks)."""
    chosen = np.empty(min(k, order.size), dtype=np.int64)
    n = 0
    for i in order:
        if n == chosen.size:
            break
        apart = True
        for j in range(n):
            apart = apart and abs(grid[i] - grid[chosen[j]]) >= separation
        if apart:
            chosen[n] = i
            n += 1
    return chosen[:n].copy()
