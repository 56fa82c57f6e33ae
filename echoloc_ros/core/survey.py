"""Where the furniture stands now, from frames at known poses: bring a stale room file up to date.

A localizer with a room file whose furniture has since moved errs more often (docs/results.md):
it models echoes of faces that are not there and hides walls that are heard. Tracking keeps
the robot placed through such frames; this module uses those tracked poses to put the boxes
back where they stand. At a known pose the room's own echoes (walls, floor, ceiling) are fitted
and removed (:func:`explain_at`); what is left holds the furniture's echoes.
Each box is then placed by a search over its plan shift from the file's position:

- every face of the box adds, in every frame where the array stands in front of it, the log
  likelihood ratio of its echo at the face's shifted position against no echo
  (:func:`plane_scores`): an echo heard where the face should give one scores
  above 0, one missing scores below;
- near a face's edge only the receivers whose reflection points lie on the face hear it, and
  the face counts with that fraction of the array;
- the box with the clearest placement is placed first, its echoes are subtracted from every
  frame (:func:`remove_plane_echo`) and the others kept off it in plan, and
  the rest are scored again: summed across the array, a face 0.4 m away along y sounds much
  like one 0.4 m away along x.

The face's distance along its normal comes from the echo's delay (millimetres); its position
along the face from which poses, and receivers, hear it. A box no frame heard (``min_score``)
stays where the file has it, and the result says so.
"""
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from echoloc_ros.core.array_geometry import ArrayGeometry, yaw_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor, working_channels
from echoloc_ros.core.paths import resolve_config
from echoloc_ros.core.physics.config import PLANE_MIN_DISTANCE_M
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.matched_filter import Frame, sample
from echoloc_ros.core.room import Box, Room

# A box whose best placement scores less than this was not heard: a face heard at 10 dB in
# one frame scores about 7.6 (s - log(1 + s)).
MIN_SCORE = 10.0
# A box stays where the room file has it unless a placement elsewhere scores at least this
# much more (a log likelihood ratio; noise alone gains a few).
MIN_GAIN = 10.0
# No box stands within this of where the array has been (m): the array's radius and more.
FREE_SPACE_MARGIN_M = 0.1
# Each placement is refined on a grid this fine (m).
FINE_STEP_M = 0.001
_NO_TABLE = np.zeros((0, 0), dtype=np.complex64)


@dataclass
class Explained:
    """A frame with the room's own echoes at a known pose removed (:func:`explain_at`).

    :ivar localizer: the localizer that fitted it (the array without dead receivers, if any).
    :ivar emitter_m: the emitter's position ``(3,)``, m.
    :ivar residual: baseband less the fitted room paths ``(n_channels, n_bins)``.
    """

    localizer: PhysicsLocalizer
    frame: Frame
    emitter_m: np.ndarray
    residual: np.ndarray


def explain_at(localizer: PhysicsLocalizer, features: EchoFeatures, position_m: np.ndarray,
               yaw_rad: float, temperature_c: float | None = None) -> Explained:
    """The frame with the room's own echoes at a known pose fitted and removed: what is left
    holds the echoes the room model lacks (furniture that moved, objects not in the file).
    The speed of sound is fitted; amplitudes are free, so a path that furniture hides takes an
    amplitude near zero.

    :param localizer: the localizer of the room's bare shell (or any room model).

    :param position_m: array-frame origin ``(3,)``, m (from tracking, or ground truth).
    :param yaw_rad: heading of the array, rad.
    :param temperature_c: assumed air temperature; ``None`` takes the room file's.
    :raises ValueError: a non-finite pose, a channel count that is not the array's.
    """
    position = np.asarray(position_m, dtype=float)
    if position.shape != (3,) or not np.all(np.isfinite(position)) \
            or not np.isfinite(yaw_rad):
        raise ValueError(f'pose must be a finite position (3,) and yaw, got position '
                         f'{np.asarray(position_m).tolist()} and yaw {yaw_rad}')
    if features.n_channels != localizer.array.n_receivers:
        raise ValueError(f'features have {features.n_channels} channels, array '
                         f'{localizer.array.name!r} has {localizer.array.n_receivers}')
    working = working_channels(features)
    if not working.all():
        return explain_at(localizer.for_receivers(working), features.channels(working),
                          position_m, yaw_rad, temperature_c)
    temperature = localizer.room.temperature_c if temperature_c is None else temperature_c
    fr = localizer.frame(features, yaw_rad, temperature)
    emitter = position + yaw_matrix(yaw_rad) @ localizer.array.emitter_m
    fit = localizer.fit_room_at(fr, emitter)
    residual = features.baseband - localizer.synthesise(fr, fit.tau[0], fit.amp[0],
                                                        fit.coef[0])
    fr.c0 *= float(fit.theta[0, 3])
    # The amplitude scale of the predicted echoes, as propose fits it: the fitted amplitudes
    # weighted by each path's predicted strength.
    strength = np.sum(fit.amp[0] ** 2 * fr.weights, axis=-1)
    fr.gain = float(np.sum(np.abs(fit.coef[0]) * strength) / max(np.sum(strength), 1e-300))
    return Explained(localizer=localizer, frame=fr, emitter_m=emitter,
                     residual=residual.astype(np.complex64))


def plane_scores(explained: Explained, axis: int, coords_m: np.ndarray,
                 facing: int, absorption: float,
                 coverage: np.ndarray | None = None) -> np.ndarray:
    """Log likelihood ratio, in the residual of :func:`explain_at`, of the first-order echo
    of a plane normal to ``axis`` at each of ``coords_m``, facing ``facing`` (+1: its normal
    points along +axis), against no echo there.

    Each receiver's output at the delay of the emitter's image in the plane is summed
    across the array (power ``P`` in noise units, as in the wall scans). With ``s`` the
    power the plane's echo should have there (its distance, ``absorption``, the
    transducers' directivity and the frame's fitted amplitude scale), and a complex
    Gaussian amplitude of that variance, the ratio is ``P s / (1 + s) - log(1 + s)``: a
    plane where an echo is heard scores about ``s - log(1 + s)``, and one where the echo
    it should give is missing scores ``s / (1 + s) - log(1 + s)``, below 0. Planes the
    array is not in front of score 0.

    :param coords_m: plane positions along ``axis`` ``(G,)``, m.
    :param absorption: energy absorption coefficient of the plane's surface.
    :param coverage: fractions of the receivers whose reflection point lies on the face
        ``(C,)`` (a face's edge between them): the echo sums over that fraction, its power
        over its square. ``None``: all of them.
    :return: ``(C, G)`` (``(1, G)`` for ``None``).
    """
    loc = explained.localizer
    fr = explained.frame
    tau, amp, heard = _plane_echo(explained, axis, np.asarray(coords_m, dtype=float),
                                  facing, absorption)
    z = sample(fr, tau, explained.residual, smooth=False)
    weights = (fr.weights / np.sum(fr.weights)).astype(np.float32)
    power = np.abs(z @ weights) ** 2 * np.sum(fr.weights)
    peak = fr.gain * abs(loc.response.zero[0]) * amp                        # (G, n)
    full = np.sum(peak * fr.weights, axis=-1) ** 2 / np.sum(fr.weights)
    fractions = np.ones(1) if coverage is None else np.asarray(coverage, dtype=float)
    expected = fractions[:, None] ** 2 * full[None]                            # (C, G)
    ratio = power * expected / (1.0 + expected) - np.log1p(expected)
    return np.where(heard, ratio, 0.0)


def _plane_echo(explained: Explained, axis: int, coords_m: np.ndarray,
                facing: int, absorption: float) -> tuple[np.ndarray, ...]:
    """The first-order echo of a plane normal to ``axis`` at each of ``coords_m`` ``(G,)``:
    delays and predicted amplitudes ``(G, n)`` (without the frame's amplitude scale), and
    whether the array hears it ``(G,)``: in front of the plane and inside the window."""
    loc = explained.localizer
    fr, emitter = explained.frame, explained.emitter_m
    images = np.repeat(emitter[None], coords_m.size, axis=0)
    images[:, axis] = 2.0 * coords_m - emitter[axis]
    delta = (emitter + fr.offsets)[None] - images[:, None]                     # (G, n, 3)
    dist = np.linalg.norm(delta, axis=-1)
    tau = dist / fr.c0
    heard = (((emitter[axis] - coords_m) * facing > PLANE_MIN_DISTANCE_M)
             & np.all((tau > fr.t_min) & (tau < fr.t_max), axis=-1))
    return tau, loc.amplitude(fr, delta, dist, np.sqrt(1.0 - absorption)), heard


def remove_plane_echo(explained: Explained, axis: int, coord_m: float,
                      facing: int, absorption: float) -> None:
    """Fit the first-order echo of one plane (as :func:`plane_scores` places it) to the
    residual of :func:`explain_at` and subtract it there, so that no other plane at the
    same distance can take it. Nothing happens where the array is not in front of it."""
    loc = explained.localizer
    fr = explained.frame
    tau, amp, heard = _plane_echo(explained, axis, np.array([float(coord_m)]), facing,
                                  absorption)
    if not heard[0]:
        return
    z = sample(fr, tau, explained.residual)
    coef = np.sum(amp * fr.weights * z) / (
        loc.response.zero[0] * np.sum(amp ** 2 * fr.weights))
    explained.residual = (explained.residual - loc.synthesise(
        fr, tau, amp, np.array([coef]))).astype(np.complex64)


@dataclass
class BoxFix:
    """Where the survey put one box.

    :ivar name: the box's name in the room file.
    :ivar shift_m: plan shift from the room file's position ``(2,)``, m (0 when not seen).
    :ivar score: the placement's score (log likelihood ratio of its faces' echoes, summed over
        faces and frames).
    :ivar score_at_file: the score of the room file's position.
    :ivar n_frames: frames in which some face of the box, so placed, faces the array.
    :ivar seen: whether the score reached the threshold (else the box stays where it was).
    """

    name: str
    shift_m: np.ndarray
    score: float
    score_at_file: float
    n_frames: int
    seen: bool


@dataclass
class SurveyResult:
    """:ivar room: the room with each seen box moved. :ivar boxes: one :class:`BoxFix` per box,
    in the room file's order. :ivar n_frames: frames used."""

    room: Room
    boxes: list[BoxFix]
    n_frames: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {'n_frames': self.n_frames,
                'boxes': {b.name: {'shift_m': [round(float(v), 4) for v in b.shift_m],
                                   'seen': b.seen, 'score': round(b.score, 1),
                                   'score_at_file': round(b.score_at_file, 1),
                                   'n_frames': b.n_frames} for b in self.boxes}}


class FurnitureSurvey:
    """Places a room's furniture boxes from frames at known poses.

    :param room: the room as its file has it (the boxes' sizes and heights are kept; only their
        plan positions are searched).
    :param max_shift_m: how far each box may have moved on each axis, m.
    :param step_m: step of the search, m.
    :param min_score: a box placed with less stays where the file has it.
    :param min_gain: so does a box whose placement scores less than this above the file's
        position.
    """

    def __init__(self, room: Room, array: ArrayGeometry, chirp: Chirp, fs_hz: float = 250e3,
                 processor: EchoProcessor | None = None, max_shift_m: float = 1.0,
                 step_m: float = 0.01, min_score: float = MIN_SCORE,
                 min_gain: float = MIN_GAIN) -> None:
        if not room.furniture:
            raise ValueError(f'room {room.name!r} has no furniture to survey')
        if not (np.isfinite(max_shift_m) and max_shift_m > 0):
            raise ValueError(f'max_shift_m must be > 0, got {max_shift_m}')
        if not (np.isfinite(step_m) and 0 < step_m <= max_shift_m):
            raise ValueError(f'step_m must be in (0, max_shift_m={max_shift_m}], got {step_m}')
        self.room = room
        self.min_score = float(min_score)
        self.min_gain = float(min_gain)
        # The shell alone: the residual keeps every furniture echo, wherever the boxes stand.
        self.shell = PhysicsLocalizer(replace(room, furniture=[]), array, chirp, fs_hz,
                                      processor=processor)
        n = int(round(max_shift_m / step_m))
        self.shifts_m = np.arange(-n, n + 1) * step_m
        # The refinement around each placement: a step each way, in millimetres.
        n_fine = max(int(round(step_m / FINE_STEP_M)), 1)
        self.fine_m = np.arange(-n_fine, n_fine + 1) * FINE_STEP_M

    def run(self, frames: Iterable[tuple[EchoFeatures, np.ndarray, float]],
            temperature_c: float | None = None) -> SurveyResult:
        """Survey from ``(features, position_m (3,), yaw_rad)`` triples (array-frame origin and
        heading, e.g. tracked poses).

        :raises ValueError: no frames, or a frame with a bad pose or channel count (named by
            its index).
        """
        explained = []
        for i, (features, position, yaw) in enumerate(frames):
            try:
                explained.append(self.explain(features, position, yaw, temperature_c))
            except ValueError as exc:
                raise ValueError(f'survey frame {i}: {exc}') from None
        return self.place(explained)

    def explain(self, features: EchoFeatures, position_m: np.ndarray, yaw_rad: float,
                temperature_c: float | None = None) -> Explained:
        """One frame at a known pose with the room's own echoes removed, ready for
        :meth:`place` (:func:`explain_at` of the bare shell). Placing reads
        only the residual: the frame's upsampled baseband is dropped (300 KB a frame)."""
        explained = explain_at(self.shell, features, position_m, yaw_rad, temperature_c)
        explained.frame = replace(explained.frame, table=_NO_TABLE)
        return explained

    def place(self, explained: list[Explained]) -> SurveyResult:
        """Place the boxes from frames made by :meth:`explain` (left as they are: each
        placement works on its own copies of their residuals).

        :raises ValueError: no frames.
        """
        if not explained:
            raise ValueError('survey needs at least one frame at a known pose; got none')
        explained = [replace(ex) for ex in explained]
        furniture = self.room.furniture
        # The clearest box first: its echoes are then removed from every frame and the others
        # kept off it in plan, so that no other box can take an echo it explains (a face at
        # the same distance in another direction sums to nearly the same across the array).
        fixes: list = [None] * len(furniture)
        placed: list[Box] = []
        left = list(range(len(furniture)))
        coarse = (self.shifts_m, self.shifts_m)
        while left:
            scored = {i: self._scores(furniture[i], explained, coarse) for i in left}
            i = max(left, key=lambda j: np.max(scored[j][0]))
            left.remove(i)
            total, seen = scored[i]
            zero = self.shifts_m.size // 2
            at_file = float(total[zero, zero])
            allowed = self._allowed(furniture[i], placed, explained, coarse)
            total = np.where(allowed, total, -np.inf)
            fixes[i] = self._fix(furniture[i], total, seen, at_file, coarse)
            if fixes[i].seen:
                # The grid's step is coarser than the echoes' delays place a face along its
                # normal (millimetres): search again on a 1 mm grid around the placement.
                fine = tuple(shift + self.fine_m for shift in fixes[i].shift_m)
                total, seen = self._scores(furniture[i], explained, fine)
                total = np.where(self._allowed(furniture[i], placed, explained, fine), total,
                                 -np.inf)
                refined = self._fix(furniture[i], total, seen, at_file, fine)
                if refined.seen:
                    fixes[i] = refined
                if fixes[i].score - at_file < self.min_gain and allowed[zero, zero]:
                    # The echoes do not tell a move from the file's position: keep it there
                    # (else every placement's noise, a few millimetres, would move the box).
                    fixes[i] = replace(fixes[i], shift_m=np.zeros(2), score=at_file)
            if fixes[i].seen:
                placed.append(furniture[i].shifted(fixes[i].shift_m))
                for ex in explained:
                    self._remove_echoes(placed[-1], ex)
        boxes = [box.shifted(fix.shift_m) for box, fix in zip(furniture, fixes)]
        return SurveyResult(replace(self.room, furniture=boxes), fixes, len(explained))

    @staticmethod
    def _remove_echoes(box: Box, ex: Explained) -> None:
        """Subtract from one frame's residual the echo of every face of ``box`` that faces
        the array there (the faces :meth:`_scores` counts)."""
        emitter = ex.emitter_m
        over = [box.min_m[a] <= emitter[a] <= box.max_m[a] for a in range(3)]
        for axis in range(2):
            if over[1 - axis] and over[2]:
                for side, facing in ((box.min_m, -1), (box.max_m, 1)):
                    remove_plane_echo(ex, axis, side[axis], facing, box.absorption)
        if over[0] and over[1]:
            for height, facing in ((box.max_m[2], 1), (box.min_m[2], -1)):
                if height > 0.0:
                    remove_plane_echo(ex, 2, height, facing, box.absorption)

    def _allowed(self, box: Box, placed: list[Box], explained: list[Explained],
                 grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Shifts of ``box`` on ``grid`` (x shifts ``(Gx,)``, y shifts ``(Gy,)``) that keep
        it in plan off every box in ``placed`` and, grown by :data:`FREE_SPACE_MARGIN_M`, off
        every pose the array was surveyed at ``(Gx, Gy)``: no box stands where the robot has
        driven (a face the array is inside, or an echo the model lacks, can otherwise outscore
        the truth)."""
        clear = np.ones((grid[0].size, grid[1].size), dtype=bool)
        for other in placed:
            apart = [(box.max_m[a] + grid[a] <= other.min_m[a])
                     | (box.min_m[a] + grid[a] >= other.max_m[a]) for a in range(2)]
            clear &= apart[0][:, None] | apart[1][None, :]
        grow = FREE_SPACE_MARGIN_M
        points = np.array([ex.emitter_m for ex in explained])
        points = points[(points[:, 2] >= box.min_m[2] - grow)
                        & (points[:, 2] <= box.max_m[2] + grow)]
        for point in points:
            inside = [(box.min_m[a] + grid[a] - grow <= point[a])
                      & (point[a] <= box.max_m[a] + grid[a] + grow) for a in range(2)]
            clear &= ~(inside[0][:, None] & inside[1][None, :])
        return clear

    def _scores(self, box: Box, explained: list[Explained],
                grid: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Score of every plan shift of ``box`` on ``grid`` (x shifts ``(Gx,)``, y shifts
        ``(Gy,)``) and how many frames see it so placed ``(Gx, Gy)`` each."""
        total = np.zeros((grid[0].size, grid[1].size))
        seen = np.zeros(total.shape, dtype=np.int64)
        for ex in explained:
            # Each receiver hears a face where its reflection point (about halfway between
            # the emitter and it, along the face) lies on the face: near an edge only some do.
            hits = ex.emitter_m + 0.5 * ex.frame.offsets                           # (n, 3)
            n = hits.shape[0]
            levels = np.arange(n + 1) / n
            over = [(hits[:, a, None] >= box.min_m[a] + grid[a])
                    & (hits[:, a, None] <= box.max_m[a] + grid[a]) for a in range(2)]  # (n, G)
            level = (hits[:, 2] >= box.min_m[2]) & (hits[:, 2] <= box.max_m[2])
            frame_seen = np.zeros(total.shape, dtype=bool)
            for axis in range(2):
                count = np.sum(over[1 - axis] & level[:, None], axis=0)             # (G,)
                if not np.any(count):
                    continue
                for side, facing in ((box.min_m, -1), (box.max_m, 1)):
                    ratio = plane_scores(ex, axis, side[axis] + grid[axis], facing,
                                         box.absorption, levels)[count]          # (G_t, G_n)
                    if axis == 0:
                        ratio = ratio.T
                    total += ratio
                    frame_seen |= ratio != 0.0
            count = np.einsum('it,iu->tu', over[0].astype(np.int64), over[1].astype(np.int64))
            if np.any(count):
                for height, facing in ((box.max_m[2], 1), (box.min_m[2], -1)):
                    if height <= 0.0:
                        continue
                    ratio = plane_scores(ex, 2, np.array([height]), facing, box.absorption,
                                         levels)[:, 0][count]
                    total += ratio
                    frame_seen |= ratio != 0.0
            seen += frame_seen
        return np.where(self._inside(box, grid), total, -np.inf), seen

    def _fix(self, box: Box, total: np.ndarray, seen: np.ndarray, at_file: float,
             grid: tuple[np.ndarray, np.ndarray]) -> BoxFix:
        best = np.unravel_index(int(np.argmax(total)), total.shape)
        centre = self._plateau_centre(total, best)
        fix_score = float(total[centre])
        ok = fix_score >= self.min_score
        shift = np.array([grid[0][centre[0]], grid[1][centre[1]]])
        return BoxFix(box.name, shift if ok else np.zeros(2),
                      fix_score if np.isfinite(fix_score) else 0.0, at_file,
                      int(seen[centre]), bool(ok))

    def _inside(self, box: Box, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Shifts on ``grid`` that keep the box within the plan's bounding box ``(Gx, Gy)``."""
        lo, hi = self.room.vertices_m.min(axis=0), self.room.vertices_m.max(axis=0)
        ok = [(box.min_m[a] + grid[a] >= lo[a] - 1e-9)
              & (box.max_m[a] + grid[a] <= hi[a] + 1e-9) for a in range(2)]
        return ok[0][:, None] & ok[1][None, :]

    @staticmethod
    def _plateau_centre(total: np.ndarray, best: tuple[int, int]) -> tuple[int, int]:
        """Along a face the score is flat between the poses that bound it: on each axis, the
        middle of the run of maximal values through ``best``, rather than its first cell. A
        run that reaches the end of the grid is bounded on that side by nothing heard (only
        part of the face has been passed): then the cell of the run nearest the grid's middle
        (the room file's position on the search grid, the placement being refined on the
        fine one), the least move the echoes ask for."""
        value = total[best]
        centre = list(best)
        for axis in range(2):
            line = total[:, best[1]] if axis == 0 else total[best[0], :]
            lo = hi = best[axis]
            while lo > 0 and line[lo - 1] >= value:
                lo -= 1
            while hi < line.size - 1 and line[hi + 1] >= value:
                hi += 1
            if lo == 0 or hi == line.size - 1:
                centre[axis] = int(np.clip(line.size // 2, lo, hi))
            else:
                centre[axis] = (lo + hi) // 2
        return centre[0], centre[1]


class LiveSurvey:
    """Keeps a room's furniture up to date while the robot drives: the online form of
    ``echoloc survey``.

    Sure tracked frames are kept (at most one every ``interval_s``; a frame is sure when its
    position's standard deviation is below ``max_pose_std_m`` on every axis and its heading's
    below ``max_yaw_std_deg``), each with the room's own echoes removed once
    (:meth:`FurnitureSurvey.explain`). Every ``period_s`` the boxes are placed again from the
    last ``max_frames`` kept (:meth:`FurnitureSurvey.place`); a placement that moves a box
    gives a new room for the localizer.

    :param survey: the survey, for the room as its file has it.
    :param min_frames: no placement from fewer frames.
    :param tolerance_m: a box moved less than this is not a change.
    """

    def __init__(self, survey: FurnitureSurvey, period_s: float = 5.0, interval_s: float = 0.2,
                 max_frames: int = 250, min_frames: int = 25, max_pose_std_m: float = 0.02,
                 max_yaw_std_deg: float = 0.5, tolerance_m: float = 0.01) -> None:
        for name, value in (('period_s', period_s), ('max_pose_std_m', max_pose_std_m),
                            ('max_yaw_std_deg', max_yaw_std_deg)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be > 0, got {value}')
        if not (np.isfinite(interval_s) and interval_s >= 0):
            raise ValueError(f'interval_s must be >= 0, got {interval_s}')
        if not 1 <= min_frames <= max_frames:
            raise ValueError(f'need 1 <= min_frames <= max_frames, got {min_frames} and '
                             f'{max_frames}')
        self.survey = survey
        self.period_s, self.interval_s = float(period_s), float(interval_s)
        self.max_frames, self.min_frames = int(max_frames), int(min_frames)
        self.max_pose_var_m2 = float(max_pose_std_m) ** 2
        self.max_yaw_var_rad2 = float(np.deg2rad(max_yaw_std_deg)) ** 2
        self.tolerance_m = float(tolerance_m)
        self.room = survey.room
        self.result: SurveyResult | None = None
        self.placements = 0
        self._frames: list[Explained] = []
        self._kept_s: float | None = None
        self._placed_s: float | None = None

    @property
    def n_frames(self) -> int:
        """Frames held for the next placement."""
        return len(self._frames)

    def reset(self) -> None:
        """Forget the frames held (the room found so far is kept)."""
        self._frames.clear()
        self._kept_s = self._placed_s = None

    def offer(self, t_s: float, features: EchoFeatures, position_m: np.ndarray,
              covariance_m2: np.ndarray, yaw_rad: float, yaw_variance_rad2: float,
              temperature_c: float | None = None) -> bool:
        """A tracked frame: kept if it is sure and ``interval_s`` after the last one kept.

        :return: whether it was kept.
        :raises ValueError: a pose :meth:`FurnitureSurvey.explain` refuses.
        """
        if self._kept_s is not None and self._kept_s <= t_s < self._kept_s + self.interval_s:
            return False
        if not (np.all(np.diag(np.asarray(covariance_m2)) <= self.max_pose_var_m2)
                and yaw_variance_rad2 <= self.max_yaw_var_rad2):
            return False
        self._frames.append(self.survey.explain(features, position_m, yaw_rad, temperature_c))
        del self._frames[:-self.max_frames]
        self._kept_s = t_s
        return True

    def due(self, t_s: float) -> bool:
        """Whether a placement is due at ``t_s``: enough frames, and ``period_s`` since the
        last (or since the first frame kept)."""
        if len(self._frames) < self.min_frames:
            return False
        return self._placed_s is None or not self._placed_s <= t_s < self._placed_s + \
            self.period_s

    def frames(self) -> list[Explained]:
        """The frames held, as a list of their own (for :meth:`place` in another thread)."""
        return list(self._frames)

    def place(self, t_s: float, frames: list[Explained] | None = None) -> Room | None:
        """Place the boxes from the frames held (or from ``frames``, as :meth:`frames` gave
        them).

        :return: the room with the furniture where it now stands when that differs from the
            last room found (by more than ``tolerance_m`` for some box), else ``None``.
        """
        self._placed_s = t_s
        self.result = self.survey.place(self._frames if frames is None else frames)
        self.placements += 1
        moved = any(np.max(np.abs(new.min_m - old.min_m)) > self.tolerance_m
                    for new, old in zip(self.result.room.furniture, self.room.furniture))
        if not moved:
            return None
        self.room = self.result.room
        return self.room


def room_yaml(source: str | Path, result: SurveyResult) -> str:
    """The room file ``source`` (a room name or YAML path) as YAML text, with each box the
    survey saw moved to where it stands; every other field, and each box's material, is kept
    as written."""
    data = yaml.safe_load(resolve_config('rooms', source).read_text(encoding='utf-8'))
    fixes = {b.name: b for b in result.boxes}
    for i, item in enumerate(data.get('furniture') or []):
        name = str(item.get('name', f'box_{i}'))
        fix = fixes.get(name)
        if fix is None or not fix.seen:
            continue
        for key in ('min_m', 'max_m'):
            corner = [float(v) for v in item[key]]
            corner[0] = round(corner[0] + float(fix.shift_m[0]), 4)
            corner[1] = round(corner[1] + float(fix.shift_m[1]), 4)
            item[key] = corner
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def write_room_file(source: str | Path, result: SurveyResult, out: str | Path) -> Path:
    """Write :func:`room_yaml` of ``source`` and ``result`` to ``out``.

    :return: the path written.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(room_yaml(source, result))
    return out
