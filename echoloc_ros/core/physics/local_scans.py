"""A track's local fixes scanned along x and y near the peaks its last full scan found (issue 20,
with issue 19's honesty kept).

A local fix (:func:`~echoloc_ros.core.physics.track_fix.local_fix`) is finished as a full
search's fix is, the gated axis scans included (:meth:`AxisRivals._evidence_peaks`): the full
model's evidence on a grid of :data:`AXIS_STEP_M` along each horizontal axis through the fix,
whose peaks the fix does not clearly beat are refined by a full search (a local fix showing one
is refused) and widen its covariance. Over the room that is a few hundred poses, about 5 ms a
scan. A peak along an axis is a pose whose echoes the room's walls explain almost as the fix's
do (a wall mistaken for another, a mirror of the fix); between frames 40 ms apart the array
moves centimetres, and each peak moves as far (a mirror the other way), so a track's next scan
finds its peaks where the last one did, moved by the track. :class:`LocalScans` scans the whole
axis once (the same peaks as the full scan), keeps where the peaks that came within
:data:`KEEP_GAP` of the fix lie, and on the next fixes scores only windows about them, as wide
as the track moved since plus :data:`WINDOW_MARGIN_M`. It scans the whole axis again where a
window's best pose lies on its edge (the peak moved out of it: the memory is wrong), after
:data:`REFRESH_SCANS` windowed scans, where the track moved :data:`REFRESH_MOVE_M` since the
whole scan, or on another room. Peaks further than :data:`KEEP_GAP` below the fix neither
refine it nor widen its sigma (a rival's mixture weight ``exp(-gap / AMBIGUOUS_GAP)``); a peak
that was that far below at the last whole scan and comes within reach before the next is what
the windows miss, and what the dev study (``docs/results.md``, r33-70) counted.
"""

from dataclasses import dataclass

import numpy as np

from echoloc_ros.core.physics.candidates import _peaks, _vertex
from echoloc_ros.core.physics.config import AXIS_BASIN_M, AXIS_STEP_M, N_AXIS_RIVALS

# Peaks of a scan within this of the fix's evidence, log units, are kept and scanned for on
# the next fixes. A peak widens a sigma by 1 % only within about 100 (AXIS_GATE_RIVAL_GAP's
# comment); at 10 dB a peak's gap moves by tens of log units from frame to frame. Chosen on
# dev (default room, 10 dB, 300 tracked frames, each windowed local fix finished again with
# the whole scans, scripts/local-scans-study.py): at 150 three fixes of 176 came out up to
# 6.7 % narrower in sigma, at 200 none by 0.3 %; no refusal changed at either.
KEEP_GAP = 200.0
# A window reaches this far beyond where its peak may have moved since the last scan, m.
WINDOW_MARGIN_M = 3 * AXIS_STEP_M
# The whole axes are scanned again after this many windowed scans ... (the whole scans are
# what sets a local fix's p95: at 8, 15 of 110 scans at 20 dB in the default room, where the
# windows hold nothing. Dev, default room at 10 dB, each windowed fix finished again with the
# whole scans: at 16 no refusal changed and no sigma came out 0.01 % narrower.)
REFRESH_SCANS = 16
# ... or where the fix moved this far (horizontally) since the last whole scan, m.
REFRESH_MOVE_M = 0.3


@dataclass
class _Memory:
    """What the last scans left: the localizer and fix ``(5,)`` of the last whole scan, the
    last scan's fix, its kept peaks' coordinates along x and along y, and how many windowed
    scans followed the whole one."""

    localizer: object
    whole_theta: np.ndarray
    theta: np.ndarray
    coords: tuple[np.ndarray, np.ndarray]
    windowed: int = 0


@dataclass
class LocalScanCounts:
    """How a :class:`LocalScans` scanned: ``whole`` axes scans (by why, ``reasons``),
    ``windowed`` scans and the poses they scored."""

    whole: int = 0
    windowed: int = 0
    poses: int = 0
    reasons: dict | None = None


class LocalScans:
    """The axis scans of one track's local fixes (module docstring): an
    ``axis_scan(physics, fr, theta)`` for :attr:`Frame.axis_scan` that gives what
    :meth:`AxisRivals._scanned_peaks` gives, ``(gap, top)`` per peak.

    On a doubtful fix (:meth:`WiderLook._doubtful_fix`) the windows can miss a peak ahead (dev
    laps, seed 7: 16 such fixes): its evidence is off and its peaks were not kept. A local fix
    whose echoes are unexplained is scanned whole (:meth:`whole`) where its caller judges it
    (:func:`~echoloc_ros.core.physics.track_fix.local_fix` with ``unexplained``), and not
    scanned at all where it is refused.

    :param windowed: scan windows about the kept peaks (False: every scan is a whole one,
        the full search's own).
    """

    def __init__(self, windowed: bool = True) -> None:
        self.windowed = bool(windowed)
        self.counts = LocalScanCounts(reasons={})
        self.reset()

    def reset(self) -> None:
        """Forget the peaks: the next scan is a whole one."""
        self._memory: _Memory | None = None

    def __call__(self, physics, fr, theta: np.ndarray) -> list[tuple[float, np.ndarray]]:
        if not self.windowed:
            return physics._scanned_peaks(fr, theta)
        reason = self._whole_reason(physics, theta)
        peaks = None if reason else self._scanned(physics, fr, theta, whole=False)
        return self._whole(physics, fr, theta, reason or 'edge') if peaks is None else peaks

    def whole(self, physics, fr, theta: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """The whole axes' scans through ``theta (5,)`` whatever the memory holds (an
        ``axis_scan`` as the instance is), their peaks kept for the next fixes: for a fix
        whose echoes are unexplained, whose peaks the windows about an explained fix's may
        miss (class docstring)."""
        if not self.windowed:
            return physics._scanned_peaks(fr, theta)
        return self._whole(physics, fr, theta, 'unexplained')

    def _whole(self, physics, fr, theta: np.ndarray, reason: str
               ) -> list[tuple[float, np.ndarray]]:
        """The whole scans through ``theta (5,)``, counted with ``reason``."""
        self.counts.whole += 1
        self.counts.reasons[reason] = self.counts.reasons.get(reason, 0) + 1
        return self._scanned(physics, fr, theta, whole=True)

    def _whole_reason(self, physics, theta: np.ndarray) -> str:
        """Why this fix ``theta (5,)`` gets the whole scan (``''``: the windows do)."""
        memory = self._memory
        if memory is None:
            return 'first'
        if memory.localizer is not physics:
            return 'changed'
        if memory.windowed >= REFRESH_SCANS:
            return 'scans'
        if np.linalg.norm(theta[:2] - memory.whole_theta[:2]) > REFRESH_MOVE_M:
            return 'moved'
        return ''

    def _scanned(self, physics, fr, theta: np.ndarray, whole: bool
                 ) -> list[tuple[float, np.ndarray]] | None:
        """The peaks through ``theta (5,)`` as :meth:`AxisRivals._scanned_peaks` gives them,
        scanned along the ``whole`` axes or in the windows about the kept peaks (``None``
        where a window's best pose is on its edge); the peaks within :data:`KEEP_GAP` are
        kept for the next scan."""
        memory = self._memory
        found: list[tuple[float, np.ndarray]] = []
        kept = []
        reference = None
        for axis in range(2):
            if whole:
                coords, thetas, score = physics._evidence_along(fr, theta, axis, AXIS_STEP_M)
            else:
                coords, thetas, score = self._windows(physics, fr, theta, axis, memory)
            if score is None:
                kept.append(np.zeros(0))
                continue
            if reference is None:
                reference = float(physics._scan_score(
                    fr, theta[None], physics._valid_batch(fr, theta[None]))[0])
            peaks = self._axis_peaks(physics, fr, theta, axis, (coords, thetas, score),
                                     reference, whole)
            if peaks is None:
                return None
            found += peaks[0]
            kept.append(peaks[1])
        if whole:
            self._memory = _Memory(physics, theta.copy(), theta.copy(), (kept[0], kept[1]))
        else:
            memory.theta, memory.coords = theta.copy(), (kept[0], kept[1])
            memory.windowed += 1
            self.counts.windowed += 1
        return found

    def _windows(self, physics, fr, theta: np.ndarray, axis: int, memory: _Memory
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The whole scan's grid (:meth:`WiderLook._evidence_along`) along ``axis`` through
        ``theta (5,)`` where it lies within a window of the kept peaks, or of the fix's own
        (so that a kept peak beside it does not rise out of its window toward it): the
        grid's values ``(k,)``, its parameters ``(k, 5)`` and their evidence ``(k,)``
        (``None`` where no peak is kept along the axis)."""
        centres = memory.coords[axis]
        if not centres.size:
            return centres, np.zeros((0, theta.size)), None
        reach = np.linalg.norm(theta[:2] - memory.theta[:2]) + WINDOW_MARGIN_M
        lo = physics.room.vertices_m.min(axis=0)[axis] + physics._reach_m
        hi = physics.room.vertices_m.max(axis=0)[axis] - physics._reach_m
        grid = np.arange(lo, hi, AXIS_STEP_M)
        near = np.abs(grid[:, None] - centres[None]) <= reach
        near |= (np.abs(grid - theta[axis]) <= AXIS_BASIN_M + WINDOW_MARGIN_M)[:, None]
        coords = grid[near.any(axis=1)]
        thetas = np.repeat(theta[None], coords.size, axis=0)
        thetas[:, axis] = coords
        inside = physics._fits_in_plan(thetas[:, :2])
        thetas, coords = thetas[inside], coords[inside]
        if coords.size < 3:
            # No window left in the plan: the whole scan says where the peaks went.
            return coords, thetas, np.full(coords.size, -np.inf)
        self.counts.poses += coords.size
        return coords, thetas, physics._scan_score(fr, thetas, physics._valid_batch(fr, thetas))

    @staticmethod
    def _axis_peaks(physics, fr, theta: np.ndarray, axis: int, scan: tuple,
                    reference: float, whole: bool
                    ) -> tuple[list[tuple[float, np.ndarray]], np.ndarray] | None:
        """The best :data:`N_AXIS_RIVALS` peaks of ``scan`` (``coords, thetas, score`` along
        ``axis`` through ``theta (5,)``, its runs of neighbouring grid values scanned apart)
        at least :data:`AXIS_BASIN_M` from the fix, as :meth:`AxisRivals._axis_scan_peaks`
        finds them on the ``whole`` axis (each scored again at its parabola's vertex, a
        ``(gap, top)`` from the evidence ``reference``), and the coordinates of every peak
        there within :data:`KEEP_GAP` of it. ``None`` where a run of a windowed scan has its
        best pose on its edge (its peak lies outside)."""
        coords, thetas, score = scan
        # The whole axis is one run, as the full search scans it (across the plan's holes).
        breaks = [] if whole else np.flatnonzero(np.diff(coords) > 1.5 * AXIS_STEP_M) + 1
        index, vertex = [], []
        for run in np.split(np.arange(coords.size), breaks):
            if not whole and (run.size < 3 or np.argmax(score[run]) in (0, run.size - 1)):
                return None
            peaks = _peaks(score[run], coords[run], run.size, AXIS_BASIN_M)
            index.append(run[peaks])
            vertex.append(_vertex(score[run], coords[run], peaks))
        index, vertex = np.concatenate(index), np.concatenate(vertex)
        # Best first; ties in :func:`_peaks`' own order (a flat stretch of evidence).
        order = np.argsort(-score[index], kind='stable')
        index, vertex = index[order], vertex[order]
        away = np.abs(coords[index] - theta[axis]) >= AXIS_BASIN_M
        kept = coords[index[away & (reference - score[index] < KEEP_GAP)]]
        # The whole scan's rule: its best N_AXIS_RIVALS + 1 peaks, the fix's own basin out.
        best = np.arange(index.size)[:N_AXIS_RIVALS + 1]
        best = best[away[best]][:N_AXIS_RIVALS]
        if not best.size:
            return [], kept
        tops = thetas[index[best]].copy()
        tops[:, axis] = vertex[best]
        top_scores = physics._scan_score(fr, tops, physics._valid_batch(fr, tops))
        # The grid's own peak where the vertex leaves the plan or scores lower.
        grid_scores = score[index[best]]
        lower = ~physics._fits_in_plan(tops[:, :2]) | ~(top_scores > grid_scores)
        tops[lower], top_scores[lower] = thetas[index[best]][lower], grid_scores[lower]
        return [(reference - float(s), t) for t, s in zip(tops, top_scores)], kept
