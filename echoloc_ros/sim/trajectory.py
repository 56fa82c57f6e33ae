"""Where the simulated array goes: a smooth closed path through the room with changing heading."""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LissajousTrajectory:
    """A figure-of-eight over the floor at constant height, heading along the direction of travel.

    ``x(t) = cx + ax sin(w t)``, ``y(t) = cy + ay sin(2 w t)``; the robot faces where it goes, so
    the heading sweeps the full circle every lap.

    :param center_m: (cx, cy) of the figure [m].
    :param amplitude_m: (ax, ay) half-extents [m].
    :param height_m: array height above the floor [m].
    :param period_s: time for one lap [s].
    """

    center_m: tuple[float, float]
    amplitude_m: tuple[float, float]
    height_m: float
    period_s: float

    @classmethod
    def inside(cls, extent_m: tuple[float, float], margin_m: float, height_m: float,
               speed_mps: float) -> 'LissajousTrajectory':
        """The largest figure that keeps ``margin_m`` from the walls of a ``extent_m`` box,
        timed so the mean speed is about ``speed_mps``."""
        width_m, length_m = extent_m
        ax, ay = width_m / 2 - margin_m, length_m / 2 - margin_m
        if ax <= 0 or ay <= 0:
            raise ValueError(f'room {extent_m} m is too small for a {margin_m} m margin')
        if speed_mps <= 0:
            raise ValueError(f'speed_mps={speed_mps}: expected > 0')
        # Lap length of the figure-of-eight, measured numerically.
        t = np.linspace(0.0, 2 * np.pi, 2001)
        lap_m = np.sum(np.hypot(np.diff(ax * np.sin(t)), np.diff(ay * np.sin(2 * t))))
        return cls((width_m / 2, length_m / 2), (ax, ay), height_m, lap_m / speed_mps)

    def positions(self, times_s: np.ndarray) -> np.ndarray:
        """Positions ``(n, 3)`` [m] at ``times_s`` ``(n,)`` (the position of :meth:`pose`)."""
        w = 2 * np.pi / self.period_s
        (cx, cy), (ax, ay) = self.center_m, self.amplitude_m
        t = np.asarray(times_s, dtype=float)
        return np.column_stack([cx + ax * np.sin(w * t), cy + ay * np.sin(2 * w * t),
                                np.full(t.shape, self.height_m)])

    def pose(self, t_s: float) -> tuple[np.ndarray, float]:
        """Position ``(3,)`` [m] and yaw [rad] at time ``t_s``."""
        w = 2 * np.pi / self.period_s
        (cx, cy), (ax, ay) = self.center_m, self.amplitude_m
        position = np.array([cx + ax * np.sin(w * t_s), cy + ay * np.sin(2 * w * t_s),
                             self.height_m])
        yaw = np.arctan2(2 * ay * w * np.cos(2 * w * t_s), ax * w * np.cos(w * t_s))
        return position, float(yaw)
