"""Candidate search of the physics localizer: shoebox and general-plan strategies."""

import functools

import numpy as np

from echoloc_ros.core.physics.scan_kernels import family_scores, separated, surface_scores
from echoloc_ros.core.physics.matched_filter import Frame, sample
from echoloc_ros.core.physics.results import Fit
from echoloc_ros.core.physics.config import (EXPLAIN_GAP, HEADING_BOTH_STARTS,
                                             HEADING_START_GAP, HEIGHT_GAP, N_PART_PAIRS,
                                             N_PART_PEAKS, N_PLAN_SCANS, N_SECOND_LOOK,
                                             PART_SCAN_ALWAYS, UNEXPLAINED_RATIO,
                                             UNSEPARATED_GAP,
                                             N_THETA, SPEED_DOUBT, YAW, YAW_RESCAN_RAD)


def _peaks(score: np.ndarray, grid: np.ndarray, k: int, separation: float) -> np.ndarray:
    """Indices of the k highest local maxima at least ``separation`` apart."""
    interior = np.flatnonzero((score[1:-1] >= score[:-2]) & (score[1:-1] >= score[2:])) + 1
    order = interior[np.argsort(score[interior])[::-1]]
    return separated(order, np.asarray(grid, dtype=float), k, separation)


def _vertex(score: np.ndarray, grid: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Grid positions of ``peaks`` moved to the vertex of the parabola through each peak and
    its neighbours (uniform grid)."""
    i = np.clip(peaks, 1, grid.size - 2)
    y0, y1, y2 = score[i - 1], score[i], score[i + 1]
    denom = y0 - 2 * y1 + y2
    shift = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
    return grid[i] + np.clip(shift, -0.5, 0.5) * (grid[1] - grid[0])


def distinct(points: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``points`` (in order) not within ``tolerance`` of an earlier kept
    row, per column."""
    # Which pairs differ by more than the tolerance somewhere, all at once (symmetric).
    near = ~np.any(np.abs(points[:, None] - points[None]) > tolerance, axis=-1)
    # Each row kept takes the later rows near it out: one pass per row kept, not per pair.
    taken = np.zeros(len(points), dtype=bool)
    kept: list[int] = []
    for i in range(len(points)):
        if not taken[i]:
            kept.append(i)
            taken |= near[i]
    return np.array(kept, dtype=int)


class CandidateSearch:
    """Candidate poses of a frame from 1-D coherent scores: heights and the speed of sound
    from the floor and ceiling, then walls per axis in a shoebox (with a rescan of the weak
    axis) or over the plan in other rooms: a part of
    :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`."""

    def _surface_scores(self, fr: Frame, normals: np.ndarray, distance_m: np.ndarray,
                        table: np.ndarray, psi: float = 0.0) -> np.ndarray:
        """Coherent evidence of each surface's first-order echo vs emitter-surface distance.

        For the surface with inward normal n at distance d from the emitter, receiver i hears
        the echo after ``|delta_i + 2 d n| / c0``. The score is the log of the receivers'
        coherent power over its noise expectation, so that the evidence of opposite surfaces
        adds up: a candidate needs both echoes rather than one that is merely strong.

        :param normals: inward unit normals ``(S, 3)``.
        :param distance_m: distance grid ``(G,)``.
        :param psi: the heading's offset from the given heading, rad.
        :return: scores ``(S, G)``.
        """
        offsets = fr.offsets if psi == 0.0 else fr.rotated_offsets(np.array([psi]))[0]
        features = fr.features
        return surface_scores(
            normals @ offsets.T, np.sum(offsets ** 2, axis=1), distance_m, fr.c0, table,
            features.start_s, table.shape[1] // features.baseband.shape[1]
            / features.bin_width_s, features.carrier_hz, fr.t_min, fr.t_max,
            np.mean(fr.weights))

    def _path_scores(self, fr: Frame, thetas: np.ndarray, paths: np.ndarray,
                     table: np.ndarray) -> np.ndarray:
        """Sum over ``paths`` of each path's log coherent power over noise, at ``thetas``.

        Each path is weighted across receivers by its predicted amplitudes (a matched filter
        over the array), and paths add as evidence through the log, so a whole family of
        echoes must line up rather than one strong echo.

        :return: ``(K,)``.
        """
        index = np.flatnonzero(paths)
        tau, amp, _ = self._paths(fr, thetas, index, np.ones(index.size, dtype=bool))
        weighted = amp * fr.weights
        heard = (tau > fr.t_min) & (tau < fr.t_max)
        z = sample(fr, tau, table, smooth=False, inside=heard)
        inside = np.all(heard, axis=-1)
        power = np.abs(np.sum(weighted * z, axis=-1)) ** 2 / np.maximum(
            np.sum(weighted * amp, axis=-1), 1e-300)
        return np.sum(np.where(inside, np.log1p(power), 0.0), axis=-1)

    def _family_scan(self, fr: Frame, axis: int, theta: np.ndarray, paths: np.ndarray,
                     table: np.ndarray, coords: np.ndarray | None = None,
                     psi: np.ndarray | None = None,
                     traced: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Score along one axis of a shoebox, the other parameters fixed at ``theta``: each of
        ``paths`` adds the log of its receivers' coherent power over the noise, so a whole
        family of echoes must line up rather than one strong echo.

        :param coords: values of the coordinate ``(G,)``; ``None``: the whole room on a grid.
        :param psi: heading offsets ``(J,)``; ``None``: ``theta``'s alone.
        :param traced: score each path only where it exists (:meth:`_valid_images`: known
            furniture hides a wall, a furniture face reflects only in front of it and within
            its extent), with the other coordinates ``theta``'s.
        :return: ``(coordinates (G,), scores (G,))``, or ``(G, J)`` when ``psi`` is given.
        """
        if coords is None:
            extent = (self.room.width_m, self.room.length_m)[axis]
            coords = np.arange(0.03, extent - 0.03, 3 * self.grid_step_m)
        exists = np.zeros((0, 0), dtype=bool)
        if traced:
            emitters = np.repeat(theta[None, :3], coords.size, axis=0)
            emitters[:, axis] = coords
            exists = np.ascontiguousarray(self._valid_images(
                emitters, emitters + fr.offsets.mean(axis=0), paths)[:, paths])
        psis = np.array([theta[YAW]]) if psi is None else np.asarray(psi, dtype=float)
        base = theta[:3].copy()
        base[axis] = 0.0
        features = fr.features
        score = family_scores(
            base, axis, fr.rotated_offsets(psis), self._img_m[paths], self._img_t[paths],
            np.asarray(coords, dtype=float), fr.c0 * theta[3],
            (fr.weights / np.sum(fr.weights)).astype(np.float32), np.sum(fr.weights), exists,
            table, features.start_s,
            (table.shape[1] // features.baseband.shape[1]) / features.bin_width_s,
            features.carrier_hz, fr.t_min, fr.t_max)
        return coords, score[:, 0] if psi is None else score

    def _z_candidates(self, floor: np.ndarray, ceiling: np.ndarray, grid: np.ndarray,
                      k: int) -> list[tuple[float, float, float, float]]:
        """(emitter z, kappa = c / c0, score, top of the box below or 0: over the floor) from
        floor and ceiling scores vs apparent distance, best first."""
        height = self.room.height_m
        f_pk = _peaks(floor, grid, 2 * k, 0.02)
        c_pk = _peaks(ceiling, grid, 2 * k, 0.02)
        cands = []
        for i in f_pk:
            for j in c_pk:
                kappa = height / (grid[i] + grid[j])
                if abs(kappa - 1.0) <= self.speed_tolerance:
                    cands.append((kappa * grid[i], kappa))
        cands += [(grid[i], 1.0) for i in f_pk] + [(height - grid[j], 1.0) for j in c_pk]
        # (z, kappa, what the first echo from below comes off): the floor, or over a known box
        # whose top is below the array, its top face (the floor's echo hidden by the box).
        cands = [(z, kappa, 0.0) for z, kappa in cands]
        cands += [(top + grid[i], 1.0, top) for top in self._box_tops for i in f_pk]
        z, kappa, below = np.array(cands, dtype=float).reshape(-1, 3).T
        inside = (self.z_range_m[0] <= z) & (z <= self.z_range_m[1])
        z, kappa, below = z[inside], kappa[inside], below[inside]
        s = (np.interp((z - below) / kappa, grid, floor, left=0, right=0)
             + np.interp((height - z) / kappa, grid, ceiling, left=0, right=0))
        scored = list(zip(z.tolist(), kappa.tolist(), s.tolist(), below.tolist()))
        scored.sort(key=lambda c: -c[2])
        chosen: list[tuple[float, float, float, float]] = []
        for cand in scored:
            if all(abs(cand[0] - o[0]) > 0.01 or abs(cand[1] - o[1]) > 0.003 for o in chosen):
                chosen.append(cand)
            if len(chosen) == k:
                break
        return chosen

    def _scan_axis(self, fr: Frame, theta: np.ndarray, axis: int, table: np.ndarray,
                   k: int) -> np.ndarray:
        """Candidates along one axis with the others fixed, scored on every path that moves.

        Every image whose delay depends on the coordinate (first-order walls, their double
        bounces with floor and ceiling, corners) adds the log of its coherent power over the
        noise: a wall's whole family of echoes must line up, which a stray strong echo does not.
        """
        lo = self.room.vertices_m.min(axis=0)[axis] + 0.03
        hi = self.room.vertices_m.max(axis=0)[axis] - 0.03
        coords = np.arange(lo, hi, 2 * self.grid_step_m)
        thetas = np.repeat(theta[None], coords.size, axis=0)
        thetas[:, axis] = coords
        score = self._path_scores(fr, thetas, self._moves[axis], table)
        if not self._shoebox:
            score = np.where(self._fits_in_plan(thetas[:, :2]), score, -np.inf)
        return coords[_peaks(score, coords, k, 0.02)]

    def _fits_in_plan(self, xy: np.ndarray) -> np.ndarray:
        """Whether the array fits in the plan with its emitter at ``xy (..., 2)``: inside,
        and no wall nearer than its farthest receiver.

        Beside a wall the model's paths leave the room (the wall's own echo falls inside the
        direct arrival) and the evidence there can exceed the true pose's: in an L plan,
        candidates a few millimetres from the wing's inner wall outscored the truth.
        """
        return self.room.contains_xy(xy) & (self.room.wall_distance_m(xy) >= self._reach_m)

    @functools.cached_property
    def _reach_m(self) -> float:
        """Distance in plan from the emitter to the array's farthest receiver, m (the array
        is a localizer's for its life: computed once)."""
        return float(np.max(np.linalg.norm(
            (self.array.receivers_m - self.array.emitter_m)[:, :2], axis=1)))

    def _plan_candidates(self, wall_scores: list[np.ndarray], grid: np.ndarray, kappa: float,
                         k: int) -> np.ndarray:
        """Emitter (x, y) candidates in a general floor plan: every wall plane scored at once."""
        lo = self.room.vertices_m.min(axis=0)
        hi = self.room.vertices_m.max(axis=0)
        step = 0.02
        xs = np.arange(lo[0] + 0.03, hi[0] - 0.03, step)
        ys = np.arange(lo[1] + 0.03, hi[1] - 0.03, step)
        xy = np.stack(np.meshgrid(xs, ys, indexing='ij'), axis=-1).reshape(-1, 2)
        xy = xy[self._fits_in_plan(xy)]
        total = np.zeros(xy.shape[0])
        for w, score in enumerate(wall_scores):
            s = self._surfaces[w]
            dist = xy @ s.normal[:2] - s.offset
            foot = np.column_stack([xy - dist[:, None] * s.normal[:2], np.zeros(len(xy))])
            seen = (dist > 0) & self._plane_contains(w, foot)
            total += np.where(seen, np.interp(dist / kappa, grid, score, left=0, right=0), 0.0)
        chosen: list[int] = []
        for i in np.argsort(total)[::-1]:
            if all(np.hypot(*(xy[i] - xy[j])) >= 0.05 for j in chosen):
                chosen.append(int(i))
                if len(chosen) == k:
                    break
        return xy[chosen]

    def _shoebox_candidates(self, fr: Frame, theta: np.ndarray,
                            table: np.ndarray) -> np.ndarray:
        """(x, y, psi) candidates in a shoebox.

        Per axis, the peaks of the score of the paths that move with that axis alone (its two
        walls and their floor and ceiling double bounces); pairs ranked by those scores plus the
        corner echoes. The coordinate between two far walls has weak echoes, and the strong
        axis' echoes leak into its score: so from the best values of the stronger axis, that
        axis' paths are fitted and removed and the weaker axis is scanned again, corners
        included, and so are the faces of known furniture that face along it, each where it
        reflects (in front of the face, within its extent): a box that hides a wall has a face
        whose echo places the array as the wall's would. The rescan keeps ``n_rescan`` peaks.
        With known furniture, the parts its boxes cut the room into are scanned where the
        polished candidates leave the frame doubtful (:meth:`_part_look`; in every frame with
        :data:`PART_SCAN_ALWAYS`).

        When the heading is estimated, the scans run at the given heading (a degree of error
        weakens the peaks but seldom moves them; beyond ``YAW_RESCAN_RAD`` they run again at
        the heading found), twice as many peaks are kept, and each is
        scored again over the heading offsets ``fr.yaw_grid``: the direction of a wall's echoes
        across the array measures the heading. The offset where the best peaks of both axes
        together score highest is the frame's; the peaks are ranked, and the pairs made, at
        that offset (the weak axis' peaks alone would each pick an offset from noise).

        :param theta: ``(5,)`` with the fitted z and kappa.
        :return: ``(n, 3)``.
        """
        k = self.n_candidates
        values, profiles, frame_psi = self._axis_peaks(fr, theta, table)
        per_axis = []
        family = []
        for value, profile in zip(values, profiles):
            order = np.argsort(profile[:, frame_psi])[::-1]
            per_axis.append(value[order][:k])
            family.append(profile[order, frame_psi][:max(k, 2)])
        psi = fr.yaw_grid[frame_psi]
        xs, ys = per_axis
        pairs = np.stack(np.meshgrid(xs, ys, indexing='ij'), axis=-1).reshape(-1, 2)
        rank = (family[0][:len(xs), None] + family[1][None, :len(ys)]).ravel()
        thetas = np.repeat(theta[None], len(pairs), axis=0)
        thetas[:, :2] = pairs
        thetas[:, YAW] = psi
        rank = rank + self._path_scores(fr, thetas, self._corner, table)
        chosen = [np.column_stack([pairs[np.argsort(rank)[::-1][:self.n_pairs]],
                                   np.full(min(self.n_pairs, len(pairs)), psi)])]
        strong = int(np.argmax([f[0] if f.size else -np.inf for f in family]))
        weak = 1 - strong
        clear = family[weak].size > 1 and family[weak][0] - family[weak][1] > EXPLAIN_GAP
        if clear and not self._faces:
            # The weak axis has a clear winner already (with furniture, a clear winner may be
            # a box face taken for a wall: the rescan scores the faces where they are).
            return np.vstack(chosen)
        for value in per_axis[strong][:self.n_explain]:
            chosen.append(self._rescan_weak(fr, theta, table, strong, value, psi))
        if self._faces and PART_SCAN_ALWAYS:
            # Known boxes cut the room into parts whose walls they hide: each part scanned
            # with its own walls and faces (:meth:`_part_candidates`).
            xy = self._part_candidates(fr, float(theta[2]), float(theta[3]), table,
                                       float(theta[YAW]))
            chosen.append(np.column_stack([xy, np.full(len(xy), psi)]))
        return np.vstack(chosen)

    def _axis_peaks(self, fr: Frame, theta: np.ndarray, table: np.ndarray
                    ) -> tuple[list[np.ndarray], list[np.ndarray], int]:
        """Per axis, the peaks of the score of the paths that move with that axis alone and
        their scores over the heading offsets, and the offset where the best peaks of both
        axes together score highest (:meth:`_shoebox_candidates`).

        Where the heading step moved the scans' start (``theta``'s heading offset is not 0),
        the axes are scanned from the given heading too, and the step's start is kept only if
        its best peaks of both axes, with the heading's prior at their offset, score more than
        :data:`HEADING_START_GAP` above the given heading's: the walls' echoes alone can
        mistake the heading by a lobe of the array's pattern, the whole families seldom.

        :return: peak values per axis, their profiles ``(k, len(fr.yaw_grid))`` per axis, and
            the index of the frame's heading offset in ``fr.yaw_grid``.
        """
        starts = [0.0, float(theta[YAW])] if theta[YAW] != 0.0 else [0.0]
        found = []
        for start in starts:
            scan = theta.copy()
            scan[YAW] = start
            found.append(self._axis_peaks_from(fr, scan, table))
        best = 1 if len(found) > 1 and found[1][3] > found[0][3] + HEADING_START_GAP else 0
        return found[best][:3]

    def _axis_peaks_from(self, fr: Frame, scan: np.ndarray, table: np.ndarray
                         ) -> tuple[list[np.ndarray], list[np.ndarray], int, float]:
        """:meth:`_axis_peaks` from the heading offset ``scan[YAW]``, and the score of both
        axes' best peaks at the frame's offset with the heading's prior there."""
        k = self.n_candidates
        scan = scan.copy()
        for _ in range(2):
            values = []
            profiles = []
            for axis in range(2):
                coords, score = self._family_scan(fr, axis, scan, self._family[axis], table)
                peaks = _peaks(score, coords, max(2 * k if fr.yaw_free else k, 2), 0.02)
                values.append(_vertex(score, coords, peaks))
                if fr.yaw_free:
                    profiles.append(self._family_scan(fr, axis, scan, self._family[axis], table,
                                                      values[-1], fr.yaw_grid)[1])
                else:
                    profiles.append(score[peaks][:, None])
            total = sum(np.max(p, axis=0) for p in profiles)
            frame_psi = int(np.argmax(total))
            if abs(fr.yaw_grid[frame_psi] - scan[YAW]) <= YAW_RESCAN_RAD:
                break
            # The strong walls gave a heading far from the one scanned at: the weak walls'
            # peaks may have decohered, so scan again at the heading found.
            scan[YAW] = fr.yaw_grid[frame_psi]
        return (values, profiles, frame_psi,
                float(total[frame_psi] + fr.yaw_prior(fr.yaw_grid[frame_psi])))

    def _rescan_weak(self, fr: Frame, theta: np.ndarray, table: np.ndarray, strong: int,
                     value: float, psi: float) -> np.ndarray:
        """(x, y, psi) candidates of the weak axis with the strong axis at ``value``: that
        axis' paths fitted and removed, the weak axis scanned again, corners and the known
        furniture's faces along it included, keeping ``n_rescan`` peaks (``(n, 3)``)."""
        weak = 1 - strong
        free = np.array([strong, YAW]) if fr.yaw_free else np.array([strong])
        start = theta.copy()
        start[strong] = value
        start[YAW] = psi
        known = (self._vertical_only | self._family[strong])[None]
        fit = self._newton(fr, start[None], known, free, 1, need_info=False)
        fitted, coef = fit.theta, fit.coef
        tau, amp = fit.tau, fit.amp
        explained = (fr.features.baseband
                     - self.synthesise(fr, tau[0], amp[0], coef[0])).astype(np.complex64)
        coords, score = self._family_scan(fr, weak, fitted[0],
                                          self._moves[weak] | self._face_moves[weak],
                                          explained, traced=bool(self._faces))
        found = _vertex(score, coords, _peaks(score, coords, self.n_rescan, 0.02))
        more = np.empty((found.size, 3))
        more[:, strong] = fitted[0, strong]
        more[:, weak] = found
        more[:, 2] = fitted[0, YAW]
        return more

    def _general_candidates(self, fr: Frame, z: float, kappa: float,
                            table: np.ndarray, psi: float = 0.0) -> np.ndarray:
        """(x, y, psi) candidates in a plan that is not a shoebox: every wall's score over
        distance combined over the plan (:meth:`_plan_candidates`), scans along each axis
        through the best, and each part of the plan scanned with its own walls
        (:meth:`_part_candidates`), at the heading offset ``psi`` (rad; the heading step's,
        :meth:`PhysicsLocalizer._scan_heading`); then each candidate's heading.

        Where the heading step moved the start (``psi`` not 0) and :data:`HEADING_BOTH_STARTS`
        holds, the plan is scanned from the given heading too, both starts' candidates kept.

        :return: ``(n, 3)``.
        """
        starts = [0.0, psi] if psi != 0.0 and HEADING_BOTH_STARTS else [psi]
        xy = np.vstack([self._general_from(fr, z, kappa, table, start) for start in starts])
        return np.column_stack([xy, self._candidate_headings(fr, xy, z, kappa, table)])

    def _general_from(self, fr: Frame, z: float, kappa: float, table: np.ndarray,
                      psi: float) -> np.ndarray:
        """:meth:`_general_candidates`' plan candidates ``(n, 2)`` from the heading offset
        ``psi``."""
        grid = np.arange(0.02, self.room.max_extent_m * (1 + self.speed_tolerance) + 0.05,
                         2 * self.grid_step_m)
        walls = self._surface_scores(fr, self._normals[:-2], grid, table, psi)
        xy = self._plan_candidates(walls, grid, kappa, 2 * self.n_candidates)
        found = [xy]
        # Through each of the best plan candidates: the plan's sum of first-order scores
        # often ranks a wrong pose first where furniture hides walls or a wing hides them.
        for start in xy[:N_PLAN_SCANS]:
            base = np.array([start[0], start[1], z, kappa, psi])
            scan_x = self._scan_axis(fr, base, 0, table, 3)
            scan_y = self._scan_axis(fr, base, 1, table, 3)
            found += [[[x, base[1]] for x in scan_x], [[base[0], y] for y in scan_y],
                      [[x, y] for x in scan_x for y in scan_y]]
        found.append(self._part_candidates(fr, z, kappa, table, psi))
        return np.vstack([np.reshape(f, (-1, 2)) for f in found])

    def _part_candidates(self, fr: Frame, z: float, kappa: float,
                         table: np.ndarray, psi: float = 0.0) -> np.ndarray:
        """Emitter (x, y) candidates ``(n, 2)`` part by part: along each axis, every span of
        the plan (:meth:`Room.axis_spans`, cut also at the known boxes' sides) is scanned as
        a shoebox's axis is, on the family of echoes of the walls and box faces across it
        (a wall at an angle, such as a chamfer's, is no part of either family), each where it
        exists from the span's middle; where an x span and a y span meet, the best
        :data:`N_PART_PAIRS` pairs of their peaks there are kept.

        The plan-wide candidates sum every wall's first-order score over the whole plan: a
        pose in a narrow wing, whose far wall a box hides, ranks below poses in the wide part
        and never becomes a candidate. Within its span its own walls (and the box's face)
        make a peak like any other.
        """
        paths = [self._family[axis] | self._face_moves[axis] for axis in range(2)]
        scans = []
        for axis in range(2):
            cuts = [[b.min_m[1 - axis], b.max_m[1 - axis]] for b in self.room.furniture]
            found = []
            for lo, hi, s0, s1 in self.room.axis_spans(axis, np.reshape(cuts, -1)):
                coords = np.arange(lo + self._reach_m, hi - self._reach_m, 3 * self.grid_step_m)
                if coords.size < 3:
                    continue
                theta = np.array([0.0, 0.0, z, kappa, psi])
                theta[1 - axis] = 0.5 * (s0 + s1)
                coords, score = self._family_scan(fr, axis, theta, paths[axis], table, coords,
                                                  traced=True)
                peaks = _peaks(score, coords, N_PART_PEAKS, 0.02)
                found.append((lo, hi, s0, s1, _vertex(score, coords, peaks), score[peaks]))
            scans.append(found)
        pairs = []
        for x_lo, x_hi, y_s0, y_s1, xs, x_score in scans[0]:
            for y_lo, y_hi, x_s0, x_s1, ys, y_score in scans[1]:
                in_x = (xs >= max(x_lo, x_s0)) & (xs <= min(x_hi, x_s1))
                in_y = (ys >= max(y_lo, y_s0)) & (ys <= min(y_hi, y_s1))
                if not (in_x.any() and in_y.any()):
                    continue
                rank = (x_score[in_x][:, None] + y_score[in_y][None]).ravel()
                xy = np.stack(np.meshgrid(xs[in_x], ys[in_y], indexing='ij'),
                              axis=-1).reshape(-1, 2)
                pairs.append(xy[np.argsort(rank)[::-1][:N_PART_PAIRS]])
        xy = np.vstack(pairs) if pairs else np.zeros((0, 2))
        return xy[self._fits_in_plan(xy)]

    def _second_look(self, fr: Frame, polished: np.ndarray, scores: np.ndarray,
                     free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The polished candidates ``(m, 5)`` and their evidence ``(m,)`` with, in a plan that
        is not a shoebox, the best one's rivals along each axis added, polished alike.

        The first scans run through plan candidates a centimetre or two off and at the heading
        given, so a wall of the other wing can outscore the right one; through the best
        polished candidate (the other coordinate, the height and the heading fitted) a scan
        is coherent. The peaks it finds 5 cm or more from every polished candidate are
        polished: one that explains the echoes better wins, one nearly as good is a rival
        the fix cannot be told from (:meth:`PhysicsLocalizer._unseparated`).
        """
        if self._shoebox:
            return polished, scores
        best = polished[int(np.argmax(scores))]
        found = []
        for axis in range(2):
            for value in self._scan_axis(fr, best, axis, fr.table, N_SECOND_LOOK):
                theta = best.copy()
                theta[axis] = value
                found.append(theta)
        found = np.reshape(found, (-1, best.size))
        apart = np.linalg.norm(found[:, None, :2] - polished[None, :, :2], axis=-1) >= 0.05
        found = found[np.all(apart, axis=1)]
        if not len(found):
            return polished, scores
        fit = self._newton(fr, found, self._valid_batch(fr, found), free,
                           self.polish_iterations, need_info=False)
        return np.vstack([polished, fit.theta]), np.concatenate([scores, fit.evidence])

    def _doubtful_polish(self, fr: Frame, fit: Fit) -> bool:
        """Whether the best of the polished candidates ``fit`` leaves its frame doubtful: its
        residual over the noise above :data:`UNEXPLAINED_RATIO`, or a polished candidate 5 cm
        or more away within :data:`UNSEPARATED_GAP` of its evidence (the tests
        :meth:`PhysicsLocalizer.finish` applies to the refined fix)."""
        best = int(np.argmax(fit.evidence))
        apart = np.linalg.norm(fit.theta[:, :3] - fit.theta[best, :3], axis=1) >= 0.05
        if np.any(fit.evidence[apart] > fit.evidence[best] - UNSEPARATED_GAP):
            return True
        # Polished in (x, y) and the heading only, a right candidate's height and speed still
        # leave residual echoes: the best is refined in all, as the fix will be.
        free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
        theta = fit.theta[best][None]
        full = self._newton(fr, theta, self._valid_batch(fr, theta), free, self.max_iterations,
                            need_info=False)
        ratio = self._residual_ratio(fr, full.tau[0], full.amp[0], full.coef[0])
        return ratio > UNEXPLAINED_RATIO

    def _part_look(self, fr: Frame, fit: Fit, tables: list[tuple[np.ndarray, np.ndarray]],
                   free: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
        """The polished candidates ``(m, 5)`` and their evidence ``(m,)`` with, in a shoebox
        with known furniture whose best polished candidate leaves the frame doubtful
        (:meth:`_doubtful_polish`), the parts' candidates (:meth:`_part_candidates`) added,
        at each height's ``(theta, table)`` of ``tables`` (the candidates' height, speed and
        heading, the baseband they were scanned on): those whose score is above ``floor``
        (the last polished candidate's), at most ``n_polish``, polished alike.

        The part scans cost twice the rest of the search (furnished_room, 20 dB); where the
        shoebox's own candidates explain the frame they add nothing. The floor keeps the
        choice the one of scanning the parts in every frame: a part candidate that scores
        below the shoebox's polished ones, polished, can outscore a right fix that left part
        of its echoes unexplained.
        """
        if not (self._shoebox and self._faces) or PART_SCAN_ALWAYS \
                or not self._doubtful_polish(fr, fit):
            return fit.theta, fit.evidence
        found = []
        for theta, table in tables:
            xy = self._part_candidates(fr, float(theta[2]), float(theta[3]), table)
            more = np.repeat(theta[None], len(xy), axis=0)
            more[:, :2] = xy
            found.append(more)
        found = np.vstack(found)
        valid = self._valid_batch(fr, found)
        scores = self._score(fr, found, valid)
        top = np.argsort(scores)[::-1][:self.n_polish]
        top = top[scores[top] > floor]
        if not len(top):
            return fit.theta, fit.evidence
        more = self._newton(fr, found[top], valid[top], free, self.polish_iterations,
                            need_info=False)
        return np.vstack([fit.theta, more.theta]), np.concatenate([fit.evidence, more.evidence])

    def _candidate_headings(self, fr: Frame, xy: np.ndarray, z: float, kappa: float,
                            table: np.ndarray) -> np.ndarray:
        """The heading offset of ``fr.yaw_grid`` at which each candidate ``xy (n, 2)``'s
        room paths score highest, with the heading's prior (0 when the heading is exact).

        A degree of heading error costs the evidence of a candidate at the right place most
        of its carrier coherence: left at the heading given, it loses the ranking to a wrong
        one, and a polishing step or two cannot bring the heading back.
        """
        if not fr.yaw_free or fr.yaw_grid.size < 2:
            return np.zeros(len(xy))
        psi = fr.yaw_grid
        thetas = np.empty((len(xy), psi.size, 5))
        thetas[..., :2] = xy[:, None]
        thetas[..., 2] = z
        thetas[..., 3] = kappa
        thetas[..., YAW] = psi
        score = self._path_scores(fr, thetas.reshape(-1, 5), self._moves[0] | self._moves[1],
                                  table).reshape(len(xy), psi.size)
        return psi[np.argmax(score + fr.yaw_prior(psi), axis=1)]

    def _height_candidates(self, fr: Frame) -> list[tuple[float, float, float, float]]:
        """Heights and speed ratios from the floor and ceiling echoes (:meth:`_z_candidates`)
        by falling score, the second height only when nearly as strong, at most
        one over a known box's top in addition.

        :raises ValueError: no floor or ceiling echo in the frame.
        """
        # Apparent distances of the floor and ceiling for heights in z_range_m.
        tol = self.speed_tolerance
        lo, hi = self.z_range_m
        height = self.room.height_m
        grid = np.arange(max(min(lo, height - hi) / (1 + tol) - 0.02, 0.01),
                         max(hi, height - lo) / (1 - tol) + 0.02, self.grid_step_m)
        vertical = self._surface_scores(fr, self._normals[-2:], grid, fr.table)
        k = self.n_candidates
        z_cands = self._z_candidates(vertical[0], vertical[1], grid, k)
        if not z_cands:
            raise ValueError('no floor or ceiling echo found in the frame')
        # A second height is tried only when its floor/ceiling evidence is nearly as strong.
        z_cands = [zc for zc in z_cands if zc[2] >= z_cands[0][2] - HEIGHT_GAP]
        # A height over a box's top comes in addition to those over the floor.
        z_cands = sorted([zc for zc in z_cands if not zc[3]][:self.n_heights]
                         + [zc for zc in z_cands if zc[3]][:1], key=lambda zc: -zc[2])
        return z_cands + self._assumed_speed_height(z_cands, vertical, grid)

    def _assumed_speed_height(self, chosen: list[tuple[float, float, float, float]],
                              vertical: np.ndarray, grid: np.ndarray
                              ) -> list[tuple[float, float, float, float]]:
        """The height over the floor whose floor and ceiling echoes score highest at the
        assumed speed of sound, when the best of ``chosen`` puts the speed more than
        :data:`SPEED_DOUBT` from it and no height chosen is within a centimetre of it
        (``[]`` or one ``(z, 1, score, 0)``).

        A weak ceiling (acoustic tiles) or a box's echo taken for it pairs with the floor
        into a speed a few per cent off and a height a few centimetres off, at which every
        wall's scan decoheres (dev split, 10 dB: a third of the gross fixes).

        :param vertical: floor and ceiling scores ``(2, G)`` over apparent distance ``grid``.
        """
        if not chosen or abs(chosen[0][1] - 1.0) <= SPEED_DOUBT:
            return []
        z = grid[(grid >= self.z_range_m[0]) & (grid <= self.z_range_m[1])]
        score = np.interp(z, grid, vertical[0]) + np.interp(self.room.height_m - z, grid,
                                                            vertical[1], left=0, right=0)
        best = int(np.argmax(score))
        if any(abs(z[best] - c[0]) <= 0.01 for c in chosen):
            return []
        return [(float(z[best]), 1.0, float(score[best]), 0.0)]
