"""Rivals of a fix along each horizontal axis: the full model's evidence scanned through it
(issue 19, no overconfident fix)."""

import functools

import numpy as np

from echoloc_ros.core.physics.axis_kernels import axis_shares, grouped_evidence, keep_heard
from echoloc_ros.core.physics.candidates import _peaks, _vertex
from echoloc_ros.core.physics.config import (AXIS_BASIN_M, AXIS_GATE_RATIO,
                                             AXIS_GATE_RIVAL_GAP, AXIS_GATE_SHARE, AXIS_STEP_M,
                                             CROSS_GATE_RATIO, CROSS_SCAN_GAP, CROSS_SCANS,
                                             N_AXIS_RIVALS, N_CROSS_PEAKS, N_CROSS_SCANS,
                                             N_PLAN_PEAKS, PLAN_LINE_M, PLAN_SCANS, PRIOR_SCALE,
                                             RESPONSE_HALF_S, YAW)
from echoloc_ros.core.physics.matched_filter import Frame

# Delays within this of a path's last sample are its own along a scan (moving the array along
# an axis a path does not follow changes them by rounding, 1e-18 s; a step of AXIS_STEP_M moves
# a moving one's by 1e-5 s or more). At 40 kHz it turns the carrier by 2.5e-10 rad.
SAME_DELAY_S = 1e-15


class AxisRivals:
    """The poses along x and along y through a fix that the echoes may not tell from it: a
    part of :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`.

    The candidates a frame's search proposes are the peaks of per-path coherent scans and
    their polished neighbours; where a wall is far, soft or hidden, its true distance may be
    among none of them, and the fix sits on another wall's echo along that axis alone,
    confident against every candidate (dev split, 10 dB: 5 of the 8 fixes outside their
    99.9 % ellipsoid, one axis off by 0.7-3.7 m with a sub-millimetre sigma). The full
    model's evidence along that axis through the fix, its height, speed and heading kept,
    peaks there too.

    The scans change a fix only where a pose along an axis scores within about 100 log
    units of it (:meth:`_scans_pay`); where nothing the fix knows allows one, they are not
    run (:attr:`axis_gate`).
    """

    #: Whether :meth:`_scans_pay` may leave out the scans (False: every fix is scanned).
    axis_gate = True
    #: Whether :meth:`_cross_peaks` scans through the axes' peaks.
    cross_scans = CROSS_SCANS
    #: Whether :meth:`_peaks_across` scans the plan's other strips (:meth:`_plan_peaks`).
    plan_scans = PLAN_SCANS
    #: The last scan: its frame, parameters ``(5,)`` and peaks (:meth:`_evidence_peaks`).
    _last_scan: tuple | None = None

    def _scans_pay(self, fr: Frame, theta: np.ndarray, score: float, rivals: list,
                   ratio: float, doubtful: bool) -> bool:
        """Whether the fix ``theta (5,)`` (evidence ``score``, its proposed ``rivals``
        ``(score, theta, index)`` best first, its residual ``ratio`` and ``doubtful`` as
        :meth:`finish` judged them) is scanned (:meth:`_evidence_peaks`): always without
        :attr:`axis_gate`; otherwise where it is doubtful, leaves more than
        :data:`AXIS_GATE_RATIO` times the noise unexplained (a fix on another wall's echo
        leaves its own wall's unexplained), has a proposed rival within
        :data:`AXIS_GATE_RIVAL_GAP` of it, or where the echoes that move along x or along y
        give it less than :data:`AXIS_GATE_SHARE` (:meth:`_axis_shares`: a pose along that
        axis where they explain nothing scores about that much below it, so a rival that
        explains a part of them may come within reach).
        """
        if not self.axis_gate or doubtful or ratio > AXIS_GATE_RATIO:
            return True
        if rivals and score - rivals[0][0] < AXIS_GATE_RIVAL_GAP:
            return True
        return bool(np.min(self._axis_shares(fr, theta)) < AXIS_GATE_SHARE)

    def _axis_rivals(self, fr: Frame, theta: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """:meth:`_evidence_peaks` as ``(gap, offset)``: the peak's offset from ``theta``
        ``(3,)``, m, along its axis."""
        return [(gap, np.append(top[:2] - theta[:2], 0.0)) for gap, top in
                self._evidence_peaks(fr, theta)]

    def _evidence_peaks(self, fr: Frame, theta: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """The best :data:`N_AXIS_RIVALS` peaks per horizontal axis of the evidence
        (:meth:`_score`) on a grid of :data:`AXIS_STEP_M` through ``theta (5,)``, the array
        fitting in the plan, at least :data:`AXIS_BASIN_M` from it.

        :return: ``(gap, top)`` of each: the evidence at ``theta`` less the peak's (both
            by :meth:`_score`, so that they compare), and the peak's parameters ``(5,)``
            (``theta`` moved along one axis).
        """
        # The wider look's fix is often the first fix again, finished anew: its scans are
        # the first's (the same frame and parameters give the same peaks).
        last = self._last_scan
        if last is not None and last[0] is fr and np.array_equal(last[1], theta):
            return [(gap, top.copy()) for gap, top in last[2]]
        # A track's local fix scans near the peaks its last scans found (:class:`LocalScans`).
        peaks_found = (self._scanned_peaks(fr, theta) if fr.axis_scan is None
                       else fr.axis_scan(self, fr, theta))
        self._last_scan = (fr, theta.copy(), [(gap, top.copy()) for gap, top in peaks_found])
        return peaks_found

    def _scanned_peaks(self, fr: Frame, theta: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """:meth:`_evidence_peaks`, scanned."""
        reference = float(self._scan_score(fr, theta[None], self._valid_batch(fr, theta[None]))[0])
        return [peak for axis in range(2)
                for peak in self._axis_scan_peaks(fr, theta, axis, reference, N_AXIS_RIVALS)]

    def _axis_scan_peaks(self, fr: Frame, theta: np.ndarray, axis: int, reference: float,
                         n_peaks: int) -> list[tuple[float, np.ndarray]]:
        """The best ``n_peaks`` peaks of the evidence along ``axis`` through ``theta (5,)``, at
        least :data:`AXIS_BASIN_M` from it, as :meth:`_evidence_peaks` gives them, each
        ``(gap, top)`` with the gap from the evidence ``reference``."""
        # The grid as the wider look scans it (:meth:`WiderLook._evidence_along`).
        coords, thetas, score = self._evidence_along(fr, theta, axis, AXIS_STEP_M)
        if score is None:
            return []
        # The fix's own peak is among the grid's; its basin's is no rival.
        peaks = _peaks(score, coords, n_peaks + 1, AXIS_BASIN_M)
        peaks = peaks[np.abs(coords[peaks] - theta[axis]) >= AXIS_BASIN_M][:n_peaks]
        if not peaks.size:
            return []
        # Each peak scored again at its parabola's vertex: the grid is coarser than the
        # evidence's peaks are wide.
        tops = thetas[peaks].copy()
        tops[:, axis] = _vertex(score, coords, peaks)
        top_scores = self._scan_score(fr, tops, self._valid_batch(fr, tops))
        # The grid's own peak where the vertex leaves the plan or scores lower.
        lower = ~self._fits_in_plan(tops[:, :2]) | ~(top_scores > score[peaks])
        tops[lower], top_scores[lower] = thetas[peaks][lower], score[peaks][lower]
        return [(reference - float(s), t) for t, s in zip(tops, top_scores)]

    def _cross_pays(self, estimate) -> bool:
        """Whether the fix ``estimate`` (an :class:`~echoloc_ros.core.physics.results.Estimate`
        :meth:`finish` gave) is scanned across (:meth:`_cross_peaks`): where it leaves more
        than :data:`CROSS_GATE_RATIO` times the noise unexplained (a fix off along both axes
        leaves both walls' echoes unexplained) or the frame doubtful
        (:meth:`WiderLook._doubtful_fix`)."""
        return (self.cross_scans and (estimate.residual_ratio > CROSS_GATE_RATIO
                                      or self._doubtful_fix(estimate)))

    def _cross_peaks(self, fr: Frame, theta: np.ndarray, peaks: list
                     ) -> list[tuple[float, np.ndarray]]:
        """The peaks of the evidence along each horizontal axis through the best
        :data:`N_CROSS_SCANS` of the fix's ``peaks`` along the other (:meth:`_evidence_peaks`
        through ``theta (5,)``, those within :data:`CROSS_SCAN_GAP` of it), each scan's best
        :data:`N_CROSS_PEAKS`, as :meth:`_evidence_peaks` gives them (the gap from the
        evidence at ``theta``). :meth:`PhysicsLocalizer.settled` runs them where
        :meth:`_cross_pays`.

        A fix off along x and y at once is crossed by neither axis' scan through it; where the
        scan along y peaks at the true y, the scan along x through that peak crosses the truth
        (dev, 10 dB: fixes 0.3-4 m off in both, the truth refined 17-324 log units above
        them).
        """
        starts = self._cross_starts(theta, peaks)
        if not starts:
            return []
        reference = float(self._scan_score(fr, theta[None], self._valid_batch(fr, theta[None]))[0])
        return [peak for axis, _, top in starts
                for peak in self._axis_scan_peaks(fr, top, 1 - axis, reference, N_CROSS_PEAKS)]

    def _peaks_across(self, fr: Frame, theta: np.ndarray, estimate, peaks: list
                      ) -> list[tuple[float, np.ndarray]]:
        """Where :meth:`_cross_pays` for the fix ``estimate`` (parameters ``theta (5,)``, its
        axis ``peaks``): the peaks across through them (:meth:`_cross_peaks`) and over the
        plan's other strips (:meth:`_plan_peaks`, with :attr:`plan_scans`), as
        :meth:`_evidence_peaks` gives them; none elsewhere."""
        if not self._cross_pays(estimate):
            return []
        across = self._cross_peaks(fr, theta, peaks)
        return across + (self._plan_peaks(fr, theta) if self.plan_scans else [])

    def _plan_peaks(self, fr: Frame, theta: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """The peaks of the evidence along each horizontal axis through the middle of each
        strip of the plan across it that does not hold ``theta (5,)`` (:meth:`_plan_strips`),
        its height, speed and heading kept, and along the other axis through each such scan's
        best :data:`N_PLAN_PEAKS`, each scan's best :data:`N_CROSS_PEAKS`, as
        :meth:`_evidence_peaks` gives them (the gap from the evidence at ``theta``).

        A fix in the wrong wing of an L plan or in an alcove is crossed by no scan through it
        or through its axis peaks (dev, 10 dB: fixes 1-4 m off in both axes, the refined truth
        16-490 log units above them). Within a strip the walls across the axis are the same
        wherever the line runs, so a scan through its middle peaks at the true value along
        the axis, and the scan across through that peak at the truth.
        """
        reference = None
        found = []
        for axis in range(2):
            other = 1 - axis
            for value in self._plan_lines(axis, theta[other]):
                if reference is None:
                    reference = float(self._scan_score(fr, theta[None],
                                                       self._valid_batch(fr, theta[None]))[0])
                line = theta.copy()
                line[other] = value
                for _, top in self._axis_scan_peaks(fr, line, axis, reference, N_PLAN_PEAKS):
                    found += self._axis_scan_peaks(fr, top, other, reference, N_CROSS_PEAKS)
        return found

    def _plan_lines(self, axis: int, through: float) -> list[float]:
        """Where :meth:`_plan_peaks` scans along ``axis``: each strip across it
        (:meth:`_plan_strips`) cut into bands of at most :data:`PLAN_LINE_M`, each band's
        middle, but the band's that holds ``through`` (the fix's own coordinate, m: the scan
        through the fix crosses it)."""
        lines = []
        for s0, s1 in self._plan_strips[axis]:
            n = max(int(np.ceil((s1 - s0) / PLAN_LINE_M)), 1)
            edges = np.linspace(s0, s1, n + 1)
            lines += [0.5 * (a + b) for a, b in zip(edges[:-1], edges[1:])
                      if not a <= through <= b]
        return lines

    @functools.cached_property
    def _plan_strips(self) -> list[np.ndarray]:
        """The strips of the plan across each horizontal axis (:meth:`Room.axis_spans`, the
        plan cut at every vertex): their bounds along the other axis ``(n, 2)``, m, each once
        (the room is a localizer's for its life: computed once)."""
        return [np.unique(self.room.axis_spans(axis)[:, 2:], axis=0) for axis in range(2)]

    @staticmethod
    def _cross_starts(theta: np.ndarray, peaks: list) -> list[tuple[int, float, np.ndarray]]:
        """The peaks :meth:`_cross_peaks` scans across: of ``peaks`` ``(gap, top)`` through
        ``theta (5,)``, the :data:`N_CROSS_SCANS` best along each horizontal axis within
        :data:`CROSS_SCAN_GAP`, each ``(axis, gap, top)``."""
        starts = []
        for gap, top in sorted(peaks, key=lambda p: p[0]):
            moved = np.abs(top[:3] - theta[:3]) > 1e-9
            if gap < CROSS_SCAN_GAP and not moved[2] and moved[:2].sum() == 1:
                axis = int(np.argmax(moved))
                if sum(a == axis for a, _, _ in starts) < N_CROSS_SCANS:
                    starts.append((axis, gap, top))
        return starts

    def _scan_paths(self, fr: Frame, thetas: np.ndarray, valid: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_paths` of every path as :meth:`_score` models them (``tau``, ``amp``
        ``(K, P, n)``, the paths in an order of their own: the evidence does not depend on it)
        for poses ``thetas (K, 5)`` that differ in x or in y alone: the paths whose image does
        not move with that axis are traced at the first pose only (their delays and amplitudes
        are the same at every pose), and which paths are kept is decided as
        :func:`~echoloc_ros.core.physics.kernels.path_terms` decides it."""
        n_paths = len(self._sequences)
        changes = thetas.max(axis=0) > thetas.min(axis=0)
        if thetas.shape[0] < 2 or np.count_nonzero(changes) != 1 or not changes[:2].any():
            return self._paths(fr, thetas, np.arange(n_paths), valid=valid)[:2]
        moves = self._moving(int(np.argmax(changes)))
        moving = np.flatnonzero(moves)
        still = np.flatnonzero(~moves)
        order = np.concatenate([moving, still])
        every = np.ones(n_paths, dtype=bool)
        moved = self._paths(fr, thetas, moving, keep=every[moving])
        first = self._paths(fr, thetas[:1], still, keep=every[still])
        shape = (thetas.shape[0], still.size, fr.offsets.shape[0])
        tau = np.concatenate([moved[0], np.broadcast_to(first[0], shape)], axis=1)
        amp = np.concatenate([moved[1], np.broadcast_to(first[1], shape)], axis=1)
        keep_heard(tau, amp, np.ascontiguousarray(valid[:, order]),
                   self._vertical_only[order], fr.t_min, fr.t_max, self.min_relative_amplitude)
        return tau, amp

    def _moving(self, axis: int) -> np.ndarray:
        """Which paths' images move with the array along ``axis`` ``(P,)`` bool (kept with the
        maps they were found from: a frame's scans and shares ask two or more times)."""
        cached = getattr(self, '_moving_cache', None)
        if cached is None or cached[0] is not self._img_m:
            cached = (self._img_m, np.abs(np.eye(3)[None] - self._img_m).sum(axis=1) > 1e-9)
            self._moving_cache = cached
        return cached[1][:, axis]

    def _axis_shares(self, fr: Frame, theta: np.ndarray) -> np.ndarray:
        """The evidence the echoes that move along x, and along y, give the pose ``theta
        (5,)``: its evidence (:meth:`_scan_score`) less that of the same pose without them
        ``(2,)``."""
        # One compiled call (:func:`axis_shares`): the paths as :meth:`_scan_paths` has them
        # at one pose, and :meth:`_grouped` of the pose with and without each axis' paths.
        thetas = np.ascontiguousarray(theta[None], dtype=float)
        features = fr.features
        return axis_shares(
            thetas, np.ascontiguousarray(self._valid_batch(fr, thetas)),
            self._geometry(fr, slice(None)), self._moving(0), self._moving(1),
            (fr.weights, fr.table, features.start_s,
             fr.table.shape[1] // features.baseband.shape[1] / features.bin_width_s,
             features.carrier_hz, fr.t_min, fr.t_max, self.response.table,
             self.response.step_s, RESPONSE_HALF_S, self.response.zero),
            PRIOR_SCALE * fr.gain ** 2, SAME_DELAY_S)

    def _scan_score(self, fr: Frame, thetas: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """:meth:`_score` of ``thetas (K, 5)`` (``valid (K, P)``), each pose's Gram matrix
        factored by the groups of paths that overlap there
        (:func:`~echoloc_ros.core.physics.axis_kernels.grouped_evidence`): the same evidence
        to rounding, at a fraction of the cost over a scan's many poses."""
        tau, amp = self._scan_paths(fr, thetas, valid)
        return self._grouped(fr, tau, amp) + fr.yaw_prior(thetas[:, YAW])

    def _grouped(self, fr: Frame, tau: np.ndarray, amp: np.ndarray) -> np.ndarray:
        """:func:`~echoloc_ros.core.physics.axis_kernels.grouped_evidence` of the path sets
        ``tau, amp (K, P, n)`` of the frame ``fr`` (without the heading prior)."""
        features = fr.features
        return grouped_evidence(
            np.ascontiguousarray(tau), np.ascontiguousarray(amp), fr.weights, fr.table,
            features.start_s,
            fr.table.shape[1] // features.baseband.shape[1] / features.bin_width_s,
            features.carrier_hz, fr.t_min, fr.t_max, self.response.table,
            self.response.step_s, RESPONSE_HALF_S, self.response.zero,
            PRIOR_SCALE * fr.gain ** 2, SAME_DELAY_S)
