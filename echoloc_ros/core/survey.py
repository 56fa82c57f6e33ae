"""Where the furniture stands now, from frames at known poses: bring a stale room file up to date.

A localizer with a room file whose furniture has since moved errs more often (docs/model.md):
it models echoes of faces that are not there and hides walls that are heard. Tracking keeps
the robot placed through such frames; this module uses those tracked poses to put the boxes
back where they stand. At a known pose the room's own echoes (walls, floor, ceiling) are fitted
and removed (:meth:`PhysicsLocalizer.explain_at`); what is left holds the furniture's echoes.
Each box is then placed by a search over its plan shift from the file's position:

- every face of the box adds, in every frame where the array stands in front of it, the log
  likelihood ratio of its echo at the face's shifted position against no echo
  (:meth:`PhysicsLocalizer.plane_scores`): an echo heard where the face should give one scores
  above 0, one missing scores below;
- near a face's edge only the receivers whose reflection points lie on the face hear it, and
  the face counts with that fraction of the array;
- the box with the clearest placement is placed first, its echoes are subtracted from every
  frame (:meth:`PhysicsLocalizer.remove_plane_echo`) and the others kept off it in plan, and
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

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor
from echoloc_ros.core.paths import resolve_config
from echoloc_ros.core.physics_localizer import Explained, PhysicsLocalizer
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
        :meth:`place` (:meth:`PhysicsLocalizer.explain_at` of the bare shell). Placing reads
        only the residual: the frame's upsampled baseband is dropped (300 KB a frame)."""
        explained = self.shell.explain_at(features, position_m, yaw_rad, temperature_c)
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
                    ex.localizer.remove_plane_echo(ex, axis, side[axis], facing, box.absorption)
        if over[0] and over[1]:
            for height, facing in ((box.max_m[2], 1), (box.min_m[2], -1)):
                if height > 0.0:
                    ex.localizer.remove_plane_echo(ex, 2, height, facing, box.absorption)

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
            loc = ex.localizer
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
                    ratio = loc.plane_scores(ex, axis, side[axis] + grid[axis], facing,
                                             box.absorption, levels)[count]      # (G_t, G_n)
                    if axis == 0:
                        ratio = ratio.T
                    total += ratio
                    frame_seen |= ratio != 0.0
            count = np.einsum('it,iu->tu', over[0].astype(np.int64), over[1].astype(np.int64))
            if np.any(count):
                for height, facing in ((box.max_m[2], 1), (box.min_m[2], -1)):
                    if height <= 0.0:
                        continue
                    ratio = loc.plane_scores(ex, 2, np.array([height]), facing, box.absorption,
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
