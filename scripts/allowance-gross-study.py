"""Why a fix metres off passes in a room off its file by its stated tolerance (issue 18): per
published fix, as ``echoloc evaluate`` localizes it (model error drawn per world, the air
drawn within its doubt), its error, confidence and d^2 in its published covariance; its
residual ratio as judged (against the noise and the tolerance's allowance) and against the
noise alone; whether the axis scans ran and the peaks they found; whether the wider look ran;
the truth's evidence refined in the off-file room against the fix's; and whether a proposed
candidate or a scan's peak lay near the truth.

    python scripts/allowance-gross-study.py --model-error-seed 1 --n 200 --out /tmp/gross.npz

Prints one JSON line per fix off by more than ``--gross-m`` and, last, one summary line:
the shares of scanned, wider-looked, confident and outside-999 fixes among the gross and the
right ones, and the raw and judged ratios' quartiles of each.
"""
import argparse
import json
from dataclasses import replace

import numpy as np

import echoloc_ros.core.room_tolerance as rt
import echoloc_ros.offline.evaluation as evaluation
from echoloc_ros.core.array_geometry import load_array, yaw_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.physics.config import N_THETA, YAW
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.core.room_calibration import TEMPERATURE_STD_C
from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.offline.evaluation import CHI2_999_3DOF, evaluate_fixes
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.simulator import Scenario


class Probe:
    """Hooks the localizer and the evaluation's frame source, and keeps one row per fix."""

    def __init__(self):
        self.rows: list[dict] = []
        self.world = {}
        self.row: dict = {}
        self._hook_frames()
        self._hook_localizer()

    def _hook_frames(self) -> None:
        drawn, simulated = evaluation._drawn_frames, evaluation._simulated_world
        probe = self

        def world(*args, **kwargs):
            simulator, scenario, origin = simulated(*args, **kwargs)
            probe.world = {'temperature_c': scenario.temperature_c, 'origin': origin}
            return simulator, scenario, origin

        def frames(*args, **kwargs):
            for item in drawn(*args, **kwargs):
                probe.world['frame'] = (item[2], item[3])
                yield item

        evaluation._simulated_world = world
        evaluation._drawn_frames = frames

    def _hook_localizer(self) -> None:
        cls = PhysicsLocalizer
        settled, scans_pay, peaks = cls.settled, cls._scans_pay, cls._evidence_peaks
        wider, refined, ratio_of = cls._wider_look, cls._peaks_refined, cls._residual_ratio
        covariance = cls._physics_covariance
        probe = self

        def widened(loc, cov, position, score, rivals, doubtful, weak_axes=True,
                    axis_rivals=()):
            if weak_axes:
                # Every rival the covariance saw: (gap, offset from the fix).
                seen = [(score - s, t[:3] - position) for s, t, _ in rivals[:3]]
                seen += [(g, o) for g, o in axis_rivals]
                probe.row.setdefault('rivals', []).append((position.copy(), seen))
            return covariance(loc, cov, position, score, rivals, doubtful, weak_axes,
                              axis_rivals)

        def ratio(model, fr, tau, amp, coef, fitted=None, theta=None):
            judged = ratio_of(model, fr, tau, amp, coef, fitted, theta)
            if theta is not None and 'raw' not in probe.row:
                probe.row['raw'] = max(ratio_of(model, fr, tau, amp, coef, fitted), 1.0)
                probe.row['allowance'] = (rt.doubt_allowance(
                    model._tolerance_allowance(fr, theta, tau, amp, coef))
                                          if model.room.tolerance_m > 0 else 0.0)
            if theta is not None and model.room.tolerance_m > 0:
                probe.row.setdefault('thetas', []).append(
                    (theta.copy(), _per_path(model, fr, tau, amp, coef, fitted, theta)))
            return judged

        def pay(loc, *args):
            paid = scans_pay(loc, *args)
            probe.row.setdefault('scanned', paid)
            return paid

        def scanned(loc, fr, theta):
            found = peaks(loc, fr, theta)
            probe.row.setdefault('peaks', [(g, t.copy()) for g, t in found])
            return found

        def look(loc, *args, **kwargs):
            probe.row['wider'] = True
            return wider(loc, *args, **kwargs)

        def more(loc, *args, **kwargs):
            probe.row['peaks_refined'] = True
            return refined(loc, *args, **kwargs)

        def settle(loc, proposal):
            probe.row = {}
            estimate = settled(loc, proposal)
            probe.finish_row(loc, proposal, estimate)
            return estimate

        cls.settled, cls._scans_pay, cls._evidence_peaks = settle, pay, scanned
        cls._wider_look, cls._peaks_refined, cls._residual_ratio = look, more, ratio
        cls._physics_covariance = widened

    def finish_row(self, loc, proposal, estimate) -> None:
        """The row of the fix ``estimate``: its parts and the truth's refined evidence."""
        fr = proposal.frame
        position, yaw = self.world['frame']
        emitter = position + yaw_matrix(yaw) @ (fr.tilt @ loc.array.emitter_m)
        true_c = speed_of_sound_mps(self.world['temperature_c'])
        truth = np.array([*emitter, true_c / fr.c0, yaw - proposal.yaw_given_rad])
        free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
        model, valid = loc._final_model(fr, truth[None])
        fit = model._newton(fr, truth[None], valid, free, loc.max_iterations)
        fitted = model.synthesise(fr, fit.tau[0], fit.amp[0], fit.coef[0])
        row = self.row
        fix_theta = loc._fix_theta(proposal, estimate)
        near = np.linalg.norm(proposal.thetas[:, :3] - emitter, axis=1)
        peaks = row.get('peaks', [])
        peak_near = min((np.linalg.norm(t[:3] - emitter) for _, t in peaks), default=np.inf)
        # Every rival 10 cm or more from the first fix: its gap (candidates' polished score;
        # peaks' scanned) and whether it lies within 10 cm of the truth.
        first = proposal.refined[0]
        gaps = [(first[1] - s, np.linalg.norm(t[:3] - emitter) < 0.1)
                for s, t in zip(proposal.scores, proposal.thetas)
                if np.linalg.norm(t[:3] - first[0][:3]) >= 0.1]
        gaps += [(g, np.linalg.norm(t[:3] - emitter) < 0.1) for g, t in peaks
                 if np.linalg.norm(t[:3] - first[0][:3]) >= 0.1]
        away = [g for g, _ in gaps]
        true = [g for g, n in gaps if n]
        self.rows.append({
            'estimate': estimate.position_m, 'cov': estimate.covariance_m2,
            'confidence': estimate.confidence, 'ratio': estimate.residual_ratio,
            'raw': row.get('raw', np.nan), 'scanned': bool(row.get('scanned', False)),
            'n_peaks': len(peaks), 'min_peak_gap': min((g for g, _ in peaks), default=np.inf),
            'peak_near_truth_m': peak_near, 'wider': bool(row.get('wider', False)),
            'peaks_refined': bool(row.get('peaks_refined', False)),
            'score': estimate.score, 'truth_score': float(fit.evidence[0]),
            'truth_ratio': model._residual_ratio(fr, fit.tau[0], fit.amp[0], fit.coef[0],
                                                 fitted, fit.theta[0]),
            'truth_refined_off_m': float(np.linalg.norm(fit.theta[0][:3] - emitter)),
            'candidate_near_truth_m': float(near.min()),
            'n_candidates': len(proposal.thetas),
            'fix_off_m': float(np.linalg.norm(fix_theta[:3] - emitter)),
            'allowance': row.get('allowance', 0.0), 'first_score': float(first[1]),
            'rivals': min(row.get('rivals', [(fix_theta[:3], [])]),
                          key=lambda r: np.linalg.norm(r[0] - fix_theta[:3]))[1],
            'paths': min(row.get('thetas', [(fix_theta, None)]),
                         key=lambda r: np.linalg.norm(r[0][:3] - fix_theta[:3]))[1],
            'rival_gap_min': min(away, default=np.inf),
            'truth_rival_gap': min(true, default=np.inf)})


def _per_path(model, fr, tau, amp, coef, fitted, theta) -> np.ndarray:
    """Per modelled path ``(P', 4)``: its residual in its main lobes (noise units), the
    dof it leaves, its share of the allowance (the share applied) and its echo's energy."""
    if fitted is None:
        fitted = model.synthesise(fr, tau, amp, coef)
    features = fr.features
    dt = features.bin_width_s
    residual = np.abs(features.baseband - fitted) ** 2 * fr.weights[:, None]
    n_receivers, n_bins = residual.shape
    half = int(np.ceil(1.2 * model.processor.mainlobe_half_width_s / dt))
    centre = np.rint((tau - features.start_s) / dt).astype(np.int64)
    bins = np.clip(centre[..., None] + np.arange(-half, half + 1), 0, n_bins - 1)
    received = amp > 0
    power = np.sum(residual[np.arange(n_receivers)[None, :, None], bins]
                   * received[..., None], axis=(1, 2))
    counted = np.count_nonzero(received, axis=1) * (2 * half + 1)
    dof = np.maximum(counted - model._correlation_factor, 0.25 * counted)
    shares = []
    original = rt.residual_allowance

    def per_path(tolerance_m, metric, d_theta, d_offset, energy=None):
        shares.append(rt.path_allowances(tolerance_m, metric, d_theta, d_offset, energy))
        return original(tolerance_m, metric, d_theta, d_offset, energy)

    import echoloc_ros.core.physics.evidence as ev
    ev.residual_allowance = per_path
    try:
        model._tolerance_allowance(fr, theta, tau, amp, coef)
    finally:
        ev.residual_allowance = original
    used = np.any(amp > 0, axis=1)
    energy = (model._echo_moments(fr)[2] * np.abs(coef) ** 2
              * np.sum(fr.weights * amp ** 2, axis=1))
    return np.stack([power[used], dof[used], rt.DOUBT_SHARE * shares[0], energy[used]],
                    axis=1)


def _summary(saved: dict, error: np.ndarray, gross: np.ndarray) -> dict:
    d2 = np.einsum('ni,ni->n', error, np.linalg.solve(saved['cov'], error[..., None])[..., 0])
    out = {'n': int(len(error)), 'gross': int(gross.sum()),
           'outside_999': round(float(np.mean(d2 > CHI2_999_3DOF)), 4)}
    for name, rows in (('gross', gross), ('right', ~gross)):
        if not rows.any():
            continue
        out[name] = {
            'scanned': round(float(np.mean(saved['scanned'][rows])), 3),
            'wider': round(float(np.mean(saved['wider'][rows])), 3),
            'confident': round(float(np.mean(saved['confidence'][rows] >= 1.0)), 3),
            'outside_999': round(float(np.mean(d2[rows] > CHI2_999_3DOF)), 3),
            'raw_q': np.round(np.percentile(saved['raw'][rows], [10, 25, 50, 75, 90]),
                              2).tolist(),
            'judged_q': np.round(np.percentile(saved['ratio'][rows], [10, 25, 50, 75, 90]),
                                 2).tolist()}
    return out


def main() -> None:
    """Localize, print the gross fixes' rows and the summary, save every row."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--n', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--surface-offset-m', type=float, default=0.03)
    parser.add_argument('--room-tolerance-m', type=float, default=0.03)
    parser.add_argument('--model-error-seed', type=int, default=1)
    parser.add_argument('--model-error-draws', type=int, default=10)
    parser.add_argument('--gross-m', type=float, default=0.10)
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    room = replace(load_room(args.room), tolerance_m=args.room_tolerance_m)
    error_model = ModelError(surface_offset_m=args.surface_offset_m,
                             seed=args.model_error_seed, draws=args.model_error_draws,
                             air_std_c=TEMPERATURE_STD_C)
    probe = Probe()
    details: dict = {}
    evaluate_fixes(room, load_array('square_4sensor'), Chirp(), Scenario(snr_db=args.snr_db),
                   args.n, args.seed, details=details, heading_noise_deg=args.heading_noise_deg,
                   model_error=error_model)
    rows = probe.rows
    if len(rows) != len(details['truth_m']):
        raise RuntimeError(f'{len(rows)} fixes recorded for {len(details["truth_m"])} scored')
    paths = [r.pop('paths') for r in rows]
    rivals = [r.pop('rivals') for r in rows]
    saved = {name: np.array([r[name] for r in rows]) for name in rows[0]}
    saved['paths'] = np.array(paths + [None], dtype=object)[:-1]
    saved['rivals'] = np.array(rivals + [None], dtype=object)[:-1]
    error = saved['estimate'] - details['truth_m']
    gross = np.linalg.norm(error, axis=1) > args.gross_m
    saved['cov'] = details['covariance_m2']
    np.savez(args.out, truth=details['truth_m'], **saved)
    d2 = np.einsum('ni,ni->n', error, np.linalg.solve(saved['cov'], error[..., None])[..., 0])
    for k in np.flatnonzero(gross):
        row = {name: (round(float(v), 4) if np.ndim(v) == 0 else None)
               for name, v in rows[k].items()}
        row = {name: v for name, v in row.items() if v is not None}
        print(json.dumps({'k': int(k), 'error_m': np.round(error[k], 3).tolist(),
                          'd2': round(float(d2[k]), 1), **row}), flush=True)
    print(json.dumps(_summary(saved, error, gross)), flush=True)


if __name__ == '__main__':
    main()
