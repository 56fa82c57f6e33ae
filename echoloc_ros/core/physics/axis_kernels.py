"""The full model's evidence at many poses of one frame, each pose's Gram matrix taken apart
into the groups of paths that overlap there (issue 19/20: the axis scans at the cost the
balanced level can pay).

:meth:`Evidence._score` builds for a batch one dense Gram matrix per pose over every path
pair that overlaps at *some* pose of the batch, and factors it whole. Along an axis scan the
moving echoes cross every other on the way, so the pairs of the batch are most of them (the
default room: 169 of 276 along x) while at any one pose about 22 overlap: most of a pose's
Gram matrix is zero, and after the paths are grouped by overlap it is block diagonal. The log
evidence ``b^H (M + I / v)^-1 b - log det(I + v M)`` is then the sum of each block's, the same
number to rounding (``test/core/test_axis_scan.py`` checks it against ``_score``).
"""

import math

import numba
import numpy as np

from echoloc_ros.core.physics.kernels import _smooth_sample, _table_slot, path_terms
from echoloc_ros.core.physics.newton import evidence_with_prior

_JIT = {'cache': True, 'nogil': True, 'error_model': 'numpy'}


@numba.njit(**_JIT)
def keep_heard(tau, amp, valid, vertical_only, t_min, t_max, min_relative):
    """Zero in ``amp (K, P, n)`` the paths :func:`~echoloc_ros.core.physics.kernels.path_terms`
    would drop (its ``decide``): those that do not exist (``valid (K, P)``), are not heard
    inside the window ``(t_min, t_max)`` on every receiver (``tau (K, P, n)``), or peak below
    ``min_relative`` of the strongest kept path that is not ``vertical_only (P,)`` (of any
    kept path where there is none)."""
    n_batch, n_paths, n_ch = tau.shape
    kept = np.empty(n_paths, dtype=np.bool_)
    peak = np.empty(n_paths)
    for k in range(n_batch):
        wall = 0.0
        any_path = 0.0
        for p in range(n_paths):
            inside = valid[k, p]
            peak[p] = 0.0
            for i in range(n_ch):
                inside = inside and tau[k, p, i] > t_min and tau[k, p, i] < t_max
                peak[p] = max(peak[p], amp[k, p, i])
            kept[p] = inside
            if inside:
                any_path = max(any_path, peak[p])
                if not vertical_only[p]:
                    wall = max(wall, peak[p])
        reference = wall if wall > 0.0 else any_path
        for p in range(n_paths):
            if not (kept[p] and peak[p] >= min_relative * reference):
                for i in range(n_ch):
                    amp[k, p, i] = 0.0


@numba.njit(**_JIT)
def _response_at(table, step_s, half_s, lag):
    """The point response g at ``lag`` (s), interpolated in its table as
    :func:`~echoloc_ros.core.physics.kernels._overlap` does; the carrier's turn is the
    caller's."""
    i, frac = _table_slot(table, step_s, half_s, lag)
    return table[0, i] + (table[0, i + 1] - table[0, i]) * frac


@numba.njit(**_JIT)
def _root(parent, p):
    """The group of path ``p`` (union-find with path halving)."""
    while parent[p] != p:
        parent[p] = parent[parent[p]]
        p = parent[p]
    return p


@numba.njit(**_JIT)
def _groups(tau_k, used, half_s, parent):
    """Group the ``used`` paths of one pose whose delays ``tau_k (P, n)`` come within
    ``half_s`` on some receiver (into ``parent``, a union-find)."""
    n_paths, n_ch = tau_k.shape
    for p in range(n_paths):
        parent[p] = p
    for p in range(n_paths):
        if not used[p]:
            continue
        for q in range(p + 1, n_paths):
            if not used[q]:
                continue
            for i in range(n_ch):
                if abs(tau_k[p, i] - tau_k[q, i]) < half_s:
                    a, b = _root(parent, p), _root(parent, q)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
                    break


@numba.njit(**_JIT)
def _block_evidence(gram, lower, solved, outputs, members, size, variance):
    """:func:`~echoloc_ros.core.physics.newton.evidence_with_prior` of the block
    ``gram[:size, :size]`` and ``outputs[members[:size]]``: with ``L L^H = I + v M``
    (factored into ``lower``; ``solved`` a workspace), ``v |L^-1 b|^2 - 2 sum log L_jj``
    (that function where ``I + v M`` is not positive definite to rounding)."""
    for a in range(size):
        for c in range(a + 1):
            lower[a, c] = variance * gram[a, c] + (1.0 if a == c else 0.0)
    log_det = 0.0
    for j in range(size):
        pivot = lower[j, j].real
        for c in range(j):
            pivot -= lower[j, c].real ** 2 + lower[j, c].imag ** 2
        if not pivot > 0.0:
            b = np.empty(size, dtype=np.complex128)
            for a in range(size):
                b[a] = outputs[members[a]]
            return evidence_with_prior(gram[:size, :size].copy(), b, variance)
        root = math.sqrt(pivot)
        lower[j, j] = root
        log_det += 2.0 * math.log(root)
        for a in range(j + 1, size):
            value = lower[a, j]
            for c in range(j):
                value -= lower[a, c] * np.conj(lower[j, c])
            lower[a, j] = value / root
    total = 0.0
    for a in range(size):
        value = outputs[members[a]]
        for c in range(a):
            value -= lower[a, c] * solved[c]
        solved[a] = value / lower[a, a].real
        total += solved[a].real ** 2 + solved[a].imag ** 2
    return variance * total - log_det


@numba.njit(**_JIT)
def _fill_block(gram, members, size, tau_k, amp_k, weights, rotation, energy, zero, response,
                step_s, half_s):
    """The Gram matrix of the paths ``members[:size]`` of one pose (``tau_k, amp_k (P, n)``,
    their carriers ``rotation (P, n)`` and ``energy (P,)``) into ``gram[:size, :size]``, as
    :func:`~echoloc_ros.core.physics.kernels.gram_terms` builds it."""
    n_ch = tau_k.shape[1]
    for a in range(size):
        p = members[a]
        gram[a, a] = zero[0] * energy[p]
        for c in range(a + 1, size):
            q = members[c]
            upper = 0.0j
            for i in range(n_ch):
                lag = tau_k[p, i] - tau_k[q, i]
                if abs(lag) < half_s:
                    upper += (_response_at(response, step_s, half_s, lag)
                              * (rotation[p, i] * np.conj(rotation[q, i]))
                              * (amp_k[p, i] * weights[i]) * amp_k[q, i])
            gram[a, c] = upper
            gram[c, a] = upper.conjugate()


@numba.njit(**_JIT)
def grouped_evidence(tau, amp, weights, table, start_s, per_s, carrier_hz, t_min, t_max,
                     response, step_s, half_s, zero, variance, same_s=0.0):
    """Log evidence ``(K,)`` of the path sets ``tau, amp (K, P, n)`` (amp 0: not modelled)
    with the amplitude prior of variance ``variance``: :meth:`Evidence._evidence`'s number,
    summed over the groups of overlapping paths of each pose (the arguments from ``weights``
    to ``zero`` as :func:`~echoloc_ros.core.physics.kernels.gram_terms` takes them, without
    the pairs). A path whose delays are within ``same_s`` of those it had where it was last
    sampled keeps that sample's outputs (along a scan, the paths that do not move with the
    axis: half the default room's)."""
    n_batch, n_paths, n_ch = tau.shape
    n_row = table.shape[1]
    evidence = np.zeros(n_batch)
    rotation = np.empty((n_paths, n_ch), dtype=np.complex128)
    outputs = np.empty(n_paths, dtype=np.complex128)
    energy = np.empty(n_paths)
    used = np.empty(n_paths, dtype=np.bool_)
    parent = np.empty(n_paths, dtype=np.int64)
    members = np.empty(n_paths, dtype=np.int64)
    label = np.empty(n_paths, dtype=np.int64)
    count = np.empty(n_paths, dtype=np.int64)
    gram = np.empty((n_paths, n_paths), dtype=np.complex128)
    lower = np.empty((n_paths, n_paths), dtype=np.complex128)
    solved = np.empty(n_paths, dtype=np.complex128)
    z = np.zeros((n_paths, n_ch), dtype=np.complex128)
    last = np.zeros((n_paths, n_ch))
    sampled = np.zeros(n_paths, dtype=np.bool_)
    for k in range(n_batch):
        count[:] = 0
        for p in range(n_paths):
            outputs[p] = 0.0
            total = 0.0
            for i in range(n_ch):
                total += amp[k, p, i] * weights[i] * amp[k, p, i]
            energy[p] = total
            used[p] = total > 0.0
            if not used[p]:
                continue
            # A path that does not move along the scan keeps its delays (to rounding), and
            # its outputs are those of the pose before.
            moved = not sampled[p]
            for i in range(n_ch):
                moved = moved or abs(tau[k, p, i] - last[p, i]) > same_s
            for i in range(n_ch):
                t = tau[k, p, i]
                if moved:
                    last[p, i] = t
                    cycles = carrier_hz * t
                    phase = 2.0 * np.pi * (cycles - math.floor(cycles))
                    rotation[p, i] = complex(math.cos(phase), math.sin(phase))
                    z[p, i] = 0.0
                    if t > t_min and t < t_max:
                        value, _ = _smooth_sample(table, i, (t - start_s) * per_s, n_row)
                        z[p, i] = value * rotation[p, i]
                outputs[p] += amp[k, p, i] * weights[i] * z[p, i]
            sampled[p] = True
        _groups(tau[k], used, half_s, parent)
        for p in range(n_paths):
            if used[p]:
                label[p] = _root(parent, p)
                count[label[p]] += 1
        for g in range(n_paths):
            if not used[g] or label[g] != g:
                continue
            if count[g] == 1:
                # A path alone: v |b|^2 / (1 + v m) - log(1 + v m), m its Gram entry.
                system = 1.0 + variance * (zero[0].real * energy[g])
                evidence[k] += (variance * (outputs[g].real ** 2 + outputs[g].imag ** 2)
                                / system - math.log(system))
                continue
            size = 0
            for p in range(g, n_paths):
                if used[p] and label[p] == g:
                    members[size] = p
                    size += 1
            _fill_block(gram, members, size, tau[k], amp[k], weights, rotation, energy, zero,
                        response, step_s, half_s)
            evidence[k] += _block_evidence(gram, lower, solved, outputs, members, size,
                                           variance)
    return evidence


@numba.njit(**_JIT)
def axis_shares(theta, valid, geometry, moving_x, moving_y, signal, variance, same_s):
    """The evidence the paths that move along x, and along y, give the pose ``theta (1, 5)``
    (:meth:`AxisRivals._axis_shares`) in one call: every path's delays and amplitudes there
    (:func:`~echoloc_ros.core.physics.kernels.path_terms`, those that exist, ``valid
    (1, P)``, kept where heard), and :func:`grouped_evidence` of the pose, of it without the
    paths ``moving_x`` and of it without ``moving_y`` ``(P,)``: the first less each ``(2,)``.

    :param geometry: ``path_terms``' arguments from ``img_m`` to ``min_relative``;
        ``signal``: ``grouped_evidence``'s from ``weights`` to ``zero``.
    """
    tau, amp, _, _ = path_terms(theta, geometry[0], geometry[1], geometry[2], geometry[3],
                                geometry[4], geometry[5], geometry[6], geometry[7],
                                geometry[8], geometry[9], geometry[10], geometry[11], valid,
                                True, np.zeros(0, dtype=np.int64))
    n_paths, n_ch = tau.shape[1], tau.shape[2]
    taus = np.empty((3, n_paths, n_ch))
    amps = np.empty((3, n_paths, n_ch))
    for k in range(3):
        taus[k] = tau[0]
        amps[k] = amp[0]
    for p in range(n_paths):
        if moving_x[p]:
            amps[1, p] = 0.0
        if moving_y[p]:
            amps[2, p] = 0.0
    evidence = grouped_evidence(taus, amps, signal[0], signal[1], signal[2], signal[3],
                                signal[4], signal[5], signal[6], signal[7], signal[8],
                                signal[9], signal[10], variance, same_s)
    return evidence[0] - evidence[1:]
