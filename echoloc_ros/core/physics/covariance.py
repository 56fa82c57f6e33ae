"""Covariance of a physics fix."""

import numpy as np
from scipy import special

from echoloc_ros.core.physics.config import (AMBIGUOUS_GAP, AXIS_RIVAL_GAP, CONFIDENT_GAP,
                                             REGION_LEVEL_MAX, REGION_MASS, RIVAL_COVER_WEIGHT,
                                             WEAK_AXIS_RATIO)
from echoloc_ros.core.physics.fix_kernels import information_covariance

# The least the echoes' information is divided by (:meth:`Evidence._information_ratio`): the
# fit's residual floor is about 0.63 of the frame's with every order in the window (0.53 in a
# tenth of the frames; 0.78 at order 2, 20 dB); below half it is not taken.
MIN_INFORMATION_RATIO = 0.5
# The units :meth:`Covariance._covariance` inverts the information in: kappa's in hundredths.
_COVARIANCE_SCALE = np.array([1.0, 1.0, 1.0, 0.1, 1.0])


def chi2_3_quantile(probability: float) -> float:
    """The ``probability`` quantile of chi-square with 3 degrees of freedom: what
    ``scipy.stats.chi2.ppf(probability, 3)`` gives, to the bit (it computes this), at 5 us
    instead of 120 us (its argument handling), twice a frame with a learned ranker."""
    return 2.0 * float(special.gammaincinv(1.5, probability))


class Covariance:
    """The covariance of a fix: the inverse information scaled by the residual, and a learned
    ranker's mixture as one Gaussian: a part of
    :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`."""

    def _region_covariance(self, cov: np.ndarray, position: np.ndarray, rivals: list,
                           p: np.ndarray, index: int) -> np.ndarray:
        """A Gaussian whose 95 % ellipsoid holds 95 % of the ranker's mixture.

        The components are the fix (``cov``), the rivals (``cov`` moved to each) and "none"
        (a spread over the room), with the ranker's probabilities ``p``. The most probable
        ones are taken until they hold 95 %; the others are left out, as a 95 % region leaves
        out the tail. The second moment of those taken, about the fix, is then scaled so that
        its own Gaussian holds the share ``0.95 / mass`` they need. A confident frame keeps
        the physics ellipsoid (slightly widened); a doubtful one spans its rivals. (Adding
        every rival's second moment instead makes even a 1 % rival metres away dominate a
        sub-millimetre fix, and the 95 % ellipsoid then holds ~100 %.)
        """
        centre = np.append(self.room.vertices_m.mean(axis=0), np.mean(self.z_range_m))
        others = [(p[i], np.outer(other[:3] - position, other[:3] - position))
                  for _, other, i in rivals]
        others.append((p[-1], np.diag(self._room_spread_m2)
                       + np.outer(centre - position, centre - position)))
        others.sort(key=lambda o: -o[0])
        mass = float(p[index])
        moment = mass * cov
        for weight, spread in others:
            if mass >= REGION_MASS:
                break
            moment = moment + weight * (cov + spread)
            mass += weight
        level = min(REGION_MASS / max(mass, 1e-12), REGION_LEVEL_MAX)
        scale = chi2_3_quantile(level) / chi2_3_quantile(REGION_MASS)
        return moment / mass * scale

    def _physics_covariance(self, cov: np.ndarray, position: np.ndarray, score: float,
                            rivals: list, doubtful: bool, weak_axes: bool = True,
                            axis_rivals: tuple = ()) -> tuple[np.ndarray, float]:
        """The covariance and confidence of a fix the physics alone chose: ``cov`` widened
        toward each of the three best ``rivals`` ``(score, theta, index)`` that explains the
        echoes nearly as well (a two-component mixture's second moment), toward each of the
        ``axis_rivals`` ``(gap, offset)`` (:meth:`_axis_rivals`) along an axis that is not
        weak, at least :data:`RIVAL_COVER_WEIGHT` within :data:`AXIS_RIVAL_GAP` of its
        evidence, and, when the fix is
        ``doubtful`` (its fit does not explain the frame, or a rival cannot be told from it),
        to the whole room (:meth:`_anywhere`) with confidence 0. ``weak_axes`` false leaves
        out :meth:`_weak_axes_widened` (the fix's covariance where it stands, for a tracker)."""
        confidence = 1.0
        weak = self._weak_axes(cov)
        if weak_axes:
            cov = self._weak_axes_widened(cov, position, weak)
        for other_score, other, _ in rivals[:3]:
            gap = max(score - other_score, 0.0)
            confidence = min(confidence, float(np.clip(gap / CONFIDENT_GAP, 0.0, 1.0)))
            d = other[:3] - position
            weight = 1.0 / (1.0 + np.exp(min(gap / AMBIGUOUS_GAP, 700.0)))
            if gap < CONFIDENT_GAP:
                # A rival the evidence does not rule out lies inside the fix's ellipsoid.
                weight = max(weight, RIVAL_COVER_WEIGHT)
            cov = cov + np.outer(d, d) * weight
        for gap, offset in axis_rivals:
            if weak[np.argmax(np.abs(offset))]:
                # The room's spread along a weak axis holds every rival on it, and the local
                # covariance stays the one that axis was judged weak against (the wider
                # look's test).
                continue
            # The same mixture weight as a proposed rival's, and one the evidence cannot
            # tell from the fix lies inside its 99 % ellipsoid.
            weight = 1.0 / (1.0 + np.exp(min(gap / AMBIGUOUS_GAP, 700.0)))
            if gap < AXIS_RIVAL_GAP:
                weight = max(weight, RIVAL_COVER_WEIGHT)
            cov = cov + np.outer(offset, offset) * weight
        if doubtful:
            return self._anywhere(cov, position), 0.0
        return cov, confidence

    def _weak_axes_widened(self, cov: np.ndarray, position: np.ndarray,
                           weak: np.ndarray | None = None) -> np.ndarray:
        """``cov`` ``(3, 3)`` with each weak axis widened to the room along it (the spread of
        :meth:`_anywhere` on that axis alone). The reference is the better-fixed horizontal
        axis: x or y is weak when its standard deviation exceeds ``WEAK_AXIS_RATIO`` times the
        other's, z when it exceeds that many times the better one's (``weak``: the caller's
        :meth:`_weak_axes` of ``cov``, where it has them).

        An axis that many times weaker than the others is fixed by weak echoes (a far or
        soft surface, a wall a wing hides), and when those are not the ones the fix takes
        them for, it is off by metres along that axis alone with a millimetre sigma. The
        other axes keep their information. The height is not a reference: the floor and the
        ceiling, the nearest surfaces, can fix it tens of times more sharply than any wall
        fixes x or y, and against it both horizontal axes of a right fix looked weak.
        """
        weak = self._weak_axes(cov) if weak is None else weak
        if not np.any(weak):
            return cov
        centre = np.append(self.room.vertices_m.mean(axis=0), np.mean(self.z_range_m))
        spread = self._room_spread_m2 + (centre - position) ** 2
        return cov + np.diag(np.where(weak, spread, 0.0))

    @staticmethod
    def _weak_axes(cov: np.ndarray) -> np.ndarray:
        """Which axes of ``cov`` ``(3, 3)`` :meth:`_weak_axes_widened` widens ``(3,)``."""
        sigma = np.sqrt(np.diag(cov))
        best_horizontal = np.min(sigma[:2])
        return sigma > WEAK_AXIS_RATIO * np.array([sigma[1], sigma[0], best_horizontal])

    def _anywhere(self, cov: np.ndarray, position: np.ndarray) -> np.ndarray:
        """``cov`` widened to "the array is anywhere in the room": the second moment about
        ``position`` of a spread uniform over the plan's bounding box and the heights
        searched. Its 95 % ellipsoid about a fix in one corner reaches the opposite one."""
        centre = np.append(self.room.vertices_m.mean(axis=0), np.mean(self.z_range_m))
        return cov + np.diag(self._room_spread_m2) + np.outer(centre - position,
                                                              centre - position)

    @staticmethod
    def _covariance(info: np.ndarray, ratio: float, yaw_info: float) -> np.ndarray:
        """Covariance ``(5, 5)`` of (x, y, z, kappa, psi): the inverse of the echoes'
        information divided by ``ratio`` (:meth:`Evidence._information_ratio`) plus the
        heading prior (a fixed heading gets a placeholder), directions with almost no
        information clamped to a weak one. Its position block marginalises the heading and
        kappa."""
        # Weakest allowed information before the residual scaling: a 10 cm standard deviation
        # (1 % in kappa, 0.1 rad). Compiled: ten numpy calls on 5 x 5 arrays cost more.
        return information_covariance(np.ascontiguousarray(info, dtype=float), float(ratio),
                                      float(yaw_info), _COVARIANCE_SCALE,
                                      1.0 / (0.1 ** 2 * ratio))
