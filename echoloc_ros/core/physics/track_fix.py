"""A local fix: the array refined from where its track predicts it, without the global search.

:meth:`PhysicsLocalizer.localize` searches the whole room every frame (candidates over the
plan, their polish, the axis and height scans, the wider look). Once a confirmed track knows
where the array is to a few millimetres, that search mostly re-finds what the track predicts.
:func:`local_fix` builds the frame as :meth:`PhysicsLocalizer.propose` does, starts the final
Gauss-Newton refinement at the prediction (its speed of sound the last full fix's) and finishes
it as :meth:`PhysicsLocalizer.finish` does (the same doubt, axis scans and covariance), so
that it returns the same :class:`Estimate` a full search would for that candidate. Whether the
fix may stand in for a full search is the caller's judgement
(:class:`~echoloc_ros.core.track_search.TrackSearch`); this module says only what it found.

A fix whose final fit leaves the echoes unexplained (a residual over the noise above
:data:`UNEXPLAINED_RATIO`) is doubtful whatever its scans find. Unless the caller asks to judge
such fixes (``unexplained``), none is finished: its axis scans, the most of a local fix's cost,
would be read by no one.

:func:`rival_first` is the periodic check of a track's fix: whether the best of the full
search's candidates over the room lies elsewhere (a rival the full search would finish).
"""

from dataclasses import dataclass

import numpy as np

from echoloc_ros.core.array_geometry import yaw_matrix
from echoloc_ros.core.echo_processing import EchoFeatures, working_channels
from echoloc_ros.core.physics.config import (AXIS_REFINE_GAP, HEIGHT_PEAKS, UNEXPLAINED_RATIO,
                                             YAW_SPAN_MAX_RAD, YAW_SPAN_SIGMAS)
from echoloc_ros.core.physics.results import Estimate, Proposal

# A candidate this close to a fix is the fix's own place: :meth:`PhysicsLocalizer.finish`
# counts candidates within 2 cm of its refined fix as the fix, not as rivals, m.
SAME_PLACE_M = 0.02


@dataclass(frozen=True)
class LocalFix:
    """What :func:`local_fix` found.

    :ivar estimate: the fix, finished as :meth:`PhysicsLocalizer.finish` finishes a candidate
        (``None`` where none was made: see ``refusal``).
    :ivar doubtful: the fix leaves its frame doubtful as the full path judges it
        (:meth:`WiderLook._doubtful_fix`): a full search would have searched again.
    :ivar peaks_ahead: the evidence along an axis, or the height, peaks where the fix does
        not clearly beat it (gap below :data:`AXIS_REFINE_GAP`): a full search would have
        refined those peaks as candidates.
    :ivar refusal: why no fix was made (``''`` where one was): ``'receivers'`` (a receiver
        is dead: the full path localizes with the rest), ``'doubtful'`` (its fit leaves the
        echoes unexplained, and the caller does not judge such fixes or an axis is weak).
    :ivar unexplained: the fix is doubtful only for the echoes its fit leaves unexplained (no
        axis weak), and was finished for the caller to judge (``local_fix(unexplained=True)``).
    """

    estimate: Estimate | None
    doubtful: bool = False
    peaks_ahead: bool = False
    refusal: str = ''
    unexplained: bool = False


def seed_theta(physics, yaw_rad: float, tilt: np.ndarray, origin_m: np.ndarray,
               speed_ratio: float) -> np.ndarray:
    """The parameters ``(5,)`` (emitter x, y, z, kappa, psi = 0) of the array at origin
    ``origin_m (3,)`` with the heading given, ``tilt`` ``(3, 3)`` and the speed of sound
    ``speed_ratio`` times the frame's assumed one (the inverse of
    :meth:`Proposal.positions_m`)."""
    emitter_m = yaw_matrix(yaw_rad) @ (tilt @ physics.array.emitter_m)
    return np.concatenate([np.asarray(origin_m, dtype=float) + emitter_m,
                           [speed_ratio, 0.0]])


def local_fix(physics, features: EchoFeatures, yaw_rad: float, origin_m: np.ndarray,
              speed_of_sound_mps: float, temperature_c: float | None = None,
              yaw_std_rad: float | None = None,
              tilt_rad: tuple[float, float] | None = None,
              height_scan: bool = False, scans=None, unexplained: bool = False) -> LocalFix:
    """The fix refined from the array origin ``origin_m (3,)`` (a track's prediction) and the
    speed of sound ``speed_of_sound_mps`` (the last full fix's), m/s.

    :param physics: the :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`.
    :param features: the frame (:meth:`EchoProcessor.process`).
    :param yaw_rad: the heading given, rad; ``yaw_std_rad``, ``temperature_c`` and
        ``tilt_rad`` as :meth:`PhysicsLocalizer.localize` takes them.
    :param height_scan: also scan the evidence along the height for peaks ahead of the fix,
        as :meth:`PhysicsLocalizer.settled` does (:meth:`WiderLook._height_peaks`). Its peaks
        only ever become candidates to refine, never a covariance term, and a track holds its
        height to a millimetre; the periodic full search scans it.
    :param scans: what scans the axes where :meth:`AxisRivals._scans_pay` (a track's
        :class:`~echoloc_ros.core.physics.local_scans.LocalScans`: near the peaks its last
        scans found); ``None``: the full search's scans.
    :param unexplained: finish a fix whose fit leaves the echoes unexplained (residual ratio
        above :data:`UNEXPLAINED_RATIO`) where no axis of it is weak, its axes scanned whole
        (``scans.whole``: the windows hold the peaks of explained fixes), for the caller to
        judge (:attr:`LocalFix.unexplained`). Otherwise, and where an axis is weak, such a
        fix is refused (``'doubtful'``) before its scans.
    :raises ValueError: what :meth:`PhysicsLocalizer.propose` refuses (a channel count, a
        heading, a temperature or a tilt out of range), or a non-finite seed.
    """
    origin_m = np.asarray(origin_m, dtype=float)
    if origin_m.shape != (3,) or not np.all(np.isfinite(origin_m)):
        raise ValueError(f'origin_m must be 3 finite numbers (m), got {origin_m}')
    if not (np.isfinite(speed_of_sound_mps) and speed_of_sound_mps > 0):
        raise ValueError(f'speed_of_sound_mps must be finite and positive, got '
                         f'{speed_of_sound_mps}')
    yaw_std, temperature = physics._checked(features, yaw_rad, temperature_c, yaw_std_rad)
    if not working_channels(features).all():
        return LocalFix(None, refusal='receivers')
    fr = physics.frame(features, yaw_rad, temperature, tilt_rad)
    fr.axis_scan = scans
    if yaw_std > 0.0:
        fr.yaw_info = 1.0 / yaw_std ** 2
        span = min(YAW_SPAN_SIGMAS * yaw_std, YAW_SPAN_MAX_RAD)
        fr.yaw_grid = np.array([-span, span])
    theta = seed_theta(physics, yaw_rad, fr.tilt, origin_m, speed_of_sound_mps / fr.c0)
    fr.gain = frame_gain(physics, fr, theta)
    # One candidate, polished as it stands: no rival for finish to weigh, so its score is
    # never read.
    proposal = Proposal(localizer=physics, frame=fr, yaw_given_rad=float(yaw_rad),
                        thetas=theta[None], scores=np.zeros(1), n_polished=1,
                        working=np.ones(features.n_channels, dtype=bool))
    # The fit alone says whether the echoes are explained (kept on the proposal: _finished
    # reads the same fit).
    ratio, cov = (physics._fix_fit(proposal, 0)[i] for i in (3, 5))
    explained = ratio <= UNEXPLAINED_RATIO
    if not explained:
        if not unexplained or np.any(physics._weak_axes(cov)):
            return LocalFix(None, doubtful=True, refusal='doubtful')
        if scans is not None:
            fr.axis_scan = scans.whole
    estimate, peaks = physics._finished(proposal)
    if height_scan and physics.axis_rivals and HEIGHT_PEAKS:
        peaks = peaks + physics._height_peaks(fr, physics._fix_theta(proposal, estimate))
    ahead = any(gap < AXIS_REFINE_GAP for gap, _ in peaks)
    return LocalFix(estimate, physics._doubtful_fix(estimate), ahead,
                    unexplained=not explained)


def frame_gain(physics, fr, theta: np.ndarray) -> float:
    """The amplitude scale of the predicted echoes (:attr:`Frame.gain`) fitted on the floor and
    ceiling at ``theta (5,)``'s height and speed, as
    :meth:`PhysicsLocalizer._vertical_fit` fits it for a full search (their paths depend on
    neither x, y nor the heading)."""
    fit = physics._newton(fr, theta[None], physics._vertical_only[None], np.array([2, 3]), 1,
                          need_info=False)
    strength = np.sum(fit.amp[0] ** 2 * fr.weights, axis=-1)
    return float(np.sum(np.abs(fit.coef[0]) * strength) / max(np.sum(strength), 1e-300))


def rival_first(proposal: Proposal, position_m: np.ndarray) -> bool:
    """Whether the best candidate of ``proposal`` (the full search's candidates over the room,
    :meth:`PhysicsLocalizer.propose`) lies more than :data:`SAME_PLACE_M` from the array
    origin ``position_m (3,)`` (a track's local fix on the same frame): a rival the full search
    would finish. Where it does not, the full search would finish the fix the track holds."""
    best_m = proposal.positions_m()[0]
    return bool(np.linalg.norm(best_m - np.asarray(position_m, dtype=float)) > SAME_PLACE_M)
