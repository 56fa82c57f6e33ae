"""The array's heading from its echoes alone, for a robot that gives none (no IMU).

The physics localizer refines a heading it is given within about +-10 deg: the wall scans run at
that heading, and a few degrees off they lose the walls' carrier phase. Without a heading, it is
*acquired* by localizing one frame at a coarse grid of headings over the full turn and keeping
the one whose fix explains the echoes best; two acquisitions in a row must agree before the
heading is trusted. From then on it is *tracked*: each frame is localized around the heading of
the last fix, with a prior wide enough for the robot to turn between frames. A heading given by
an IMU seeds the track as well, so that when the IMU stops the echoes carry on from it.

In a room that is symmetric under a half turn (an empty shoebox) the pose ``(x, y, yaw)`` and its
mirror through the room's centre ``(2 c - (x, y), yaw + pi)`` give the same echoes: no echo can
tell them apart. Measured on simulated frames in the default 6 x 4.5 m room: the acquired heading
was within 0.02 deg of the truth or of its mirror in 10 frames of 10, half of them the mirror,
with the two scores equal. The heading keeps that doubt as the probability that the mirror is
the truth (from the two poses' evidence gap, as the localizer weighs its rivals), and
:meth:`EchoHeading.widen` adds it to the published covariance: a two-point mixture's second
moment, so that the covariance holds the truth whichever of the two it is.
"""
from dataclasses import dataclass

import numpy as np

from echoloc_ros.core.physics.config import AMBIGUOUS_GAP

# Heading grid of the acquisition and the prior width searched around each point: at 15 deg and
# 5 deg (the search reaches +-10 deg around each) the default room's acquisitions found the
# heading within 0.02 deg (or its mirror) in 6 frames of 6, at 24 proposals.
ACQUIRE_STEP_RAD = float(np.deg2rad(15.0))
ACQUIRE_STD_RAD = float(np.deg2rad(5.0))
# How many of the grid's headings, ranked by their finished fix, are settled in full: the same
# acquisition as settling all 24 in 8 frames of 8 (default and furnished rooms), at a third of
# the CPU (1.25 s -> 0.4 s here): settling is what a wrong heading costs (40-60 ms each).
ACQUIRE_SETTLED = 4
# Two acquisitions agree when their headings (or, in a symmetric room, headings mod pi) are this
# close, plus what the robot may have turned between them at MAX_TURN_RATE_RAD_S: one frame can
# mistake a furnished room's echoes (1 acquisition in 4 was off by 105 deg, another by 5 deg, in
# the furnished room). The simulated path turns at most 26 deg/s; on a loaded CPU the two
# acquisitions can be a second or two apart.
AGREE_RAD = float(np.deg2rad(3.0))
MAX_TURN_RATE_RAD_S = float(np.deg2rad(30.0))
# While tracking, the heading of the last fix, carried on at the turn rate of the last fixes, is
# the prior of the next frame with this standard deviation (3 deg between frames at 25 Hz is a
# change of turn rate of 75 deg/s).
TRACK_STD_RAD = float(np.deg2rad(3.0))
# A fix whose heading is further than this from the one predicted is not followed: along the
# simulated path the predicted heading is within 0.1 deg of the fix's, while a fix that has
# lost the room (a furnished room's echoes explained by the wrong pose) comes 5-30 deg off and
# would drag the track after it.
FOLLOW_GATE_RAD = float(np.deg2rad(3.0))
# Nor is a fix whose residual power around the modelled echoes is over this many times the noise
# floor: it did not explain the frame. In the default room a fix localized from a heading within
# 9 deg of the truth left a ratio of 1.0; from 12-30 deg off, 12-52, its heading wrong by 5-34 deg.
RESIDUAL_GATE = 5.0
# How much of each fix's apparent turn rate is taken into the rate (an alpha-beta filter's beta).
RATE_GAIN = 0.3
# A track that takes no fix from the frames it is given for this long is lost and the heading
# is acquired again: the next frame is localized within +-9 deg of the heading predicted at the
# last turn rate, and a robot whose turn rate changes by 30 deg/s^2 is 15 deg off that after
# 1 s. Counted from the first frame the track is given after its last fix, not from that fix:
# the frames that came while an acquisition held the CPU (0.4 s here, several times that on
# a small board) never reached it, and the first frame after a lock is always one of those.
LOST_AFTER_S = 1.0
# Nor is a heading carried further than this from its last fix (beyond the time the locking
# acquisition held the frames up), frames or none: the pair of acquisitions that measured the
# turn rate spans up to PAIR_MAX_S.
CARRY_MAX_S = 3.0
# Two acquisitions further apart than this, beyond the time the first held the frames up (its
# own CPU: the next frame it lets through is the second's), confirm nothing.
PAIR_MAX_S = 2.0
# Poses whose headings are this close to opposite are mirror candidates in an acquisition.
MIRROR_WINDOW_RAD = float(np.deg2rad(20.0))


def wrap(angle_rad: float) -> float:
    """The angle in [-pi, pi)."""
    return float((angle_rad + np.pi) % (2 * np.pi) - np.pi)


@dataclass
class Acquisition:
    """One frame localized at every heading of the grid.

    :ivar yaw_rad: heading of the best fix, rad.
    :ivar position_m: its array origin ``(3,)``, m.
    :ivar mirror_probability: probability that the mirrored pose (half a turn away, through the
        room's centre) is the truth instead, from their evidence gap; 0.5 when equal.
    :ivar centre_m: the point between the fix and its mirror ``(3,)`` (the room's centre of
        symmetry), m; the fix itself when there is no mirror candidate.
    """

    yaw_rad: float
    position_m: np.ndarray
    mirror_probability: float
    centre_m: np.ndarray


def acquire(localizer, features, temperature_c: float) -> Acquisition:
    """Localize ``features`` at every heading of the grid and keep the best fix.

    Each heading's proposal is finished (its best candidate refined) and ranked by that fix's
    evidence; only the :data:`ACQUIRE_SETTLED` best are settled as :meth:`localize` would
    (the wider looks that cost a wrong heading 40-60 ms each and move no right one).

    :param localizer: a :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`.
    :raises ValueError: no heading gave a fix (no floor or ceiling echo, a bad frame).
    """
    finished = []
    last_error = None
    for yaw_rad in np.arange(-np.pi, np.pi, ACQUIRE_STEP_RAD):
        try:
            proposal = localizer.propose(features, float(yaw_rad), temperature_c,
                                         yaw_std_rad=ACQUIRE_STD_RAD)
            finished.append((localizer.finish(proposal).score, proposal))
        except ValueError as exc:
            last_error = exc
    fixes = []
    for _, proposal in sorted(finished, key=lambda pair: -pair[0])[:ACQUIRE_SETTLED]:
        try:
            fixes.append(localizer.settled(proposal))
        except ValueError as exc:
            last_error = exc
    if not fixes:
        raise ValueError(f'no heading of the acquisition grid gave a fix: {last_error}')
    fixes.sort(key=lambda e: -e.score)
    best = fixes[0]
    mirrors = [e for e in fixes[1:]
               if abs(wrap(e.yaw_rad - best.yaw_rad - np.pi)) < MIRROR_WINDOW_RAD]
    if not mirrors:
        return Acquisition(wrap(best.yaw_rad), best.position_m, 0.0, best.position_m)
    gap = max(best.score - mirrors[0].score, 0.0)
    probability = 1.0 / (1.0 + np.exp(min(gap / AMBIGUOUS_GAP, 700.0)))
    return Acquisition(wrap(best.yaw_rad), best.position_m, float(probability),
                       0.5 * (best.position_m + mirrors[0].position_m))


class EchoHeading:
    """The heading track: acquired from the echoes, then followed fix by fix."""

    def __init__(self):
        self.yaw_rad: float | None = None
        self.rate_rad_s = 0.0
        self.t_s = -np.inf
        self.mirror_probability = 0.0
        self.centre_m = np.zeros(3)
        self.candidate: Acquisition | None = None
        self.candidate_t_s = -np.inf
        self.candidate_took_s = 0.0
        # How long the acquisition that locked the track held the frames up (0 after a fix).
        self.held_s = 0.0
        # The stamp of the first frame given to the track since its last fix (None: none yet).
        self.given_t_s: float | None = None
        # The heading predicted by the track that was lost, and when: a new lock in a symmetric
        # room takes the one of its two mirrored headings that continues it.
        self.lost: tuple[float, float] | None = None
        self.acquisitions = 0
        self.reacquisitions = 0
        self.not_followed = 0

    @property
    def locked(self) -> bool:
        return self.yaw_rad is not None

    def prior(self, t_s: float) -> tuple[float, float] | None:
        """The heading for a frame at ``t_s`` and its variance, or None if the track is lost
        (no fix taken for :data:`LOST_AFTER_S` of the frames given to it, or its last fix
        :data:`CARRY_MAX_S` away) or was never acquired."""
        if self.yaw_rad is None:
            return None
        self._given(t_s)
        carry_max_s = CARRY_MAX_S + self.held_s
        if t_s - self.given_t_s > LOST_AFTER_S or abs(t_s - self.t_s) > carry_max_s:
            lost_t_s = self.t_s + min(abs(t_s - self.t_s), carry_max_s)
            self.lost = (wrap(self.yaw_rad + self.rate_rad_s * (lost_t_s - self.t_s)), lost_t_s)
            self.yaw_rad = None
            self.candidate = None
            self.reacquisitions += 1
            return None
        return wrap(self.yaw_rad + self.rate_rad_s * (t_s - self.t_s)), TRACK_STD_RAD ** 2

    def _given(self, t_s: float) -> None:
        """A frame stamped ``t_s`` reached the track: the first since its last fix starts the
        :data:`LOST_AFTER_S` count."""
        if self.given_t_s is None:
            self.given_t_s = t_s

    def offer(self, acquisition: Acquisition, t_s: float, took_s: float = 0.0) -> bool:
        """An acquisition's result: the track is locked when it agrees with the previous one.

        :param took_s: how long the acquisition held the frames up (its wall time), s.
        :return: whether the heading is now locked.
        """
        self.acquisitions += 1
        previous, previous_t_s = self.candidate, self.candidate_t_s
        previous_took_s = self.candidate_took_s
        self.candidate, self.candidate_t_s, self.candidate_took_s = acquisition, t_s, took_s
        dt_s = abs(t_s - previous_t_s)
        if previous is None or dt_s > PAIR_MAX_S + previous_took_s:
            return False
        ambiguous = max(previous.mirror_probability, acquisition.mirror_probability) > 0.01
        diff = wrap(acquisition.yaw_rad - previous.yaw_rad)
        if ambiguous:
            # Either of the two mirrored poses is as good: agreeing modulo a half turn is all
            # the echoes can give.
            diff = wrap(2 * diff) / 2
        if abs(diff) > AGREE_RAD + MAX_TURN_RATE_RAD_S * dt_s:
            return False
        yaw_rad = acquisition.yaw_rad
        if ambiguous and self.lost is not None and abs(t_s - self.lost[1]) < LOST_AFTER_S:
            # Stay on the side of the mirror the lost track was on, so that the poses do not
            # jump across the room.
            if abs(wrap(yaw_rad + np.pi - self.lost[0])) < abs(wrap(yaw_rad - self.lost[0])):
                yaw_rad = wrap(yaw_rad + np.pi)
        # The turn between the two acquisitions carries the prediction over the next gap (an
        # acquisition holds up the frames for 0.4 s of CPU here).
        self.yaw_rad, self.rate_rad_s, self.t_s = yaw_rad, diff / max(dt_s, 1e-3), t_s
        self.given_t_s, self.held_s = None, took_s
        self.mirror_probability = acquisition.mirror_probability
        self.centre_m = acquisition.centre_m
        return True

    def follow(self, t_s: float, yaw_rad: float, from_echoes: bool,
               residual_ratio: float = 1.0) -> bool:
        """A fix's heading at ``t_s``; return whether the track took it.

        A fix localized from the echoes' own heading is not followed when it is further than
        ``FOLLOW_GATE_RAD`` from the predicted heading or left more than ``RESIDUAL_GATE`` of
        residual (a track with nothing but such fixes is lost after ``LOST_AFTER_S`` and
        acquired again). One from a trusted heading (IMU, fixed)
        is always taken and also settles the mirror doubt: the track starts on the right side.
        """
        if from_echoes and residual_ratio > RESIDUAL_GATE:
            self.not_followed += 1
            self._given(t_s)
            return False
        if self.yaw_rad is None or not np.isfinite(self.t_s) or t_s <= self.t_s:
            self.yaw_rad, self.rate_rad_s, self.t_s = wrap(yaw_rad), 0.0, t_s
        else:
            dt_s = t_s - self.t_s
            innovation = wrap(yaw_rad - self.yaw_rad - self.rate_rad_s * dt_s)
            if from_echoes and abs(innovation) > FOLLOW_GATE_RAD:
                self.not_followed += 1
                self._given(t_s)
                return False
            self.rate_rad_s += RATE_GAIN * innovation / dt_s
            self.yaw_rad, self.t_s = wrap(yaw_rad), t_s
        self.given_t_s, self.held_s = None, 0.0
        if not from_echoes:
            self.mirror_probability = 0.0
        return True

    def widen(self, position_m: np.ndarray, covariance_m2: np.ndarray,
              yaw_variance_rad2: float) -> tuple[np.ndarray, float]:
        """A pose's covariance ``(3, 3)`` and heading variance with the mirror's doubt added.

        Applied to what is published, after any tracker: the doubt is the same in every
        frame, so a filter must not average it away as if it were frame-to-frame noise.
        """
        p = self.mirror_probability
        if p <= 0.0:
            return covariance_m2, yaw_variance_rad2
        d = 2.0 * (self.centre_m - np.asarray(position_m, dtype=float))
        d[2] = 0.0
        return (covariance_m2 + p * (1 - p) * np.outer(d, d),
                yaw_variance_rad2 + p * (1 - p) * np.pi ** 2)
