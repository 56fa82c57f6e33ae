"""Which part of the published covariance covers the fixes of a calibrated room: run ``echoloc
evaluate --calibrate-room-s`` as given and keep, per scored frame and room (the stale file,
the calibrated room, the true room), the error and the published covariance with its room
terms apart: each surface's tolerance (:func:`tolerance_covariance`) and the scale's doubt
(:func:`scale_covariance`); the rest is the localizer's own (issue 18).

    python scripts/calibrated-coverage-study.py EVALUATE-OPTIONS... [--out FILE.npz]

e.g. the options of the realistic mix calibrated on dev: ``--heading-noise-deg 1 --n 100
--surface-offset-m 0.01 --room-tolerance-m 0.01 --tilt-deg 0.25 --estimate-tilt
--receiver-offset-m 0.00025 --resonance-spread-hz 200 --calibrate-frames 100
--calibrate-receivers 50 --receiver-passes 2 --calibrate-room-s 10 --air-drawn
--model-error-seed 1 --model-error-draws 10 --calibrate-room-ruler both``.

Prints evaluate's JSON line, then one of its own: per room and covariance (``published``,
``less_scale``, ``less_tolerance``, ``own``: the published less both room terms),
coverage_95, outside_999 and the squared Mahalanobis distance's mean and median (3 and 2.37
where the covariance is the error's), and per world the calibrated room's. Then
``surfaces``: per world of the calibrated room, its surfaces' errors against the drawn room
split into the room's scale (its error ``kept_scale_pct`` against the doubt it stated,
``kept_z``) and what is left per surface (``left_mm``, against ``stated_mm``, each surface's
stated standard deviation, and ``floor_mm``, the array's share of it the calibration adds,
:data:`~echoloc_ros.core.room_calibration.CALIBRATED_ARRAY_STD_M`); and ``floors``: the
calibrated room's coverage with that share set to each of ``--floors`` mm instead (the
tolerance term recomputed from the surfaces' doubts so changed; the fixes and every other
term as published).
"""
import json
import sys
from dataclasses import replace

import numpy as np

from echoloc_ros.cli import main as echoloc
from echoloc_ros.core.geometry import room_planes
from echoloc_ros.core.pipeline import Pipeline
from echoloc_ros.core.room_calibration import CALIBRATED_ARRAY_STD_M
from echoloc_ros.core.room_tolerance import scale_covariance, tolerance_covariance
from echoloc_ros.offline import room_calibration
from echoloc_ros.offline.evaluation import CHI2_95_3DOF, CHI2_999_3DOF

# The rooms of room_calibration._compared_columns, in the order it localizes each frame.
KEYS = ('stale', 'calibrated', 'perfect')
# The array's share of each heard surface's doubt tried instead of the calibration's, mm.
FLOORS_MM = (0.3, 0.2, 0.15, 0.1, 0.05, 0.0)


def refloored(room, floor_m: float):
    """``room`` with each heard surface's stated doubt's array share
    (:data:`CALIBRATED_ARRAY_STD_M`) replaced by ``floor_m`` (a surface not heard, which keeps
    the file's doubt, unchanged)."""
    std = room.surface_std_m
    if std is None:
        return room
    # A surface not heard states the file's tolerance over sqrt(3): 5.8 mm for the mix's 1 cm.
    heard = std < 0.004
    own = np.sqrt(np.maximum(std ** 2 - CALIBRATED_ARRAY_STD_M ** 2, 0.0))
    return replace(room, surface_std_m=np.where(heard, np.hypot(own, floor_m), std))


class Recorder:
    """Wraps :meth:`Pipeline.step`, ``_world`` and ``holds_truth_95`` of the room calibration's
    evaluation: each scored fix's world, room, error, covariance and room terms."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.world = -1
        self.last = None
        # Per world: the room file, and the figures its _world returned.
        self.worlds: list[tuple] = []
        step, world = Pipeline.step, room_calibration._world
        holds = room_calibration.holds_truth_95
        recorder = self

        def recorded_step(pipeline, *args, **kwargs):
            out = step(pipeline, *args, **kwargs)
            recorder.last = (pipeline.room, out.fix.estimate.position_m)
            return out

        def recorded_world(*args, **kwargs):
            recorder.world += 1
            columns, out = world(*args, **kwargs)
            recorder.worlds.append((args[0], out))
            return columns, out

        def recorded_holds(error_m, covariance_m2):
            room, position = recorder.last
            key = KEYS[sum(1 for r in recorder.rows if r[0] == recorder.world) % len(KEYS)]
            recorder.rows.append((recorder.world, key, np.array(error_m),
                                  np.array(covariance_m2), tolerance_covariance(room, position),
                                  scale_covariance(room, position),
                                  np.array([tolerance_covariance(refloored(room, 1e-3 * f),
                                                                 position)
                                            for f in FLOORS_MM])))
            return holds(error_m, covariance_m2)

        Pipeline.step = recorded_step
        room_calibration._world = recorded_world
        room_calibration.holds_truth_95 = recorded_holds


def summary(error: np.ndarray, covariance: np.ndarray) -> dict:
    """coverage_95, outside_999 and the squared Mahalanobis distance's mean and median of
    errors ``(n, 3)`` under covariances ``(n, 3, 3)``."""
    d2 = np.einsum('ni,ni->n', error, np.linalg.solve(covariance, error[..., None])[..., 0])
    return {'coverage_95': round(float(np.mean(d2 <= CHI2_95_3DOF)), 4),
            'outside_999': round(float(np.mean(d2 > CHI2_999_3DOF)), 4),
            'd2_mean': round(float(np.mean(d2)), 3), 'd2_median': round(float(np.median(d2)), 3)}


def surfaces(room, out: dict) -> dict:
    """One world's calibrated surfaces against the drawn room: the scale kept (its error,
    % and in the doubt stated) and the errors left per surface, mm, with the doubt stated."""
    planes = room_planes(room)
    centre = np.append(room.vertices_m.mean(axis=0), 0.5 * room.height_m)
    mode = np.array([p.normal @ centre - p.offset for p in planes])
    names = room.surface_names
    error = 1e-3 * np.array([out['surface_error_mm'][n] for n in names])
    scale = float(mode @ error / (mode @ mode))
    calibration = out['calibration']
    stated = np.array([calibration['surface_std_mm'][n] for n in names])
    scale_std = calibration['scale_std_pct'] / 100.0
    return {'kept_scale_pct': round(100.0 * scale, 4),
            'kept_z': round(scale / scale_std, 2) if scale_std > 0 else None,
            'left_mm': np.round(1e3 * (error - scale * mode), 3).tolist(),
            'stated_mm': stated.tolist(), 'floor_mm': 1e3 * CALIBRATED_ARRAY_STD_M}


def main() -> None:
    """Run the evaluation, print its line and the covariance's parts."""
    args = sys.argv[1:]
    out = None
    if '--out' in args:
        k = args.index('--out')
        out, args = args[k + 1], args[:k] + args[k + 2:]
    recorder = Recorder()
    code = echoloc(['evaluate', *args])
    if code:
        raise SystemExit(code)
    world, key, error, cov, tol, scale, floors = (np.array(c) for c in zip(*recorder.rows))
    parts = {'published': cov, 'less_scale': cov - scale, 'less_tolerance': cov - tol,
             'own': cov - tol - scale}
    report = {name: {part: summary(error[key == name], c[key == name])
                     for part, c in parts.items()} for name in KEYS}
    mine = key == 'calibrated'
    report['worlds'] = [{part: summary(error[mine & (world == j)], c[mine & (world == j)])
                         ['d2_median'] for part, c in parts.items()}
                        for j in range(world.max() + 1)]
    report['surfaces'] = [surfaces(room, out) for room, out in recorder.worlds]
    report['floors'] = {str(f): summary(error[mine], (cov - tol + floors[:, k])[mine])
                        for k, f in enumerate(FLOORS_MM)}
    print(json.dumps(report), flush=True)
    if out:
        np.savez(out, world=world, key=key, error=error, covariance=cov, tolerance=tol,
                 scale=scale, floors=floors)


if __name__ == '__main__':
    main()
