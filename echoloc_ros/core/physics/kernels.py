"""Compiled loops of the physics localizer (numba): the matched-filter outputs at predicted
delays, the Gram matrix of the paths with the point response's overlap, and the gradient and
information of the likelihood; the image paths, the furniture's faces and blocking, the
synthesis of fitted paths and its residual. The scans' loops are in
:mod:`~echoloc_ros.core.physics.scan_kernels`.

Each replaces tens of small numpy operations per call, whose dispatch cost (a few
microseconds each, thousands per frame) was most of a frame's CPU time. The arithmetic is the
one documented in :mod:`~echoloc_ros.core.physics.refinement` and
:mod:`~echoloc_ros.core.physics.evidence`; only the order of the sums differs, so results
agree with the numpy expressions to rounding. Compiled code is cached on disk
(``cache=True``), so only the first process after an install pays the compilation.
"""

import math

import numba
import numpy as np

# numpy's floating-point semantics (x / 0 is inf or NaN, not an exception), as the numpy code
# these loops replace.
_JIT = {'cache': True, 'nogil': True, 'error_model': 'numpy'}


@numba.njit(**_JIT)
def _smooth_sample(table, ch, x, n_row):
    """Catmull-Rom interpolation of row ``ch`` of ``table`` at fractional index ``x``:
    value and slope per index."""
    i = int(x)
    if i < 1:
        i = 1
    elif i > n_row - 3:
        i = n_row - 3
    t = x - i
    p0 = complex(table[ch, i - 1])
    p1 = complex(table[ch, i])
    p2 = complex(table[ch, i + 1])
    p3 = complex(table[ch, i + 2])
    c1 = 0.5 * (p2 - p0)
    c2 = p0 - 2.5 * p1 + 2.0 * p2 - 0.5 * p3
    c3 = 1.5 * (p1 - p2) + 0.5 * (p3 - p0)
    value = p1 + t * (c1 + t * (c2 + t * c3))
    slope = c1 + t * (2.0 * c2 + 3.0 * t * c3)
    return value, slope


@numba.njit(**_JIT)
def _table_slot(table, step_s, half_s, u):
    """The segment of the point response's ``table`` (its samples ``step_s`` apart from
    ``-half_s``) that holds lag ``u`` (s), clamped to the table, and the fraction along it."""
    x = (u + half_s) / step_s
    i = int(x)
    if i < 0:
        i = 0
    elif i > table.shape[1] - 2:
        i = table.shape[1] - 2
    return i, x - i


@numba.njit(**_JIT)
def _overlap(table, step_s, half_s, omega, u, rotation):
    """r(u), r'(u), r''(u) of the carrier-shifted point response (as
    :meth:`PointResponse.overlap`), given ``rotation`` = exp(j omega u)."""
    i, frac = _table_slot(table, step_s, half_s, u)
    g = table[0, i] + (table[0, i + 1] - table[0, i]) * frac
    dg = table[1, i] + (table[1, i + 1] - table[1, i]) * frac
    ddg = table[2, i] + (table[2, i + 1] - table[2, i]) * frac
    jw = 1j * omega
    return (g * rotation, (dg + jw * g) * rotation,
            (ddg + 2.0 * jw * dg + jw * jw * g) * rotation)


@numba.njit(**_JIT)
def _outputs_and_gram(k, tau, amp, weights, table, start_s, per_s, carrier_hz, t_min, t_max,
                      pair_p, pair_q, response, step_s, half_s, zero, z, dz, r1, r2, gram,
                      outputs):
    """Row ``k`` of :func:`fit_terms`: the outputs z and dz/dtau at the delays, the Gram
    matrix, b, and r', r'' at the pairs' lags (into the arrays given)."""
    n_paths, n_ch = z.shape
    n_row = table.shape[1]
    omega = 2.0 * np.pi * carrier_hz
    jw = 1j * omega
    # The carrier at every delay, once: a pair's overlap turns by the quotient of its two.
    rotation = np.empty((n_paths, n_ch), dtype=np.complex128)
    for p in range(n_paths):
        total = 0.0
        for i in range(n_ch):
            t = tau[k, p, i]
            cycles = carrier_hz * t
            phase = 2.0 * np.pi * (cycles - math.floor(cycles))
            rotation[p, i] = complex(math.cos(phase), math.sin(phase))
            if t > t_min and t < t_max:
                value, slope = _smooth_sample(table, i, (t - start_s) * per_s, n_row)
                z[p, i] = value * rotation[p, i]
                dz[p, i] = slope * per_s * rotation[p, i] + jw * z[p, i]
            else:
                z[p, i] = 0.0
                dz[p, i] = 0.0
            outputs[p] += amp[k, p, i] * weights[i] * z[p, i]
            total += amp[k, p, i] * weights[i] * amp[k, p, i]
        gram[p, p] = zero[0] * total
    for j in range(pair_p.size):
        p, q = pair_p[j], pair_q[j]
        upper = 0.0j
        for i in range(n_ch):
            lag = tau[k, p, i] - tau[k, q, i]
            if abs(lag) < half_s:
                r0, r1[j, i], r2[j, i] = _overlap(response, step_s, half_s, omega, lag,
                                                  rotation[p, i] * np.conj(rotation[q, i]))
                upper += r0 * (amp[k, p, i] * weights[i]) * amp[k, q, i]
            else:
                r1[j, i] = 0.0
                r2[j, i] = 0.0
        gram[p, q] = upper
        gram[q, p] = upper.conjugate()


@numba.njit(**_JIT)
def gram_terms(tau, amp, weights, table, start_s, per_s, carrier_hz, t_min, t_max, pair_p,
               pair_q, response, step_s, half_s, zero):
    """Gram matrices ``(K, P, P)`` and matched-filter outputs b ``(K, P)`` of a batch of path
    sets (:meth:`Evidence._evidence`; arguments as :func:`fit_terms`)."""
    n_batch, n_paths, n_ch = tau.shape
    grams = np.zeros((n_batch, n_paths, n_paths), dtype=np.complex128)
    outputs = np.zeros((n_batch, n_paths), dtype=np.complex128)
    z = np.zeros((n_paths, n_ch), dtype=np.complex128)
    dz = np.zeros((n_paths, n_ch), dtype=np.complex128)
    r1 = np.zeros((pair_p.size, n_ch), dtype=np.complex128)
    r2 = np.zeros((pair_p.size, n_ch), dtype=np.complex128)
    for k in range(n_batch):
        _outputs_and_gram(k, tau, amp, weights, table, start_s, per_s, carrier_hz, t_min,
                          t_max, pair_p, pair_q, response, step_s, half_s, zero, z, dz, r1,
                          r2, grams[k], outputs[k])
    return grams, outputs


@numba.njit(**_JIT)
def fit_terms(tau, amp, dtau, weights, table, start_s, per_s, carrier_hz, t_min, t_max,
              pair_p, pair_q, response, step_s, half_s, zero, derivatives):
    """Matched-filter outputs, Gram matrix, amplitudes, likelihood and (with ``derivatives``)
    its gradient and information for a batch of path sets (:meth:`Refinement._fit`).

    :param tau: delays ``(K, P, n)``, s. :param amp: predicted amplitudes ``(K, P, n)``.
    :param dtau: derivatives of ``tau`` over the free parameters ``(K, P, n, f)``.
    :param weights: 1 / noise power per channel ``(n,)``.
    :param table: the upsampled baseband ``(n, L)``; ``per_s`` its samples per second.
    :param pair_p: with ``pair_q``, the path pairs p < q that may overlap ``(Q,)``.
    :param response: the point response and its derivatives ``(3, R)`` from ``-half_s`` in
        steps of ``step_s``; ``zero``: r(0), r'(0), r''(0).
    :return: likelihood ``(K,)``, gradient ``(K, f)``, information ``(K, f, f)``,
        amplitudes ``(K, P)``, Gram matrices ``(K, P, P)``, outputs b ``(K, P)``.
    """
    n_batch, n_paths, n_ch = tau.shape
    n_free = dtau.shape[3]
    evidence = np.zeros(n_batch)
    grad = np.zeros((n_batch, n_free))
    info = np.zeros((n_batch, n_free, n_free))
    coef = np.zeros((n_batch, n_paths), dtype=np.complex128)
    grams = np.zeros((n_batch, n_paths, n_paths), dtype=np.complex128)
    outputs = np.zeros((n_batch, n_paths), dtype=np.complex128)
    z = np.zeros((n_paths, n_ch), dtype=np.complex128)
    dz = np.zeros((n_paths, n_ch), dtype=np.complex128)
    r1 = np.zeros((pair_p.size, n_ch), dtype=np.complex128)
    r2 = np.zeros((pair_p.size, n_ch), dtype=np.complex128)
    for k in range(n_batch):
        if n_paths == 0:
            continue
        gram = grams[k]
        _outputs_and_gram(k, tau, amp, weights, table, start_s, per_s, carrier_hz, t_min,
                          t_max, pair_p, pair_q, response, step_s, half_s, zero, z, dz, r1,
                          r2, gram, outputs[k])
        # A tiny ridge, so that paths with no energy stay solvable.
        scale = 0.0
        for p in range(n_paths):
            scale += gram[p, p].real
        regularised = gram.copy()
        for p in range(n_paths):
            regularised[p, p] += 1e-9 * scale / n_paths + 1e-300
        lower, factored = cholesky(regularised)
        a = hermitian_solve(regularised, lower, factored,
                            np.ascontiguousarray(outputs[k]).reshape((n_paths, 1)))[:, 0]
        coef[k] = a
        evidence[k] = np.real(np.sum(np.conj(outputs[k]) * a))
        if derivatives:
            _derivatives(k, a, amp, dtau, weights, z, dz, r1, r2, pair_p, pair_q, zero,
                         regularised, lower, factored, grad, info)
    return evidence, grad, info, coef, grams, outputs


@numba.njit(**_JIT)
def cholesky(matrix):
    """Lower-triangular L with ``matrix = L L^H`` (Cholesky-Banachiewicz) of a Hermitian
    matrix ``(n, n)``, and whether it is positive definite to rounding (else L is not
    complete). A sixth of the work of an inverse, and it gives the log determinant."""
    n = matrix.shape[0]
    lower = np.zeros((n, n), dtype=np.complex128)
    for j in range(n):
        d = matrix[j, j].real
        for k in range(j):
            d -= lower[j, k].real ** 2 + lower[j, k].imag ** 2
        if not (d > 0.0 and d < np.inf):
            return lower, False
        root = math.sqrt(d)
        lower[j, j] = root
        for i in range(j + 1, n):
            t = matrix[i, j]
            for k in range(j):
                t -= lower[i, k] * np.conj(lower[j, k])
            lower[i, j] = t / root
    return lower, True


@numba.njit(**_JIT)
def hermitian_solve(matrix, lower, factored, rhs):
    """``matrix^-1 rhs`` (``rhs (n, m)``) from :func:`cholesky`'s ``lower``, or by LU where
    the matrix was not ``factored`` (not positive definite to rounding)."""
    if not factored:
        return np.linalg.solve(matrix, rhs)
    n, m = rhs.shape
    x = rhs.astype(np.complex128)
    for c in range(m):
        for i in range(n):
            t = x[i, c]
            for k in range(i):
                t -= lower[i, k] * x[k, c]
            x[i, c] = t / lower[i, i].real
        for i in range(n - 1, -1, -1):
            t = x[i, c]
            for k in range(i + 1, n):
                t -= np.conj(lower[k, i]) * x[k, c]
            x[i, c] = t / lower[i, i].real
    return x


@numba.njit(**_JIT)
def _derivatives(k, a, amp, dtau, weights, z, dz, r1, r2, pair_p, pair_q, zero, gram, lower,
                 factored, grad, info):
    """Gradient and Gauss-Newton information of row ``k`` (:meth:`Refinement._fit`)."""
    n_paths, n_ch = z.shape
    n_free = dtau.shape[3]
    alpha = np.empty((n_paths, n_ch), dtype=np.complex128)
    for p in range(n_paths):
        for i in range(n_ch):
            alpha[p, i] = a[p] * amp[k, p, i]
    slope = dz - zero[1] * alpha
    for j in range(pair_p.size):
        p, q = pair_p[j], pair_q[j]
        for i in range(n_ch):
            slope[q, i] += alpha[p, i] * np.conj(r1[j, i])
            slope[p, i] -= alpha[q, i] * r1[j, i]
    full = np.zeros((n_free, n_free), dtype=np.complex128)
    sj = np.zeros((n_paths, n_free), dtype=np.complex128)
    for p in range(n_paths):
        for i in range(n_ch):
            w = weights[i]
            g_term = w * np.conj(alpha[p, i]) * slope[p, i]
            d_term = -zero[2] * w * abs(alpha[p, i]) ** 2
            s_term = -zero[1] * (amp[k, p, i] * w) * alpha[p, i]
            for f in range(n_free):
                grad[k, f] += 2.0 * g_term.real * dtau[k, p, i, f]
                sj[p, f] += s_term * dtau[k, p, i, f]
                for g in range(n_free):
                    full[f, g] += d_term * dtau[k, p, i, f] * dtau[k, p, i, g]
    for j in range(pair_p.size):
        p, q = pair_p[j], pair_q[j]
        for i in range(n_ch):
            w = weights[i]
            cross = -r2[j, i] * np.conj(w * alpha[p, i]) * alpha[q, i]
            to_p = -r1[j, i] * (amp[k, p, i] * w) * alpha[q, i]
            to_q = np.conj(r1[j, i]) * (amp[k, q, i] * w) * alpha[p, i]
            for f in range(n_free):
                sj[p, f] += to_p * dtau[k, q, i, f]
                sj[q, f] += to_q * dtau[k, p, i, f]
                for g in range(n_free):
                    term = cross * dtau[k, p, i, f] * dtau[k, q, i, g]
                    full[f, g] += term
                    full[g, f] += term
    solved = hermitian_solve(gram, lower, factored, sj)
    for f in range(n_free):
        for g in range(n_free):
            projected = 0.0j
            for p in range(n_paths):
                projected += np.conj(sj[p, f]) * solved[p, g]
            info[k, f, g] = 2.0 * (full[f, g] - projected).real


@numba.njit(**_JIT)
def _piston(x):
    """2 J1(x) / x, the amplitude directivity of a circular piston (its power series: x is
    ka sin t, about 1 for these transducers, where 12 terms reach double precision)."""
    half2 = 0.25 * x * x
    term = 1.0
    total = 1.0
    for m in range(1, 60):
        term *= -half2 / (m * (m + 1))
        total += term
        if abs(term) < 1e-17 * abs(total):
            break
    return total


@numba.njit(**_JIT)
def path_terms(thetas, img_m, img_t, reflection, vertical_only, offsets, c0, absorb, ka,
               gains, t_min, t_max, min_relative, keep, decide, free):
    """Delays, predicted amplitudes and which paths are kept, and the delays' derivatives, of
    image paths for a batch of parameters (:meth:`Evidence._paths`, whose docstring gives the
    model).

    :param thetas: ``(K, 5)``. :param img_m: image maps of the paths ``(P, 3, 3)``, with
        ``img_t (P, 3)``, ``reflection (P,)`` and ``vertical_only (P,)``.
    :param offsets: receivers relative to the emitter at psi = 0 ``(n, 3)``.
    :param ka: the pistons' wavenumber times radius (their directivity 2 J1(x) / x at
        ``x = ka sin t``). :param gains: the receivers' ``(n,)``.
    :param keep: ``(K, P)``: the paths kept, or with ``decide`` those that exist, of which the
        ones heard inside the window and stronger than ``min_relative`` of the strongest wall
        echo are kept. :param free: indices into theta of the derivatives ``(f,)``.
    :return: ``tau (K, P, n)``, ``amp (K, P, n)`` (0 where not kept), ``keep (K, P)``,
        ``dtau (K, P, n, f)``.
    """
    n_batch, n_paths, n_ch = thetas.shape[0], img_m.shape[0], offsets.shape[0]
    tau = np.empty((n_batch, n_paths, n_ch))
    amp = np.empty((n_batch, n_paths, n_ch))
    kept = keep.copy()
    dtau = np.zeros((n_batch, n_paths, n_ch, free.size))
    rotated = np.empty((n_ch, 3))
    unit = np.empty(3)
    peak = np.empty(n_paths)
    for k in range(n_batch):
        e = thetas[k, :3]
        speed = c0 * thetas[k, 3]
        c, s = math.cos(thetas[k, 4]), math.sin(thetas[k, 4])
        for i in range(n_ch):
            rotated[i, 0] = c * offsets[i, 0] - s * offsets[i, 1]
            rotated[i, 1] = s * offsets[i, 0] + c * offsets[i, 1]
            rotated[i, 2] = offsets[i, 2]
        for p in range(n_paths):
            inside = True
            peak[p] = 0.0
            for i in range(n_ch):
                d2 = 0.0
                for a in range(3):
                    image = (img_m[p, a, 0] * e[0] + img_m[p, a, 1] * e[1]
                             + img_m[p, a, 2] * e[2] + img_t[p, a])
                    unit[a] = e[a] + rotated[i, a] - image
                    d2 += unit[a] * unit[a]
                dist = math.sqrt(d2)
                t = dist / speed
                tau[k, p, i] = t
                inside = inside and t > t_min and t < t_max
                sin_t = math.sqrt(min(max(1.0 - (unit[2] / dist) ** 2, 0.0), 1.0))
                directivity = _piston(ka * sin_t)
                amp[k, p, i] = (reflection[p] / dist * math.exp(-absorb * dist)
                                * directivity * directivity * gains[i])
                peak[p] = max(peak[p], amp[k, p, i])
                for f in range(free.size):
                    dtau[k, p, i, f] = _delay_derivative(free[f], img_m[p], unit, dist, speed,
                                                         t, thetas[k, 3], rotated[i])
            if decide:
                kept[k, p] = kept[k, p] and inside
        if decide:
            reference = 0.0
            for p in range(n_paths):
                if kept[k, p] and not vertical_only[p]:
                    reference = max(reference, peak[p])
            if reference <= 0.0:
                for p in range(n_paths):
                    if kept[k, p]:
                        reference = max(reference, peak[p])
            for p in range(n_paths):
                kept[k, p] = kept[k, p] and peak[p] >= min_relative * reference
        for p in range(n_paths):
            if not kept[k, p]:
                amp[k, p, :] = 0.0
    return tau, amp, kept, dtau


@numba.njit(**_JIT)
def _delay_derivative(which, m, delta, dist, speed, tau, kappa, rotated):
    """Derivative of one path's delay at one receiver over theta[which]: over the emitter
    (I - M)^T unit / c, over kappa -tau / kappa, and turning the heading moves the receiver by
    z x offset."""
    scale = dist * speed
    if which < 3:
        return (delta[which] - (m[0, which] * delta[0] + m[1, which] * delta[1]
                                + m[2, which] * delta[2])) / scale
    if which == 3:
        return -tau / kappa
    return delta[1] / scale * rotated[0] - delta[0] / scale * rotated[1]


@numba.njit(**_JIT)
def _segment_blocked(start, end, lo, hi):
    """Whether the segment ``start -> end`` passes through the box ``[lo, hi]`` (the slab
    test of :func:`~echoloc_ros.core.room.segments_blocked`, NaN meaning not blocked)."""
    enter = -np.inf
    leave = np.inf
    for a in range(3):
        d = end[a] - start[a]
        if d == 0.0:
            if not (start[a] > lo[a] and start[a] < hi[a]):
                return False
            continue
        t0 = (lo[a] - start[a]) / d
        t1 = (hi[a] - start[a]) / d
        if t0 != t0 or t1 != t1:
            return False
        enter = max(enter, min(t0, t1))
        leave = min(leave, max(t0, t1))
    return enter < leave and leave > 1e-9 and enter < 1.0 - 1e-9


@numba.njit(**_JIT)
def first_order_blocked(emitters, receivers, images, normals, offsets, box_lo, box_hi):
    """Whether first-order room paths pass through a box on either leg: from each emitter
    ``(K, 3)`` to the reflection point on the surface (``normals (Q, 3)``, ``offsets (Q,)``)
    on the line from its image ``(K, Q, 3)`` to the receiver ``(K, 3)``, and on to the
    receiver; boxes ``[box_lo, box_hi]`` ``(B, 3)`` each. :return: ``(K, Q)`` bool."""
    n_batch, n_paths = images.shape[0], images.shape[1]
    blocked = np.zeros((n_batch, n_paths), dtype=np.bool_)
    hit = np.empty(3)
    for k in range(n_batch):
        r = receivers[k]
        for q in range(n_paths):
            across = 0.0
            along = 0.0
            for a in range(3):
                across += r[a] * normals[q, a]
                along += (images[k, q, a] - r[a]) * normals[q, a]
            t = (offsets[q] - across) / along
            for a in range(3):
                hit[a] = r[a] + t * (images[k, q, a] - r[a])
            for b in range(box_lo.shape[0]):
                if (_segment_blocked(emitters[k], hit, box_lo[b], box_hi[b])
                        or _segment_blocked(hit, r, box_lo[b], box_hi[b])):
                    blocked[k, q] = True
                    break
    return blocked


@numba.njit(**_JIT)
def faces_valid(emitters, receivers, img_m, img_t, axis, side, value, lo, hi):
    """Which furniture faces reflect from each emitter ``(K, 3)`` to its receiver ``(K, 3)``
    (:meth:`ImageSources._faces_valid`): the emitter in front of the face and the reflection
    point on it. The faces' image maps ``img_m (F, 3, 3)``, ``img_t (F, 3)``; per face the axis
    of its normal, the side it faces, its plane and its box's corners ``lo, hi (F, 3)``.
    :return: ``(K, F)`` bool."""
    n_batch, n_faces = emitters.shape[0], img_m.shape[0]
    valid = np.zeros((n_batch, n_faces), dtype=np.bool_)
    image = np.empty(3)
    for k in range(n_batch):
        e, r = emitters[k], receivers[k]
        for f in range(n_faces):
            a = axis[f]
            if not side[f] * e[a] > side[f] * value[f]:
                continue
            for b in range(3):
                image[b] = (img_m[f, b, 0] * e[0] + img_m[f, b, 1] * e[1]
                            + img_m[f, b, 2] * e[2] + img_t[f, b])
            t = (value[f] - image[a]) / (r[a] - image[a])
            on_face = True
            for b in range(3):
                hit = image[b] + t * (r[b] - image[b])
                on_face = on_face and (b == a or (hit >= lo[f, b] and hit <= hi[f, b]))
            valid[k, f] = on_face
    return valid


@numba.njit(**_JIT)
def image_points(img_m, img_t, emitters):
    """Images ``M e + t`` of emitters ``(K, 3)`` under maps ``img_m (P, 3, 3)``, ``img_t
    (P, 3)``: ``(K, P, 3)``."""
    images = np.empty((emitters.shape[0], img_m.shape[0], 3))
    for k in range(emitters.shape[0]):
        e = emitters[k]
        for p in range(img_m.shape[0]):
            for b in range(3):
                images[k, p, b] = (img_m[p, b, 0] * e[0] + img_m[p, b, 1] * e[1]
                                   + img_m[p, b, 2] * e[2] + img_t[p, b])
    return images


@numba.njit(**_JIT)
def synthesis(tau, amp, coef, n_bins, start_s, bin_width_s, carrier_hz, response, step_s,
              half_s):
    """Baseband of fitted paths on the frame's bins ``(n, n_bins)`` (:meth:`Evidence.synthesise`:
    ``coef_p amp_ip exp(-j 2 pi f_c tau_ip) g(t - tau_ip)`` within ``half_s`` of each delay);
    ``tau, amp (P, n)``, ``coef (P,)``, ``response`` the point response g ``(R,)`` from
    ``-half_s`` in steps of ``step_s``."""
    n_paths, n_ch = tau.shape
    model = np.zeros((n_ch, n_bins), dtype=np.complex128)
    half = int(half_s / bin_width_s)
    last = response.size - 2
    for p in range(n_paths):
        for i in range(n_ch):
            if not amp[p, i] > 0:
                continue
            t = tau[p, i]
            c = coef[p] * amp[p, i] * np.exp(-2j * np.pi * carrier_hz * t)
            centre = int(np.rint((t - start_s) / bin_width_s))
            for b in range(max(centre - half, 0), min(centre + half + 1, n_bins)):
                x = (start_s + b * bin_width_s - t + half_s) / step_s
                j = min(max(int(x), 0), last)
                model[i, b] += c * (response[j] + (response[j + 1] - response[j]) * (x - j))
    return model


@numba.njit(**_JIT)
def residual_power(baseband, model, tau, amp, weights, start_s, bin_width_s, half):
    """Weighted power of ``baseband - model`` (``(n, n_bins)``) over the bins within ``half``
    of the delay of each modelled path (``amp > 0``) on its receiver (``tau, amp (P, n)``):
    :meth:`Evidence._residual_ratio`. :return: ``(power, bins counted)``."""
    n_paths, n_ch = tau.shape
    n_bins = baseband.shape[1]
    mask = np.zeros((n_ch, n_bins), dtype=np.bool_)
    for p in range(n_paths):
        for i in range(n_ch):
            if amp[p, i] > 0:
                centre = int(np.rint((tau[p, i] - start_s) / bin_width_s))
                for b in range(centre - half, centre + half + 1):
                    mask[i, min(max(b, 0), n_bins - 1)] = True
    power = 0.0
    count = 0
    for i in range(n_ch):
        for b in range(n_bins):
            if mask[i, b]:
                power += abs(baseband[i, b] - model[i, b]) ** 2 * weights[i]
                count += 1
    return power, count
