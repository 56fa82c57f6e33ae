"""What the array file's doubt can do to a fix: the covariance of the receivers' positions.

A receiver's acoustic phase centre lies off the file's position by a fraction of a millimetre
(the parts' tolerance, or what a calibration left: ``ArrayGeometry.position_std_m``). The
localizer fits the pose, the speed of sound and the heading to the echoes as the file's array
would hear them, so an offset ``delta`` of the receivers moves the fit by ``G delta``, and
the offsets, uniform or normal with standard deviations ``s``, move it with covariance
``G diag(s^2) G^T``. The offsets are the same frame after frame: an error the echoes cannot
average out, added to the published covariance as the room file's tolerance is (issue 18).

``G`` is the fit's own response: the final fit run again from its result with each
receiver coordinate of the model moved by :data:`STEP_M` (a receiver the model has moved by
``-d`` is, to the fit, the real one moved by ``d``). A linear model of the delays (each
path's gradient in its receiver's position through the normal equations of the delays'
residual, as the room tolerance's allowance has it) gave the right size but missed the
direction on dev poses by up to the whole shift (default room, 70 dB, receivers moved
+-0.3 mm: 0.013 mm predicted where the fit moved 0.26 mm): where echoes overlap, the fit
weighs them otherwise. The runs converge in two iterations from the fit (0.08 ms each; 1 ms
a frame for four receivers).
"""

from dataclasses import replace

import numpy as np

from echoloc_ros.core.array_geometry import yaw_matrix
from echoloc_ros.core.physics.config import N_THETA, YAW

# Each receiver coordinate's step for the fit's response, m: ten times less than the 0.5 mm
# offsets a part's tolerance allows (a fifth of a radian of the carrier), so the response is
# linear, and ten times more than the fit's own tolerance.
STEP_M = 1e-4
# Iterations of each run from the fit (it converges in two).
ITERATIONS = 3


def array_doubt(model, fr, theta: np.ndarray, valid: np.ndarray, free: np.ndarray,
                rotation: np.ndarray, std_m: np.ndarray) -> np.ndarray:
    """The covariance ``(5, 5)`` of the fit ``theta (5,)`` of frame ``fr`` from receivers
    off their positions, each coordinate independent with standard deviation ``std_m``
    ``(n, 3)`` (array axes): ``G diag(std^2) G^T`` as the module says; zeros where no
    receiver has a doubt.

    :param model: the localizer part that fitted it (its ``_newton``), with the paths
        ``valid`` ``(1, P)`` and the ``free`` parameters it fitted.
    :param rotation: the array's axes in the room's ``(3, 3)`` (heading and tilt).
    """
    std = np.ravel(std_m)
    out = np.zeros((N_THETA, N_THETA))
    moving = np.flatnonzero(std > 0)
    if moving.size == 0:
        return out
    gain = np.zeros((N_THETA, moving.size))
    for j, k in enumerate(moving):
        step = np.zeros(std.size)
        step[k] = STEP_M
        moved = replace(fr, offsets=fr.offsets - step.reshape(-1, 3) @ rotation.T)
        fit = model._newton(moved, theta[None], valid, free, ITERATIONS, need_info=False)
        gain[:, j] = (fit.theta[0] - theta) / STEP_M * std[k]
    return gain @ gain.T


def origin_jacobian(fr, emitter_m: np.ndarray, yaw_rad: float) -> np.ndarray:
    """The array origin's Jacobian ``(3, 5)`` in the fitted ``(x, y, z, kappa, psi)``, for
    the origin ``emitter - R(yaw) tilt emitter_m`` of a fit of frame ``fr`` (a
    :class:`~echoloc_ros.core.physics.matched_filter.Frame`) at heading ``yaw_rad``."""
    emitter = fr.tilt @ np.asarray(emitter_m, dtype=float)
    jacobian = np.zeros((3, N_THETA))
    jacobian[:, :3] = np.eye(3)
    if fr.yaw_free:
        jacobian[:, YAW] = -yaw_matrix(yaw_rad + 0.5 * np.pi) @ (emitter * [1.0, 1.0, 0.0])
    return jacobian
