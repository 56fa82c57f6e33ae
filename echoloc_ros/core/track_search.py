"""The localizer follows its own track: a local fix from the track's prediction on most frames,
the full search where the local fix cannot stand in for it, and periodically.

A robot at 1 m/s moves 4 cm between frames at 25 Hz; once a confirmed track knows where the
array is to a few millimetres, the full search (candidates over the room, polish, axis and
height scans, the wider look) mostly re-finds what the track predicts, at several times the
cost of refining that prediction (:func:`~echoloc_ros.core.physics.track_fix.local_fix`).
:class:`TrackSearch` decides, frame by frame, which of the two runs:

- the full search where no confirmed track is published, where another track holds a share
  of the recent support (``'rivalled'``: a local fix refines the place the published track
  predicts and cannot see the rival, so it would starve it), where the track did not take the
  last fix (it coasts), after a gap in the frames, a jump of the heading given, a change of
  the room or of the temperature given, where a receiver is dead;
- at least every ``period_s``, the period's search, so that a wrong track cannot lock in (a
  full search that disagrees with the track goes to the tracker, which handles it as a new
  hypothesis). The full search is its candidates over the room
  (:meth:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer.propose`) and then the best of
  them finished, scanned along its axes and refined from its peaks; where the track's local fix
  stands, the full search's best candidate is that fix's own place (dev, the stages drive: 1.4
  to 4.5 mm from it, the full search's fix within 0.11 mm of the local one) and the finishing
  re-finds it. So on the period's frame the local fix is tried as on any other, and where it
  stands the full search's candidates alone check it (``verify_period``), their stages
  (:func:`~echoloc_ros.core.physics.staged_search.proposal_stages`) spread over that frame
  and the next two (about 1 ms each, where the whole search cost about 5 ms on one frame),
  the local fixes published meanwhile. Where their best lies more than
  :data:`~echoloc_ros.core.physics.track_fix.SAME_PLACE_M` from the checked fix, a rival
  (``'rival'``), the frame the check ends on gets the full search; a local fix on the
  period's frame whose echoes are unexplained gets it at once (``'unexplained'``: the full
  search's first fix would be doubtful and it would look wider). A full search on any frame
  meanwhile ends the check;
- otherwise the local fix, which stands only where every check passes: it leaves its frame
  undoubted as the full path judges a fix (:meth:`WiderLook._doubtful_fix`: no weak axis
  widened to the room; echoes its fit leaves unexplained, see below), no peak of its evidence
  along an axis beats it (the full path would have refined that peak as a candidate), it lies
  inside the tracker's gate about the prediction, and its evidence is not far below the last
  fix's. A local fix refused for any of these is replaced by the full search on the same frame
  (counted by reason).

A fix whose fit leaves echoes unexplained (``unexplained_fixes``) is judged by the other checks,
its axes scanned whole. Furniture the room file does not hold echoes where no modelled path
does, and a right fix near it leaves them unexplained frame after frame: the full search then
doubts its own first fix (the same fix, to a fraction of a millimetre), searches again wider
(about 60 ms) and now and then takes a ghost metres off, which the tracker refuses. A wrong
track's local fix leaves echoes unexplained too, but the truth's peak along an axis lies ahead
of it, and a full search each ``period_s`` still bounds a lock-in.

Why each number is what it is, and what it was measured against, is in ``docs/results.md``
(issue 20, "The localizer follows its own track").
"""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from echoloc_ros.core.echo_processing import EchoFeatures
from echoloc_ros.core.localization import Fix
from echoloc_ros.core.physics.local_scans import LocalScans
from echoloc_ros.core.physics.staged_search import proposal_stages
from echoloc_ros.core.physics.track_fix import local_fix, rival_first

# A full search at least this often, s (the default of the node's full_search_period_s).
FULL_SEARCH_PERIOD_S = 1.0
# Frames further apart than this were not consecutive (a seq gap, a dropped frame): the
# prediction has drifted, s. Two frame periods at 25 Hz and a half.
MAX_GAP_S = 0.1
# A heading given that moved more than this since the last frame (a robot turning at
# 90 deg/s moves 3.6 deg between frames at 25 Hz): the given heading jumped, rad.
HEADING_JUMP_RAD = float(np.deg2rad(10.0))
# A temperature given that moved more than this since the last full search, degC (the
# speed of sound 0.17 %/degC: the local fix's seed would be a millimetre or more off).
TEMPERATURE_STEP_C = 1.0
# A local fix whose log evidence falls below this share of the last fix's does not explain
# the echoes as the track's fixes did (dev, default and furnished rooms at 10 and 20 dB:
# frame-to-frame ratios of right fixes lay above 0.7).
EVIDENCE_SHARE_MIN = 0.5
# A local fix whose echoes are unexplained is judged by the other checks rather than refused
# (module docstring). Dev, furnished_room's stages drive, 750 frames at 20 dB: full searches
# 161 -> 37, tracked p95 1.03 -> 0.93 mm; dev laps (seed 7, rooms 0 and 2-9): pooled p95 0.61
# -> 0.47 cm, gross 0.06 -> 0 % (docs/results.md, issue 20, r34-82).
UNEXPLAINED_FIXES = True
# While a track other than the published one holds more than this share of the tracks' recent
# support (PoseTracker.rival_share; the tracker's RIVAL_TRACK_MIN_SHARE, from which a
# confirmed rival is covered), each frame gets the full search, not a local fix from the
# published track's prediction: a local fix cannot see the rival, so it is undoubted wherever
# the published track is, and the rival, fed nothing, is dropped. l_shaped_room's tracked lap
# (dev seeds 20 and 21, 20 dB) began where the notch's corner and the far arm's look alike:
# the full search put its fixes at the truth and at its translational twin 3.9 m off (shares
# 0.43-0.46 at the first published frame), the twin's track was published first, and the
# local fixes from its prediction vouched for it with 0.1 mm sigmas for 2 s: 51 and 19
# published poses outside their 99.9 % ellipsoid (docs/results.md, issue 19, r37-05). On the
# dev laps recorded at r36-06 (6 rooms) a rival held over 0.2 on 9 of 1027 published frames.
# 1: off (the track search before r37-05).
RIVAL_SHARE_FULL = 0.2
# The period's search checks a standing local fix with the full search's candidates alone,
# finishing them only where they put another place first (module docstring).
VERIFY_PERIOD = True

#: Why the full search ran without trying a local fix.
SKIP_REASONS = ('off', 'no_track', 'rivalled', 'coasting', 'period', 'gap', 'heading_jump',
                'changed', 'receivers')
#: Why a local fix was refused (the full search then ran on the same frame).
REFUSAL_REASONS = ('doubtful', 'peaks_ahead', 'outside_gate', 'evidence', 'rival',
                   'unexplained')


@dataclass
class TrackSearchCounts:
    """Running totals of a :class:`TrackSearch`.

    :ivar local: frames whose fix is a local one.
    :ivar full: frames whose fix is the full search's.
    :ivar skipped: of the full, those where no local fix was tried, by reason
        (:data:`SKIP_REASONS`).
    :ivar refused: of the full, those where a local fix was tried and refused, by reason
        (:data:`REFUSAL_REASONS`).
    :ivar unexplained: of the local, those whose fit left echoes unexplained.
    :ivar verified: of the local, those on which the period's search ran as the full search's
        candidates alone and put the local fix first (``verify_period``).
    """

    local: int = 0
    full: int = 0
    skipped: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    unexplained: int = 0
    verified: int = 0

    def copy(self) -> 'TrackSearchCounts':
        return TrackSearchCounts(self.local, self.full, Counter(self.skipped),
                                 Counter(self.refused), self.unexplained, self.verified)

    def as_dict(self) -> dict:
        """The counts as plain numbers (the bench's JSON, the node's diagnostics)."""
        return {'local_fixes': self.local, 'local_unexplained': self.unexplained,
                'local_verified': self.verified,
                'full_searches': self.full,
                'full_because': {reason: self.skipped[reason] for reason in SKIP_REASONS
                                 if self.skipped[reason]},
                'local_refused': {reason: self.refused[reason] for reason in REFUSAL_REASONS
                                  if self.refused[reason]}}


@dataclass
class _Last:
    """What the last frame left: its time, the heading given, its fix's evidence and speed of
    sound, and the last full search's time, localizer and temperature given."""

    t_s: float
    yaw_rad: float
    score: float
    speed_of_sound_mps: float
    full_t_s: float
    localizer: object
    temperature_c: float | None


@dataclass
class _Check:
    """The period's check under way (:meth:`TrackSearch._started`), or a full search as the
    period's (``stages`` ``None``): the full search's candidates' stages left, the local fix
    they check (``position_m (3,)``), and the frame's time, localizer and temperature given."""

    stages: object
    position_m: np.ndarray | None
    t_s: float
    localizer: object
    temperature_c: float | None


class TrackSearch:
    """Which search each tracked frame gets (module docstring).

    :param period_s: a full search at least this often, s; 0: every frame (today's path).
    :param max_gap_s: frames further apart than this get the full search, s.
    :param heading_jump_rad: a heading given that moved more than this since the last frame
        gets the full search, rad.
    :param evidence_share: a local fix below this share of the last fix's log evidence is
        refused.
    :param windowed_scans: a local fix's axis scans score windows about the peaks the last
        ones found (:class:`~echoloc_ros.core.physics.local_scans.LocalScans`); False: the
        whole axes every time, as a full search scans them.
    :param unexplained_fixes: a local fix whose echoes are unexplained is judged by the other
        checks (module docstring); False: it is refused as doubtful.
    :param verify_period: the period's search tries the local fix and, where it stands, runs
        the full search's candidates alone, finishing them only where they put a rival first
        (module docstring); False: the full search, no local fix tried.
    :param rival_share: a frame where another track holds more than this share of the
        tracks' recent support gets the full search (:data:`RIVAL_SHARE_FULL`; 1: never, the
        track search before issue 19's r37-05).
    :raises ValueError: a negative period, a non-positive gap or jump, a share outside
        [0, 1), a rival share outside [0, 1].
    """

    def __init__(self, period_s: float = FULL_SEARCH_PERIOD_S, max_gap_s: float = MAX_GAP_S,
                 heading_jump_rad: float = HEADING_JUMP_RAD,
                 evidence_share: float = EVIDENCE_SHARE_MIN, windowed_scans: bool = True,
                 unexplained_fixes: bool = UNEXPLAINED_FIXES,
                 verify_period: bool = VERIFY_PERIOD,
                 rival_share: float = RIVAL_SHARE_FULL) -> None:
        checks = {'period_s': (period_s, np.isfinite(period_s) and period_s >= 0, '>= 0'),
                  'max_gap_s': (max_gap_s, max_gap_s > 0, 'positive'),
                  'heading_jump_rad': (heading_jump_rad, heading_jump_rad > 0, 'positive'),
                  'evidence_share': (evidence_share, 0 <= evidence_share < 1, 'in [0, 1)'),
                  'rival_share': (rival_share, 0 <= rival_share <= 1, 'in [0, 1]')}
        for name, (value, ok, expected) in checks.items():
            if not ok:
                raise ValueError(f'{name} must be {expected}, got {value}')
        self.period_s = float(period_s)
        self.max_gap_s = float(max_gap_s)
        self.heading_jump_rad = float(heading_jump_rad)
        self.evidence_share = float(evidence_share)
        self.unexplained_fixes = bool(unexplained_fixes)
        self.verify_period = bool(verify_period)
        self.rival_share = float(rival_share)
        self.counts = TrackSearchCounts()
        self.scans = LocalScans(windowed_scans)
        self.reset()

    def reset(self) -> None:
        """Forget the last frame: the next one gets the full search (the counts stay)."""
        self._last: _Last | None = None
        self._check: _Check | None = None
        self.scans.reset()

    def fix(self, pipeline, t_s: float, features: EchoFeatures, yaw_rad: float,
            yaw_std_rad: float | None, temperature_c: float | None,
            wide_search_allowed: bool, tilt_rad: tuple[float, float] | None
            ) -> tuple[Fix, bool]:
        """The frame's fix and whether it is a local one; the arguments are
        :meth:`~echoloc_ros.core.pipeline.Pipeline.step`'s.

        :raises ValueError: as the localizer's ``fix`` (nothing counted).
        """
        localizer = pipeline.localizer
        physics = getattr(localizer, 'physics', localizer)
        reason = self._skip_reason(pipeline, t_s, yaw_rad, temperature_c)
        checked = None
        if not reason and self._check is not None:
            reason, checked = self._advanced()
        due = reason == 'period' and self.verify_period
        fix = None
        tried = not reason or due
        if tried:
            last = self._last
            origin_m, covariance_m2 = pipeline.tracker.prediction(t_s)
            found = local_fix(physics, features, yaw_rad, origin_m, last.speed_of_sound_mps,
                              temperature_c, yaw_std_rad, tilt_rad, scans=self.scans,
                              unexplained=self.unexplained_fixes)
            reason = found.refusal or self._refusal(found, pipeline.tracker.gate, origin_m,
                                                    covariance_m2)
            if not reason and due:
                # The full search's first fix would be doubtful: it looks wider (WiderLook).
                reason = 'unexplained' if found.unexplained else self._started(
                    physics, t_s, found, features, yaw_rad, temperature_c, yaw_std_rad,
                    tilt_rad, localizer)
            if not reason:
                fix = Fix(found.estimate)
                self.counts.unexplained += found.unexplained
        if reason:
            if reason in REFUSAL_REASONS:
                self.counts.refused[reason] += 1
            else:
                self.counts.skipped[reason] += 1
            if not tried and reason != 'period':
                # The track's peaks may have moved anywhere since (a gap, a jump, a new track).
                self.scans.reset()
        full = fix is None
        if full:
            fix = localizer.fix(features, yaw_rad, temperature_c, yaw_std_rad,
                                wide_search_allowed, tilt_rad)
            # The full search is the period's: a check under way is dropped.
            self._check = None
            checked = _Check(None, None, t_s, localizer, temperature_c)
        self.counts.full += full
        self.counts.local += not full
        last = self._last
        self._last = _Last(t_s, float(yaw_rad), float(fix.estimate.score),
                           float(fix.estimate.speed_of_sound_mps),
                           last.full_t_s if checked is None else checked.t_s,
                           last.localizer if checked is None else checked.localizer,
                           last.temperature_c if checked is None else checked.temperature_c)
        return fix, not full

    def _started(self, physics, t_s: float, found, features: EchoFeatures, yaw_rad: float,
                 temperature_c: float | None, yaw_std_rad: float | None,
                 tilt_rad: tuple[float, float] | None, localizer) -> str:
        """The period's check of the local fix ``found`` on this frame started: the full
        search's candidates (:func:`proposal_stages`), their first stage run now and one more
        on each of the next frames (module docstring); ``''`` (the local fix stands)."""
        stages = proposal_stages(physics, features, yaw_rad, temperature_c, yaw_std_rad,
                                 tilt_rad)
        self._check = _Check(stages, found.estimate.position_m, t_s, localizer, temperature_c)
        next(stages, None)
        return ''

    def _advanced(self) -> tuple[str, '_Check | None']:
        """One more stage of the check under way: ``('rival', None)`` where it ended with the
        best candidate away from the fix it checks (this frame gets the full search),
        ``('', check)`` where it ended with the fix first (the check counts as the period's
        full search, from its frame on), ``('', None)`` while it goes on."""
        check = self._check
        try:
            next(check.stages)
            return '', None
        except StopIteration as done:
            self._check = None
            if rival_first(done.value, check.position_m):
                return 'rival', None
            self.counts.verified += 1
            return '', check

    def _skip_reason(self, pipeline, t_s: float, yaw_rad: float,
                     temperature_c: float | None) -> str:
        """Why this frame gets the full search without a local fix tried (``''``: try)."""
        tracker, last = pipeline.tracker, self._last
        if tracker is None or self.period_s == 0:
            return 'off'
        if last is None or not tracker.initialised:
            return 'no_track'
        if tracker.rival_share > self.rival_share:
            return 'rivalled'
        if tracker.coasting_s > 0:
            return 'coasting'
        if self._check is None and t_s - last.full_t_s >= self.period_s - 1e-9:
            return 'period'
        if not 0 < t_s - last.t_s <= self.max_gap_s:
            return 'gap'
        if abs(np.angle(np.exp(1j * (yaw_rad - last.yaw_rad)))) > self.heading_jump_rad:
            return 'heading_jump'
        if pipeline.localizer is not last.localizer or (
                (temperature_c is None) != (last.temperature_c is None)
                or (temperature_c is not None
                    and abs(temperature_c - last.temperature_c) > TEMPERATURE_STEP_C)):
            return 'changed'
        return ''

    def _refusal(self, found, gate: float, origin_m: np.ndarray,
                 covariance_m2: np.ndarray) -> str:
        """Why the local fix ``found`` cannot stand in for a full search (``''``: it can),
        against the prediction ``origin_m (3,)``, ``covariance_m2 (3, 3)`` and the tracker's
        chi-square ``gate``."""
        if found.doubtful and not found.unexplained:
            return 'doubtful'
        if found.peaks_ahead:
            return 'peaks_ahead'
        estimate = found.estimate
        innovation = estimate.position_m - origin_m
        spread = covariance_m2 + estimate.local_covariance_m2
        if float(innovation @ np.linalg.solve(spread, innovation)) > gate:
            return 'outside_gate'
        last = self._last.score
        if last > 0 and estimate.score < self.evidence_share * last:
            return 'evidence'
        return ''
