"""Tracking the array over frames: constant-velocity Kalman filters, each fix's candidates as
the measurements of probabilistic data association, and a few competing tracks scored by
their log likelihood ratio."""

from dataclasses import dataclass

import numpy as np
from scipy import stats

from echoloc_ros.core import tracker_kernels as kernels
from echoloc_ros.core.tracker_measurement import (CHOSEN_MIN_SHARE, UNEXPLAINED_BIAS_STD_M,
                                                  UNEXPLAINED_RATIO, WEAK_AXIS_BIAS_SCALE,
                                                  WEAK_AXIS_VARIANCE_SCALE, Measurement,
                                                  weak_axis_bias)
from echoloc_ros.core.tracker_motion import (LATERAL_SPEED_STD_MPS, MANOEUVRE_S, STATE_SIZE,
                                             MotionModel, TurnRate)

# A place at least this probable that no track expects starts a track.
SPAWN_PROBABILITY = 0.1
# The published covariance covers each hypothesis the track cannot rule out (a rival track,
# the fix it refused, the prediction a doubted fix moved it from) with at least this share
# of its offset's outer product: the truth there lies at a squared Mahalanobis distance of at
# most 1 / 0.125 = 8, inside the 99 % ellipsoid (chi-square, 3 dof: 11.3), as the physics
# covers its rivals (RIVAL_COVER_WEIGHT). Before this and the rules below, 1.8 % of the
# tracked poses of 22 dev rooms (20 dB, one lap each, recorded fixes replayed) lay outside
# their 99.9 % ellipsoid; after, 0.04 % (docs/results.md, "Issue 19: what a track cannot rule
# out").
HYPOTHESIS_COVER_WEIGHT = 0.125
# A confirmed rival track is covered when its share of the confirmed tracks' recent support
# (fixes taken, fading with memory_s) is at least this; below it, ghost tracks a few wrong
# fixes fed widened right poses (16 dev rooms: right tracked poses published wider than 10 cm,
# 16 % at 0.1 against 7 % at 0.2, with the same poses outside). Unconfirmed tracks neither
# count nor are covered: their share diluted the confirmed rivals' (22 dev rooms: 24 poses
# outside against 10).
RIVAL_TRACK_MIN_SHARE = 0.2
# A tracker fed almost only fixes the localizer doubted (this share of the frames, a mean
# fading with memory_s) is no surer than they are: its track is published with their
# widening. Counted over the frames, not the fixes taken: a track that refuses the right
# doubted fixes while it follows doubted ghosts (a dev shoebox, 1.7 m off for 0.3 s) took
# nothing else either. The mean is over the frames seen since the tracker started: a lap that
# starts on doubted fixes has nothing else (the held-out alcove's lap started on doubted
# ghosts 3.5 m off, and their track was published with their millimetre sigmas; r30-44).
DOUBTED_TRACK_SHARE = 0.95
# A fix outside this ellipsoid of the track's prediction (chi-square, 3 dof) moves the track's
# position only, not its velocity: one surprising fix must not set the velocity the track then
# coasts on. A doubted fix moves the velocity only from inside the tighter one. On the dev
# tracked laps (9 rooms of seed 7 at this search, 22 of seed 0 recorded before it, replayed),
# a doubted fix 1.6 cm off with a 2 mm sigma (residual ratio 75) had turned the velocity from
# 0.12 to 0.36 m/s, and the track ran away from the right fixes that followed for 0.4 s.
VELOCITY_GATE_PROBABILITY = 0.95
DOUBTED_VELOCITY_GATE_PROBABILITY = 0.8
# A doubted fix that would move the track further than this ellipsoid of its prediction is a
# second hypothesis, not a step: the track does not take it, and it starts a track of its own,
# which is published only once its own fixes outscore the first (docs/results.md, "Issue 19:
# a doubted snap is a second hypothesis").
SNAP_PROBABILITY = 0.95
# A published track holding this much recent support from fixes the localizer did not doubt
# (``_Track.trusted``, frames' worth fading with memory_s) is replaced only by one holding as
# much: a run of sharp doubted ghosts moving with the array (a wing twin 3.5 m off) does not
# take it. Scripted: 1.5 s of them outscored a track of 1 mm right fixes, and 13 of the 39
# poses published on them had the truth outside their 99.9 % ellipsoid (test_tracker.py).
SWITCH_MIN_TRUSTED = 1.0
# A track the published one replaced (or the published track lost after max_coast_s) is a
# hypothesis nothing has ruled out: the published covariance covers its prediction (with
# HYPOTHESIS_COVER_WEIGHT, or its share of the support if larger) until the published track
# takes a fix the localizer did not doubt, the displaced one is published again, or this long
# after its last fix (twice max_coast_s: a ghost run longer than max_coast_s is not
# published as sure).
DISPLACED_COVER_S = 4.0


@dataclass
class _Track:
    """One filter: state ``[x, y, z, vx, vy, vz, ax, ay, az]``, its covariance, the time
    of its state, its log likelihood ratio against "the truth is elsewhere", how many
    frames' fixes it took (the sum of their association weights), ``support``: that sum
    fading with the tracker's ``memory_s``, and ``trusted``: the same of the fixes the
    localizer did not doubt."""

    state: np.ndarray
    covariance: np.ndarray
    t_s: float
    score: float
    hits: float = 1.0
    last_hit_s: float = 0.0
    support: float = 1.0
    trusted: float = 1.0


class PoseTracker:
    """Track the array position from per-frame fixes, robust to wrong ones.

    Each track is a constant-velocity Kalman filter with white-acceleration process noise
    (Bar-Shalom, Li & Kirubarajan 2001, section 6.2.2), or with ``manoeuvre_s > 0`` one that
    holds an acceleration too, following Singer's model
    (:class:`~echoloc_ros.core.tracker_motion.MotionModel`). A frame's fix is a
    :class:`Measurement`: the fix and, from a learned ranker, its rivals, each with the
    probability that the truth is there. A track takes them by probabilistic data association
    (Bar-Shalom & Tse 1975): each place inside the track's chi-square gate is weighed by its
    probability times its likelihood at the innovation, against "none of them" at the density
    of a fix anywhere in the room; the track keeps the mixture's mean and second moment. A
    doubted fix that lands where the track expects it counts in full, one that lands elsewhere
    barely moves it, and a run of wrong fixes leaves the track coasting with a covariance that
    grows.

    One fix does not set a track's velocity: a place outside ``velocity_gate_probability`` of
    the prediction (for a doubted fix, ``doubted_velocity_gate_probability``) moves the
    position only. A doubted fix that would move a track beyond ``snap_probability`` of its
    prediction is kept as a second hypothesis rather than taken: that track coasts, and the
    fix starts a track of its own, published only once its own fixes outscore the first.
    A run of doubted fixes does not replace a track the undoubted ones built
    (``switch_min_trusted``), and a track that was replaced or lost stays covered by the
    published covariance until a fix the localizer did not doubt settles it
    (``displaced_cover_s``).

    A place no track gates starts a new track. Every track keeps a score, the log likelihood
    ratio of the frames under it against the truth being uniformly elsewhere, with a fading
    memory of ``memory_s`` (Blackman & Popoli 1999, section 6.2). The published track is the
    best-scored of those that took ``confirm_hits`` frames' worth of fixes; it changes when
    another track's consistent fixes outweigh it, so a wrong lock cannot last and scattered
    wrong fixes cannot take over.

    :param accel_std_mps2: standard deviation of the unmodelled acceleration, m/s^2, as
        continuous white noise of power ``accel_std_mps2 ** 2 * ACCEL_HOLD_S`` (with
        ``manoeuvre_s > 0``: of Singer's acceleration).
    :param weak_axis_bias_scale: the published track adds this many times the taken fix's
        local variance along each axis the physics widened (``WEAK_AXIS_BIAS_SCALE``; 0:
        none, the tracker before r33-75).
    :param manoeuvre_s: how long the acceleration persists, s (``MANOEUVRE_S``, 0: the
        constant-velocity model; measured on dev laps and left off).
    :param lateral_speed_std_mps: each frame's heading holds the tracks' velocity along the
        base's heading, but for this much sideways (``LATERAL_SPEED_STD_MPS``,
        :func:`~echoloc_ros.core.tracker_motion.along_heading`; None: a device that may move
        sideways, the tracker before issue 19's r36-06).
    :param array_in_base_yaw_rad: the array's heading on the base, rad (the base's heading
        is the array's less this).
    :param array_in_base_xyz: where the array is on the base, x y z (m, x ahead of the base's
        turning axis): the array swings sideways as the base turns, and the heading holds its
        velocity across to that swing (:class:`~echoloc_ros.core.tracker_motion.TurnRate`).
    :param gate_probability: probability mass inside the gate.
    :param confirm_hits: frames' worth of fixes a track needs before it can be published
        (and, for a track that replaces another, the consistent fixes it needs).
    :param initial_speed_std_mps: velocity uncertainty of a new track, m/s.
    :param memory_s: time constant of the tracks' score memory, s.
    :param room_volume_m3: volume over which a wrong fix may land (the density of "none").
    :param prior_right: probability that a plain fix (physics', or one the network doubts) is
        right. Lower than the rate at which such fixes are right (80-95 %): wrong ones come in
        runs, not one by one, and 0.5 tracked best on recorded drives (docs/physics.md).
    :param max_tracks: tracks kept at once (the lowest-scored beyond are dropped).
    :param coast_s: a track that is not published is dropped after this long without a fix.
    :param velocity_gate_probability: a fix outside this ellipsoid of the prediction moves
        the position only (``VELOCITY_GATE_PROBABILITY``; 1 moves the velocity always).
    :param doubted_velocity_gate_probability: the same for a doubted fix.
    :param snap_probability: a doubted fix that would move the track beyond this ellipsoid of
        its prediction starts a track of its own instead (``SNAP_PROBABILITY``; 1: never).
    :param switch_min_trusted: a published track with at least this much recent support from
        undoubted fixes is replaced only by one with as much (``SWITCH_MIN_TRUSTED``; 0:
        always by the best-scored).
    :param displaced_cover_s: how long after its last fix a replaced or lost track is still
        covered by the published covariance (``DISPLACED_COVER_S``; 0: never).
    :param doubt_from_start: the share of doubted frames (``DOUBTED_TRACK_SHARE``) is a mean
        over the frames since the tracker started (False: as if undoubted frames came
        before the first, so a start on doubted fixes reached the share only after about
        3 s: the tracker before issue 19's r30-44).
    :param weak_axis_variance_scale: a physics fix counts with this many times its local
        variance along an axis the physics widened toward the room
        (``WEAK_AXIS_VARIANCE_SCALE``; 1: as given, the tracker before r30-44).
    :param wider_rivals: a physics fix that carries the fix its wider look did not choose
        is fused as both (:meth:`Measurement.from_estimate`; False: the fix alone, the
        tracker before issue 19's r31-55).
    :param chosen_min_share: the chosen fix keeps at least this share of the probability it
        shares with that rival (``CHOSEN_MIN_SHARE``; 0: the evidence's share alone).
    :param max_coast_s: the published track too is dropped after this long without a fix: a
        constant-velocity prediction further out than this is no longer honest (a stopped
        or turning array, a velocity learnt from a few frames), and its covariance has grown
        so wide that it would gate every fix yet take none. Fixes after such a gap start new
        tracks, and nothing is published (:attr:`initialised` is false) until one is
        confirmed again.
    """

    def __init__(self, accel_std_mps2: float = 0.5, gate_probability: float = 0.999,
                 confirm_hits: int = 3, initial_speed_std_mps: float = 0.5,
                 memory_s: float = 1.0, room_volume_m3: float = 50.0,
                 prior_right: float = 0.5, max_tracks: int = 6, coast_s: float = 1.0,
                 max_coast_s: float = 2.0,
                 velocity_gate_probability: float = VELOCITY_GATE_PROBABILITY,
                 doubted_velocity_gate_probability: float = DOUBTED_VELOCITY_GATE_PROBABILITY,
                 snap_probability: float = SNAP_PROBABILITY,
                 switch_min_trusted: float = SWITCH_MIN_TRUSTED,
                 displaced_cover_s: float = DISPLACED_COVER_S,
                 doubt_from_start: bool = True,
                 weak_axis_variance_scale: float = WEAK_AXIS_VARIANCE_SCALE,
                 wider_rivals: bool = True, manoeuvre_s: float = MANOEUVRE_S,
                 weak_axis_bias_scale: float = WEAK_AXIS_BIAS_SCALE,
                 chosen_min_share: float = CHOSEN_MIN_SHARE,
                 lateral_speed_std_mps: float | None = LATERAL_SPEED_STD_MPS,
                 array_in_base_yaw_rad: float = 0.0,
                 array_in_base_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        checks = {'accel_std_mps2': (accel_std_mps2, accel_std_mps2 > 0, 'positive'),
                  'gate_probability': (gate_probability, 0 < gate_probability < 1, 'in (0, 1)'),
                  'confirm_hits': (confirm_hits, confirm_hits >= 1, '>= 1'),
                  'memory_s': (memory_s, memory_s > 0, 'positive'),
                  'room_volume_m3': (room_volume_m3, room_volume_m3 > 0, 'positive'),
                  'prior_right': (prior_right, 0 < prior_right < 1, 'in (0, 1)'),
                  'max_tracks': (max_tracks, max_tracks >= 1, '>= 1'),
                  'coast_s': (coast_s, coast_s > 0, 'positive'),
                  'max_coast_s': (max_coast_s, max_coast_s > 0, 'positive'),
                  'velocity_gate_probability': (velocity_gate_probability,
                                                0 < velocity_gate_probability <= 1, 'in (0, 1]'),
                  'doubted_velocity_gate_probability': (
                      doubted_velocity_gate_probability,
                      0 < doubted_velocity_gate_probability <= 1, 'in (0, 1]'),
                  'snap_probability': (snap_probability, 0 < snap_probability <= 1, 'in (0, 1]'),
                  'switch_min_trusted': (switch_min_trusted, switch_min_trusted >= 0, '>= 0'),
                  'displaced_cover_s': (displaced_cover_s, displaced_cover_s >= 0, '>= 0'),
                  'weak_axis_variance_scale': (weak_axis_variance_scale,
                                               weak_axis_variance_scale >= 1, '>= 1'),
                  'weak_axis_bias_scale': (weak_axis_bias_scale, weak_axis_bias_scale >= 0,
                                           '>= 0'),
                  'chosen_min_share': (chosen_min_share, 0 <= chosen_min_share <= 1,
                                       'in [0, 1]'),
                  'lateral_speed_std_mps': (lateral_speed_std_mps, lateral_speed_std_mps is None
                                            or lateral_speed_std_mps > 0, 'positive or None'),
                  'array_in_base_yaw_rad': (array_in_base_yaw_rad,
                                            np.isfinite(array_in_base_yaw_rad), 'finite'),
                  'array_in_base_xyz': (array_in_base_xyz, np.shape(array_in_base_xyz) == (3,)
                                        and np.all(np.isfinite(array_in_base_xyz)),
                                        'three finite numbers')}
        for name, (value, ok, expected) in checks.items():
            if not ok:
                raise ValueError(f'{name} must be {expected}, got {value}')
        self.coast_s = coast_s
        self.max_coast_s = max_coast_s
        self.accel_std_mps2 = accel_std_mps2
        self.motion = MotionModel(accel_std_mps2, manoeuvre_s)
        self.gate = float(stats.chi2.ppf(gate_probability, 3))
        self.velocity_gate = float(stats.chi2.ppf(velocity_gate_probability, 3))
        self.doubted_velocity_gate = float(stats.chi2.ppf(doubted_velocity_gate_probability, 3))
        self.snap = float(stats.chi2.ppf(snap_probability, 3))
        self.switch_min_trusted = switch_min_trusted
        self.displaced_cover_s = displaced_cover_s
        self.doubt_from_start = bool(doubt_from_start)
        self.weak_axis_variance_scale = weak_axis_variance_scale
        self.weak_axis_bias_scale = weak_axis_bias_scale
        self.wider_rivals = bool(wider_rivals)
        self.chosen_min_share = float(chosen_min_share)
        self.lateral_speed_std_mps = lateral_speed_std_mps
        self.array_in_base_yaw_rad = float(array_in_base_yaw_rad)
        self.array_in_base_xyz = np.array(array_in_base_xyz, dtype=float)
        self.turn = TurnRate()
        self.confirm_hits = confirm_hits
        self.initial_speed_std_mps = initial_speed_std_mps
        self.memory_s = memory_s
        self.density = 1.0 / room_volume_m3
        self.prior_right = prior_right
        self.max_tracks = max_tracks
        self.reset()

    def reset(self) -> None:
        """Forget every track; the next fix starts anew (``switches`` and ``losses`` count
        from 0)."""
        self._tracks: list[_Track] = []
        self._published: _Track | None = None
        self._displaced: _Track | None = None
        self._t_s: float | None = None
        self._swing: tuple[float, float] | None = (0.0, 0.0)
        self.turn.reset()
        self.switches = 0
        self.losses = 0
        # What the published covariance holds beyond the track's own (_published_covariance).
        self._doubted_frames = 0.0
        self._frames = 0.0
        self._doubt_widening_m2 = np.zeros((3, 3))
        self._bias_m2 = np.zeros((3, 3))

    @property
    def initialised(self) -> bool:
        """Whether a track is published: a confirmed track that has taken a fix within
        ``max_coast_s``. Without one the tracker has no pose to vouch for."""
        return self._published is not None

    @property
    def lost(self) -> bool:
        """Whether the tracker held a track and has none now: it ran past ``max_coast_s``
        without a fix and no new track is confirmed yet."""
        return self._published is None and self.losses > 0

    @property
    def state(self) -> np.ndarray | None:
        """The published track's position and velocity ``[x, y, z, vx, vy, vz]``."""
        return None if self._published is None else self._published.state[:6]

    @property
    def rival_share(self) -> float:
        """The largest share of the tracks' recent support (fixes taken, fading with
        ``memory_s``) that a track other than the published one holds, confirmed or not (0
        with none published)."""
        if self._published is None:
            return 0.0
        return max((tr.support for tr in self._tracks if tr is not self._published),
                   default=0.0) / sum(tr.support for tr in self._tracks)

    @property
    def coasting_s(self) -> float:
        """How long the published track has gone without a fix it took (0 with none)."""
        if self._published is None or self._t_s is None:
            return 0.0
        return self._t_s - self._published.last_hit_s

    def prediction(self, t_s: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The published track's position ``(3,)`` and its covariance ``(3, 3)`` predicted to
        ``t_s`` (``None`` without a published track)."""
        if self._published is None:
            return None
        state, covariance = self._predict(self._published, t_s)
        return state[:3], covariance[:3, :3]

    @property
    def last_t_s(self) -> float | None:
        """Time of the last frame fused (``None`` after :meth:`reset`)."""
        return self._t_s

    @property
    def n_tracks(self) -> int:
        """Tracks held, published or not."""
        return len(self._tracks)

    def _new(self, t_s: float, position: np.ndarray, covariance: np.ndarray,
             score: float) -> _Track:
        cov = np.zeros((STATE_SIZE, STATE_SIZE))
        cov[:3, :3] = covariance
        cov[3:6, 3:6] = self.initial_speed_std_mps ** 2 * np.eye(3)
        cov[6:, 6:] = self.motion.initial_accel_variance_m2ps4 * np.eye(3)
        return _Track(np.concatenate([position, np.zeros(STATE_SIZE - 3)]), cov, t_s, score,
                      1.0, t_s)

    def _predict(self, track: _Track, t_s: float, m: Measurement | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``track``'s state and covariance at ``t_s``, held along the heading of the frame
        ``m`` where it has one (``lateral_speed_std_mps``)."""
        f, q = self.motion.step(t_s - track.t_s)
        hold = not (m is None or m.heading_rad is None or self.lateral_speed_std_mps is None
                    or self._swing is None)
        return kernels.predict(
            track.state, track.covariance, f, q, hold,
            m.heading_rad - self.array_in_base_yaw_rad if hold else 0.0,
            m.heading_variance_rad2 if hold else 0.0,
            self.lateral_speed_std_mps if hold else 0.0, *(self._swing if hold else (0.0, 0.0)))

    def _associate(self, track: _Track, t_s: float, m: Measurement,
                   prediction: tuple[np.ndarray, np.ndarray] | None = None
                   ) -> tuple[float, np.ndarray]:
        """Update ``track`` with the frame by probabilistic data association.

        :param prediction: ``track``'s state and covariance predicted to ``t_s``, if already
            made (:meth:`_predict`); ``None``: made here.
        :return: ``(log likelihood ratio of the frame under the track, weight of each
            place)``; a place outside the gate has weight 0.
        """
        fade = float(np.exp(-(t_s - track.t_s) / self.memory_s))
        state, p = self._predict(track, t_s, m) if prediction is None else prediction
        mean, covariance, weights, total = kernels.associate(
            state, p, m.positions_m, m.covariances_m2, m.probabilities, bool(m.doubted),
            self.gate, self.snap, self.doubted_velocity_gate if m.doubted else self.velocity_gate,
            self.density)
        taken = float(weights.sum())  # the places outside the gate weigh 0
        track.state = mean
        track.covariance = covariance
        track.t_s = t_s
        track.hits += taken
        track.support = fade * track.support + taken
        track.trusted = fade * track.trusted + (0.0 if m.doubted else taken)
        if taken >= 0.5:
            track.last_hit_s = t_s
        return float(np.log(max(total, 1e-300) / self.density)), weights

    def update(self, t_s: float, position_m: np.ndarray, covariance_m2: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Fuse a plain fix, right with probability ``prior_right`` (see :meth:`update_with`)."""
        return self.update_with(t_s, Measurement.single(position_m, covariance_m2,
                                                        self.prior_right))

    def update_estimate(self, t_s: float, estimate) -> tuple[np.ndarray, np.ndarray, bool]:
        """Fuse a localizer's :class:`~echoloc_ros.core.physics.results.Estimate`: its
        fix, with a learned ranker its rivals and probabilities (:meth:`update_with`), and
        its heading (``yaw_rad``), which holds the tracks' velocity along it."""
        m = Measurement.from_estimate(
            estimate, self.prior_right, weak_axis_variance_scale=self.weak_axis_variance_scale,
            wider_rivals=self.wider_rivals, chosen_min_share=self.chosen_min_share)
        m.heading_rad = float(estimate.yaw_rad)
        m.heading_variance_rad2 = float(estimate.yaw_variance_rad2)
        return self.update_with(t_s, m)

    def update_with(self, t_s: float, m: Measurement) -> tuple[np.ndarray, np.ndarray, bool]:
        """Fuse one frame.

        :param t_s: time of the frame (acquisition time), s; must not go backwards.
        :param m: where the truth may be; its first place is the localizer's fix.
        :return: ``(position (3,), covariance (3, 3), accepted)``: the published track after
            the frame, and whether it took the fix (its first place) more likely than not.
            Before any track is confirmed, the fix itself with its covariance: a pose no
            track vouches for yet (:attr:`initialised` is false), not one to publish.
        """
        if not np.isfinite(t_s):
            raise ValueError(f't_s must be finite, got {t_s}')
        if self._t_s is not None and t_s < self._t_s:
            raise ValueError(f't_s {t_s} is earlier than the last frame at {self._t_s}')
        fade = 1.0 if self._t_s is None else float(np.exp(-(t_s - self._t_s) / self.memory_s))
        self._t_s = t_s
        if m.heading_rad is not None:
            self._swing = self.turn.swing(t_s, m.heading_rad - self.array_in_base_yaw_rad,
                                          m.heading_variance_rad2, self.array_in_base_xyz[0])
        if (self._published is not None
                and t_s - self._published.last_hit_s > self.max_coast_s):
            # Past what the track can honestly predict: forget it and start from this frame.
            self._displaced = self._published if self.displaced_cover_s > 0 else None
            self._published = None
            self.losses += 1
        predicted = published_prediction = None
        if self._published is not None:
            published_prediction = state, p = self._predict(self._published, t_s, m)
            predicted = (state[:3], p[:3, :3])
        self._tracks = [tr for tr in self._tracks if t_s - tr.last_hit_s <= self.max_coast_s]
        gated = np.zeros(len(m.probabilities), dtype=bool)
        fix_weight = {}
        for track in self._tracks:
            llr, weights = self._associate(
                track, t_s, m, published_prediction if track is self._published else None)
            track.score = fade * track.score + llr
            gated |= weights > 0
            fix_weight[id(track)] = weights[0]
        for k in np.flatnonzero(~gated & (m.probabilities >= SPAWN_PROBABILITY)):
            # A place no track expects: the start of a track, with no evidence yet beyond
            # its own probability.
            self._tracks.append(self._new(t_s, m.positions_m[k], m.covariances_m2[k],
                                          float(np.log(m.probabilities[k]))))
            self._tracks[-1].trusted = 0.0 if m.doubted else 1.0
            fix_weight[id(self._tracks[-1])] = float(k == 0)
        # A track no frame has supported for coast_s is dropped, unless it is the one
        # published (it stays until another replaces it).
        kept = (self._published, self._displaced)
        live = [tr for tr in self._tracks if any(tr is k for k in kept)
                or t_s - tr.last_hit_s <= self.coast_s]
        live.sort(key=lambda tr: (tr is not kept[0], tr is not kept[1], -tr.score))
        live = self._distinct(live)
        self._tracks = sorted(live[:self.max_tracks], key=lambda tr: -tr.score)
        confirmed = [tr for tr in self._tracks if tr.hits >= self.confirm_hits]
        if not confirmed:
            self._published = None
            return m.positions_m[0].copy(), m.fix_covariance_m2.copy(), True
        best = confirmed[0]
        old = self._published
        if (old is not None and best is not old and any(tr is old for tr in confirmed)
                and best.trusted < self.switch_min_trusted <= old.trusted):
            best = old
        if old is not None and best is not old:
            self.switches += 1
            self._displaced = old if self.displaced_cover_s > 0 else None
        self._published = best
        accepted = fix_weight.get(id(best), 0.0) >= 0.5
        if self._displaced is not None and (
                self._displaced is best or (accepted and not m.doubted)
                or t_s - self._displaced.last_hit_s > self.displaced_cover_s):
            self._displaced = None
        return (best.state[:3].copy(), self._published_covariance(m, accepted, predicted, fade),
                accepted)

    def _published_covariance(self, m: Measurement, accepted: bool,
                              predicted: tuple[np.ndarray, np.ndarray] | None,
                              fade: float) -> np.ndarray:
        """The published track's covariance ``(3, 3)``, widened to cover what the track
        cannot rule out.

        A track's own covariance says how well it knows the truth if every fix it took was
        right. In rooms never seen the localizer gives runs of wrong fixes with millimetre
        sigmas, consistent from frame to frame, and a track that takes them (or refuses the
        right ones after) is as sure of the wrong place (issue 19). So the published
        covariance also covers, each with at least ``HYPOTHESIS_COVER_WEIGHT`` of its
        offset's outer product: every confirmed rival track holding
        ``RIVAL_TRACK_MIN_SHARE`` of the recent support (with its share, if larger); the fix,
        when the track refused one the localizer did not doubt; the track's prediction, when
        a doubted fix moved it; and the prediction of a track it replaced or lost, until
        ``displaced_cover_s`` after that one's last fix or a fix the localizer did not doubt
        taken. It adds the bias of fixes that do not explain their
        frame (``UNEXPLAINED_BIAS_STD_M``) and, when the frames bring doubted fixes alone
        (``DOUBTED_TRACK_SHARE``), their widening. The track itself is not changed.

        :param m: the frame's measurement.
        :param accepted: the published track took the fix.
        :param predicted: where the track published before this frame predicted the array,
            and that prediction's covariance (``None``: there was none).
        :param fade: the memory's fading since the last frame.
        """
        best = self._published
        position = best.state[:3]
        cov = best.covariance[:3, :3].copy()
        cover = []
        support = sum(tr.support for tr in self._tracks
                      if tr is best or tr.hits >= self.confirm_hits)
        for tr in self._tracks:
            share = tr.support / support
            if (tr is not best and tr is not self._displaced and tr.hits >= self.confirm_hits
                    and share >= RIVAL_TRACK_MIN_SHARE):
                cover.append((max(share, HYPOTHESIS_COVER_WEIGHT), tr.state[:3],
                              tr.covariance[:3, :3]))
        if self._displaced is not None:
            held = any(tr is self._displaced for tr in self._tracks)
            state, p = self._predict(self._displaced, self._t_s)
            cover.append((max(self._displaced.support / support if held else 0.0,
                              HYPOTHESIS_COVER_WEIGHT), state[:3], p[:3, :3]))
        if not accepted and not m.doubted:
            cover.append((HYPOTHESIS_COVER_WEIGHT, m.positions_m[0], m.covariances_m2[0]))
        if accepted and m.doubted and predicted is not None:
            cover.append((HYPOTHESIS_COVER_WEIGHT, *predicted))
        for weight, place, spread in cover:
            # A mixture's second moment about the published place: its spread and offset.
            cov += weight * (spread + np.outer(place - position, place - position))
        self._bias_m2 = fade * self._bias_m2
        # Doubted frames over frames, both fading: from the first frame on, not from a start
        # presumed undoubted (a lap that starts on doubted ghosts is published with their
        # widening at once).
        if self.doubt_from_start:
            self._doubted_frames = fade * self._doubted_frames + float(m.doubted)
            self._frames = fade * self._frames + 1.0
        else:
            self._doubted_frames = (fade * self._doubted_frames
                                    + (1.0 - fade) * float(m.doubted))
            self._frames = 1.0
        if m.doubted:
            self._doubt_widening_m2 = m.fix_covariance_m2 - m.covariances_m2[0]
        if accepted:
            bias = weak_axis_bias(m, best.covariance[:3, :3], self.weak_axis_bias_scale)
            if m.residual_ratio > UNEXPLAINED_RATIO:
                bias += (m.residual_ratio - 1.0) * UNEXPLAINED_BIAS_STD_M ** 2 * np.eye(3)
            if np.trace(bias) > np.trace(self._bias_m2):
                self._bias_m2 = bias
        cov += self._bias_m2
        if self._doubted_frames >= DOUBTED_TRACK_SHARE * self._frames:
            cov += self._doubt_widening_m2
        return 0.5 * (cov + cov.T)

    def _distinct(self, tracks: list[_Track]) -> list[_Track]:
        """The tracks, best first, less any inside a better one's gate (two tracks on the
        same place are one)."""
        kept: list[_Track] = []
        for tr in tracks:
            if not any(_inside(tr, other, self.gate) for other in kept):
                kept.append(tr)
        return kept


def _inside(a: _Track, b: _Track, gate: float) -> bool:
    d = a.state[:3] - b.state[:3]
    s = a.covariance[:3, :3] + b.covariance[:3, :3]
    return float(d @ np.linalg.solve(s, d)) <= gate
