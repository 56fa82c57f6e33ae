"""What the physics localizer returns: a fix (:class:`Estimate`), the candidates of a frame
(:class:`Proposal`) and a batch of fits (:class:`Fit`)."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from echoloc_ros.core.physics.config import YAW
from echoloc_ros.core.physics.matched_filter import Frame

if TYPE_CHECKING:
    from echoloc_ros.core.physics.localizer import PhysicsLocalizer


@dataclass
class Estimate:
    """One position fix.

    :ivar position_m: array-frame origin in the room frame ``(3,)``, m.
    :ivar covariance_m2: position covariance ``(3, 3)``, symmetric positive definite, m^2.
    :ivar speed_of_sound_mps: speed of sound estimated from the echoes, m/s.
    :ivar confidence: in [0, 1]; low when another position explains the echoes almost as well.
        With a learned ranker, its probability that the fix is right (the candidates within
        2 cm of it included).
    :ivar score: log evidence of the fix (higher is better; comparable within a frame).
    :ivar n_echoes: number of modelled echo paths in the final fit.
    :ivar candidates_m: positions of the competing candidates ``(k, 3)``, best first.
    :ivar residual_ratio: residual power of the final fit over the noise floor in the bins
        around the modelled echoes (about 1 when the room model explains the frame).
    :ivar missing_share: the share of the echo energy the fix's pose predicts (the surfaces'
        absorption, spreading, directivity) that its final fit does not find, in [0, 1]
        (:meth:`~echoloc_ros.core.physics.evidence.Evidence._missing_share`): about 0 where
        the echoes are where and as strong as the pose says.
    :ivar yaw_rad: heading of the array estimated from the echoes around the one given, rad
        (the given one when it was declared exact).
    :ivar yaw_variance_rad2: variance of ``yaw_rad``, rad^2 (0 when the heading was exact).
    :ivar component_covariance_m2: with a learned ranker, the chosen fix's own covariance
        ``(3, 3)`` before it is widened toward the rivals and "none"; ``confidence`` is then
        the ranker's calibrated probability that the fix is the right one. A tracker uses the
        two as a mixture (:class:`~echoloc_ros.core.tracker.PoseTracker`). ``None`` when
        ``covariance_m2`` is all there is (physics alone).
    :ivar local_covariance_m2: physics alone: the fix's covariance where it stands, before
        an axis many times weaker than the better horizontal one (``WEAK_AXIS_RATIO``) or a
        doubted fix is widened to the room (the rivals' spread included). What the echoes say
        if the fix is right: a tracker takes it only where its prediction agrees
        (:class:`~echoloc_ros.core.tracker.PoseTracker`); ``covariance_m2`` is what one fix
        alone can vouch for. ``None`` with a learned ranker (``component_covariance_m2``).
    :ivar rivals_m: with a learned ranker, the other candidates the ranker gives at least
        ``RIVAL_MIN_PROBABILITY`` ``(k, 3)``, most probable first (array origins, unrefined).
    :ivar rival_probabilities: the ranker's probability of each ``(k,)``; what is left of 1
        after ``confidence`` and these is the probability that no candidate is right.
        Physics alone: the fix the wider look did not choose, where the evidence does not
        tell the two apart (:func:`~echoloc_ros.core.physics.wider_rival.with_unchosen`), and
        its share of the two's probability.
    :ivar rival_local_covariances_m2: physics alone: each rival's ``local_covariance_m2``
        ``(k, 3, 3)`` (``None``: no physics rival).
    :ivar array_covariance_m2: the pose error ``(3, 3)`` the array file's doubt of its
        receivers' positions can cause (:mod:`~echoloc_ros.core.physics.array_doubt`), not in
        ``covariance_m2``: the same error frame after frame, which a tracker cannot average,
        so the pipeline adds it after the tracker, as the room's tolerance (``None``: none).
    """

    position_m: np.ndarray
    covariance_m2: np.ndarray
    speed_of_sound_mps: float
    confidence: float
    score: float
    n_echoes: int
    candidates_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    residual_ratio: float = 1.0
    missing_share: float = 0.0
    yaw_rad: float = 0.0
    yaw_variance_rad2: float = 0.0
    component_covariance_m2: np.ndarray | None = None
    local_covariance_m2: np.ndarray | None = None
    rivals_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    rival_probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rival_local_covariances_m2: np.ndarray | None = None
    array_covariance_m2: np.ndarray | None = None


@dataclass
class Proposal:
    """The candidates of one frame (:meth:`PhysicsLocalizer.propose`).

    :ivar thetas: candidate parameters ``(M, 5)``: emitter x, y, z (m), kappa = c / c0 and
        the heading offset psi (rad); the ``n_polished`` polished ones first, best first,
        then the rest by their coarse score.
    :ivar scores: log evidence of each ``(M,)`` (comparable within the frame).
    :ivar n_polished: how many were polished.
    :ivar working: which receivers were used ``(n_channels,)``.
    :ivar yaw_given_rad: the heading the localizer was given, rad.
    :ivar refined: the candidates :meth:`PhysicsLocalizer.finish` refined, by index (its
        ``_fix_fit``): a candidate finished twice is refined once.
    """

    localizer: 'PhysicsLocalizer'
    frame: Frame
    yaw_given_rad: float
    thetas: np.ndarray
    scores: np.ndarray
    n_polished: int
    working: np.ndarray
    refined: dict = field(default_factory=dict, repr=False, compare=False)

    def positions_m(self) -> np.ndarray:
        """Array-frame origin of every candidate ``(M, 3)``, m (the emitter moved back by
        its offset in the array, turned by the candidate's heading)."""
        emitter = self.frame.tilt @ self.localizer.array.emitter_m
        yaws = self.yaw_given_rad + self.thetas[:, YAW]
        c, s = np.cos(yaws), np.sin(yaws)
        offset = np.column_stack([c * emitter[0] - s * emitter[1],
                                  s * emitter[0] + c * emitter[1],
                                  np.full(len(yaws), emitter[2])])
        return self.thetas[:, :3] - offset


@dataclass
class Fit:
    """Result of :meth:`PhysicsLocalizer._newton` for a batch of B starting points."""

    theta: np.ndarray          # (B, 5) emitter x, y, z, kappa and psi
    evidence: np.ndarray       # (B,) log evidence with the amplitude and heading priors
    info: np.ndarray | None    # (B, 5, 5) information of the echoes (heading prior not included),
                               # zero outside the free parameters (None when not asked for)
    coef: np.ndarray           # (B, P) least-squares path amplitudes
    paths: np.ndarray          # (P,) image indices modelled
    keep: np.ndarray           # (B, P) which of them each fit modelled
    tau: np.ndarray            # (B, P, n) delays of the paths at theta, s
    amp: np.ndarray            # (B, P, n) their predicted amplitudes (0 where not modelled)
