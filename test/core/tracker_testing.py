"""A fix as a local fix gives one to the tracker, drawn about a true pose: the tracker tests'
stand-in for the localizer where the tracker's own behaviour is what is tested."""
import numpy as np

from echoloc_ros.core.physics.results import Estimate

FIX_STD_M = 0.001
HEADING_STD_RAD = np.radians(0.2)


def drawn_fix(truth_m: np.ndarray, heading_rad: float, rng: np.random.Generator) -> Estimate:
    """A confident fix ``FIX_STD_M`` about ``truth_m (3,)`` (isotropic, as its covariance
    says) with the heading ``HEADING_STD_RAD`` about ``heading_rad``."""
    covariance = FIX_STD_M ** 2 * np.eye(3)
    return Estimate(position_m=truth_m + FIX_STD_M * rng.standard_normal(3),
                    covariance_m2=covariance, speed_of_sound_mps=343.0, confidence=1.0,
                    score=100.0, n_echoes=6, local_covariance_m2=covariance,
                    yaw_rad=heading_rad + HEADING_STD_RAD * rng.standard_normal(),
                    yaw_variance_rad2=HEADING_STD_RAD ** 2)
