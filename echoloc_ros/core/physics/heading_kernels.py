"""Compiled loop of the heading step (numba): each wall's best first-order coherent power over
distance at every heading offset (:func:`~echoloc_ros.core.physics.heading_step.
wall_heading_scores`), reading the baseband as the scans do
(:mod:`~echoloc_ros.core.physics.scan_kernels`); cached on disk.
"""

import math

import numba
import numpy as np

from echoloc_ros.core.physics.scan_kernels import _JIT, _locate, _read


@numba.njit(**_JIT)
def wall_heading_power(dn, d2, turned, distance_m, c0, wave_per_m, table, start_s, per_s,
                       carrier_hz, t_min, t_max):
    """Per wall and heading offset, the highest coherent power ``|sum_i z_i p_ij|^2`` over
    distance, where ``z_i`` is receiver i's baseband at the wall's first-order delay at the
    given heading and ``p_ij = exp(j wave_per_m turned_ij)`` the carrier phase that heading
    offset j adds.

    Distances are visited by their receivers' incoherent power, highest first, and the visit
    stops where ``n`` times it (the most any phases can make of it) is below every offset's
    best so far: the maxima are exact.

    :param dn: each wall's inward normal dotted with each receiver's offset ``(S, n)``.
    :param d2: the offsets' squared lengths ``(n,)``.
    :param turned: the change of ``dn`` per heading offset ``(S, J, n)``, m.
    :param wave_per_m: ``2 pi f_c / c0``, rad/m.
    :return: ``(S, J)``.
    """
    n_walls, n_ch = dn.shape
    n_psi = turned.shape[1]
    n_grid = distance_m.size
    last = table.shape[1] - 3
    best = np.zeros((n_walls, n_psi))
    z = np.zeros((n_grid, n_ch), dtype=np.complex64)
    energy = np.empty(n_grid)
    phase = np.empty((n_psi, n_ch), dtype=np.complex64)
    inside = np.empty(n_grid, dtype=np.bool_)
    index = np.empty(n_grid, dtype=np.int64)
    frac = np.empty(n_grid, dtype=np.float32)
    turn = np.empty(n_grid, dtype=np.int64)
    turn_frac = np.empty(n_grid, dtype=np.float32)
    for s in range(n_walls):
        for j in range(n_psi):
            for i in range(n_ch):
                angle = wave_per_m * turned[s, j, i]
                phase[j, i] = complex(math.cos(angle), math.sin(angle))
        energy[:] = 0.0
        for i in range(n_ch):
            for g in range(n_grid):
                d = distance_m[g]
                tau = math.sqrt(d2[i] + 4.0 * d * dn[s, i] + 4.0 * (d * d)) / c0
                _locate(tau, g, start_s, per_s, last, carrier_hz, t_min, t_max, inside, index,
                        frac, turn, turn_frac)
            for g in range(n_grid):
                if inside[g]:
                    value = _read(table, i, g, index, frac, turn, turn_frac)
                else:
                    value = np.complex64(0.0)
                z[g, i] = value
                energy[g] += value.real * value.real + value.imag * value.imag
        floor = 0.0
        for g in np.argsort(-energy):
            if n_ch * energy[g] <= floor:
                break
            floor = np.inf
            for j in range(n_psi):
                total = np.complex64(0.0)
                for i in range(n_ch):
                    total += z[g, i] * phase[j, i]
                power = total.real * total.real + total.imag * total.imag
                if power > best[s, j]:
                    best[s, j] = power
                floor = min(floor, best[s, j])
    return best
