"""The calibrated room's scale error per world of a calibrated ``echoloc evaluate`` run, under
each ruler: the temperature told alone, the file's alone, and both weighed by their doubts
(:func:`~echoloc_ros.core.room_calibration.ruler_weight`), from the run's JSON line (its
``worlds``: the scale each calibration measured and the air each world was drawn in) and the
rooms its model-error seeds draw (issue 18).

    python scripts/ruler-study.py RUN.json [--temperature-std-c 1]

The echoes measure the drawn room's scale less the air's (``scale_pct``; the script prints
how well that holds); keeping ``w`` of it leaves the room ``w * measured - true`` off. Prints
one JSON line: per world the true, measured and kept scales (%), and the rms of each ruler's
error; and the scale each world's calibration kept (the ruler it used, ``ruler`` in its line:
the temperature's keeps all the measured scale, the file's none, both ``w = 1 - stated^2 /
file^2`` of it) against the doubt it stated (``scale_std_pct``): the errors in stated standard
deviations (``kept_z``) and the share within 1.96 of them (``kept_inside_95``).
"""
import argparse
import json
from dataclasses import replace

import numpy as np

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.room import load_room
from echoloc_ros.core.room_calibration import ruler_weight
from echoloc_ros.sim.model_error import ModelError


def true_scale(room, offset_m: float, seed: int) -> float:
    """The scale of the room drawn with ``seed`` over the file's (a shoebox; least squares over
    its three dimensions, as the calibration fits it)."""
    drawn = ModelError(surface_offset_m=offset_m, seed=seed).draw_room(room).room
    size = np.array([room.width_m, room.length_m, room.height_m])
    change = np.array([drawn.width_m, drawn.length_m, drawn.height_m]) - size
    return float(change @ size / (size @ size))


def kept_scale_errors(worlds: list[dict], truth: np.ndarray, measured: np.ndarray,
                      file_std: float) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The scale each world's calibration kept, off the drawn room's, and that error over the
    doubt it stated (fractions; ``None, None`` where a world's line lacks its ruler or doubt:
    runs before they were reported).

    :param file_std: the room file's scale's standard deviation (fraction): with it and the
        stated doubt, the share ``w`` of the measured scale that the ruler ``'both'`` kept.
    """
    if not all('ruler' in w and w.get('scale_std_pct') for w in worlds):
        return None, None
    stated = np.array([w['scale_std_pct'] / 100.0 for w in worlds])
    share = {'temperature': np.ones_like(stated), 'file': np.zeros_like(stated),
             'both': 1.0 - stated ** 2 / file_std ** 2}
    kept = np.array([share[w['ruler']][j] for j, w in enumerate(worlds)])
    error = kept * measured - truth
    return error, error / stated


def main() -> None:
    """Read the run, print the rulers' errors."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('run', help='a file whose last line is the run\'s JSON')
    parser.add_argument('--temperature-std-c', type=float, default=1.0)
    args = parser.parse_args()
    try:
        run = json.loads(open(args.run, encoding='utf-8').read().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError) as error:
        parser.error(f'{args.run}: expected the JSON line of an echoloc evaluate run with '
                     f'--calibrate-room-s, could not read it ({error})')
    scenario = run['scenario']
    tolerance_m = scenario['room_tolerance_m']
    room = replace(load_room(run['room']), tolerance_m=tolerance_m)
    size = np.array([room.width_m, room.length_m, room.height_m])
    # Each surface uniform in +-tolerance, two per axis at half the size from the centre.
    file_std = tolerance_m / np.sqrt(3.0) / np.sqrt(size @ size / 2.0)
    told_c = room.temperature_c
    air_std = 0.606 * args.temperature_std_c / speed_of_sound_mps(told_c)
    weight, fused_std = ruler_weight(file_std, air_std)
    rows = []
    for j, world in enumerate(run['worlds']):
        truth = true_scale(room, scenario['surface_offset_m'], scenario['model_error_seed'] + j)
        air = 0.606 * (world['air_c'] - told_c) / speed_of_sound_mps(told_c)
        measured = world['scale_pct'] / 100.0
        rows.append((truth, measured, truth - air))
    truth, measured, predicted = (np.array(c) for c in zip(*rows))
    kept_error, kept_z = kept_scale_errors(run['worlds'], truth, measured, file_std)
    errors = {'temperature': measured - truth, 'file': -truth, 'both': weight * measured - truth}
    kept = {} if kept_z is None else {
        'kept_error_pct': np.round(100 * kept_error, 3).tolist(),
        'kept_z': np.round(kept_z, 2).tolist(),
        'kept_error_rms_pct': round(100 * float(np.sqrt(np.mean(kept_error ** 2))), 4),
        'kept_z_rms': round(float(np.sqrt(np.mean(kept_z ** 2))), 3),
        'kept_inside_95': round(float(np.mean(np.abs(kept_z) <= 1.96)), 3)}
    print(json.dumps({
        'weight': round(weight, 4), 'file_std_pct': round(100 * file_std, 4),
        'air_std_pct': round(100 * air_std, 4), 'both_std_pct': round(100 * fused_std, 4),
        'measured_less_predicted_rms_pct': round(100 * float(np.sqrt(np.mean(
            (measured - predicted) ** 2))), 4),
        'true_pct': np.round(100 * truth, 3).tolist(),
        'measured_pct': np.round(100 * measured, 3).tolist(),
        **{f'{name}_error_pct': np.round(100 * e, 3).tolist() for name, e in errors.items()},
        **{f'{name}_error_rms_pct': round(100 * float(np.sqrt(np.mean(e ** 2))), 4)
           for name, e in errors.items()}, **kept}), flush=True)


if __name__ == '__main__':
    main()
