"""Constant-velocity Kalman filter over position fixes, with a Mahalanobis gate."""

import numpy as np
from scipy import stats


class PoseTracker:
    """Track the array position from per-frame fixes and reject outliers.

    State ``[x, y, z, vx, vy, vz]``; white-acceleration process noise (Bar-Shalom, Li &
    Kirubarajan 2001, section 6.2.2). A fix whose innovation's squared Mahalanobis distance
    exceeds the chi-square quantile (3 degrees of freedom) is rejected; after
    ``max_rejections`` consecutive rejections the filter restarts from the next fix, so a
    wrong lock cannot last.

    :param accel_std_mps2: standard deviation of the unmodelled acceleration, m/s^2.
    :param gate_probability: probability mass inside the gate (0.999 rejects 0.1 % of good
        fixes).
    :param max_rejections: consecutive rejections that trigger a restart.
    :param initial_speed_std_mps: velocity uncertainty at (re)start, m/s.
    """

    def __init__(self, accel_std_mps2: float = 0.5, gate_probability: float = 0.999,
                 max_rejections: int = 3, initial_speed_std_mps: float = 0.5) -> None:
        if accel_std_mps2 <= 0:
            raise ValueError(f'accel_std_mps2 must be positive, got {accel_std_mps2}')
        if not 0.0 < gate_probability < 1.0:
            raise ValueError(f'gate_probability must be in (0, 1), got {gate_probability}')
        if max_rejections < 1:
            raise ValueError(f'max_rejections must be >= 1, got {max_rejections}')
        self.accel_std_mps2 = accel_std_mps2
        self.gate = float(stats.chi2.ppf(gate_probability, 3))
        self.max_rejections = max_rejections
        self.initial_speed_std_mps = initial_speed_std_mps
        self.reset()

    def reset(self) -> None:
        """Forget the track; the next fix starts a new one."""
        self.state = None
        self.covariance = None
        self.t_s = None
        self.rejections = 0

    @property
    def initialised(self) -> bool:
        """Whether a track exists."""
        return self.state is not None

    def _start(self, t_s: float, position: np.ndarray, covariance: np.ndarray) -> None:
        self.state = np.concatenate([position, np.zeros(3)])
        self.covariance = np.zeros((6, 6))
        self.covariance[:3, :3] = covariance
        self.covariance[3:, 3:] = self.initial_speed_std_mps ** 2 * np.eye(3)
        self.t_s = t_s
        self.rejections = 0

    def predict(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """State and covariance propagated to ``t_s`` (the filter itself is not changed).

        :return: ``(state (6,), covariance (6, 6))``.
        """
        dt = t_s - self.t_s
        f = np.eye(6)
        f[:3, 3:] = dt * np.eye(3)
        q1 = np.array([[dt ** 4 / 4, dt ** 3 / 2], [dt ** 3 / 2, dt ** 2]])
        q = np.kron(q1, np.eye(3)) * self.accel_std_mps2 ** 2
        return f @ self.state, f @ self.covariance @ f.T + q

    def update(self, t_s: float, position_m: np.ndarray,
               covariance_m2: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Fuse one fix.

        :param t_s: time of the fix (acquisition time), s; must not go backwards.
        :param position_m: measured position ``(3,)``, m.
        :param covariance_m2: its covariance ``(3, 3)``, m^2, symmetric positive definite.
        :return: ``(position (3,), covariance (3, 3), accepted)``: the track after the update
            (the prediction when the fix is rejected).
        """
        position = np.asarray(position_m, dtype=float)
        cov = np.asarray(covariance_m2, dtype=float)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError(f'position_m must be 3 finite numbers, got {position_m!r}')
        if cov.shape != (3, 3) or not np.all(np.isfinite(cov)):
            raise ValueError(f'covariance_m2 must be a finite 3x3 matrix, got shape {cov.shape}')
        if not np.isfinite(t_s):
            raise ValueError(f't_s must be finite, got {t_s}')
        try:
            np.linalg.cholesky(0.5 * (cov + cov.T))
        except np.linalg.LinAlgError:
            raise ValueError(f'covariance_m2 is not positive definite: {cov.tolist()}') from None
        if self.state is None:
            self._start(t_s, position, cov)
            return position.copy(), cov.copy(), True
        if t_s < self.t_s:
            raise ValueError(f't_s {t_s} is earlier than the last fix at {self.t_s}')
        state, p = self.predict(t_s)
        innovation = position - state[:3]
        s = p[:3, :3] + cov
        distance2 = float(innovation @ np.linalg.solve(s, innovation))
        if distance2 > self.gate:
            self.rejections += 1
            if self.rejections >= self.max_rejections:
                # The track itself is probably what is wrong: restart on the new evidence.
                self._start(t_s, position, cov)
                return position.copy(), cov.copy(), True
            return state[:3], p[:3, :3], False
        gain = p[:, :3] @ np.linalg.inv(s)
        self.state = state + gain @ innovation
        joseph = np.eye(6) - gain @ np.hstack([np.eye(3), np.zeros((3, 3))])
        self.covariance = joseph @ p @ joseph.T + gain @ cov @ gain.T
        self.covariance = 0.5 * (self.covariance + self.covariance.T)
        self.t_s = t_s
        self.rejections = 0
        return self.state[:3].copy(), self.covariance[:3, :3].copy(), True
