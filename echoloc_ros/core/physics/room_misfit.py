"""What a room file's stated tolerance leaves in a fit's residual (issue 18).

A surface that lies up to ``tolerance_m`` from where the file puts it moves its echoes off the
delays the file's model predicts: a first-order echo's path by twice the surface's offset. A
fit at the file's delays takes up each echo's carrier phase and its overlap with the point
response (one complex amplitude per path) and leaves the rest of its energy in the residual:
``1 - |g(delta) / g(0)|^2`` of it for an echo ``delta`` late or early. Over offsets uniform
within the tolerance that is a share of every fitted echo's energy, which the residual's
noise must count: otherwise the residual that the file says to expect reads as echoes the
model cannot explain, and the fix is held doubtful (its covariance the whole room) while the
room's tolerance is added to it as well (:mod:`~echoloc_ros.core.room_tolerance`), the same
doubt counted twice.
"""

import numpy as np

from echoloc_ros.core.physics.config import RESPONSE_HALF_S
from echoloc_ros.core.physics.matched_filter import PointResponse

# Delays over which the share is averaged (uniform in +-2 tolerance / c).
N_LAGS = 201


def misfit_share(response: PointResponse, tolerance_m: float, speed_mps: float) -> float:
    """The share of a fitted echo's energy that a surface off the file by up to
    ``tolerance_m`` (uniform) leaves in the fit's residual, on average; 0 for an exact file.

    :param response: the localizer's point response (its table's first row: g).
    :param speed_mps: the speed of sound the delays are reckoned at.
    """
    if tolerance_m <= 0.0:
        return 0.0
    lags_s = np.linspace(-1.0, 1.0, N_LAGS) * 2.0 * tolerance_m / speed_mps
    grid_s = -RESPONSE_HALF_S + response.step_s * np.arange(response.table.shape[1])
    g = np.abs(response.table[0])
    overlap = np.interp(lags_s, grid_s, g, left=0.0, right=0.0) / np.interp(0.0, grid_s, g)
    return float(np.mean(1.0 - np.minimum(overlap, 1.0) ** 2))
