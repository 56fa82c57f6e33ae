"""How a track moves between frames: the Singer model (an acceleration that wanders and fades),
or the constant-velocity model the tracker used before issue 19's r33-75, as the transition
matrix and the process noise of a step."""

import numpy as np
from scipy.linalg import expm

from echoloc_ros.core.tracker_kernels import hold_heading

# A track's state: position, velocity and acceleration, each (x, y, z).
STATE_SIZE = 9
# The constant-velocity model's acceleration is continuous white noise of power accel_std^2
# times this (s): a turn or a brake lasts, it does not flip sign every frame. As independent
# kicks of accel_std per frame (the discrete model) its power fell with the frame period
# (0.01 m^2/s^3 at 25 Hz), and a track coasting 1.5 s through the 0.64 m/s^2 turn of the
# tracked evaluations' tightest figure held the truth 5 sigmas out; this much keeps it within
# 3.5 after max_coast_s (2 s).
ACCEL_HOLD_S = 0.25
# The Singer model's manoeuvre time (s): how long the array's acceleration persists (its
# autocorrelation falls by e in this long); 0: the constant-velocity model, the default. A
# track that holds only a velocity coasts straight through the figure-of-eight's turns while
# the fixes of a few frames are wrong: 0.3 s through a 0.6 m/s^2 turn leaves it 2.7 cm off,
# and in a dev shoebox whose frames were half ghosts (dev_7_000) those coasts made the lap's
# p95 (5.15 cm). Holding the acceleration it follows the turn (0.27 cm there). Measured on
# dev laps (seed 7 rooms 0-9, seed 8 rooms 0-2, 5, 6; recorded, replayed; docs/results.md,
# r33-75) and left off: at 0.5 s with accel_std 0.5 (the acceleration's power
# 2 accel_std^2 / manoeuvre_s = 1 m^2/s^5) 12 of 15 laps met the tracked bar against 11 and
# the pooled p95 fell (seed 7: 0.86 -> 0.71 cm), no pose outside. But at a power of 0.25 or
# less (accel_std 0.25 at 0.5 s, or an acceleration scaled to widen no faster than the
# constant-velocity model over long coasts) tracks learnt wrong accelerations from fixes
# biased by a few millimetres and ran away from the right ones (dev_8_006: 0.5 -> 8.6 cm),
# and on 0.5 mm fixes a three-frame coast errs more (3.6 against 2.2 mm, test_tracker.py's
# near miss). Too near a cliff to turn on from 15 laps.
MANOEUVRE_S = 0.0
# A ground robot moves along its heading: its velocity across the heading (the base's, the
# array's less array_in_base_yaw_rad) is 0 but for this much (m/s) of slip, and each frame
# tells the tracks so (along_heading). A track coasting through frames whose echoes hold one
# horizontal axis weakly kept the velocity of the straight before the turn (r35-95:
# dev_8_003 x 1.2 -> 3.8 cm over 8 frames); held to the heading, the velocity turns with the
# array. Dev laps (main's fixes, recorded at r35-95 and r33-75, replayed): seed 8 rooms 0-8,
# 6 of 9 laps met the tracked bar, with this 9 of 9 (pooled p95 0.44 -> 0.29 cm; at 0.05
# m/s 7, at 0.005 9), seed 7 rooms 0-9 7 -> 9 of 10, no pose outside its 99.9 % ellipsoid
# in either (docs/results.md, r36-06). None: the tracker before, for a device that may move
# sideways (a holonomic base, a hand).
LATERAL_SPEED_STD_MPS = 0.02
# The base's turn rate is measured between frames at most this far apart (s): two frame periods
# at 25 Hz and a half, as the track search's MAX_GAP_S. Further apart, a turn and its reversal
# could fall between them.
TURN_RATE_MAX_GAP_S = 0.1
# Steps cached per model (the frames come at a few periods).
_CACHED_STEPS = 64


class MotionModel:
    """The transition ``F`` and process noise ``Q`` (``STATE_SIZE`` square) of a step.

    With ``manoeuvre_s > 0``, Singer's model (Singer 1970, "Estimating optimal tracking filter
    performance for manned maneuvering targets", IEEE Trans. AES 6(4)): the acceleration is a
    first-order Markov process of standard deviation ``accel_std_mps2`` and time constant
    ``manoeuvre_s``, discretised exactly (Van Loan 1978: the matrix
    exponential of the continuous model). With ``manoeuvre_s == 0``, the constant-velocity
    model: the acceleration is white noise of power ``accel_std_mps2 ** 2 * ACCEL_HOLD_S`` and
    the state's acceleration stays 0.
    """

    def __init__(self, accel_std_mps2: float, manoeuvre_s: float) -> None:
        if not accel_std_mps2 > 0:
            raise ValueError(f'accel_std_mps2 must be positive, got {accel_std_mps2}')
        if not manoeuvre_s >= 0:
            raise ValueError(f'manoeuvre_s must be >= 0 (0: constant velocity), got '
                             f'{manoeuvre_s}')
        self.accel_std_mps2 = accel_std_mps2
        self.manoeuvre_s = manoeuvre_s
        self._steps: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def initial_accel_variance_m2ps4(self) -> float:
        """The acceleration's variance (Singer's sigma_m^2, ``accel_std_mps2 ** 2``): its
        prior for a new track; 0 for constant velocity."""
        return self.accel_std_mps2 ** 2 if self.manoeuvre_s > 0 else 0.0

    def step(self, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
        """``(F, Q)`` of a step of ``dt_s``."""
        found = self._steps.get(dt_s)
        if found is None:
            per_axis = self._singer(dt_s) if self.manoeuvre_s > 0 else self._velocity(dt_s)
            if len(self._steps) >= _CACHED_STEPS:
                self._steps.clear()
            # Per axis [p, v, a] -> the state's [x, y, z, vx, vy, vz, ax, ay, az].
            found = tuple(np.kron(m, np.eye(3)) for m in per_axis)
            self._steps[dt_s] = found
        return found

    def _velocity(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        f = np.array([[1.0, dt, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        q = np.array([[dt ** 3 / 3, dt ** 2 / 2, 0.0], [dt ** 2 / 2, dt, 0.0], [0.0, 0.0, 0.0]])
        return f, q * self.accel_std_mps2 ** 2 * ACCEL_HOLD_S

    def _singer(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        # Van Loan's exponential holds exp(+dt / tau) beside exp(-dt / tau): past a few tau
        # it loses the noise to rounding, so a long step is composed of short ones.
        n = max(1, int(np.ceil(dt / self.manoeuvre_s)))
        f1, q1 = self._singer_short(dt / n)
        f, q = np.eye(3), np.zeros((3, 3))
        for _ in range(n):
            f, q = f1 @ f, f1 @ q @ f1.T + q1
        return f, q

    def _singer_short(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        # d[p, v, a]/dt = A [p, v, a] + [0, 0, w], w white of power 2 sigma^2 / tau.
        a = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0 / self.manoeuvre_s]])
        noise = np.zeros((3, 3))
        noise[2, 2] = 2.0 * self.initial_accel_variance_m2ps4 / self.manoeuvre_s
        van_loan = np.zeros((6, 6))
        van_loan[:3, :3] = -a
        van_loan[:3, 3:] = noise
        van_loan[3:, 3:] = a.T
        e = expm(van_loan * dt)
        f = e[3:, 3:].T
        q = f @ e[:3, 3:]
        return f, 0.5 * (q + q.T)


def along_heading(state: np.ndarray, covariance: np.ndarray, heading_rad: float,
                  heading_variance_rad2: float, lateral_speed_std_mps: float,
                  swing: tuple[float, float] = (0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """A track's ``state`` and ``covariance`` told that it moves along ``heading_rad``: the
    velocity across the heading, ``-sin(h) vx + cos(h) vy``, measured as 0 with the variance
    of ``lateral_speed_std_mps`` plus the heading's error times the track's speed (a Kalman
    update by a pseudo-measurement; Simon 2010, "Kalman filtering with state constraints",
    IET Control Theory & Applications 4(8), section 2.3). Along the heading nothing changes,
    so a robot reversing or stopping is as likely as one going ahead. ``swing``: the velocity
    across the heading that the base's turn gives an array off its turning axis and that
    velocity's variance (:meth:`TurnRate.swing`), measured instead of 0."""
    # One implementation: the tracker's compiled prediction runs this update.
    return hold_heading(np.array(state, dtype=float), np.array(covariance, dtype=float),
                        float(heading_rad), float(heading_variance_rad2),
                        float(lateral_speed_std_mps), float(swing[0]), float(swing[1]))


class TurnRate:
    """The base's turn rate from the headings of consecutive frames, and the velocity across
    its heading that the turn gives an array mounted off its turning axis.

    An array at ``r`` in the base's frame (x ahead, y left) moves at the base's velocity plus
    ``omega x r``: across the base's heading, ``omega * r_x`` (an array ahead of the axis
    swings outward as the base turns), along it ``-omega * r_y`` (which the heading does not
    hold). A base at 0.3 m/s turning at 1 rad/s swings an array 0.3 m ahead of its axis
    sideways at 0.3 m/s, 15 times :data:`LATERAL_SPEED_STD_MPS`: a hold of that velocity to 0
    would fight the turn.

    The rate is the heading's change over the time between two frames; its variance the two
    headings' over that time squared. Frames further apart than ``TURN_RATE_MAX_GAP_S`` give
    no rate, and an array off the axis is then not held (:meth:`swing` returns None).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the last frame's heading."""
        self._last: tuple[float, float, float] | None = None

    def swing(self, t_s: float, heading_rad: float, heading_variance_rad2: float,
              ahead_m: float) -> tuple[float, float] | None:
        """This frame's velocity across the base's heading ``heading_rad`` for an array
        ``ahead_m`` ahead of the base's turning axis, and its variance: ``(0.0, 0.0)`` for an
        array on the axis; ``None`` where no rate is known (the first frame, or one more than
        ``TURN_RATE_MAX_GAP_S`` after the last). Remembers the frame's heading."""
        last, self._last = self._last, (t_s, heading_rad, heading_variance_rad2)
        if ahead_m == 0.0:
            return 0.0, 0.0
        if last is None or not 0.0 < t_s - last[0] <= TURN_RATE_MAX_GAP_S:
            return None
        dt = t_s - last[0]
        rate = float(np.angle(np.exp(1j * (heading_rad - last[1])))) / dt
        rate_variance = (heading_variance_rad2 + last[2]) / dt ** 2
        return rate * ahead_m, rate_variance * ahead_m ** 2
