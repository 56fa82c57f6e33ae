"""A track's frame, compiled (numba): the prediction, the heading's hold and the probabilistic
data association of :class:`~echoloc_ros.core.tracker.PoseTracker`, and the covariance check
of :class:`~echoloc_ros.core.tracker_measurement.Measurement`.

Written in numpy these were some 400 calls a frame on 3x3 and 9x9 matrices (four Cholesky
factorisations and two solves through ``numpy.linalg``'s wrappers among them), 175-240 us of
CPU a frame hot and 0.4 ms live, for a few hundred flops. Here each is one loop nest over the
same matrices. The sums run in another order than numpy's BLAS and LAPACK calls, so the
results differ from the numpy form's in the last bits (1e-12 relative or less: the test
compares them on recorded laps); the covariance check returns the numpy form's symmetric
matrix to the bit.
"""

import numba
import numpy as np

# 1.5 log(2 pi): the normalisation of a 3-d Gaussian's log density.
_HALF_LOG_2PI_3 = 1.5 * np.log(2.0 * np.pi)


@numba.njit(cache=True, nogil=True, error_model='numpy')
def checked_symmetric(cov):
    """``(0.5 (cov + cov'), finite, positive_definite)`` of a 3x3 ``cov``: the symmetric part
    as numpy computes it, to the bit; whether every entry is finite; whether the symmetric part
    has a Cholesky factor (every pivot positive, as LAPACK's ``potrf`` asks)."""
    symmetric = np.empty((3, 3))
    finite = True
    for i in range(3):
        for j in range(3):
            if not np.isfinite(cov[i, j]):
                finite = False
            symmetric[i, j] = 0.5 * (cov[i, j] + cov[j, i])
    if not finite:
        return symmetric, False, False
    factor = np.zeros((3, 3))
    return symmetric, True, _cholesky3(symmetric, factor)


@numba.njit(cache=True, nogil=True, error_model='numpy')
def _cholesky3(a, factor):
    """The lower Cholesky factor of the 3x3 ``a`` into ``factor``; False where a pivot is not
    positive (``a`` not positive definite, or NaN)."""
    for j in range(3):
        d = a[j, j]
        for k in range(j):
            d -= factor[j, k] * factor[j, k]
        if not d > 0.0:
            return False
        factor[j, j] = np.sqrt(d)
        for i in range(j + 1, 3):
            v = a[i, j]
            for k in range(j):
                v -= factor[i, k] * factor[j, k]
            factor[i, j] = v / factor[j, j]
    return True


@numba.njit(cache=True, nogil=True, error_model='numpy')
def _solve3(factor, b, out):
    """``out = (L L')^-1 b`` for a 3-vector ``b``, ``L`` the lower ``factor``."""
    y = np.empty(3)
    for i in range(3):
        v = b[i]
        for k in range(i):
            v -= factor[i, k] * y[k]
        y[i] = v / factor[i, i]
    for i in range(2, -1, -1):
        v = y[i]
        for k in range(i + 1, 3):
            v -= factor[k, i] * out[k]
        out[i] = v / factor[i, i]


@numba.njit(cache=True, nogil=True, error_model='numpy')
def hold_heading(x, p, heading_rad, heading_variance_rad2, lateral_speed_std_mps, swing_mps,
                 swing_variance):
    """A state ``x`` and covariance ``p`` told that the track moves along ``heading_rad``
    (:func:`~echoloc_ros.core.tracker_motion.along_heading`, whose docstring gives the
    update), ``p`` symmetrised; ``p`` is updated in place and returned with the new state."""
    n = x.size
    h3, h4 = -np.sin(heading_rad), np.cos(heading_rad)
    speed2 = x[3] ** 2 + x[4] ** 2
    variance = (lateral_speed_std_mps ** 2 + speed2 * heading_variance_rad2
                + swing_variance)
    ph = np.empty(n)
    for i in range(n):
        ph[i] = p[i, 3] * h3 + p[i, 4] * h4
    gain = ph / (h3 * ph[3] + h4 * ph[4] + variance)
    x = x - gain * (h3 * x[3] + h4 * x[4] - swing_mps)
    for i in range(n):
        for j in range(n):
            p[i, j] -= gain[i] * ph[j]
    for i in range(n):
        for j in range(i + 1, n):
            v = 0.5 * (p[i, j] + p[j, i])
            p[i, j] = v
            p[j, i] = v
    return x, p


@numba.njit(cache=True, nogil=True, error_model='numpy')
def predict(state, covariance, f, q, hold, heading_rad, heading_variance_rad2,
            lateral_speed_std_mps, swing_mps, swing_variance):
    """A track's state and covariance a step on: ``f state`` and ``f P f' + q``; with
    ``hold``, then told that it moves along ``heading_rad``
    (:func:`~echoloc_ros.core.tracker_motion.along_heading`, whose docstring gives the
    update; ``swing_mps`` and ``swing_variance`` its ``swing``), and the covariance
    symmetrised as it symmetrises it."""
    n = state.size
    x = np.zeros(n)
    fp = np.zeros((n, n))
    p = np.empty((n, n))
    for i in range(n):
        for k in range(n):
            fik = f[i, k]
            if fik != 0.0:
                x[i] += fik * state[k]
                for j in range(n):
                    fp[i, j] += fik * covariance[k, j]
    for i in range(n):
        for j in range(n):
            v = q[i, j]
            for k in range(n):
                v += fp[i, k] * f[j, k]
            p[i, j] = v
    if hold:
        x, p = hold_heading(x, p, heading_rad, heading_variance_rad2, lateral_speed_std_mps,
                            swing_mps, swing_variance)
    return x, p


@numba.njit(cache=True, nogil=True, error_model='numpy')
def associate(state, p, positions, covariances, probabilities, doubted, gate, snap,
              velocity_gate, density):
    """Update a track predicted to the frame (``state``, ``p``) by probabilistic data
    association with the frame's places (:meth:`PoseTracker._associate`, whose docstring
    gives the rules): each place inside the gate (and, for a doubted frame, within ``snap``
    of the prediction) weighed by its probability times its likelihood, against "none" at
    ``density``; the mixture's mean and second moment.

    :return: ``(mean, covariance, weights, total)``: the track's new state and covariance
        (symmetrised), each place's weight (0 outside the gate) and the frame's likelihood
        under the track (its log ratio to ``density`` is the score's step).
    """
    n = state.size
    k_places = positions.shape[0]
    inside = np.zeros(k_places, dtype=np.bool_)
    distance2 = np.zeros(k_places)
    likelihood = np.zeros(k_places)
    innovations = np.empty((k_places, 3))
    factors = np.zeros((k_places, 3, 3))
    s = np.empty((3, 3))
    whitened = np.empty(3)
    for k in range(k_places):
        for i in range(3):
            innovations[k, i] = positions[k, i] - state[i]
            for j in range(3):
                s[i, j] = p[i, j] + covariances[k, i, j]
        if not _cholesky3(s, factors[k]):
            raise ValueError('the innovation covariance is not positive definite')
        log_det = 0.0
        d2 = 0.0
        for i in range(3):
            v = innovations[k, i]
            for j in range(i):
                v -= factors[k, i, j] * whitened[j]
            whitened[i] = v / factors[k, i, i]
            d2 += whitened[i] * whitened[i]
            log_det += np.log(factors[k, i, i])
        distance2[k] = d2
        inside[k] = d2 <= gate and probabilities[k] > 0.0
        if inside[k] and doubted:
            inside[k] = _snap_distance2(p, factors[k], innovations[k]) <= snap
        if inside[k]:
            likelihood[k] = probabilities[k] * np.exp(-0.5 * (d2 + 2.0 * log_det)
                                                      - _HALF_LOG_2PI_3)
    # A place outside the gate is not where the truth is, if the track is right: its mass is
    # "elsewhere", with "none".
    none = max(1.0 - probabilities.sum(), 0.0)
    for k in range(k_places):
        if not inside[k]:
            none += probabilities[k]
    total = none * density + likelihood.sum()
    weights = likelihood / total if total > 0 else likelihood
    w0 = 1.0 - weights.sum()
    means = np.empty((k_places, n))
    covs = np.zeros((k_places, n, n))
    for k in range(k_places):
        if inside[k]:
            # A place the track did not expect moves its position only.
            means[k], covs[k] = _kalman_update(state, p, factors[k], innovations[k],
                                               covariances[k], distance2[k] > velocity_gate)
    mean = w0 * state
    for k in range(k_places):
        if inside[k]:
            mean += weights[k] * means[k]
    d0 = state - mean
    covariance = w0 * (p + np.outer(d0, d0))
    for k in range(k_places):
        if inside[k]:
            d = means[k] - mean
            covariance += weights[k] * (covs[k] + np.outer(d, d))
    return mean, 0.5 * (covariance + covariance.T), weights, total


@numba.njit(cache=True, nogil=True, error_model='numpy')
def _kalman_update(state, p, factor, innovation, covariance, position_only):
    """The Kalman update of a track predicted to ``state``, ``p`` by one place: its
    ``innovation``, ``covariance`` (R) and the Cholesky ``factor`` of S = H P H' + R. Gain
    K = P H' S^-1 (S symmetric: each row of K solves S k = P's row), its rows beyond the
    position zeroed with ``position_only``; the covariance in Joseph's form,
    (I - K H) P (I - K H)' + K R K'."""
    n = state.size
    gain = np.empty((n, 3))
    column = np.empty(3)
    row = np.empty(3)
    for i in range(n):
        for j in range(3):
            column[j] = p[i, j]
        _solve3(factor, column, row)
        for j in range(3):
            gain[i, j] = row[j]
    if position_only:
        gain[3:, :] = 0.0
    joseph = np.eye(n)
    mean = np.empty(n)
    for i in range(n):
        v = state[i]
        for j in range(3):
            v += gain[i, j] * innovation[j]
            joseph[i, j] -= gain[i, j]
        mean[i] = v
    return mean, (joseph @ p) @ joseph.T + (gain @ covariance) @ gain.T


@numba.njit(cache=True, nogil=True, error_model='numpy')
def _snap_distance2(p, factor, innovation):
    """How far taking a place would move the track, as a squared Mahalanobis distance in its
    predicted position covariance: the step ``p3 s^-1 innovation`` in ``p3`` (the predicted
    position block of ``p``; :func:`~echoloc_ros.core.tracker_measurement.snap_distance2`)."""
    solved = np.empty(3)
    _solve3(factor, innovation, solved)
    step = np.zeros(3)
    for i in range(3):
        for j in range(3):
            step[i] += p[i, j] * solved[j]
    p3 = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            p3[i, j] = p[i, j]
    p3_factor = np.zeros((3, 3))
    if not _cholesky3(p3, p3_factor):
        raise ValueError('the predicted position covariance is not positive definite')
    back = np.empty(3)
    _solve3(p3_factor, step, back)
    return step[0] * back[0] + step[1] * back[1] + step[2] * back[2]


@numba.njit(cache=True, nogil=True, error_model='numpy')
def places_valid(positions, probabilities):
    """Whether a frame's places are finite and their probabilities finite, >= 0 and summing to
    at most 1 (within 1e-6): :meth:`Measurement._checked`'s two checks, in one call."""
    for k in range(positions.shape[0]):
        for i in range(positions.shape[1]):
            if not np.isfinite(positions[k, i]):
                return False, True
    for value in probabilities:
        if not (np.isfinite(value) and value >= 0.0):
            return True, False
    return True, probabilities.sum() <= 1.0 + 1e-6


@numba.njit(cache=True, nogil=True, error_model='numpy')
def weak_axis_bias(local_m2, fix_m2, track_m2, scale, widened_ratio):
    """:func:`~echoloc_ros.core.tracker_measurement.weak_axis_bias` of an undoubted fix whose
    local covariance is ``local_m2`` and published one ``fix_m2``: ``scale`` times the smaller
    of its local and the track's variance along each axis widened (published variance
    ``widened_ratio`` times the local or more), zeros elsewhere; to the bit as numpy computes
    it."""
    bias = np.zeros((3, 3))
    for i in range(3):
        local = local_m2[i, i]
        if fix_m2[i, i] >= widened_ratio * local:
            bias[i, i] = scale * min(local, track_m2[i, i])
    return bias


def warm_up() -> None:
    """Load the compiled kernels (from numba's cache, or compile them) with the argument types
    the tracker passes, so that the first tracked frames do not pay for it (0.3 s of CPU).
    Changes nothing."""
    covariance = np.eye(9)
    state, p = predict(np.zeros(9), covariance, covariance, covariance, True, 0.0, 0.0, 0.02,
                       0.0, 0.0)
    associate(state, p, np.zeros((1, 3)), np.eye(3)[None], np.array([0.5]), False, 16.0, 7.8,
              7.8, 0.02)
    checked_symmetric(np.eye(3))
    places_valid(np.zeros((1, 3)), np.array([0.5]))
    weak_axis_bias(np.eye(3), np.eye(3), np.eye(3), 2.0, 10.0)
