"""What the physics localizer returns: a fix (:class:`Estimate`)."""

from dataclasses import dataclass, field

import numpy as np

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
    :ivar yaw_rad: heading of the array estimated from the echoes around the one given, rad
        (the given one when it was declared exact).
    :ivar yaw_variance_rad2: variance of ``yaw_rad``, rad^2 (0 when the heading was exact).
    :ivar component_covariance_m2: with a learned ranker, the chosen fix's own covariance
        ``(3, 3)`` before it is widened toward the rivals and "none"; ``confidence`` is then
        the ranker's calibrated probability that the fix is the right one. A tracker uses the
        two as a mixture (:class:`~echoloc_ros.core.tracker.PoseTracker`). ``None`` when
        ``covariance_m2`` is all there is (physics alone).
    :ivar rivals_m: with a learned ranker, the other candidates the ranker gives at least
        ``RIVAL_MIN_PROBABILITY`` ``(k, 3)``, most probable first (array origins, unrefined).
    :ivar rival_probabilities: the ranker's probability of each ``(k,)``; what is left of 1
        after ``confidence`` and these is the probability that no candidate is right.
    """

    position_m: np.ndarray
    covariance_m2: np.ndarray
    speed_of_sound_mps: float
    confidence: float
    score: float
    n_echoes: int
    candidates_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    residual_ratio: float = 1.0
    yaw_rad: float = 0.0
    yaw_variance_rad2: float = 0.0
    component_covariance_m2: np.ndarray | None = None
    rivals_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    rival_probabilities: np.ndarray = field(default_factory=lambda: np.zeros(0))
