"""Measure on simulated frames: evaluate, ambiguity, simulate, snapshot."""
import argparse
import json
import math
import os
from pathlib import Path

from echoloc_ros.cli.common import (add_model_error_args, add_scenario_args,
                                    model_error_from_args, scenario_from_args)


def _loaded(load, name: str, field: str, value):
    """``load(name)`` (a room or array file) with ``field`` set to ``value`` from an option
    (``None``: as the file has it); a file that is missing or that its own checks refuse, or a
    value they refuse, ends the command with their message (no traceback)."""
    from dataclasses import replace
    try:
        loaded = load(name)
        return loaded if value is None else replace(loaded, **{field: value})
    except (OSError, ValueError) as err:
        raise SystemExit(f'echoloc evaluate: {err}') from None


def _room(args):
    """The room file of the arguments, with ``--room-tolerance-m`` as its tolerance."""
    from echoloc_ros.core.room import load_room
    return _loaded(load_room, args.room, 'tolerance_m', args.room_tolerance_m)


def _array(args):
    """The array file of the arguments, with ``--array-std-m`` as its receivers' doubt."""
    from echoloc_ros.core.array_geometry import load_array
    return _loaded(load_array, args.array, 'position_std_m', args.array_std_m)


def cmd_evaluate(args) -> int:
    if args.thermometer_std_c is not None and args.calibrate_room_s is None:
        raise SystemExit('echoloc evaluate: --thermometer-std-c needs --calibrate-room-s (a '
                         'room the reading sets the scale of); got --thermometer-std-c '
                         f'{args.thermometer_std_c} without it')
    args.air_std_c = _air_std_c(args)
    if args.rooms is not None:
        return _evaluate_rooms(args)
    if args.tracked_lap_s is not None:
        raise SystemExit('echoloc evaluate: --tracked-lap-s applies to --rooms random:N '
                         f'(--room {args.room} drives its own path; use --tracked-frames)')
    return _evaluate_room(args)


def _evaluate_room(args) -> int:
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.offline.evaluation import evaluate_fixes, evaluate_tracked, rounded
    room, array = _room(args), _array(args)
    scenario = scenario_from_args(args)
    if args.furniture_known and not (args.furniture_shift_m > 0 and room.furniture):
        raise SystemExit(f'echoloc evaluate: --furniture-known needs --furniture-shift-m > 0 '
                         f'and a room with furniture; got --furniture-shift-m '
                         f'{args.furniture_shift_m} in room {room.name!r} '
                         f'({len(room.furniture)} boxes)')
    methods = ('physics', 'nn') if args.method == 'both' else (args.method,)
    if args.no_wide_search and 'nn' not in methods:
        raise SystemExit('echoloc evaluate: --no-wide-search applies to --method nn or both '
                         f'(the network\'s wide search); got --method {args.method}')
    if args.survey_s is not None:
        return _evaluate_survey(args, room, array, methods)
    if args.calibrate_room_s is not None:
        return _evaluate_room_calibration(args, room, array)
    drawn = {'model_error_draws': args.model_error_draws, 'imu_tilt': args.imu_tilt,
             'estimate_tilt': args.estimate_tilt, 'receiver_passes': args.receiver_passes}
    scenario_json = {'snr_db': args.snr_db, 'temperature_c': args.temperature_c,
                     'gain_mismatch_db': args.gain_mismatch_db, 'dead_channel': args.dead_channel,
                     'clutter': args.clutter, 'furniture_shift_m': args.furniture_shift_m,
                     'furniture_known': args.furniture_known,
                     'heading_noise_deg': args.heading_noise_deg, 'seed': args.seed,
                     'model_error': _model_error_json(args),
                     'model_error_seed': args.model_error_seed, 'max_order': args.max_order,
                     'room_tolerance_m': room.tolerance_m, 'array_std_m': args.array_std_m,
                     'calibrate_frames': args.calibrate_frames,
                     'calibrate_receivers': args.calibrate_receivers,
                     'withhold_doubted': args.withhold_doubted, **drawn}
    if args.no_wide_search:
        scenario_json['wide_search'] = False
    for method in methods:
        frames, tracked = {}, {}
        common = {'optimization_level': args.level,
                  'heading_noise_deg': args.heading_noise_deg, 'method': method,
                  'model_path': args.model, 'furniture_shift_m': args.furniture_shift_m,
                  'furniture_known': args.furniture_known,
                  'wide_search': not args.no_wide_search}
        try:
            result = evaluate_fixes(room, array, Chirp(), scenario, args.n, args.seed,
                                    details=frames, model_error=model_error_from_args(args),
                                    max_order=args.max_order,
                                    calibration_frames=args.calibrate_frames,
                                    receiver_frames=args.calibrate_receivers,
                                    receiver_passes=args.receiver_passes,
                                    attitude=_attitude(args),
                                    withhold_doubted=args.withhold_doubted, **common)
            untracked = (scenario_json['model_error'] or args.max_order != 2
                         or args.calibrate_frames or args.calibrate_receivers)
            if untracked and args.tracked_frames:
                raise SystemExit('echoloc evaluate: the model-error knobs, --max-order and '
                                 '--calibrate-frames apply to independent frames only; pass '
                                 f'--tracked-frames 0 (got {args.tracked_frames})')
            if args.tracked_frames != 0 and not untracked:
                track = evaluate_tracked(room, array, Chirp(), scenario, args.tracked_frames,
                                         args.seed, details=tracked,
                                         live_survey_s=args.live_survey_s,
                                         track_search=args.track_search == 'on', **common)
                result.update({k: v for k, v in track.items() if k.startswith('tracked_')
                               or k.startswith('live_survey_') or k == 'rejected_rate'})
        except ValueError as err:
            raise SystemExit(f'echoloc evaluate --method {method}: {err}') from None
        if args.air_std_c:  # its truth would be the nominal air's, not each world's
            result.pop('speed_error_mps_median', None)
        result['all_fixes'] = rounded(result.get('all_fixes', {}))
        out = {'method': method, 'room': room.name, 'level': args.level,
               'scenario': scenario_json, **rounded(result)}
        if args.plot:
            from echoloc_ros.offline.plots import evaluation_png
            plot = args.plot if len(methods) == 1 else args.plot.with_name(
                f'{args.plot.stem}_{method}{args.plot.suffix}')
            out['plot'] = str(evaluation_png(
                room, frames, tracked or None, plot,
                f'{method} in {room.name}: {args.snr_db:g} dB SNR, heading noise '
                f'{args.heading_noise_deg:g} deg, median {result["median_cm"]:.2f} cm, p95 '
                f'{result["p95_cm"]:.2f} cm, gross {100 * result["gross_rate_10cm"]:.1f} %'))
        print(json.dumps(out), flush=True)
    return 0


def _evaluate_rooms(args) -> int:
    import sys
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.offline.room_evaluation import (evaluate_rooms, evaluate_rooms_tracked,
                                                     parse_rooms)
    from echoloc_ros.sim.room_generator import generate_rooms
    methods = ('physics', 'nn') if args.method == 'both' else (args.method,)
    if args.tracked_frames or args.furniture_shift_m:
        raise SystemExit('echoloc evaluate --rooms: no --tracked-frames (--tracked-lap-s '
                         'drives one tracked lap per room) and no --furniture-shift-m; got '
                         f'--tracked-frames {args.tracked_frames}, '
                         f'--furniture-shift-m {args.furniture_shift_m}')
    if args.model is None and 'nn' in methods:
        # One network for every room: the shipped room-independent one.
        from echoloc_ros.core.paths import GENERAL_MODEL, default_model_path
        args.model = default_model_path(GENERAL_MODEL)
    try:
        rooms = generate_rooms(args.split, parse_rooms(args.rooms), args.seed)
    except ValueError as err:
        raise SystemExit(f'echoloc evaluate: {err}') from None
    array = load_array(args.array)

    def progress(i, room, result):
        print(f'[{i + 1}/{len(rooms)}] {room.name}: gross {result.get("gross_rate_10cm")}, '
              f'outside_999 {result.get("outside_999")}', file=sys.stderr, flush=True)

    for method in methods:
        common = {'heading_noise_deg': args.heading_noise_deg, 'optimization_level': args.level,
                  'method': method, 'model_path': args.model, 'progress': progress}
        try:
            if args.tracked_lap_s is not None:
                result = evaluate_rooms_tracked(rooms, array, Chirp(), scenario_from_args(args),
                                                args.tracked_lap_s, args.seed,
                                                track_search=args.track_search == 'on',
                                                **common)
            else:
                result = evaluate_rooms(rooms, array, Chirp(), scenario_from_args(args), args.n,
                                        args.seed, model_error=model_error_from_args(args),
                                        max_order=args.max_order,
                                        withhold_doubted=args.withhold_doubted, **common)
        except ValueError as err:
            raise SystemExit(f'echoloc evaluate --rooms: {err}') from None
        scenario = {'snr_db': args.snr_db, 'heading_noise_deg': args.heading_noise_deg,
                    'seed': args.seed}
        scenario.update({'n': args.n, 'max_order': args.max_order,
                         'withhold_doubted': args.withhold_doubted}
                        if args.tracked_lap_s is None else {'tracked_lap_s': args.tracked_lap_s,
                                                            'track_search': args.track_search})
        print(json.dumps({'method': method, 'rooms': args.rooms, 'split': args.split,
                          'level': args.level, 'scenario': scenario, **result}), flush=True)
    return 0


def _max_order(text: str) -> int | str:
    """``--max-order``: an order >= 1, or ``all`` (every order in the window)."""
    if text == 'all':
        return text
    try:
        order = int(text)
    except ValueError:
        order = 0
    if order < 1:
        raise argparse.ArgumentTypeError(f'expected an order >= 1 or all, got {text!r}')
    return order


def _attitude(args) -> str:
    """What the localizer is told of the array's roll and pitch."""
    if args.imu_tilt and args.estimate_tilt:
        raise SystemExit('echoloc evaluate: --imu-tilt and --estimate-tilt exclude each other '
                         '(an IMU that reports the tilt leaves nothing to estimate)')
    return 'imu' if args.imu_tilt else 'estimate' if args.estimate_tilt else 'level'


def _model_error_json(args) -> dict:
    """The model-error options set, for the JSON's scenario (the draws and seed apart)."""
    return {k: v for k, v in vars(model_error_from_args(args)).items()
            if v and k not in ('seed', 'draws')}


def _air_std_c(args) -> float:
    """``--air-drawn``: the std each world's air is drawn with about the temperature told
    (``--calibrate-room-temperature-std-c``, default the room file's 1 degC), degC; else 0."""
    from echoloc_ros.core.room_calibration import TEMPERATURE_STD_C
    from echoloc_ros.core.thermometer import MIN_STD_C
    if args.thermometer_std_c is not None:
        if not (math.isfinite(args.thermometer_std_c) and args.thermometer_std_c >= 0):
            raise SystemExit('echoloc evaluate --thermometer-std-c: expected a finite number '
                             f'>= 0 degC, got {args.thermometer_std_c}')
        if args.calibrate_room_temperature_std_c is None:
            args.calibrate_room_temperature_std_c = max(args.thermometer_std_c, MIN_STD_C)
    if args.calibrate_room_temperature_std_c is None:
        args.calibrate_room_temperature_std_c = TEMPERATURE_STD_C
    if not args.air_drawn:
        return 0.0
    if args.temperature_c is not None or args.thermometer_std_c is not None:
        raise SystemExit('echoloc evaluate --air-drawn: the air is drawn about the room file\'s '
                         'temperature, which the localizer is told; --temperature-c '
                         f'{args.temperature_c} and --thermometer-std-c '
                         f'{args.thermometer_std_c} (a reading already drawn per world) '
                         'exclude it')
    return args.calibrate_room_temperature_std_c


def _evaluate_room_calibration(args, room, array) -> int:
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.offline.evaluation import rounded
    from echoloc_ros.offline.room_calibration import evaluate_room_calibration
    if args.method != 'physics' or args.surface_offset_m <= 0:
        raise SystemExit('echoloc evaluate --calibrate-room-s: needs --method physics and '
                         f'--surface-offset-m > 0; got --method {args.method}, '
                         f'--surface-offset-m {args.surface_offset_m}')
    try:
        result = evaluate_room_calibration(
            room, array, Chirp(), args.snr_db, model_error_from_args(args),
            args.calibrate_room_s, args.n, args.seed, args.heading_noise_deg,
            temperature_c=args.temperature_c, calibration_frames=args.calibrate_frames,
            estimate_tilt=args.estimate_tilt, receiver_frames=args.calibrate_receivers,
            temperature_std_c=args.calibrate_room_temperature_std_c,
            receiver_passes=args.receiver_passes, thermometer_std_c=args.thermometer_std_c,
            ruler=args.calibrate_room_ruler)
    except ValueError as err:
        raise SystemExit(f'echoloc evaluate --calibrate-room-s: {err}') from None
    told_c = result.pop('thermometer_c', None)
    print(json.dumps({'method': 'physics', 'room': room.name,
                      'scenario': {'snr_db': args.snr_db, 'seed': args.seed,
                                   'surface_offset_m': args.surface_offset_m,
                                   'model_error_seed': args.model_error_seed,
                                   'room_tolerance_m': room.tolerance_m,
                                   'array_std_m': args.array_std_m,
                                   'heading_noise_deg': args.heading_noise_deg,
                                   'calibrate_room_s': args.calibrate_room_s,
                                   'calibrate_room_temperature_std_c':
                                       args.calibrate_room_temperature_std_c,
                                   'calibrate_room_ruler': args.calibrate_room_ruler,
                                   'temperature_c': args.temperature_c,
                                   'thermometer_std_c': args.thermometer_std_c,
                                   'thermometer_c': None if told_c is None
                                   else round(told_c, 3),
                                   'model_error': _model_error_json(args),
                                   'calibrate_frames': args.calibrate_frames,
                                   'calibrate_receivers': args.calibrate_receivers,
                                   'receiver_passes': args.receiver_passes,
                                   'estimate_tilt': args.estimate_tilt,
                                   'model_error_draws': args.model_error_draws},
                      **rounded(result)}), flush=True)
    return 0


def _evaluate_survey(args, room, array, methods) -> int:
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.offline.evaluation import rounded
    from echoloc_ros.offline.survey_evaluation import evaluate_survey
    for method in methods:
        try:
            result = evaluate_survey(room, array, Chirp(), args.snr_db, args.layouts,
                                     args.survey_s, args.n, args.seed,
                                     furniture_shift_m=args.furniture_shift_m,
                                     heading_noise_deg=args.heading_noise_deg, method=method,
                                     model_path=args.model, live_survey_s=args.live_survey_s)
        except ValueError as err:
            raise SystemExit(f'echoloc evaluate --survey-s: {err}') from None
        print(json.dumps({'method': method, 'room': room.name,
                          'survey': {'layouts': args.layouts, 'survey_s': args.survey_s,
                                     'snr_db': args.snr_db,
                                     'furniture_shift_m': args.furniture_shift_m,
                                     'heading_noise_deg': args.heading_noise_deg,
                                     'live_survey_s': args.live_survey_s,
                                     'seed': args.seed},
                          **rounded(result)}), flush=True)
    return 0


def cmd_ambiguity(args) -> int:
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.offline.ambiguity import ambiguity_bound
    from echoloc_ros.offline.evaluation import rounded
    from echoloc_ros.core.room import load_room
    room, array = load_room(args.room), load_array(args.array)
    try:
        result = ambiguity_bound(room, array, Chirp(), args.snr_db, args.n, args.seed,
                                 args.furniture_shift_m, tuple(args.shifts_m))
    except ValueError as err:
        raise SystemExit(f'echoloc ambiguity: {err}') from None
    out = {'room': room.name, 'snr_db': args.snr_db, 'furniture_shift_m': args.furniture_shift_m,
           'seed': args.seed, 'shifts_m': args.shifts_m,
           **rounded(result)}
    print(json.dumps(out), flush=True)
    return 0


def cmd_simulate(args) -> int:
    import time as _time
    from echoloc_ros.offline import dataset
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.room import load_room
    spec = dataset.DatasetSpec(load_room(args.room), load_array(args.array), Chirp(),
                               scenario_from_args(args, load_array(args.array)), args.n,
                               args.seed,
                               chunk_size=args.chunk_size)
    start = _time.perf_counter()
    dataset.generate(spec, args.out, workers=args.workers)
    elapsed = _time.perf_counter() - start
    print(json.dumps({'out': str(args.out), 'n_frames': args.n, 'seconds': round(elapsed, 2),
                      'frames_per_s': round(args.n / elapsed, 1)}), flush=True)
    return 0


def cmd_snapshot(args) -> int:
    """One simulated frame through processor and localizer, drawn as rviz would show it."""
    import numpy as np
    from builtin_interfaces.msg import Time
    from echoloc_ros.ros import markers
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.echo_processing import EchoProcessor
    from echoloc_ros.core.physics.localizer import PhysicsLocalizer
    from echoloc_ros.core.room import load_room
    from echoloc_ros.sim.simulator import EchoSimulator
    from echoloc_ros.offline.render import render_markers_png
    room, array, chirp = load_room(args.room), load_array(args.array), Chirp()
    position, yaw = np.array(args.position), args.yaw
    samples = EchoSimulator(room, array, chirp).simulate(position, yaw,
                                                         rng=np.random.default_rng(args.seed))
    features = EchoProcessor(chirp, 250e3, array=array).process(samples)
    estimate = PhysicsLocalizer(room, array, chirp).localize(features, yaw, room.temperature_c)
    _, receivers = array.to_world(estimate.position_m, yaw)
    stamp = Time()
    shown = markers.room_markers(room, 'map', stamp) + markers.estimate_markers(
        estimate.position_m, yaw, estimate.covariance_m2 * args.ellipse_scale ** 2, receivers,
        room.reflection_points_m(estimate.position_m), 'map', stamp)
    error_cm = 100 * np.linalg.norm(estimate.position_m - position)
    sigma_mm = 1e3 * np.sqrt(np.diag(estimate.covariance_m2))
    render_markers_png(shown, args.out, title=(
        f'{room.name}: estimate {error_cm:.2f} cm from truth; 95 % ellipsoid drawn '
        f'{args.ellipse_scale:g}x (sigma {sigma_mm[0]:.1f}, {sigma_mm[1]:.1f}, '
        f'{sigma_mm[2]:.1f} mm)'))
    print(json.dumps({'out': str(args.out), 'error_cm': round(float(error_cm), 3)}))
    return 0


def add_parsers(sub) -> None:
    """The subcommands evaluate, ambiguity, simulate and snapshot."""
    _add_evaluate_parser(sub)
    _add_ambiguity_parser(sub)
    _add_simulate_parser(sub)
    _add_snapshot_parser(sub)


def _add_evaluate_parser(sub) -> None:
    p = sub.add_parser('evaluate', help='accuracy and calibration on simulated poses (JSON, '
                       'PNG)')
    p.add_argument('--method', choices=('physics', 'nn', 'both'), default='physics',
                   help='localizer; both: physics then nn on the same frames')
    p.add_argument('--model', type=Path,
                   help='nn checkpoint (default: models/ROOM.pt; --rooms: models/general.pt)')
    p.add_argument('--furniture-shift-m', type=float, default=0.0,
                   help='furniture stands moved by up to this on each axis from where the '
                   'room file has it [m]')
    p.add_argument('--furniture-known', action='store_true',
                   help='with --furniture-shift-m: the localizer is told where the furniture '
                   'now stands (the room file brought up to date; the nn model is the one '
                   'trained before)')
    p.add_argument('--survey-s', type=float, default=None,
                   help='with --furniture-shift-m: per layout, drive the tracked path this '
                   'long with the stale room file, survey the furniture from the tracked '
                   'poses (echoloc survey), then localize --n frames in all with the stale, '
                   'the surveyed and the true room file [s]')
    p.add_argument('--layouts', type=int, default=10,
                   help='with --survey-s: furniture layouts, each surveyed once')
    p.add_argument('--live-survey-s', type=float, default=None,
                   help='along the tracked path, keep the room file up to date as the '
                   'localizer node\'s live_survey does, placing the boxes every this many '
                   'seconds (a room with furniture) [s]')
    p.add_argument('--room', default='default_room')
    p.add_argument('--rooms', metavar='random:N',
                   help='instead of --room: N generated rooms of --split (drawn with --seed), '
                   '--n frames in all, pooled and per room (with --tracked-frames 0)')
    p.add_argument('--tracked-lap-s', type=float,
                   help='with --rooms: instead of independent frames, one tracked lap per room '
                   'of a figure-of-eight fitted inside its plan, 0.6 m off the walls and 0.2 m '
                   'off the boxes, lapping in at most this long at 0.3 m/s [s]')
    p.add_argument('--track-search', choices=('on', 'off'), default='on',
                   help='tracked frames: a local fix from the track\'s prediction where it '
                   'stands in for the full search, as the localizer node does by default '
                   '(track_search); off: the full search every frame')
    p.add_argument('--split', choices=('dev', 'heldout'), default='dev',
                   help='with --rooms: the generated rooms to tune on (dev) or to report on')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--n', type=int, default=200, help='random poses, one frame each')
    p.add_argument('--tracked-frames', type=int, default=None,
                   help='frames along the trajectory, tracked (default: one lap of it, about '
                        '1 min; 0: skip)')
    p.add_argument('--level', choices=('fast', 'balanced', 'accurate'), default='balanced',
                   help='optimization level of the localizer')
    p.add_argument('--heading-noise-deg', type=float, default=0.0,
                   help='std of the heading error given to the localizer [deg]')
    p.add_argument('--plot', type=Path, help='write the figures to this PNG')
    _add_doubt_args(p)
    p.add_argument('--max-order', type=_max_order, default=2,
                   help='highest reflection order simulated (all: every one in the window)')
    p.add_argument('--calibrate-frames', type=int, default=0,
                   help='frames the processor calibrates the array on before the scored ones '
                        '(0: the array file\'s model)')
    p.add_argument('--calibrate-receivers', type=int, default=0,
                   help='frames at known poses the receivers\' phase centres are calibrated '
                        'on, per array drawn, before the scored ones (physics; 0: the array '
                        'file\'s positions)')
    p.add_argument('--receiver-passes', type=int, default=0, help='calibrate the receivers at '
                   'the localizer\'s own fixes in this many passes (with --calibrate-room-s: '
                   'in the calibrated room, then the room again); 0: at the true poses')
    p.add_argument('--model-error-draws', type=int, default=1,
                   help='spread the frames over this many arrays and rooms drawn from the '
                        'model-error options (seeds --model-error-seed on)')
    _add_room_calibration_args(p)
    p.add_argument('--imu-tilt', action='store_true',
                   help='the localizer is told the array\'s drawn roll and pitch (--tilt-deg), '
                        'as the IMU\'s orientation on /imu/data gives them')
    p.add_argument('--estimate-tilt', action='store_true',
                   help='the localizer estimates the array\'s roll and pitch from each frame\'s '
                        'floor and ceiling echoes (no IMU reports them)')
    p.add_argument('--no-wide-search', action='store_true',
                   help='nn: do not search again, widely, the frames the network doubts')
    _add_withhold_arg(p)
    add_scenario_args(p)
    p.set_defaults(func=cmd_evaluate)


def _add_withhold_arg(p) -> None:
    from echoloc_ros.core.withhold import WITHHOLD_DOUBTED
    p.add_argument('--withhold-doubted', action=argparse.BooleanOptionalAction,
                   default=WITHHOLD_DOUBTED,
                   help='the independent frames\' fixes the localizer cannot tell from a rival '
                        'are withheld, as the localizer node with tracking false withholds '
                        'them (its parameter withhold_doubted, whose default this follows): '
                        'the figures are of the published fixes, withheld_rate counts the '
                        'others and all_fixes scores every fix (tracked poses are not '
                        'affected)')


def _add_doubt_args(p) -> None:
    """``evaluate``'s doubts of the files as the localizer reads them."""
    p.add_argument('--room-tolerance-m', type=float,
                   help='the room file\'s tolerance_m as the localizer reads it (default: the '
                        'file\'s)')
    p.add_argument('--array-std-m', type=float,
                   help='the array file\'s position_std_m (each receiver coordinate\'s doubt, one '
                        'standard deviation) as the localizer reads it (default: the file\'s)')


def _add_room_calibration_args(p) -> None:
    """``evaluate``'s room calibration: the drive, and what it is told of the air."""
    p.add_argument('--calibrate-room-s', type=float,
                   help='drive this long with the room file (its surfaces off by '
                        '--surface-offset-m), calibrate the room from the drive, then compare '
                        'the stale, calibrated and true rooms on --n random frames [s]')
    p.add_argument('--calibrate-room-temperature-std-c', type=float,
                   help='how well the room calibration knows the air temperature (a '
                        'thermometer: 0.2; default: 1, a room file guess; with '
                        '--thermometer-std-c: that) [degC]')
    p.add_argument('--calibrate-room-ruler', choices=('temperature', 'both', 'auto'),
                   default='auto',
                   help='the calibrated room\'s scale where the temperature told and the room '
                        'file\'s own scale agree: the one the echoes measured at the '
                        'temperature told, both, each weighed by its doubt (the file\'s: its '
                        'tolerance_m), or auto (default): both where the file\'s scale is the '
                        'better ruler (a room within +-1 cm), else the temperature\'s')
    p.add_argument('--air-drawn', action='store_true',
                   help='each world\'s true air temperature is drawn (normal, per '
                        '--model-error-draws world, seeded from --model-error-seed) about the '
                        'room file\'s, which the localizer is told, with the doubt it is told '
                        '(--calibrate-room-temperature-std-c, default 1 degC)')
    p.add_argument('--thermometer-std-c', type=float,
                   help='with --calibrate-room-s: the localizer and the room calibration are '
                        'told a thermometer\'s reading, drawn this far (one std) about the '
                        'true air temperature (--temperature-c, default the file\'s; one '
                        'reading per --model-error-draws world), not the room file\'s '
                        'temperature [degC]')


def _add_ambiguity_parser(sub) -> None:
    p = sub.add_parser('ambiguity', help='with the furniture moved since the room file: a '
                       'lower bound on any localizer\'s gross-error rate (JSON)')
    p.add_argument('--room', default='furnished_room')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--n', type=int, default=200,
                   help='random poses (the frames of evaluate with the same --seed)')
    p.add_argument('--furniture-shift-m', type=float, default=1.0,
                   help='furniture stands moved by up to this on each axis [m]')
    p.add_argument('--shifts-m', type=float, nargs='+', default=[0.2, 0.3, 0.5],
                   help='twin shifts tried, each with both signs on x and y [m, >= 0.2]')
    p.add_argument('--snr-db', type=float, default=20.0, help='echo SNR [dB]')
    p.add_argument('--seed', type=int, default=0, help='seed of poses and noise')
    p.set_defaults(func=cmd_ambiguity)


def _add_simulate_parser(sub) -> None:
    p = sub.add_parser('simulate', help='write a simulated dataset (frames, poses, scenario)')
    p.add_argument('--room', default='default_room')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--n', type=int, required=True, help='frames')
    p.add_argument('--out', type=Path, required=True, help='dataset directory (resumable)')
    p.add_argument('--chunk-size', type=int, default=256, help='frames per file')
    p.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    add_scenario_args(p)
    p.set_defaults(func=cmd_simulate)


def _add_snapshot_parser(sub) -> None:
    p = sub.add_parser('snapshot', help='draw one localized frame as rviz shows it (PNG)')
    p.add_argument('--out', type=Path, default=Path('echoloc_snapshot.png'))
    p.add_argument('--room', default='furnished_room')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--position', type=float, nargs=3, default=[2.0, 1.5, 0.3],
                   metavar=('X', 'Y', 'Z'))
    p.add_argument('--yaw', type=float, default=0.5)
    p.add_argument('--ellipse-scale', type=float, default=20.0,
                   help='draw the ellipsoid this many times larger (it is millimetres)')
    p.add_argument('--seed', type=int, default=0)
    add_model_error_args(p)
    p.set_defaults(func=cmd_snapshot)
