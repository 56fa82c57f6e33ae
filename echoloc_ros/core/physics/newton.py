"""The compiled Levenberg-Marquardt loop of :meth:`Refinement._newton` (numba): the steps, the
damping, the solves, the convergence test and the evidence at the best points, one call per
batch of starting points; and the evidence with the amplitude prior and the overlapping path
pairs of any batch (:class:`~echoloc_ros.core.physics.evidence.Evidence`).

Run from Python, each iteration of the loop cost some forty numpy calls of a few
microseconds each on arrays of a handful of rows; here each starting point runs its own
iterations (they never depended on each other) around the compiled delays
(:func:`~echoloc_ros.core.physics.kernels.path_terms`) and likelihood terms
(:func:`~echoloc_ros.core.physics.kernels.fit_terms`).
"""

import math

import numba
import numpy as np

from echoloc_ros.core.physics.config import YAW
from echoloc_ros.core.physics.kernels import (cholesky, fit_terms, gram_terms, hermitian_solve,
                                              path_terms)

_JIT = {'cache': True, 'nogil': True, 'error_model': 'numpy'}


@numba.njit(**_JIT)
def solve_small(matrix, rhs):
    """``matrix^-1 rhs`` by Gaussian elimination with partial pivoting, as LAPACK's getrf and
    getrs order it (the multipliers scaled by the pivot's reciprocal), for the few unknowns
    of a Levenberg-Marquardt step. :return: ``(x, solved)``; not solved when a pivot is
    exactly zero (LAPACK's singular case) or the system is not finite."""
    n = rhs.size
    a = matrix.copy()
    x = rhs.copy()
    for j in range(n):
        pivot = j
        for i in range(j + 1, n):
            if abs(a[i, j]) > abs(a[pivot, j]):
                pivot = i
        if not a[pivot, j] != 0.0:
            return x, False
        if pivot != j:
            for c in range(n):
                a[j, c], a[pivot, c] = a[pivot, c], a[j, c]
            x[j], x[pivot] = x[pivot], x[j]
        reciprocal = 1.0 / a[j, j]
        for i in range(j + 1, n):
            a[i, j] *= reciprocal
            for c in range(j + 1, n):
                a[i, c] -= a[i, j] * a[j, c]
    for j in range(n):
        for i in range(j + 1, n):
            x[i] -= x[j] * a[i, j]
    for j in range(n - 1, -1, -1):
        x[j] /= a[j, j]
        for i in range(j):
            x[i] -= x[j] * a[i, j]
    solved = True
    for j in range(n):
        solved = solved and np.isfinite(x[j])
    return x, solved


@numba.njit(**_JIT)
def _damped_step(info, grad, lam, psi, yaw_info, limit):
    """The Levenberg-Marquardt step ``(info + lam |diag| + yaw_info) step = grad - yaw_info
    psi``, clipped to ``+-limit``; ``yaw_info`` is the heading prior's curvature on each free
    parameter ``(f,)``. :return: ``(step, solved)``."""
    damped = info.copy()
    rhs = np.empty(grad.size)
    for f in range(grad.size):
        damped[f, f] += lam * abs(damped[f, f]) + 1e-300 + yaw_info[f]
        rhs[f] = grad[f] - yaw_info[f] * psi
    step, solved = solve_small(damped, rhs)
    for f in range(grad.size):
        step[f] = min(max(step[f], -limit[f]), limit[f])
    return step, solved


@numba.njit(**_JIT)
def _newton_row(k, theta0, keep, tau0, amp0, dtau0, geometry, signal, free, iterations,
                need_info, yaw_info, limit, tolerance, best, best_e, info, coef, gram, outputs,
                tau, amp):
    """The iterations of starting point ``k`` (:func:`newton`), into row ``k`` of the outputs.

    A step is taken from the best point so far with the information there; a worse point
    raises the damping tenfold (and ends the row beyond 1e3), a better one lowers it
    threefold (not below 1e-6). The row ends when every step is within ``tolerance``."""
    n_free = free.size
    no_free = np.zeros(0, dtype=np.int64)
    yaw_free = np.zeros(n_free)
    for f in range(n_free):
        if free[f] == YAW:
            yaw_free[f] = yaw_info
    theta = theta0[k:k + 1].copy()
    row_keep = keep[k:k + 1].copy()
    grad = np.zeros(n_free)
    lam = 1e-3
    for iteration in range(iterations + 1):
        last = iteration == iterations
        derivatives = need_info or not last
        if iteration == 0:
            t, a, d = tau0[k:k + 1], amp0[k:k + 1], dtau0[k:k + 1]
        else:
            t, a, _, d = path_terms(theta, geometry[0], geometry[1], geometry[2], geometry[3],
                                    geometry[4], geometry[5], geometry[6], geometry[7],
                                    geometry[8], geometry[9], geometry[10], geometry[11],
                                    row_keep, False, free if derivatives else no_free)
        e, g, h, c, m, b = fit_terms(t, a, d, signal[0], signal[1], signal[2], signal[3],
                                     signal[4], signal[5], signal[6], signal[7], signal[8],
                                     signal[9], signal[10], signal[11], signal[12],
                                     derivatives)
        e0 = e[0] + -0.5 * yaw_info * theta[0, YAW] ** 2
        if e0 >= best_e[k]:
            best[k], best_e[k] = theta[0], e0
            if derivatives:
                grad[:] = g[0]
                info[k] = h[0]
            coef[k], gram[k], outputs[k], tau[k], amp[k] = c[0], m[0], b[0], t[0], a[0]
            lam = max(lam / 3.0, 1e-6)
        else:
            lam *= 10.0
            if lam > 1e3:
                return
        if last:
            # The step from the last point would not be evaluated.
            return
        step, solved = _damped_step(info[k], grad, lam, best[k, YAW], yaw_free, limit)
        small = True
        for f in range(n_free):
            small = small and abs(step[f]) < tolerance[f]
        if not solved or small:
            return
        theta[0] = best[k]
        for f in range(n_free):
            theta[0, free[f]] += step[f]


@numba.njit(**_JIT)
def newton(theta0, keep, tau0, amp0, dtau0, geometry, signal, free, iterations, need_info,
           yaw_info, limit, tolerance, prior_variance):
    """Damped Gauss-Newton (Levenberg-Marquardt) on the likelihood with the amplitudes
    projected out, over the ``free`` entries of theta, for a batch of starting points
    (:meth:`Refinement._newton`, whose docstring gives the method), and the log evidence with
    the amplitude and heading priors at the best points.

    :param theta0: starting points ``(B, 5)``; ``keep`` the paths each models ``(B, P)``.
    :param tau0: with ``amp0`` and ``dtau0`` (``(B, P, n, f)``, or ``f`` = 0 without
        derivatives) the paths at ``theta0``.
    :param geometry: :func:`~echoloc_ros.core.physics.kernels.path_terms`' arguments from
        ``img_m`` to ``min_relative``; ``signal``: :func:`fit_terms`' from ``weights`` to
        ``zero``.
    :param need_info: the information at the best points is wanted (else the last
        evaluation skips the derivatives). :param yaw_info: the heading prior's curvature.
    :param limit: the largest step per free parameter ``(f,)``; ``tolerance``: steps all
        below it end the iterations. :param prior_variance: of each path's amplitude.
    :return: best points ``(B, 5)``, their log evidence ``(B,)`` (0 where no point had a
        finite likelihood), information ``(B, f, f)``, amplitudes ``(B, P)``, delays and
        predicted amplitudes ``(B, P, n)``.
    """
    n_start, n_paths, n_ch = tau0.shape
    best = theta0.copy()
    best_e = np.full(n_start, -np.inf)
    info = np.zeros((n_start, free.size, free.size))
    coef = np.zeros((n_start, n_paths), dtype=np.complex128)
    gram = np.zeros((n_start, n_paths, n_paths), dtype=np.complex128)
    outputs = np.zeros((n_start, n_paths), dtype=np.complex128)
    tau = np.zeros((n_start, n_paths, n_ch))
    amp = np.zeros((n_start, n_paths, n_ch))
    for k in range(n_start):
        _newton_row(k, theta0, keep, tau0, amp0, dtau0, geometry, signal, free, iterations,
                    need_info, yaw_info, limit, tolerance, best, best_e, info, coef, gram,
                    outputs, tau, amp)
    evidence = np.zeros(n_start)
    for k in range(n_start):
        if np.isfinite(best_e[k]):
            evidence[k] = (evidence_with_prior(gram[k], outputs[k], prior_variance)
                           + -0.5 * yaw_info * best[k, YAW] ** 2)
    return best, evidence, info, coef, tau, amp


@numba.njit(**_JIT)
def _columns(values, index):
    """``values[:, index]`` of a batch ``(K, P, ...)`` as a new C-ordered array (numba's
    advanced indexing on the second axis of a 3- or 4-D array, written out)."""
    out = np.empty((values.shape[0], index.size) + values.shape[2:], dtype=values.dtype)
    for k in range(values.shape[0]):
        for j in range(index.size):
            out[k, j] = values[k, index[j]]
    return out


@numba.njit(**_JIT)
def newton_from(theta0, valid, geometry, signal, free, iterations, need_info, derivatives,
                pair_limit_s, yaw_info, limit, tolerance, prior_variance):
    """:func:`newton` from the paths' start (:meth:`Refinement._starting_paths`) in one call:
    the images that exist at some starting point (``valid (B, P)``), their delays and
    amplitudes there with those heard kept (and with ``derivatives`` the delays' derivatives),
    the kept ones, the pairs within ``pair_limit_s`` of each other, and the iterations. The
    same arithmetic as the Python steps it replaces (the same compiled functions, on the same
    arrays), so the same bits, without their twenty numpy calls.

    :param geometry: :func:`~echoloc_ros.core.physics.kernels.path_terms`' arguments from
        ``img_m`` to ``min_relative`` for every image; ``signal``: :func:`fit_terms`' from
        ``weights`` to ``zero`` without the pairs (``weights`` to ``t_max``, then
        ``response`` to ``zero``). The rest as :func:`newton`.
    :return: :func:`newton`'s, then the images modelled ``(P',)`` and which each start
        keeps ``(B, P')``.
    """
    n_start, n_all = valid.shape
    exists = np.zeros(n_all, dtype=np.bool_)
    for k in range(n_start):
        for p in range(n_all):
            exists[p] = exists[p] or valid[k, p]
    paths = np.flatnonzero(exists)
    subset = _subset(geometry, paths)
    terms = path_terms(theta0, subset[0], subset[1], subset[2], subset[3], subset[4],
                       subset[5], subset[6], subset[7], subset[8], subset[9], subset[10],
                       subset[11], _columns(valid, paths), True,
                       free if derivatives else np.zeros(0, dtype=np.int64))
    fit = _newton_heard(theta0, terms, subset, signal, free, iterations, need_info,
                        pair_limit_s, yaw_info, limit, tolerance, prior_variance)
    return fit[0], fit[1], fit[2], fit[3], fit[4], fit[5], paths[fit[6]], fit[7]


@numba.njit(**_JIT)
def final_fit(theta0, models, signal, free, iterations, pair_limit_s, yaw_info, limit,
              tolerance, prior_variance):
    """A fix's final fit in one call (:meth:`ImageSources._final_fit`): the log evidence at
    ``theta0 (1, 5)`` of each of two ``models`` ``(valid (1, P), geometry)`` (the search's,
    and the one with the room's higher orders: :func:`model_evidence`'s number), and
    :func:`newton_from` (with the information) in the one whose evidence is higher, the
    second only where strictly higher, from the delays its evidence was taken at.

    :return: whether the second model was taken, then :func:`newton_from`'s.
    """
    e0, terms0 = _model_terms(theta0, models[0][0], models[0][1], signal, prior_variance, free)
    e1, terms1 = _model_terms(theta0, models[1][0], models[1][1], signal, prior_variance, free)
    richer = e1 > e0
    terms, geometry = (terms1, models[1][1]) if richer else (terms0, models[0][1])
    fit = _newton_heard(theta0, terms, geometry, signal, free, iterations, True, pair_limit_s,
                        yaw_info, limit, tolerance, prior_variance)
    return richer, fit[0], fit[1], fit[2], fit[3], fit[4], fit[5], fit[6], fit[7]


@numba.njit(**_JIT)
def _newton_heard(theta0, terms, geometry, signal, free, iterations, need_info, pair_limit_s,
                  yaw_info, limit, tolerance, prior_variance):
    """:func:`newton` over the paths some start keeps (``terms``: :func:`path_terms`' of
    ``geometry``'s paths at ``theta0``), those paths' indices among ``geometry``'s and which
    each start keeps."""
    tau, amp, kept, dtau = terms
    heard = np.zeros(kept.shape[1], dtype=np.bool_)
    for k in range(kept.shape[0]):
        for j in range(kept.shape[1]):
            heard[j] = heard[j] or kept[k, j]
    used = np.flatnonzero(heard)
    keep = _columns(kept, used)
    tau0 = _columns(tau, used)
    pair_p, pair_q = near_pairs(tau0, pair_limit_s)
    theta, evidence, info, coef, tau, amp = newton(
        theta0, keep, tau0, _columns(amp, used), _columns(dtau, used), _subset(geometry, used),
        (signal[0], signal[1], signal[2], signal[3], signal[4], signal[5], signal[6], pair_p,
         pair_q, signal[7], signal[8], signal[9], signal[10]),
        free, iterations, need_info, yaw_info, limit, tolerance, prior_variance)
    return theta, evidence, info, coef, tau, amp, used, keep


@numba.njit(**_JIT)
def _subset(geometry, paths):
    """:func:`path_terms`' arguments ``geometry`` for the images ``paths`` alone."""
    return (geometry[0][paths], geometry[1][paths], geometry[2][paths], geometry[3][paths],
            geometry[4], geometry[5], geometry[6], geometry[7], geometry[8], geometry[9],
            geometry[10], geometry[11])


@numba.njit(**_JIT)
def model_evidence(theta, valid, geometry, signal, prior_variance):
    """The log evidence of the paths heard from one pose ``theta (1, 5)`` of those that
    exist there (``valid (1, P)``): :meth:`Evidence._paths` (those heard kept) and
    :meth:`Evidence._evidence` (their overlapping pairs, Gram matrix and outputs, and
    :func:`evidence_with_prior`) in one call, the same arithmetic on the same arrays.
    ``geometry`` and ``signal`` as :func:`newton_from` takes them."""
    return _model_terms(theta, valid, geometry, signal, prior_variance,
                        np.zeros(0, dtype=np.int64))[0]


@numba.njit(**_JIT)
def _model_terms(theta, valid, geometry, signal, prior_variance, free):
    """:func:`model_evidence`, and the paths' terms it was taken from (:func:`path_terms`'
    with the delays' derivatives over ``free``)."""
    terms = path_terms(theta, geometry[0], geometry[1], geometry[2], geometry[3], geometry[4],
                       geometry[5], geometry[6], geometry[7], geometry[8], geometry[9],
                       geometry[10], geometry[11], valid, True, free)
    tau, amp = terms[0], terms[1]
    heard = np.zeros(tau.shape[1], dtype=np.bool_)
    for p in range(tau.shape[1]):
        for i in range(tau.shape[2]):
            heard[p] = heard[p] or amp[0, p, i] > 0
    used = np.flatnonzero(heard)
    tau, amp = _columns(tau, used), _columns(amp, used)
    pair_p, pair_q = near_pairs(tau, signal[9])
    gram, outputs = gram_terms(tau, amp, signal[0], signal[1], signal[2], signal[3], signal[4],
                               signal[5], signal[6], pair_p, pair_q, signal[7], signal[8],
                               signal[9], signal[10])
    return evidence_with_prior(gram[0], outputs[0], prior_variance), terms


@numba.njit(**_JIT)
def evidence_with_prior(gram, outputs, variance):
    """``b^H (M + I / v)^-1 b - log det(I + v M)`` for a Gram matrix ``M (P, P)``, outputs
    ``b (P,)`` and prior variance ``v`` (:meth:`Evidence._with_prior`)."""
    n = outputs.size
    system = variance * gram
    for p in range(n):
        system[p, p] += 1.0
    lower, factored = cholesky(system)
    a = hermitian_solve(system, lower, factored, (variance * outputs).reshape((n, 1)))[:, 0]
    total = 0.0
    for p in range(n):
        total += (np.conj(outputs[p]) * a[p]).real
    if not factored:
        return total - np.linalg.slogdet(system)[1]
    log_det = 0.0
    for p in range(n):
        log_det += 2.0 * math.log(lower[p, p].real)
    return total - log_det


@numba.njit(**_JIT)
def evidence_batch(gram, outputs, variance):
    """:func:`evidence_with_prior` of each of a batch ``(K, P, P)``, ``(K, P)``: ``(K,)``."""
    evidence = np.empty(gram.shape[0])
    for k in range(gram.shape[0]):
        evidence[k] = evidence_with_prior(gram[k], outputs[k], variance)
    return evidence


@numba.njit(**_JIT)
def near_pairs(tau, limit_s):
    """Path pairs ``(p, q)``, p < q in the order of ``np.triu_indices``, whose delays are
    within ``limit_s`` of each other on some receiver for some row of ``tau (K, P, n)``."""
    n_batch, n_paths, n_ch = tau.shape
    near_p = np.empty(n_paths * (n_paths - 1) // 2, dtype=np.int64)
    near_q = np.empty(near_p.size, dtype=np.int64)
    count = 0
    for p in range(n_paths):
        for q in range(p + 1, n_paths):
            near = False
            for k in range(n_batch):
                for i in range(n_ch):
                    if abs(tau[k, p, i] - tau[k, q, i]) < limit_s:
                        near = True
                        break
                if near:
                    break
            if near:
                near_p[count], near_q[count] = p, q
                count += 1
    return near_p[:count].copy(), near_q[:count].copy()
