"""The receivers' phase centres calibrated in an evaluation: at known poses, or as a user
without them calibrates (``echoloc calibrate-receivers``): from the localizer's own fixes."""

import numpy as np

from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.receiver_calibration import (calibrated_from_fixes, calibrated_localizer,
                                                   equalised_with, localized)
from echoloc_ros.sim.simulator import EchoSimulator, Scenario


def calibrated_receivers(localizer: PhysicsLocalizer, processor: EchoProcessor,
                         simulator: EchoSimulator, scenario: Scenario, origin_m: np.ndarray,
                         n_frames: int, seed, from_fixes: tuple | None = None,
                         report: list | None = None,
                         tilt_rad: tuple[float, float] | None = None) -> PhysicsLocalizer:
    """``localizer`` (of the array file) with its receivers calibrated on ``n_frames`` frames
    at random poses of ``simulator``'s world (its origin at ``origin_m`` in the file's frame).

    :param seed: of the frames (never the scored ones').
    :param from_fixes: ``None``: at the true poses; ``(heading_noise_rad, yaw_std_rad,
        passes)``: at the localizer's own fixes of the frames, the heading given with that
        error (:func:`~echoloc_ros.core.receiver_calibration.calibrated_from_fixes`).
    :param report: if a list, receives per call the offsets' rms error against the drawn
        receivers, mm (their common shift, which the phases cannot see, removed; and again
        less the best rotation about the array's z axis, which a heading the echoes refine
        takes up), the file's, the offsets' stated std (rms), the drawn common shift and its
        stated std, mm, the echoes used and the passes.
    :param tilt_rad: the array's roll and pitch the calibration is told (an IMU's), rad;
        ``None``: level.
    """
    from echoloc_ros.offline.evaluation import random_frames
    noise = 0.0 if from_fixes is None else from_fixes[0]
    drawn = random_frames(simulator, scenario, n_frames, seed)
    told = () if tilt_rad is None else (tilt_rad,)
    frames = [(processor.process(frame), position + origin_m, yaw + noise * draw, *told)
              for _, frame, position, yaw, draw, _ in drawn]
    passes = []
    if from_fixes is None:
        calibrated, result = calibrated_localizer(localizer, frames)
    else:
        calibrated, result, passes = calibrated_from_fixes(
            localizer, localized(localizer, frames, from_fixes[1]), from_fixes[2],
            from_fixes[1])
    equalised_with(processor, calibrated.array)
    if report is not None and scenario.hardware is not None:
        truth = scenario.hardware.receivers_m - localizer.array.receivers_m
        error = result.offsets_m - (truth - truth.mean(axis=0))
        arm = localizer.array.receivers_m - localizer.array.receivers_m.mean(axis=0)
        turn = np.stack([-arm[:, 1], arm[:, 0], np.zeros(len(arm))], axis=1)
        turned = error - np.sum(turn * error) / np.sum(turn ** 2) * turn
        report.append({'rms_error_mm': _rms_mm(error), 'rms_error_but_yaw_mm': _rms_mm(turned),
                       'file_rms_error_mm': _rms_mm(truth - truth.mean(axis=0)),
                       'std_mm': _rms_mm(result.std_m),
                       'common_error_mm': np.round(1e3 * truth.mean(axis=0), 4).tolist(),
                       'common_std_mm': np.round(1e3 * calibrated.array.common_std_m,
                                                 4).tolist(),
                       'echoes': result.n_echoes, 'passes': passes})
    return calibrated


def _rms_mm(offsets_m: np.ndarray) -> float:
    return round(1e3 * float(np.sqrt(np.mean(offsets_m ** 2))), 4)
