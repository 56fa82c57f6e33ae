#!/usr/bin/env python3
"""What tells a confident wrong fix from a right one (issue 19): for each frame of ``echoloc
evaluate --rooms random:N --split S --seed K --n N`` (the same rooms, poses, noise and heading
draws as ``scripts/classify-gross.py``) the physics localizer localizes as
:meth:`PhysicsLocalizer.localize` does and one JSON line gives the fix's error, its published
and local sigma per axis, its squared Mahalanobis distance, confidence, residual ratio,
whether the wider look ran, and its rivals (evidence gap and offset), e.g.
``python scripts/ambiguity-study.py --split dev --seed 7 --n 300 --snr-db 10 > rows.jsonl``.

With ``--truth`` the true pose of each fix outside its 99.9 % ellipsoid or 10 cm or more off
(``outside`` says which) is refined as the fix
was and its evidence gap to the fix given (``truth_gap``: positive when the model prefers
the truth). Each line also holds the peaks :meth:`AxisRivals._axis_rivals` found
(``axis_gap``, ``axis_offset_m``, ``axis_axis``; ``plan_gap``: those of the scans over the plan's
other strips, :meth:`AxisRivals._plan_peaks`) and the largest echo the fit leaves
unexplained (``res_peak``: the residual summed over receivers and one main lobe, over its
floor); with ``--record`` the covariance is published as before the axis rivals (they are
recorded, not spanned, and none refined), so that rules for them can be replayed on the
lines. Peaks within ``--refine-gap`` of the fix's evidence (default: ``AXIS_REFINE_GAP``)
are refined as ``localize`` refines them (``n_better``; ``replaced``: the second search's fix
was taken; ``first_axis_gap``: the first fix's peaks).
"""

import argparse
import json
import time

import numpy as np

from echoloc_ros.core.array_geometry import load_array, yaw_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics import localizer as localizer_module
from echoloc_ros.core.physics.config import N_CROSS_PEAKS, N_THETA, YAW
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.plan_symmetry import plan_symmetries
from echoloc_ros.offline.evaluation import CHI2_999_3DOF, direct_explained, random_frames
from echoloc_ros.offline.room_evaluation import is_soft
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.offline.room_evaluation import frames_seed

N_RIVALS = 6


def _rounded(values, digits: int = 5) -> list:
    return np.round(np.asarray(values, dtype=float), digits).tolist()


class ResidualTap:
    """Keeps what the last :meth:`Evidence._residual_floor` call saw: the frame less the
    fit, per receiver, in units of the fit's residual floor."""

    def __init__(self):
        self.last = None
        original = PhysicsLocalizer._residual_floor
        tap = self

        def residual_floor(model, fr, tau, amp, coef, fitted=None):
            out = original(model, fr, tau, amp, coef, fitted)
            if fitted is None:
                fitted = model.synthesise(fr, tau, amp, coef)
            features = fr.features
            residual = np.abs(features.baseband - fitted) ** 2 * fr.weights[:, None]
            first = max(int(np.ceil((fr.t_min - features.start_s) / features.bin_width_s)), 0)
            last = int(np.floor((fr.t_max - features.start_s) / features.bin_width_s))
            frame = np.abs(features.baseband) ** 2 * fr.weights[:, None]
            tap.last = (residual[:, first:last], frame[:, first:last], out,
                        int(np.ceil(1.2 * model.processor.mainlobe_half_width_s
                                    / features.bin_width_s)))
            return out

        PhysicsLocalizer._residual_floor = residual_floor

    def features(self) -> dict:
        """The unexplained echo's peak: the residual summed over receivers and one main
        lobe, over the floor, at its largest, and the frame's own there."""
        residual, frame, (floor, misfit), half = self.last
        total = residual.sum(axis=0)
        floor_abs = np.quantile(residual, 0.25) / np.log(4.0 / 3.0)
        kernel = np.ones(2 * half + 1)
        lobe = np.convolve(total, kernel, 'same') / floor_abs
        frame_lobe = np.convolve(frame.sum(axis=0), kernel, 'same') / floor_abs
        k = int(np.argmax(lobe))
        return {'res_peak': round(float(lobe[k]), 2), 'res_bin_peak': round(
            float(np.max(total) / floor_abs), 2), 'frame_at_peak': round(float(frame_lobe[k]), 2),
            'frame_peak': round(float(np.max(frame_lobe)), 2), 'res_peak_bin': k,
            'lobe_bins': 2 * half + 1, 'n_bins': int(total.size),
            'res_p999': round(float(np.quantile(lobe, 0.999)), 2),
            'floor': round(floor, 3), 'misfit': round(misfit, 3)}


class AxisTap:
    """Keeps the last :meth:`AxisRivals._evidence_peaks` result (as offsets from the fix);
    with ``record`` the covariance is given none of them (as before they were spanned), and
    none is refined."""

    def __init__(self, record: bool):
        self.last = []
        original = PhysicsLocalizer._evidence_peaks
        tap = self

        def evidence_peaks(model, fr, theta):
            peaks = original(model, fr, theta)
            tap.last = [(gap, np.append(top[:2] - theta[:2], 0.0)) for gap, top in peaks]
            return [] if record else peaks

        PhysicsLocalizer._evidence_peaks = evidence_peaks

    def features(self) -> dict:
        return {'axis_gap': [round(g, 2) for g, _ in self.last],
                'axis_offset_m': [round(float(np.sum(o)), 4) for _, o in self.last],
                'axis_axis': [int(np.argmax(np.abs(o))) for _, o in self.last]}


def symmetric_rows(loc: PhysicsLocalizer, fr, theta: np.ndarray, symmetries: list) -> list:
    """The fix ``theta (5,)`` mapped by each of the plan's ``symmetries`` (where the array
    fits), refined as :meth:`finish` refines a fix: ``(share, gap, offset (3,))`` each, gap =
    the fix's refined evidence less the mapped pose's."""
    model, valid = loc._final_model(fr, theta[None])
    free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
    own = float(model._newton(fr, theta[None], valid, free, loc.max_iterations,
                              need_info=False).evidence[0])
    rows = []
    for share, signs, shift in symmetries:
        mapped = theta.copy()
        mapped[:2] = signs * theta[:2] + shift
        if not loc._fits_in_plan(mapped[None, :2])[0]:
            continue
        top, evidence = loc._refined(fr, mapped)
        rows.append((round(share, 3), round(own - evidence, 2),
                     _rounded(top[:3] - theta[:3], 4), _rounded(mapped[:2] - theta[:2], 4)))
    return rows


def kind_of(error_m: np.ndarray) -> str:
    """What kind of error a fix has: ``near`` (within 5 cm in plan and 2 cm in height),
    ``height``, ``one_axis`` (x or y alone), ``2d``."""
    off = np.abs(error_m) > np.array([0.05, 0.05, 0.02])
    if not off[:2].any():
        return 'height' if off[2] else 'near'
    if off[0] != off[1] and np.abs(error_m[:2]).min() < 0.02:
        return 'one_axis'
    return '2d'


def frame_row(loc: PhysicsLocalizer, features, position_m: np.ndarray, yaw_rad: float,
              yaw_given_rad: float, yaw_std_rad: float | None, truth: bool,
              tap: ResidualTap, axis_tap: AxisTap, symmetries: list,
              all_cross: bool = False) -> dict:
    """The fix of one frame and what the localizer knew of it (``all_cross``: every scanned
    fix scanned across, whatever :meth:`AxisRivals._cross_pays` says)."""
    proposal = loc.propose(features, yaw_given_rad, None, yaw_std_rad)
    first_proposal = proposal
    estimate, peaks = loc._finished(proposal)
    first_axis = axis_tap.features()
    first_theta = loc._fix_theta(proposal, estimate)
    if loc.axis_rivals and localizer_module.HEIGHT_PEAKS:
        peaks = peaks + loc._height_peaks(proposal.frame, first_theta)
    # As AxisRivals._cross_peaks does, each start's peaks kept apart (and its thread CPU).
    cross_start = time.thread_time()
    first_fix = {'first_ratio': round(estimate.residual_ratio, 3),
                 'first_confidence': round(estimate.confidence, 4),
                 'first_doubtful': loc._doubtful_fix(estimate),
                 'cross_pays': loc._cross_pays(estimate)}
    starts = (loc._cross_starts(first_theta, peaks)
              if loc._cross_pays(estimate) or (all_cross and loc.cross_scans) else [])
    reference = (float(loc._scan_score(proposal.frame, first_theta[None], loc._valid_batch(
        proposal.frame, first_theta[None]))[0]) if starts else 0.0)
    crossed = [(axis, gap, loc._axis_scan_peaks(proposal.frame, top, 1 - axis, reference,
                                                N_CROSS_PEAKS)) for axis, gap, top in starts]
    pairs = [peak for _, _, found in crossed for peak in found]
    # The plan's other strips scanned, where the cross scans run (AxisRivals._plan_peaks).
    plan_start = time.thread_time()
    plan = (loc._plan_peaks(proposal.frame, first_theta)
            if loc._cross_pays(estimate) and loc.plan_scans else [])
    plan_ms = 1e3 * (time.thread_time() - plan_start)
    pairs = pairs + plan
    cross_ms = 1e3 * (time.thread_time() - cross_start)
    shares = (loc._axis_shares(proposal.frame, first_theta) if peaks
              else np.full(2, np.nan))
    better = [top for gap, top in peaks + pairs if gap < localizer_module.AXIS_REFINE_GAP]
    doubtful = loc._doubtful_fix(estimate)
    wider = bool(localizer_module.WIDER_LOOK and (better or doubtful))
    replaced = False
    if wider:
        # As settled does.
        second = (loc._wider_look(proposal, estimate, better) if doubtful
                  else loc._peaks_refined(proposal, estimate, better))
        other, other_peaks = loc._finished(second)
        if loc._replaces(estimate, other):
            estimate = loc._ahead_refined(second, other, other_peaks)
            proposal, replaced = second, True
    error = estimate.position_m - position_m
    cov = estimate.covariance_m2
    d2 = float(error @ np.linalg.solve(cov, error))
    fr = proposal.frame
    emitter = estimate.position_m + yaw_matrix(estimate.yaw_rad) @ (fr.tilt @ loc.array.emitter_m)
    apart = np.linalg.norm(proposal.thetas[:, :3] - emitter, axis=1) > 0.02
    order = np.flatnonzero(apart)[np.argsort(-proposal.scores[apart])][:N_RIVALS]
    row = {'error_m': _rounded(error), 'd2': round(d2, 3),
           'covariance_m2': np.asarray(cov).ravel().tolist(),
           'sigma_mm': _rounded(1e3 * np.sqrt(np.diag(cov)), 4),
           'local_sigma_mm': _rounded(1e3 * np.sqrt(np.diag(estimate.local_covariance_m2)), 4),
           'confidence': round(estimate.confidence, 4), 'score': round(estimate.score, 2),
           'residual_ratio': round(estimate.residual_ratio, 3), 'n_echoes': estimate.n_echoes,
           'wider': wider, 'n_better': len(better), 'replaced': replaced,
           'first_axis_gap': first_axis['axis_gap'], 'n_polished': int(proposal.n_polished),
           'cross_gap': [round(g, 2) for g, _ in pairs],
           'plan_gap': [round(g, 2) for g, _ in plan], 'plan_ms': round(plan_ms, 3),
           'cross': [(axis, round(gap, 2), [round(g, 2) for g, _ in found])
                     for axis, gap, found in crossed],
           'shares': _rounded(shares, 2), 'cross_ms': round(cross_ms, 3), **first_fix,
           'rival_gap': _rounded(estimate.score - proposal.scores[order], 2),
           'rival_polished': [bool(i < proposal.n_polished) for i in order],
           'rival_offset_m': [_rounded(proposal.thetas[i, :3] - emitter, 4) for i in order],
           **tap.features(), **axis_tap.features()}
    fix_theta = loc._fix_theta(proposal, estimate)
    if symmetries:
        row['sym'] = symmetric_rows(loc, fr, fix_theta, symmetries)
    row['outside'] = d2 > CHI2_999_3DOF
    if truth and (d2 > CHI2_999_3DOF or np.linalg.norm(error) > 0.1):
        true_emitter = position_m + yaw_matrix(yaw_rad) @ loc.array.emitter_m
        row['kind'] = kind_of(error)
        row['yaw_error_deg'] = round(float(np.rad2deg(estimate.yaw_rad - yaw_rad)), 3)
        row['truth_near_candidate_m'] = round(float(np.min(np.linalg.norm(
            first_proposal.thetas[:, :2] - true_emitter[:2], axis=1))), 4)
        row['truth_near_peak_m'] = round(float(min(
            [np.linalg.norm(np.asarray(o)[:2] + fix_theta[:2] - true_emitter[:2])
             for _, o in axis_tap.last] or [np.inf])), 4)
        # How near the truth lay to the cross scans' peaks.
        row['truth_near_cross_m'] = round(float(min(
            [np.linalg.norm(top[:2] - true_emitter[:2]) for _, top in pairs] or [np.inf])), 4)
        row['truth_near_plan_m'] = round(float(min(
            [np.linalg.norm(top[:2] - true_emitter[:2]) for _, top in plan] or [np.inf])), 4)
        row['truth_near_sym_m'] = round(float(min(
            [np.linalg.norm(signs * fix_theta[:2] + shift - true_emitter[:2])
             for _, signs, shift in symmetries] or [np.inf])), 4)
        theta = np.array([*true_emitter, 1.0, yaw_rad - yaw_given_rad])
        free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
        model, valid = loc._final_model(fr, theta[None])
        fit = model._newton(fr, theta[None], valid, free, loc.max_iterations)
        row['truth_gap'] = round(float(fit.evidence[0]) - estimate.score, 2)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--split', default='dev')
    parser.add_argument('--rooms', type=int, default=30)
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--n', type=int, default=300)
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--truth', action='store_true',
                        help='refine the truth of each fix outside its 99.9 %% ellipsoid')
    parser.add_argument('--record', action='store_true',
                        help='record the axis rivals without spanning them (to replay)')
    parser.add_argument('--only', type=int, nargs='*', help='room indices to run')
    parser.add_argument('--sym-share', type=float, default=0.0,
                        help='refine the fix mapped by the plan symmetries that keep this '
                             'share of its walls (0: none)')
    parser.add_argument('--refine-gap', type=float,
                        default=localizer_module.AXIS_REFINE_GAP,
                        help='refine the axis peaks within this of the fix (AXIS_REFINE_GAP)')
    parser.add_argument('--no-cross', action='store_true',
                        help='leave out the scans across the axes\' peaks '
                             '(AxisRivals._cross_peaks)')
    parser.add_argument('--no-plan', action='store_true',
                        help='leave out the scans over the plan\'s other strips '
                             '(AxisRivals._plan_peaks)')
    parser.add_argument('--all-cross', action='store_true',
                        help='scan every scanned fix across (AxisRivals._cross_pays ignored)')
    parser.add_argument('--compare', action='store_true',
                        help='where a cross scan can change the fix, the fix without them '
                             'too (base)')
    args = parser.parse_args()
    PhysicsLocalizer.cross_scans = not args.no_cross
    PhysicsLocalizer.plan_scans = not args.no_plan
    localizer_module.AXIS_REFINE_GAP = args.refine_gap
    rooms = generate_rooms(args.split, args.rooms, args.seed)
    tap = ResidualTap()
    axis_tap = AxisTap(args.record)
    array = load_array('square_4sensor')
    chirp = Chirp()
    n_room = int(np.ceil(args.n / len(rooms)))
    noise_rad = float(np.deg2rad(args.heading_noise_deg))
    yaw_std = noise_rad if args.heading_noise_deg > 0 else None
    for i, room in enumerate(rooms):
        if args.only and i not in args.only:
            continue
        room_seed = frames_seed(args.seed, i)
        processor = EchoProcessor(chirp, 250e3, array=array)
        # The axis rivals at any level: they are what this study looks at.
        loc = PhysicsLocalizer(room, array, chirp, 250e3, processor=processor, axis_rivals=True)
        simulator = EchoSimulator(room, array, chirp, 250e3, max_order=2)
        symmetries = (plan_symmetries(room.vertices_m, args.sym_share)
                      if args.sym_share > 0 and not room.is_shoebox else [])
        frames = random_frames(simulator, Scenario(snr_db=args.snr_db, seed=args.seed),
                               n_room, room_seed)
        for k, (_, frame, position, yaw, draw, _) in enumerate(frames):
            features = processor.process(frame)
            if not direct_explained(features):
                continue
            row = frame_row(loc, features, position, yaw, yaw + noise_rad * draw, yaw_std,
                            args.truth, tap, axis_tap, symmetries, args.all_cross)
            if args.compare and min(row['cross_gap'], default=np.inf) < args.refine_gap:
                # The same frame without the cross scans: where they can change the fix.
                PhysicsLocalizer.cross_scans = False
                base = frame_row(loc, features, position, yaw, yaw + noise_rad * draw,
                                 yaw_std, args.truth, tap, axis_tap, symmetries)
                PhysicsLocalizer.cross_scans = True
                row['base'] = {key: base[key] for key in
                               ('error_m', 'd2', 'sigma_mm', 'outside', 'truth_gap')
                               if key in base}
            print(json.dumps({'room': i, 'frame': k, 'shoebox': room.is_shoebox,
                              'soft': is_soft(room), 'furnished': bool(room.furniture),
                              **row}), flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
