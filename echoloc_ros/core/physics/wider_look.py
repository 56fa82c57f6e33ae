"""A doubtful fix's second search: the axes scanned again through the refined fix and the best
candidates refined in all parameters before one is chosen (issue 19)."""

from dataclasses import replace

import numpy as np

from echoloc_ros.core.array_geometry import yaw_matrix
from echoloc_ros.core.physics.candidates import _peaks, _vertex
from echoloc_ros.core.physics.config import (AHEAD_PEAK_GAP, AXIS_BASIN_M, AXIS_STEP_M,
                                             CONFIDENT_GAP, HEADING_MOVED_SIGMAS,
                                             HEADING_RULED_OUT_SIGMAS, LOBE_MOVED_M,
                                             LOBE_STEP_M, LOBE_STEPS,
                                             NON_RECTANGULAR_LOBE_STEPS,
                                             N_AXIS_RIVALS, N_POLISHED_RIVALS,
                                             NON_RECTANGULAR_HEADING_MOVED_SIGMAS,
                                             NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS,
                                             NON_RECTANGULAR_POLISHED_RIVALS,
                                             N_THETA, N_WIDER_PEAKS, N_WIDER_REFINE,
                                             UNEXPLAINED_RATIO, WIDENED_VARIANCE_RATIO,
                                             WIDER_EVIDENCE_MARGIN, WIDER_NO_LOSS,
                                             WIDER_RATIO_GROWTH_MAX, WIDER_STEP_M, YAW)
from echoloc_ros.core.physics.heading_retry import retry_starts
from echoloc_ros.core.physics.results import Estimate, Proposal


class WiderLook:
    """What :meth:`PhysicsLocalizer.localize` does when the fix it first finished is doubtful:
    a part of :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`.

    The search ranks its candidates by evidence after one polishing step in (x, y) and the
    heading, at the height and speed of the scans. Two kinds of wrong fixes come of that
    (dev split, issue 19): no candidate near the truth, the weak axis' true value not among
    the first scan's peaks (shoeboxes at 10 dB: a far or soft wall; wings of a plan), and a
    candidate within millimetres of the truth that ranks below a wrong one until its height,
    speed and heading are refined too. A fix that leaves the frame doubtful (a rival within
    ``CONFIDENT_GAP`` or echoes it does not explain) is where both show; there, and only there,
    the axes are scanned again through the refined fix (its height, speed and heading now
    right, so the scans are coherent) and the best candidates are refined as the fix is
    before the evidence chooses.
    """

    def _doubtful_fix(self, estimate: Estimate) -> bool:
        """Whether a fix :meth:`finish` gave leaves its frame doubtful: a rival within
        ``CONFIDENT_GAP`` of its evidence (confidence below 1), a residual over the noise
        above :data:`UNEXPLAINED_RATIO`, or an axis so weakly held that its covariance was
        widened toward the room's spread along it (``Covariance._weak_axes_widened``: a
        variance :data:`WIDENED_VARIANCE_RATIO` times the fix's own or more)."""
        if estimate.confidence < 1.0 or estimate.residual_ratio > UNEXPLAINED_RATIO:
            return True
        local = estimate.local_covariance_m2
        return local is not None and bool(np.any(
            np.diag(estimate.covariance_m2) > WIDENED_VARIANCE_RATIO * np.diag(local)))

    @staticmethod
    def _heading_moved(proposal: Proposal, estimate: Estimate) -> bool:
        """Whether the fix ``estimate`` of ``proposal`` set its heading
        :data:`HEADING_MOVED_SIGMAS` or more of the given heading's standard deviations from
        it: the wall scans ran at the heading given, where a wall 2 deg off decoheres
        (:mod:`~echoloc_ros.core.physics.heading_retry`), so the place was found at a heading
        the fix itself rules out, and the wider look (its scans started again off the heading
        given) searches once more (dev seed 10 room 23 frame 9, an alcove, at 20 and 10 dB: the
        heading given 2.68 deg off, the fix 179 cm off with confidence 1 and a 1 mm sigma, its
        heading refined to the true one; the wider look's fix is right)."""
        sigmas = (HEADING_MOVED_SIGMAS if proposal.localizer._shoebox
                  else NON_RECTANGULAR_HEADING_MOVED_SIGMAS)
        return WiderLook._heading_beyond(proposal, estimate, sigmas)

    @staticmethod
    def _heading_beyond(proposal: Proposal, estimate: Estimate, sigmas: float | None) -> bool:
        """Whether the fix ``estimate`` of ``proposal`` set its heading ``sigmas`` or more of
        the given heading's standard deviations from it (never where ``sigmas`` is None or the
        heading was given exact)."""
        fr = proposal.frame
        if sigmas is None or not fr.yaw_free:
            return False
        moved = abs(estimate.yaw_rad - proposal.yaw_given_rad) * np.sqrt(fr.yaw_info)
        return bool(moved >= sigmas)

    @staticmethod
    def _heading_doubted(proposal: Proposal, estimate: Estimate) -> Estimate:
        """The fix ``estimate`` :meth:`settled` chose for ``proposal``, doubted (confidence 0,
        its covariance the room's, :meth:`Covariance._anywhere`) where its heading sits
        :data:`NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS` (a shoebox:
        :data:`HEADING_RULED_OUT_SIGMAS`) or more of the given heading's standard deviations
        from it; as it is otherwise.

        The caller's heading prior rules such a heading out: a right fix's heading is the true
        one, within 3.5 standard deviations of the given one in all but 0.05 % of frames. A
        fix that set it there took echoes for walls that the true heading does not put there,
        and the wider look (:meth:`_heading_moved`) did not find better (dev seed 14 room 5
        frame 7 at 10 dB, an L plan: 11 cm off with confidence 1 and a 0.8 mm sigma, its
        heading 4.3 sigma from the given one, 3.8 deg from the true one).
        """
        loc = proposal.localizer
        sigmas = (HEADING_RULED_OUT_SIGMAS if loc._shoebox
                  else NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS)
        if not WiderLook._heading_beyond(proposal, estimate, sigmas):
            return estimate
        return replace(estimate, confidence=0.0,
                       covariance_m2=loc._anywhere(estimate.covariance_m2, estimate.position_m))

    @staticmethod
    def _replaces(first: Estimate, other: Estimate,
                  margin: float = WIDER_EVIDENCE_MARGIN) -> bool:
        """Whether the fix of the wider look, ``other``, replaces the ``first``
        (:meth:`_choice` is ``'other'``)."""
        return WiderLook._choice(first, other, margin) == 'other'

    @staticmethod
    def _choice(first: Estimate, other: Estimate,
                margin: float = WIDER_EVIDENCE_MARGIN) -> str:
        """Which fix a doubtful frame publishes after the wider look: ``'other'`` (the wider
        look's fix), ``'first'`` (the first fix as it was) or ``'kept'`` (the first fix
        finished on the wider look's proposal, :meth:`_kept`).

        ``'first'`` where ``other`` leaves more than :data:`WIDER_RATIO_GROWTH_MAX` times the
        first's residual over the noise: its evidence is the higher or equal (the first fix
        is among its candidates), but a ghost can gather evidence from echoes it places
        while leaving far more unexplained (the ratio grew 13-16 times where a right fix was
        swapped for one 30 cm off); such a ghost is no hypothesis to widen toward.
        ``'kept'`` where the first explains its echoes (a residual ratio of at most
        :data:`UNEXPLAINED_RATIO`) and ``other``'s evidence exceeds the first's by less than
        ``margin`` (:data:`WIDER_EVIDENCE_MARGIN`, -inf in localize: per frame the swaps were
        right more often; :data:`WIDER_TIE_MARGIN` is the one measured): a rival the evidence
        cannot tell from the first is no reason to move it (dev lap ``dev_7_001``: swapped at
        gains of 0-18, right fixes became rivals 12-250 cm off, and the track drifted with
        them), but a hypothesis its covariance covers. ``'other'`` otherwise: a first fix
        that leaves echoes unexplained is replaced at any gain (per frame such swaps rescue
        fixes metres off), and a wider-look fix within 2 cm of the first (where
        :meth:`finish` tells rivals apart) is the same fix refined again, with the wider
        look's rivals in its covariance. With :data:`WIDER_NO_LOSS`, a first fix that explains
        its echoes is ``'kept'`` wherever ``other``'s evidence is below its own, whatever
        ``margin``: the wider look's best, refined again from its own start, can land below
        the first (its evidence was the higher where the wider look refined it)."""
        if other.residual_ratio > WIDER_RATIO_GROWTH_MAX * first.residual_ratio:
            return 'first'
        if WIDER_NO_LOSS:
            margin = max(margin, 0.0)
        if (np.linalg.norm(other.position_m - first.position_m) <= 0.02
                or first.residual_ratio > UNEXPLAINED_RATIO
                or other.score >= first.score + margin):
            return 'other'
        return 'kept'

    def _kept(self, proposal: Proposal, wider: Proposal, estimate: Estimate) -> Estimate:
        """The first fix ``estimate`` of ``proposal`` finished on the wider look's proposal
        ``wider`` (:meth:`_choice` ``'kept'``): at its own place, its covariance spanning the
        rivals the wider look found, which the first proposal did not hold. On dev lap
        ``dev_7_001`` (replayed, margin 10): tracked p95 4.17 cm with the swaps, 6.44
        keeping the first fix as it was, 2.83 keeping it so."""
        first = self._fix_theta(proposal, estimate)
        index = np.flatnonzero(np.all(wider.thetas == first, axis=1))
        return self.finish(wider, int(index[0])) if index.size else estimate

    def _fix_theta(self, proposal: Proposal, estimate: Estimate) -> np.ndarray:
        """The parameters ``(5,)`` of a fix :meth:`finish` gave for ``proposal``."""
        fr = proposal.frame
        emitter = estimate.position_m + yaw_matrix(estimate.yaw_rad) @ (
            fr.tilt @ self.array.emitter_m)
        return np.array([*emitter, estimate.speed_of_sound_mps / fr.c0,
                         estimate.yaw_rad - proposal.yaw_given_rad])

    def _wider_look(self, proposal: Proposal, estimate: Estimate,
                    peaks: list | tuple = ()) -> Proposal:
        """``proposal`` with the peaks of each axis' scan through the fix (those 5 cm or more
        from every polished candidate, polished alike) added, and its best
        :data:`N_WIDER_REFINE` polished candidates refined in all parameters as
        :meth:`finish` refines a fix, and the first fix itself, first by their refined
        evidence.

        The ``peaks`` ``(5,)`` each (:meth:`_evidence_peaks` the fix does not clearly beat) are
        refined as well, whatever their polished evidence, and so are the best candidates of
        the scans started again either side of the heading given
        (:func:`~echoloc_ros.core.physics.heading_retry.retry_starts`).

        The refined candidates' evidence is the final fit's, as the fix's is; the rest keep
        their polished evidence, lower than they would reach refined, so a rival among them
        is seen as farther than it is; the refined ones are the strongest rivals.
        """
        fr = proposal.frame
        best = self._fix_theta(proposal, estimate)
        n = proposal.n_polished
        polished, scores = proposal.thetas[:n], proposal.scores[:n]
        found = []
        for axis in range(2):
            for value in self._evidence_scan(fr, best, axis):
                theta = best.copy()
                theta[axis] = value
                found.append(theta)
        found = np.reshape(found, (-1, N_THETA))
        apart = np.linalg.norm(found[:, None, :2] - polished[None, :, :2], axis=-1) >= 0.05
        found = found[np.all(apart, axis=1)]
        if len(found):
            free = np.array([0, 1, YAW]) if fr.yaw_free else np.array([0, 1])
            fit = self._newton(fr, found, self._valid_batch(fr, found), free,
                               self.polish_iterations, need_info=False)
            polished = np.vstack([polished, fit.theta])
            scores = np.concatenate([scores, fit.evidence])
        order = np.argsort(scores)[::-1]
        top, rest = order[:N_WIDER_REFINE], order[N_WIDER_REFINE:]
        # And the scans started again either side of the heading given (issue 19).
        retried = retry_starts(self, proposal, estimate)
        starts = [polished[i] for i in top] + list(peaks) + retried
        return self._with_refined(proposal, estimate, starts, polished[rest], scores[rest])

    def _polished_rivals(self, proposal: Proposal, theta: np.ndarray,
                         estimate: Estimate) -> list[tuple[float, np.ndarray]]:
        """The best :data:`N_POLISHED_RIVALS` polished candidates of ``proposal`` 5 cm or
        more from the fix (parameters ``theta (5,)``, the :class:`Estimate` ``estimate``
        :meth:`finish` gave) and from each other, refined in all parameters as the fix is
        (:meth:`_refined`): ``(gap, refined)`` of those still 5 cm or more from it whose
        refined evidence is within :data:`CONFIDENT_GAP` of the fix's or above, ``gap`` the
        fix's evidence less theirs. None where the fix is doubtful (:meth:`_doubtful_fix`):
        the wider look refines the best polished candidates there itself.

        The search ranks its candidates by their polished evidence, at the scans' height and
        speed; refined in every parameter with the final model a rival can gain far more than
        the fix did (dev seed 10 room 1 frame 8 at 20 dB: the truth polished 1617 log units
        below a fix 3.6 m off, refined 125 above it), and a rival never refined is judged by
        the lower figure: the fix looked confident, outside its 99.9 % ellipsoid. Nothing
        short of refining tells such a rival: over that room's right fixes the first polished
        rival gained 0-870 log units refined, the truth 1742.
        """
        wanted = self._n_polished_rivals
        if not wanted or self._doubtful_fix(estimate):
            return []
        score = estimate.score
        picked: list[np.ndarray] = []
        for candidate in proposal.thetas[:proposal.n_polished]:
            if len(picked) == wanted:
                break
            if min(np.linalg.norm(candidate[:3] - p[:3]) for p in [theta] + picked) >= 0.05:
                picked.append(candidate)
        found = []
        for candidate in picked:
            refined, evidence = self._refined(proposal.frame, candidate)
            if (np.linalg.norm(refined[:3] - theta[:3]) >= 0.05
                    and evidence > score - CONFIDENT_GAP):
                found.append((score - evidence, refined))
        return found

    def _lobe_rivals(self, proposal: Proposal, theta: np.ndarray,
                     estimate: Estimate) -> list[tuple[float, np.ndarray]]:
        """The fix (parameters ``theta (5,)``, the :class:`Estimate` ``estimate``) refined
        again from :data:`LOBE_STEP_M` either side of it along its sharpest direction (the
        local covariance's least axis): ``(gap, refined)`` of each refit that lands
        :data:`LOBE_MOVED_M` or more from it with higher evidence (``gap`` below 0). Where the
        plan is not a rectangle (:data:`NON_RECTANGULAR_LOBE_STEPS`; a shoebox:
        :data:`LOBE_STEPS`).

        The carrier's phase makes the evidence ripple along the sharpest direction, and the
        fit can stop on the side of a lobe short of the best one, its covariance that lobe's
        curvature (dev seed 13 room 3 frame 17 at 10 dB, an alcove: 2.4 mm off with a 0.18 mm
        sigma; restarted 2 mm either side it reaches the truth, up to 8.9 log units higher).
        """
        on = LOBE_STEPS if proposal.localizer._shoebox else NON_RECTANGULAR_LOBE_STEPS
        local = estimate.local_covariance_m2
        if not on or local is None:
            return []
        sharpest = np.linalg.eigh(local)[1][:, 0]
        found = []
        for sign in (-1.0, 1.0):
            start = theta.copy()
            start[:3] += sign * LOBE_STEP_M * sharpest
            refined, evidence = self._refined(proposal.frame, start)
            if (np.linalg.norm(refined[:3] - theta[:3]) >= LOBE_MOVED_M
                    and evidence > estimate.score):
                found.append((estimate.score - evidence, refined))
        return found

    @property
    def _n_polished_rivals(self) -> int:
        """How many polished rivals :meth:`_polished_rivals` refines in this room:
        :data:`N_POLISHED_RIVALS` in a shoebox, :data:`NON_RECTANGULAR_POLISHED_RIVALS` in any
        other plan, where the general search's ranking by polished evidence left the confident
        wrong fixes (issue 19, r36-03)."""
        return N_POLISHED_RIVALS if self._shoebox else NON_RECTANGULAR_POLISHED_RIVALS

    def _peaks_refined(self, proposal: Proposal, estimate: Estimate, peaks: list) -> Proposal:
        """``proposal`` with the ``peaks`` ``(5,)`` each (:meth:`_evidence_peaks` the fix does
        not clearly beat) refined in all parameters as :meth:`finish` refines a fix, and the
        first fix itself, first by their refined evidence: the wider look without its scans,
        where the first fix is not doubtful but an axis' evidence peaks near or above it."""
        n = proposal.n_polished
        return self._with_refined(proposal, estimate, list(peaks), proposal.thetas[:n],
                                  proposal.scores[:n])

    def _with_refined(self, proposal: Proposal, estimate: Estimate, starts: list,
                      rest: np.ndarray, rest_scores: np.ndarray) -> Proposal:
        """``proposal``'s first fix and ``starts`` refined, by their refined evidence, then the
        polished ``rest`` (``rest_scores``) and the proposal's unpolished candidates."""
        fr = proposal.frame
        best = self._fix_theta(proposal, estimate)
        # The first fix is among them as finish refined it: a fix is only ever replaced by
        # one whose refined evidence is higher.
        refined = [(best, estimate.score)] + [self._refined(fr, start) for start in starts]
        thetas = np.array([t for t, _ in refined])
        evidence = np.array([e for _, e in refined], dtype=float)
        ranked = np.argsort(evidence)[::-1]
        return Proposal(localizer=self, frame=fr, yaw_given_rad=proposal.yaw_given_rad,
                        thetas=np.vstack([thetas[ranked], rest,
                                          proposal.thetas[proposal.n_polished:]]),
                        scores=np.concatenate([evidence[ranked], rest_scores,
                                               proposal.scores[proposal.n_polished:]]),
                        n_polished=len(thetas) + len(rest), working=proposal.working)

    def _evidence_scan(self, fr, theta: np.ndarray, axis: int) -> np.ndarray:
        """The :data:`N_WIDER_PEAKS` best values of ``axis`` (``(k,)``, 5 cm or more apart)
        by the full model's evidence (:meth:`_score`) on a grid of :data:`WIDER_STEP_M`
        through ``theta``, the array fitting in the plan.

        The first search's axis scans score each path's coherent power alone; through a
        doubtful fix whose height, speed and heading are refined, the full model with its
        path amplitudes solved for ranks the weak axis' true value first where the scans'
        peaks sit by the walls (dev, a soft 8.4 m shoebox at 10 dB: the truth 10th of the
        scan's peaks, first of the evidence's; the full model's evidence varies slowly
        enough along an axis for a 12 mm grid to find its peaks).
        """
        coords, _, score = self._evidence_along(fr, theta, axis, WIDER_STEP_M)
        if score is None:
            return coords
        return coords[_peaks(score, coords, N_WIDER_PEAKS, 0.05)]

    def _evidence_along(self, fr, theta: np.ndarray, axis: int, step_m: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The full model's evidence (:meth:`_score`) on a grid of ``step_m`` along ``axis``
        through ``theta (5,)``, where the array fits in the plan: the grid's values ``(k,)``,
        its parameters ``(k, 5)`` and their evidence ``(k,)`` (``None`` under 3 values)."""
        lo = self.room.vertices_m.min(axis=0)[axis] + self._reach_m
        hi = self.room.vertices_m.max(axis=0)[axis] - self._reach_m
        coords = np.arange(lo, hi, step_m)
        thetas = np.repeat(theta[None], coords.size, axis=0)
        thetas[:, axis] = coords
        inside = self._fits_in_plan(thetas[:, :2])
        thetas, coords = thetas[inside], coords[inside]
        if coords.size < 3:
            return coords, thetas, None
        return coords, thetas, self._scan_score(fr, thetas, self._valid_batch(fr, thetas))

    def _refined(self, fr, theta: np.ndarray) -> tuple[np.ndarray, float]:
        """``theta (5,)`` refined in all parameters with the model and iterations
        :meth:`finish` uses, and its evidence."""
        free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
        model, valid = self._final_model(fr, theta[None])
        fit = model._newton(fr, theta[None], valid, free, self.max_iterations,
                            need_info=False)
        return fit.theta[0], float(fit.evidence[0])

    def _ahead_refined(self, proposal: Proposal, estimate: Estimate, peaks: list) -> Estimate:
        """The second search's fix ``estimate`` of ``proposal``, or, where an axis' evidence
        through it peaks more than :data:`AHEAD_PEAK_GAP` above it (its ``peaks``, which
        :meth:`settled` refined only for the first fix), those peaks refined as candidates
        once more (:meth:`WiderLook._peaks_refined`) and the fix then chosen by
        :meth:`WiderLook._choice` (dev room 18 frame 8 at 10 dB: the second fix 30 cm off
        along y, 3.2 mm in height with a 0.47 mm sigma, its y peak at the truth 65 log units
        above it)."""
        ahead = [top for gap, top in peaks if gap < -AHEAD_PEAK_GAP]
        if not ahead:
            return estimate
        loc = proposal.localizer
        other = self.finish(loc._peaks_refined(proposal, estimate, ahead))
        return other if self._choice(estimate, other) == 'other' else estimate

    def _height_peaks(self, fr, theta: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """The best :data:`N_AXIS_RIVALS` peaks of the evidence (:meth:`_scan_score`) along
        the height through ``theta (5,)`` on a grid of :data:`AXIS_STEP_M` over the heights
        searched (the horizontal scans' grid: 12 mm found the same dev frames' truths and
        cost 0.5 ms more a frame in the default room), at least :data:`AXIS_BASIN_M` from it,
        each scored again at its parabola's vertex: ``(gap, top)`` as
        :meth:`AxisRivals._evidence_peaks` gives the horizontal axes' (dev seed 8 room 15 at
        10 dB: three fixes in a row 15-18 cm off in height with their plan right, the truth
        refined 79-93 log units above them).

        :return: ``(gap, top)`` of each: the evidence at ``theta`` less the peak's, and the
            peak's parameters ``(5,)`` (``theta`` at another height).
        """
        coords = np.arange(self.z_range_m[0], self.z_range_m[1], AXIS_STEP_M)
        if coords.size < 3:
            return []
        thetas = np.repeat(theta[None], coords.size, axis=0)
        thetas[:, 2] = coords
        score = self._scan_score(fr, thetas, self._valid_batch(fr, thetas))
        peaks = _peaks(score, coords, N_AXIS_RIVALS + 1, AXIS_BASIN_M)
        peaks = peaks[np.abs(coords[peaks] - theta[2]) >= AXIS_BASIN_M][:N_AXIS_RIVALS]
        if not peaks.size:
            return []
        tops = thetas[peaks].copy()
        tops[:, 2] = _vertex(score, coords, peaks)
        top_scores = self._scan_score(fr, tops, self._valid_batch(fr, tops))
        lower = ~(top_scores > score[peaks])
        tops[lower], top_scores[lower] = thetas[peaks][lower], score[peaks][lower]
        reference = float(self._scan_score(fr, theta[None],
                                           self._valid_batch(fr, theta[None]))[0])
        return [(reference - float(s), top) for top, s in zip(tops, top_scores)]
