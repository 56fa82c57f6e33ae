"""What one frame tells the tracker: the places the truth may be, each with its covariance
and probability (:class:`Measurement`)."""

from dataclasses import dataclass

import numpy as np

from echoloc_ros.core.physics.config import WIDENED_VARIANCE_RATIO
from echoloc_ros.core.tracker_kernels import checked_symmetric, places_valid
from echoloc_ros.core.tracker_kernels import weak_axis_bias as compiled_weak_axis_bias

# A rival a fix is reported with counts as a measurement with the fix's own covariance plus
# this much (m): rivals are unrefined candidates.
RIVAL_POSITION_STD_M = 0.01
# A fix the network holds right with less than this is taken as the Gaussian it was published
# with rather than as its mixture: with a stale room file the network's doubted fixes are right
# less often than it says, and wrong the same way from frame to frame (docs/physics.md).
MIXTURE_MIN_CONFIDENCE = 0.5
# Along an axis the physics widened toward the room (its published variance
# WIDENED_VARIANCE_RATIO times the local one or more: a weakly held axis, or a doubted fix),
# a physics fix counts with this many times its local variance. 1: as the physics gave it.
# Its local sigma is optimistic there: the right fixes (under 5 cm off) of dev laps dev_7_000,
# _001 and _009 lay at an rms of 1.3-2.3 local sigmas along such axes (2-3 % beyond 3.3; 0.9-1.1
# along the others), and with 4 those laps replayed better (p95 4.19 -> 3.50 cm, 2 -> 0 poses
# outside their 99.9 % ellipsoid). But on the held-out laps (seed 26) it let a run of sharp
# ghosts 22-53 cm off along held-out room 0's widened x into the gate: that lap went from p95
# 0.99 cm and no pose outside to 37.6 cm and 11 (room 24: 1 -> 0). So it is off; a wider gate
# along weak axes needs the ghost runs handled first (docs/results.md, r30-44).
WEAK_AXIS_VARIANCE_SCALE = 1.0
# The fix the localizer chose holds at least this share of the probability it shares with the
# fix its wider look did not choose (whose share is the evidence's mixture weight,
# :func:`~echoloc_ros.core.physics.wider_rival.unchosen_weight`). Where the localizer kept its
# first fix against a wider-look fix of higher evidence (the wider look's 'kept': a ghost can
# gather evidence while it leaves more of the echoes unexplained), that weight left the kept
# fix almost nothing: on dev laps (seeds 8 and 9, 6 rooms) every such frame (5) had the kept
# fix right (0.01-0.21 cm off) and the other 24-350 cm off, and the track refused the right
# fix and coasted on (dev_9_000 frame 86: 1.45 cm off). At 0.5 the choice counts as much as
# the evidence: a tie, which the track's prediction breaks. 0: the shares as given (the
# tracker before r35-95).
CHOSEN_MIN_SHARE = 0.5
# A fix whose fit leaves more than this many times the noise in its echoes (the physics'
# UNEXPLAINED_RATIO) carries a bias its own covariance does not: the published track adds
# (ratio - 1) times this squared (m), one sample of one-way range at 250 kHz, held for
# memory_s. Frames of a furnished dev shoebox at ratios 7-33 were 0.5-0.9 cm off with 1-2 mm
# sigmas, frame after frame (averaging does not remove a bias).
UNEXPLAINED_RATIO = 2.0
UNEXPLAINED_BIAS_STD_M = 0.0007
# Along an axis the physics widened toward the room (a weakly held axis: published variance
# WIDENED_VARIANCE_RATIO times the local one or more), a fix's local sigma is optimistic, and
# its error is a bias shared by the frames around it, not noise the track averages away: the
# right fixes of dev laps lay at an rms of 1.3-2.3 local sigmas along such axes (r30-44), and
# the undoubted tracked poses outside their 99.9 % ellipsoid on dev laps (dev_7_001: fixes
# 0.6-0.9 cm off along x with 2 mm local sigmas, the track at 1.7 mm) were all of this kind.
# The published track adds this many times the taken fix's local variance (or the track's
# own, if smaller) along such axes of an undoubted fix, held for memory_s as the unexplained
# bias is (0: off, the tracker before r33-75). Only the published covariance: the fix is
# fused with its own (a wider gate along weak axes let ghost runs in,
# WEAK_AXIS_VARIANCE_SCALE). Dev laps (seed 7 rooms 0-9, replayed): 1 and 2 both left no pose
# outside (main: 1) and widened no right pose past 10 cm; 2, since 1 still left one of a
# scripted lap's poses outside (test_tracker_motion.py).
WEAK_AXIS_BIAS_SCALE = 2.0


@dataclass
class Measurement:
    """Where the truth may be in one frame: ``k`` places, each with its covariance and the
    probability that the truth is there; ``1 - sum(probabilities)`` is the probability that it
    is at none of them.

    :ivar positions_m: ``(k, 3)``, m.
    :ivar covariances_m2: ``(k, 3, 3)``, m^2.
    :ivar probabilities: ``(k,)``.
    :ivar fix_covariance_m2: the covariance the localizer published with its fix (the first
        place), which covers its rivals; what is published before a track is confirmed.
    :ivar doubted: the localizer doubted the fix (a physics fix published with confidence 0:
        its fit does not explain the frame, or a rival cannot be told from it).
    :ivar residual_ratio: the fix's residual power over the noise (1: explained).
    :ivar heading_rad: the array's heading in the frame (the localizer's ``yaw_rad``), rad;
        ``None``: not known (a plain fix).
    :ivar heading_variance_rad2: the variance of ``heading_rad``, rad^2.
    """

    positions_m: np.ndarray
    covariances_m2: np.ndarray
    probabilities: np.ndarray
    fix_covariance_m2: np.ndarray
    doubted: bool = False
    residual_ratio: float = 1.0
    heading_rad: float | None = None
    heading_variance_rad2: float = 0.0

    @classmethod
    def from_estimate(cls, estimate, prior_right: float = 0.5,
                      min_confidence: float = MIXTURE_MIN_CONFIDENCE,
                      weak_axis_variance_scale: float = WEAK_AXIS_VARIANCE_SCALE,
                      wider_rivals: bool = True,
                      chosen_min_share: float = CHOSEN_MIN_SHARE) -> 'Measurement':
        """The fix of a localizer (:class:`~echoloc_ros.core.physics.results.Estimate`).

        With a learned ranker's mixture (``component_covariance_m2``) and a fix the ranker
        holds right with at least ``min_confidence``: the fix with its own covariance and the
        ranker's probability, and each rival with its probability. A physics fix with its
        ``local_covariance_m2`` (before a weak axis or a doubted fix is widened to the room):
        the fix with that covariance, right with probability ``prior_right`` (wrong, it is
        anywhere: "none"), published as it came until a track is confirmed. Otherwise: the
        fix with the covariance it was published with (which spans its rivals), right with
        probability ``prior_right``.

        The physics widens an axis many times weaker than the best to the room, since such an
        axis is now and then metres off with a millimetre sigma. Taken as published, such
        fixes tell a track nothing along that axis, and it coasts (on a 0.25 m
        figure-of-eight whose height the echoes fix to 0.01 mm, a 17 cm lag behind fixes
        0.05 cm off). Taken as a sharp place right with ``prior_right``, one that lands where
        the track expects it counts in full and one metres off falls outside the gate. Along
        such an axis its local variance is scaled by ``weak_axis_variance_scale``
        (:data:`WEAK_AXIS_VARIANCE_SCALE`; 1: as the physics gave it).

        A physics fix that carries the fix its wider look did not choose
        (``rival_local_covariances_m2``, :func:`~echoloc_ros.core.physics.wider_rival.
        with_unchosen`) is two places with ``wider_rivals``: the fix and that rival, each
        with its local covariance, sharing ``prior_right`` as their evidence shares it, the
        fix at least ``chosen_min_share`` of it (:data:`CHOSEN_MIN_SHARE`;
        :meth:`_with_physics_rivals`). Without, the fix alone.
        """
        local = estimate.local_covariance_m2
        if estimate.component_covariance_m2 is None and local is not None:
            local = _weak_axes_scaled(_checked_covariance(local, 'local_covariance_m2'),
                                      estimate.covariance_m2, weak_axis_variance_scale)
            rivals = getattr(estimate, 'rival_local_covariances_m2', None)
            if wider_rivals and rivals is not None and len(rivals):
                m = cls._with_physics_rivals(estimate, local, prior_right,
                                             weak_axis_variance_scale, chosen_min_share)
            else:
                m = cls.single(estimate.position_m, local, prior_right,
                               fix_covariance_m2=estimate.covariance_m2)
            m.doubted = not estimate.confidence > 0.0
            m.residual_ratio = float(estimate.residual_ratio)
            return m
        if (estimate.component_covariance_m2 is None
                or not estimate.confidence >= min_confidence):
            return cls.single(estimate.position_m, estimate.covariance_m2, prior_right)
        component = _checked_covariance(estimate.component_covariance_m2,
                                        'component_covariance_m2')
        rivals = np.asarray(estimate.rivals_m, dtype=float).reshape(-1, 3)
        spread = component + RIVAL_POSITION_STD_M ** 2 * np.eye(3)
        return cls._checked(
            np.vstack([estimate.position_m, rivals]),
            np.concatenate([component[None], np.repeat(spread[None], len(rivals), axis=0)]),
            np.concatenate([[estimate.confidence], estimate.rival_probabilities]),
            _checked_covariance(estimate.covariance_m2, 'covariance_m2'))

    @classmethod
    def _with_physics_rivals(cls, estimate, local_m2: np.ndarray, prior_right: float,
                             weak_axis_variance_scale: float,
                             chosen_min_share: float = CHOSEN_MIN_SHARE) -> 'Measurement':
        """A physics fix and its rivals (the fix the wider look did not choose): right with
        ``prior_right`` in all, shared as ``rival_probabilities`` says, the fix keeping at
        least ``chosen_min_share`` (the rivals' shares scaled down to leave it); each rival's
        local covariance scaled along the fix's widened axes as the fix's is."""
        rivals = np.asarray(estimate.rivals_m, dtype=float).reshape(-1, 3)
        shares = np.asarray(estimate.rival_probabilities, dtype=float)
        covs = [_weak_axes_scaled(_checked_covariance(c, 'rival_local_covariances_m2'),
                                  estimate.covariance_m2, weak_axis_variance_scale)
                for c in estimate.rival_local_covariances_m2]
        if len(covs) != len(rivals) or shares.shape != (len(rivals),):
            raise ValueError(f'{len(rivals)} rivals need as many probabilities and local '
                             f'covariances, got {shares.shape} and {len(covs)}')
        if not (np.all(shares >= 0.0) and shares.sum() <= 1.0 + 1e-9):
            raise ValueError('rival_probabilities must be >= 0 and sum to at most 1, got '
                             f'{shares.tolist()}')
        chosen = max(1.0 - shares.sum(), 0.0)
        if chosen < chosen_min_share:
            shares = shares * (1.0 - chosen_min_share) / shares.sum()
            chosen = chosen_min_share
        position = np.asarray(estimate.position_m, dtype=float)
        return cls._checked(
            np.vstack([position, rivals]), np.stack([local_m2, *covs]),
            prior_right * np.concatenate([[chosen], shares]),
            _checked_covariance(estimate.covariance_m2, 'covariance_m2'))

    @classmethod
    def single(cls, position_m: np.ndarray, covariance_m2: np.ndarray,
               probability: float = 0.5,
               fix_covariance_m2: np.ndarray | None = None) -> 'Measurement':
        """One place, right with ``probability``; published, before a track is confirmed,
        with ``fix_covariance_m2`` (``None``: ``covariance_m2``)."""
        position = np.asarray(position_m, dtype=float)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError(f'position_m must be 3 finite numbers, got {position_m!r}')
        cov = _checked_covariance(covariance_m2, 'covariance_m2')
        fix_cov = (cov if fix_covariance_m2 is None
                   else _checked_covariance(fix_covariance_m2, 'fix_covariance_m2'))
        return cls._checked(position[None], cov[None], np.array([probability], dtype=float),
                            fix_cov)

    @classmethod
    def _checked(cls, positions: np.ndarray, covariances: np.ndarray,
                 probabilities: np.ndarray, fix_covariance: np.ndarray) -> 'Measurement':
        finite, probable = (places_valid(positions, probabilities)
                            if positions.ndim == 2 and positions.shape[1:] == (3,)
                            else (False, True))
        if not finite:
            raise ValueError(f'positions must be finite (k, 3), got {positions.tolist()!r}')
        if not probable:
            raise ValueError('probabilities must be >= 0 and sum to at most 1, got '
                             f'{probabilities.tolist()}')
        return cls(positions, covariances, probabilities, fix_covariance)


def _checked_covariance(covariance_m2: np.ndarray, name: str) -> np.ndarray:
    cov = np.asarray(covariance_m2, dtype=float)
    if cov.shape != (3, 3):
        raise ValueError(f'{name} must be a finite 3x3 matrix, got shape {cov.shape}')
    # One compiled call: the symmetric part as numpy makes it, to the bit, and its checks.
    symmetric, finite, positive_definite = checked_symmetric(cov)
    if not finite:
        raise ValueError(f'{name} must be a finite 3x3 matrix, got shape {cov.shape}')
    if not positive_definite:
        raise ValueError(f'{name} is not positive definite: {cov.tolist()}')
    return symmetric


def _weak_axes_scaled(local_m2: np.ndarray, published_m2: np.ndarray, scale: float
                      ) -> np.ndarray:
    """``local_m2`` with its variance along each axis the physics widened (published
    variance :data:`WIDENED_VARIANCE_RATIO` times the local or more) times ``scale``."""
    if scale == 1.0:
        return local_m2
    weak = np.diag(np.asarray(published_m2, dtype=float)) >= (
        WIDENED_VARIANCE_RATIO * np.diag(local_m2))
    if not weak.any():
        return local_m2
    s = np.where(weak, np.sqrt(scale), 1.0)
    return local_m2 * s[:, None] * s[None, :]


def snap_distance2(p: np.ndarray, s: np.ndarray, innovation: np.ndarray) -> np.ndarray:
    """How far taking each place would move a track, as a squared Mahalanobis distance in its
    predicted position covariance ``p`` ``(3, 3)``: the step ``p s^-1 innovation`` for
    innovation covariances ``s`` ``(k, 3, 3)`` and innovations ``(k, 3)``."""
    step = np.einsum('ij,kj->ki', p, np.linalg.solve(s, innovation[..., None])[..., 0])
    return np.einsum('ki,ki->k', step, np.linalg.solve(p, step.T).T)


def weak_axis_bias(m: Measurement, track_m2: np.ndarray, scale: float) -> np.ndarray:
    """``scale`` times the variance a fix's bias leaves in a track along each axis the physics
    widened: the fix's local variance, or the track's own ``track_m2`` where that is smaller
    (a fix much looser than the track barely moves it). ``(3, 3)``, diagonal; zeros where no
    axis was widened, or the fix is doubted (every axis of a doubted fix is widened; its doubt
    is covered by the tracker's rules for doubted fixes)."""
    if m.doubted:
        return np.zeros((3, 3))
    return compiled_weak_axis_bias(m.covariances_m2[0], m.fix_covariance_m2, track_m2,
                                   float(scale), float(WIDENED_VARIANCE_RATIO))
