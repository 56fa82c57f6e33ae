"""What the array file's doubt can do to a fix: the covariance of the receivers' positions.

A receiver's acoustic phase centre lies off the file's position by a fraction of a millimetre
(the parts' tolerance, or what a calibration left: ``ArrayGeometry.position_std_m``, and the
shift common to every receiver a calibration cannot see, ``ArrayGeometry.common_std_m``).
The localizer fits the pose, the speed of sound and the heading to the echoes as the file's
array would hear them, so an offset ``delta`` of the receivers moves the fit by ``G delta``,
and the offsets move it with covariance ``G diag(s^2) G^T`` (each coordinate independent)
plus ``G_c diag(s_c^2) G_c^T`` for the common shift (``G_c`` the sum of ``G`` over the
receivers: one error moving them all moves the fit ``n`` times as far as one receiver's, ``n``
times more in variance than the same doubt stated for each receiver alone). The offsets are
the same frame after frame: an error the echoes cannot average out, added to the published
covariance as the room file's tolerance is (issue 18).

``G`` is the fit's own response, from its Gauss-Newton information at the fix
(:func:`fit_response`): a receiver offset moves the delays of that receiver's paths, which
to the fit is one more parameter, and the fit's parameters answer it through the cross terms
of its information, ``G = -I_tt^-1 I_td`` (the heading prior in ``I_tt`` as in the fit's
steps). That is the first step of the fit re-run on the moved model (:func:`rerun_response`,
the reference it is tested against) at the cost of one evaluation. A linear model of the
delays alone (each path's gradient through the normal equations of the delays' residual, as
the room tolerance's allowance has it) missed the direction on dev poses by up to the whole
shift (default room, 70 dB, receivers moved +-0.3 mm: 0.013 mm predicted where the fit moved
0.26 mm): it weighs overlapping echoes as if apart, which the fit's information does not.
"""

from dataclasses import replace

import numpy as np

from echoloc_ros.core.array_geometry import ArrayGeometry, yaw_matrix
from echoloc_ros.core.physics.config import N_THETA, YAW
from echoloc_ros.core.physics.kernels import fit_terms

# Each receiver coordinate's step for the delays' derivatives, m: a fiftieth of the carrier's
# wavelength, where the delays are linear in it.
STEP_M = 1e-4
# The re-run response's step, m: the fit stops once every step of its parameters is below
# its tolerance (0.1 mm in position), so a receiver moved 0.1 mm, whose response is about as
# large, often left the fit where it was (stop 33's term: its size 1.6 times small in
# variance, its direction off); moved 1 mm each way the fit follows to a tenth.
RERUN_STEP_M = 1e-3
# Iterations of each re-run from the fit.
ITERATIONS = 5


def array_doubt(model, fr, theta: np.ndarray, valid: np.ndarray, free: np.ndarray,
                rotation: np.ndarray, array: ArrayGeometry) -> np.ndarray:
    """The covariance ``(5, 5)`` of the fit ``theta (5,)`` of frame ``fr`` from receivers
    off their positions as ``array`` doubts them (``position_std_m`` ``(n, 3)``, each
    coordinate independent, and ``common_std_m`` ``(3,)`` one shift of them all; array
    axes): ``G diag(s^2) G^T + G_c diag(s_c^2) G_c^T`` as the module says; zeros where
    neither states a doubt.

    :param model: the localizer part that fitted it, with the paths ``valid`` ``(1, P)``
        and the ``free`` parameters it fitted.
    :param rotation: the array's axes in the room's ``(3, 3)`` (heading and tilt).
    """
    std, common = np.ravel(array.position_std_m), np.asarray(array.common_std_m)
    if not (np.any(std > 0) or np.any(common > 0)):
        return np.zeros((N_THETA, N_THETA))
    gain = fit_response(model, fr, theta, valid, free, rotation)
    common_gain = gain.reshape(N_THETA, -1, 3).sum(axis=1) * common
    return (gain * std) @ (gain * std).T + common_gain @ common_gain.T


def fit_response(model, fr, theta: np.ndarray, valid: np.ndarray, free: np.ndarray,
                 rotation: np.ndarray) -> np.ndarray:
    """``G`` ``(5, 3 n)``: how the fit ``theta`` moves per metre of each receiver coordinate's
    offset (array axes, receiver by receiver), from the fit's information at ``theta`` with
    the delays' derivatives in the offsets as more columns (the module's docstring)."""
    free = np.asarray(free, dtype=np.int64)
    paths, keep, (tau, amp, dtau), pairs = model._starting_paths(fr, theta[None], valid, free,
                                                                 1, True)
    n = tau.shape[-1]
    # Each delay's gradient in its receiver's offset (the model's, before the heading
    # correction psi turns it): the unit vector from the path's image to the receiver over
    # the speed, as path_terms has the delay.
    psi = yaw_matrix(theta[YAW])
    image = model._img_m[paths] @ theta[:3] + model._img_t[paths]
    delta = theta[:3] + fr.offsets @ psi.T - image[:, None]
    along = delta / (np.linalg.norm(delta, axis=-1, keepdims=True) * fr.c0 * theta[3]) @ psi
    # The model's receiver moved by -R delta is, to the fit, the real one moved by delta.
    per = -(along @ rotation)
    f = free.size
    columns = np.zeros(tau.shape + (f + 3 * n,))
    columns[..., :f] = dtau
    for i in range(n):
        columns[0, :, i, f + 3 * i:f + 3 * i + 3] = per[:, i]
    info = fit_terms(tau, amp, columns, *model._signal(fr, pairs), True)[2][0]
    own = info[:f, :f]
    if free[-1] == YAW:
        own[-1, -1] += fr.yaw_info
    gain = np.zeros((N_THETA, 3 * n))
    try:
        gain[free] = -np.linalg.solve(own, info[:f, f:])
    except np.linalg.LinAlgError:
        gain[free] = -np.linalg.lstsq(own, info[:f, f:], rcond=None)[0]
    return gain


def rerun_response(model, fr, theta: np.ndarray, valid: np.ndarray, free: np.ndarray,
                   rotation: np.ndarray, step_m: float = RERUN_STEP_M) -> np.ndarray:
    """``G`` ``(5, 3 n)`` as :func:`fit_response`, by running the fit again from ``theta``
    with each receiver coordinate of the model moved by ``+-step_m`` (``6 n`` fits, central
    differences: the reference the information's response is checked against)."""
    n = fr.offsets.shape[0]
    gain = np.zeros((N_THETA, 3 * n))
    for k in range(3 * n):
        ends = []
        for sign in (1.0, -1.0):
            step = np.zeros(3 * n)
            step[k] = sign * step_m
            moved = replace(fr, offsets=fr.offsets - step.reshape(-1, 3) @ rotation.T)
            ends.append(model._newton(moved, theta[None], valid, free, ITERATIONS,
                                      need_info=False).theta[0])
        gain[:, k] = (ends[0] - ends[1]) / (2 * step_m)
    return gain


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
