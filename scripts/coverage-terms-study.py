"""Which term of the published covariance is too wide or too narrow where the model is off:
run ``echoloc evaluate`` as given (plain, or ``--calibrate-room-s``: the stale file, the
calibrated room and the true room per frame) and keep, per scored fix, its error and every
term of its published covariance apart (issue 18):

- ``info``: the echoes' information over the noise the fit leaves (the fix's own);
- ``rivals``: the localizer's widening toward its rivals, weak axes and the room
  (:meth:`~echoloc_ros.core.physics.covariance.Covariance._physics_covariance`) and the
  position floor;
- ``tolerated``: the rivals the room's tolerance cannot rule out
  (:func:`~echoloc_ros.core.room_tolerance.with_tolerated_rivals`);
- ``tolerance``, ``scale``: the room file's surfaces' and scale's doubt
  (:func:`~echoloc_ros.core.room_tolerance.tolerance_covariance`, ``scale_covariance``);
- ``array``: the array file's doubt (:attr:`Estimate.array_covariance_m2`).

    python scripts/coverage-terms-study.py EVALUATE-OPTIONS... --out FILE.npz

Prints evaluate's line, then per room (``fixes`` for a plain run) coverage_95, outside_999
and the squared Mahalanobis distance's mean and median of the published covariance and of it
less each term, and each term's share of the published covariance's trace (median). Saves the
terms with each fix's position, its confidence (0: withheld by default) and its room's box
(``lo``, ``hi``, the sides' variances) so that variants of a term can be scored on the same
fixes without localizing again.
"""
import json
import sys

import numpy as np

from echoloc_ros.cli import main as echoloc
from echoloc_ros.core.physics import localizer as physics
from echoloc_ros.core.pipeline import Pipeline
from echoloc_ros.core.room_tolerance import scale_covariance, side_variances, tolerance_covariance
from echoloc_ros.offline import evaluation, room_calibration
from echoloc_ros.offline.evaluation import CHI2_95_3DOF, CHI2_999_3DOF

KEYS = ('stale', 'calibrated', 'perfect')
TERMS = ('info', 'rivals', 'tolerated', 'tolerance', 'scale', 'array')


class Recorder:
    """Wraps the localizer's :meth:`_physics_alone`, :meth:`Pipeline.step` and the
    evaluations' ``holds_truth_95``: each scored fix's terms."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.world = -1
        self.seen: list[tuple] = []
        self.last: dict = {}
        # Per calibrated world, the figures its ``_world`` returned (surfaces, calibration).
        self.worlds: list[dict] = []
        recorder = self
        alone, step = physics.PhysicsLocalizer._physics_alone, Pipeline.step
        tolerated = physics.with_tolerated_rivals

        def recorded_tolerated(covariance, *args):
            out = tolerated(covariance, *args)
            recorder.seen.append((covariance, out))
            return out

        def recorded_alone(localizer, proposal, index, theta, score, rivals, ratio, cov,
                           allowance=0.0):
            n = len(recorder.seen)
            out = alone(localizer, proposal, index, theta, score, rivals, ratio, cov, allowance)
            before, after = recorder.seen[n] if len(recorder.seen) > n else (out[0], out[0])
            recorder.seen[n:] = []
            recorder.seen.append(('alone', cov, before, after, localizer.position_floor_m))
            return out

        def recorded_step(pipeline, *args, **kwargs):
            recorder.seen = []
            out = step(pipeline, *args, **kwargs)
            estimate = out.fix.estimate
            room, position = pipeline.room, estimate.position_m
            tol, scale = tolerance_covariance(room, position), scale_covariance(room, position)
            array = (np.zeros((3, 3)) if estimate.array_covariance_m2 is None
                     else estimate.array_covariance_m2)
            own = estimate.covariance_m2 - tol - scale - array
            parts = {'info': own, 'rivals': np.zeros((3, 3)), 'tolerated': np.zeros((3, 3))}
            best = np.inf
            for _, cov, before, after, floor in (s for s in recorder.seen if s[0] == 'alone'):
                made = 0.5 * (after + after.T) + floor ** 2 * np.eye(3)
                miss = np.abs(made - own).max()
                if miss < best:
                    best = miss
                    parts = {'info': cov, 'rivals': own - cov - (after - before),
                             'tolerated': after - before}
            lo = np.append(room.vertices_m.min(axis=0), 0.0)
            hi = np.append(room.vertices_m.max(axis=0), room.height_m)
            recorder.last = dict(parts, tolerance=tol, scale=scale, array=array,
                                 published=estimate.covariance_m2, position=position,
                                 lo=lo, hi=hi, sides=side_variances(room),
                                 scale_std=room.scale_std, matched=best,
                                 confidence=estimate.confidence,
                                 ratio=estimate.residual_ratio)
            return out

        def recorded_holds(error_m, covariance_m2):
            row = dict(recorder.last, error=np.array(error_m), world=recorder.world)
            self.rows.append(row)
            return holds(error_m, covariance_m2)

        holds = evaluation.holds_truth_95
        world = room_calibration._world

        def recorded_world(*args, **kwargs):
            recorder.world += 1
            columns, out = world(*args, **kwargs)
            recorder.worlds.append(out)
            return columns, out

        physics.with_tolerated_rivals = recorded_tolerated
        physics.PhysicsLocalizer._physics_alone = recorded_alone
        Pipeline.step = recorded_step
        evaluation.holds_truth_95 = recorded_holds
        room_calibration.holds_truth_95 = recorded_holds
        room_calibration._world = recorded_world


def plain(value):
    """A JSON form of a numpy value in a world's figures."""
    return value.tolist() if hasattr(value, 'tolist') else str(value)


def d2(error: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances of errors ``(n, 3)`` under covariances ``(n, 3, 3)``."""
    return np.einsum('ni,ni->n', error, np.linalg.solve(covariance, error[..., None])[..., 0])


def summary(error: np.ndarray, covariance: np.ndarray) -> dict:
    """coverage_95, outside_999, d2 mean and median."""
    d = d2(error, covariance)
    return {'coverage_95': round(float(np.mean(d <= CHI2_95_3DOF)), 4),
            'outside_999': round(float(np.mean(d > CHI2_999_3DOF)), 4),
            'd2_mean': round(float(np.mean(d)), 3), 'd2_median': round(float(np.median(d)), 3)}


def report(columns: dict, mask: np.ndarray) -> dict:
    """The published covariance and it less each term, over the fixes ``mask``; each term's
    median share of the published trace."""
    error, published = columns['error'][mask], columns['published'][mask]
    out = {'n': int(mask.sum()), 'published': summary(error, published)}
    trace = np.trace(published, axis1=1, axis2=2)
    for term in TERMS:
        part = columns[term][mask]
        less = published - part
        # A term the published covariance needs to stay positive definite is not removable.
        ok = np.all(np.linalg.eigvalsh(0.5 * (less + np.swapaxes(less, 1, 2))) > 0, axis=1)
        out[term] = dict(summary(error[ok], less[ok]), kept=round(float(ok.mean()), 4),
                         trace_share=round(float(np.median(
                             np.trace(part, axis1=1, axis2=2) / trace)), 4))
    return out


def main() -> None:
    """Run the evaluation, print its line and the terms' report; save the columns."""
    args = sys.argv[1:]
    out = None
    if '--out' in args:
        k = args.index('--out')
        out, args = args[k + 1], args[:k] + args[k + 2:]
    recorder = Recorder()
    code = echoloc(['evaluate', *args])
    if code:
        raise SystemExit(code)
    rows = recorder.rows
    columns = {name: np.array([r[name] for r in rows]) for name in rows[0]}
    calibrated = '--calibrate-room-s' in args
    columns['key'] = np.array([KEYS[i % len(KEYS)] if calibrated else 'fixes'
                               for i in range(len(rows))])
    print(json.dumps({key: report(columns, columns['key'] == key)
                      for key in dict.fromkeys(columns['key'])}), flush=True)
    if out:
        np.savez(out, **columns, worlds=json.dumps(recorder.worlds, default=plain))


if __name__ == '__main__':
    main()
