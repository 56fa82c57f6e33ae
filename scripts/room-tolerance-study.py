"""How a room file's stated tolerance and the physics localizer's own covariance combine on
fixes in rooms whose surfaces are off the file: localize as ``echoloc evaluate`` does (model
error drawn per world, the air drawn within its doubt) and save, per published fix, the error,
the published covariance, the room's term (:func:`room_covariance`), the localizer's local
covariance, its residual ratio and confidence, and why a fix was held doubtful (issue 18).

    python scripts/room-tolerance-study.py --surface-offset-m 0.03 --room-tolerance-m 0.03 \
        --air-drawn --model-error-seed 1 --model-error-draws 10 --n 200 --out /tmp/tol.npz

Prints one JSON line: coverage_95 and outside_999 of the published covariance, of the
published one less the room's term (the localizer's own), of the local covariance with and
without the room's term; the doubtful share and the residual ratio's quartiles, as judged
(against the noise and the tolerance's allowance) and against the noise alone
(``raw_ratio_quartiles``); and, per fix, the residual energy beyond the noise over the
allowance (``excess_over_allowance_quartiles``: about 1 where the allowance is the residual
the tolerance leaves; :func:`~echoloc_ros.core.room_tolerance.doubt_allowance` included).
"""
import argparse
import json
from dataclasses import replace

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.physics.config import UNEXPLAINED_RATIO
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.core.room_calibration import TEMPERATURE_STD_C
from echoloc_ros.core.room_tolerance import doubt_allowance, room_covariance
from echoloc_ros.offline.evaluation import CHI2_95_3DOF, CHI2_999_3DOF, evaluate_fixes
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.simulator import Scenario


class Recorder:
    """Wraps :meth:`PhysicsLocalizer.localize` and records each fix it returns."""

    def __init__(self):
        self.rows: list[dict] = []
        localize = PhysicsLocalizer.localize
        information_ratio = PhysicsLocalizer._information_ratio
        recorder = self
        self.info_ratio = 1.0

        residual_ratio = PhysicsLocalizer._residual_ratio
        allowance = PhysicsLocalizer._tolerance_allowance
        self.last = (1.0, 0.0, 0.0)

        def information(model, *args, **kwargs):
            recorder.info_ratio = information_ratio(model, *args, **kwargs)
            return recorder.info_ratio

        def judged(model, fr, tau, amp, coef, fitted=None, theta=None):
            # The ratio without the allowance, the allowance and the residual's dof, of the
            # last fit judged with a theta (the fix's final fit).
            ratio = residual_ratio(model, fr, tau, amp, coef, fitted, theta)
            if theta is not None:
                raw = residual_ratio(model, fr, tau, amp, coef, fitted)
                energy = (doubt_allowance(allowance(model, fr, theta, tau, amp, coef))
                          if model.room.tolerance_m > 0 else 0.0)
                dof = energy / (raw / ratio - 1.0) if raw > ratio else np.nan
                recorder.last = (raw, energy, dof)
            return ratio

        def recorded(localizer, *args, **kwargs):
            estimate = localize(localizer, *args, **kwargs)
            recorder.rows.append(dict(  # noqa: C408 (keyword names read as the columns)
                ratio=estimate.residual_ratio, info_ratio=recorder.info_ratio,
                raw_ratio=recorder.last[0], allowance=recorder.last[1], dof=recorder.last[2],
                confidence=estimate.confidence,
                own=estimate.covariance_m2, local=estimate.local_covariance_m2,
                estimate=estimate.position_m,
                unexplained=estimate.residual_ratio > UNEXPLAINED_RATIO))
            return estimate

        PhysicsLocalizer.localize = recorded
        PhysicsLocalizer._information_ratio = information
        PhysicsLocalizer._residual_ratio = judged


def coverage(error: np.ndarray, cov: np.ndarray) -> dict:
    """coverage_95 and outside_999 of covariances ``(n, 3, 3)`` for errors ``(n, 3)``."""
    d2 = np.einsum('ni,ni->n', error, np.linalg.solve(cov, error[..., None])[..., 0])
    return {'coverage_95': round(float(np.mean(d2 <= CHI2_95_3DOF)), 4),
            'outside_999': round(float(np.mean(d2 > CHI2_999_3DOF)), 4)}


def _excess_quartiles(saved: dict) -> list:
    """Quartiles of each fix's residual energy beyond the noise (``(raw - 1) dof``) over its
    allowance; empty without an allowance."""
    has = (saved['allowance'] > 0) & np.isfinite(saved['dof'])
    if not has.any():
        return []
    excess = (saved['raw_ratio'][has] - 1.0) * saved['dof'][has] / saved['allowance'][has]
    return np.round(np.percentile(excess, [25, 50, 75]), 3).tolist()


def main() -> None:
    """Localize, save the parts and print the summary line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--n', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--surface-offset-m', type=float, default=0.03)
    parser.add_argument('--room-tolerance-m', type=float, default=0.03)
    parser.add_argument('--air-drawn', action='store_true')
    parser.add_argument('--model-error-seed', type=int, default=1)
    parser.add_argument('--model-error-draws', type=int, default=10)
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    room = replace(load_room(args.room), tolerance_m=args.room_tolerance_m)
    error_model = ModelError(surface_offset_m=args.surface_offset_m,
                             seed=args.model_error_seed, draws=args.model_error_draws,
                             air_std_c=TEMPERATURE_STD_C if args.air_drawn else 0.0)
    recorder = Recorder()
    details: dict = {}
    result = evaluate_fixes(room, load_array('square_4sensor'), Chirp(),
                            Scenario(snr_db=args.snr_db), args.n, args.seed, details=details,
                            heading_noise_deg=args.heading_noise_deg, model_error=error_model)
    rows = recorder.rows
    truth = details['truth_m']
    if len(rows) != len(truth):
        raise RuntimeError(f'{len(rows)} fixes recorded for {len(truth)} scored')
    saved = {name: np.array([r[name] for r in rows]) for name in rows[0]}
    error = saved['estimate'] - truth
    tolerance = np.array([room_covariance(room, p) for p in saved['estimate']])
    np.savez(args.out, truth=truth, published=details['covariance_m2'], tolerance=tolerance,
             **saved)
    out = {'n': len(rows), 'median_cm': result['median_cm'],
           'gross_rate_10cm': result['gross_rate_10cm'],
           'published': coverage(error, details['covariance_m2']),
           'own': coverage(error, saved['own']),
           'local_plus_room': coverage(error, saved['local'] + tolerance),
           'local': coverage(error, saved['local']),
           'room_alone': coverage(error, tolerance + 1e-12 * np.eye(3)),
           'unexplained_rate': round(float(np.mean(saved['unexplained'])), 4),
           'confidence_0_rate': round(float(np.mean(saved['confidence'] == 0)), 4),
           'ratio_quartiles': np.round(np.percentile(saved['ratio'], [25, 50, 75]),
                                       2).tolist(),
           'info_ratio_quartiles': np.round(np.percentile(saved['info_ratio'], [25, 50, 75]),
                                            2).tolist(),
           'raw_ratio_quartiles': np.round(np.percentile(saved['raw_ratio'], [25, 50, 75]),
                                           2).tolist(),
           # The residual energy beyond the noise over the allowance: about 1 where the
           # allowance is the residual the tolerance leaves.
           'excess_over_allowance_quartiles': _excess_quartiles(saved)}
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
