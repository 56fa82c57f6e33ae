"""What a fix's final fit derives from the fit, compiled (numba): the noise it leaves and its
paths' misfit (:meth:`Evidence._residual_floor`, :meth:`Evidence._path_misfit`) and the
covariance from its information (:meth:`Covariance._covariance`).

Written in numpy, they took the frame less the fit over the whole window in five passes
(difference, magnitude, square, weight, the floor's division) and gathered every path's
main-lobe bins through index arrays: some twenty calls for a fifth of a final fit's cost.
Here the residual is one pass and the misfit one loop over the paths' lobes reading the
residual in place (its floor is :func:`~echoloc_ros.core.physics.matched_filter.lower_quartile`
of the residual's tail, one partition in numpy: numba's is four times as slow). The covariance
was ten numpy calls on 5 x 5 arrays around an eigendecomposition.
"""

import numba
import numpy as np

from echoloc_ros.core.physics.config import YAW
from echoloc_ros.core.physics.kernels import residual_power, synthesis

_JIT = {'cache': True, 'nogil': True, 'error_model': 'numpy'}


@numba.njit(**_JIT)
def weighted_residual(baseband, fitted, weights):
    """The frame less the fit in noise units, ``|baseband - fitted|^2 weights`` ``(n, m)``,
    in one pass (the squared magnitude as the sum of the squared parts: ``abs`` is a
    ``hypot`` here, twenty times the cost).

    :param baseband: ``(n, m)`` complex64; ``fitted``: ``(n, m)`` complex128;
        ``weights``: ``(n,)``.
    """
    n_ch, n_bins = baseband.shape
    residual = np.empty((n_ch, n_bins))
    for i in range(n_ch):
        for b in range(n_bins):
            d = np.complex128(baseband[i, b]) - fitted[i, b]
            residual[i, b] = (d.real * d.real + d.imag * d.imag) * weights[i]
    return residual


@numba.njit(**_JIT)
def fit_residual(baseband, tau, amp, coef, weights, start_s, dt, carrier_hz, response, step_s,
                 half_s, half):
    """What a final fit's doubt and covariance read of the frame less the fit, in one call:
    the fit synthesised (:func:`~echoloc_ros.core.physics.kernels.synthesis`), its weighted
    power over its paths' main lobes and their bins
    (:func:`~echoloc_ros.core.physics.kernels.residual_power`, ``half`` bins each way) and
    the residual in noise units (:func:`weighted_residual`): the same functions on the same
    arrays as their three calls (:meth:`Evidence._fit_residual`).

    :return: ``(fitted (n, m), power, bins counted, residual (n, m))``.
    """
    fitted = synthesis(tau, amp, coef, baseband.shape[1], start_s, dt, carrier_hz, response,
                       step_s, half_s)
    power, count = residual_power(baseband, fitted, tau, amp, weights, start_s, dt, half)
    return fitted, power, count, weighted_residual(baseband, fitted, weights)


@numba.njit(**_JIT)
def path_misfit(residual, floor, tau, amp, coef, weights, start_s, dt, half,
                correlation_factor):
    """Each modelled path's residual over ``floor`` in its main lobes (bins within ``half``
    of its delay on each receiver that receives it, clipped to the window), over those bins
    less ``correlation_factor`` (at least a quarter of them), at least 1, averaged with
    weights ``|coef_p|^2 sum_i amp_ip^2 weights_i`` (:meth:`Evidence._path_misfit`).

    :param residual: ``(n, m)`` (:func:`weighted_residual`); ``tau``, ``amp``: ``(P, n)``;
        ``coef``: ``(P,)``. :return: 1 where no path counts.
    """
    n_paths, n_rec = tau.shape
    n_bins = residual.shape[1]
    width = 2 * half + 1
    weighted, total = 0.0, 0.0
    for p in range(n_paths):
        power, received, strength = 0.0, 0, 0.0
        for i in range(n_rec):
            strength += amp[p, i] ** 2 * weights[i]
            if not amp[p, i] > 0:
                continue
            received += 1
            centre = int(np.rint((tau[p, i] - start_s) / dt))
            for k in range(-half, half + 1):
                power += residual[i, min(max(centre + k, 0), n_bins - 1)] / floor
        counted = received * width
        energy = abs(coef[p]) ** 2 * strength
        if counted > 0 and energy > 0:
            dof = max(counted - correlation_factor, 0.25 * counted)
            weighted += energy * max(power / dof, 1.0)
            total += energy
    return weighted / total if total > 0 else 1.0


@numba.njit(**_JIT)
def information_covariance(info, ratio, yaw_info, scale, least):
    """The covariance ``(5, 5)`` of :meth:`Covariance._covariance` (whose docstring gives
    it): ``info (5, 5)`` over ``ratio``, the heading prior ``yaw_info`` on psi (1 where the
    heading is fixed), inverted in the units ``scale (5,)`` with every eigenvalue at least
    ``least``."""
    n = info.shape[0]
    total = info / ratio
    total[YAW, YAW] += yaw_info if yaw_info > 0 else 1.0
    scaled = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            scaled[i, j] = total[i, j] * (scale[i] * scale[j])
    values, vectors = np.linalg.eigh(0.5 * (scaled + scaled.T))
    cov = np.zeros((n, n))
    for k in range(n):
        weight = 1.0 / max(values[k], least)
        for i in range(n):
            for j in range(n):
                cov[i, j] += vectors[i, k] * weight * vectors[j, k]
    for i in range(n):
        for j in range(n):
            cov[i, j] *= scale[i] * scale[j]
    return cov
