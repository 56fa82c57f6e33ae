"""Bring the files up to date from a recording: survey (room furniture), calibrate-room (its
shell), calibrate-array (the transducers), calibrate-receivers (their phase centres)."""
import json
import math
from pathlib import Path


def cmd_survey(args) -> int:
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.room import load_room
    from echoloc_ros.core.survey import FurnitureSurvey, write_room_file
    from echoloc_ros.ros.bag import posed_frames
    if not args.bag.is_dir():
        raise SystemExit(f'echoloc survey: recording {str(args.bag)!r} is not a directory '
                         '(expected the output of echoloc record)')
    try:
        room, array = load_room(args.room), load_array(args.array)
        survey = FurnitureSurvey(room, array, Chirp(), max_shift_m=args.max_shift_m,
                                 step_m=args.step_m)
        frames, counts = posed_frames(args.bag, every=args.every,
                                      max_pose_std_m=args.max_pose_std_m,
                                      max_yaw_std_deg=args.max_yaw_std_deg)
        if not frames:
            raise ValueError(f'no frame of {args.bag} has a pose with a standard deviation '
                             f'below {args.max_pose_std_m} m and a heading within '
                             f'{args.max_yaw_std_deg} deg: {counts}')
        result = survey.run(frames, args.temperature_c)
    except ValueError as err:
        raise SystemExit(f'echoloc survey: {err}') from None
    out = write_room_file(args.room, result, args.out)
    print(json.dumps({'room': room.name, 'out': str(out), 'frames': counts,
                      **result.to_dict()}), flush=True)
    return 0


def cmd_calibrate_room(args) -> int:
    """The room's shell measured from a recording of a drive, written as a room file."""
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.physics.localizer import PhysicsLocalizer
    from echoloc_ros.core.room import load_room
    from echoloc_ros.core.room_calibration import TEMPERATURE_STD_C, RoomCalibration, room_yaml
    from echoloc_ros.ros.bag import posed_frames
    if not args.bag.is_dir():
        raise SystemExit(f'echoloc calibrate-room: recording {str(args.bag)!r} is not a '
                         'directory (expected the output of echoloc record)')
    if args.temperature_topic and args.temperature_c is not None:
        raise SystemExit('echoloc calibrate-room: --temperature-topic and --temperature-c '
                         'exclude each other (the recording\'s thermometer, or a temperature '
                         'given)')
    try:
        if args.temperature_topic:
            args.temperature_c, std_c, thermometer = recorded_temperature(
                args.bag, args.temperature_topic)
            if args.temperature_std_c is None:
                args.temperature_std_c = std_c
        room, array = load_room(args.room), load_array(args.array)
        frames, counts = posed_frames(args.bag, max_pose_std_m=args.max_pose_std_m,
                                      max_yaw_std_deg=args.max_yaw_std_deg)
        array_std = _array_std(array, args.array_std_m)
        calibration = RoomCalibration(PhysicsLocalizer(room, array, Chirp()),
                                      temperature_std_c=TEMPERATURE_STD_C
                                      if args.temperature_std_c is None
                                      else args.temperature_std_c,
                                      array_std_m=array_std['array_std_m'],
                                      ruler=args.ruler,
                                      wall_array_std_m=array_std['wall_array_std_m'])
        for features, position, yaw in frames:
            calibration.add(features, position, yaw, args.temperature_c)
        result = calibration.solve()
    except ValueError as err:
        raise SystemExit(f'echoloc calibrate-room: {err}') from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(room_yaml(args.room, result))
    print(json.dumps({'room': room.name, 'out': str(args.out), 'frames': counts,
                      **({'thermometer': thermometer} if args.temperature_topic else {}),
                      **array_std,
                      **result.to_dict()}), flush=True)
    return 0


def _array_std(array, array_std_m: float | None) -> dict:
    """What the array leaves every echo's path uncertain by, m, its share in each wall's doubt
    and where they come from: ``array_std_m`` where given (both); else :data:`~echoloc_ros.
    core.room_calibration.CALIBRATED_ARRAY_STD_M` and ``CALIBRATED_WALL_ARRAY_STD_M`` for an
    array file calibrate-receivers wrote, else :data:`~echoloc_ros.core.room_calibration.
    ARRAY_STD_M` (both)."""
    from echoloc_ros.core.receiver_calibration import receivers_calibrated
    from echoloc_ros.core.room_calibration import (ARRAY_STD_M, CALIBRATED_ARRAY_STD_M,
                                                   CALIBRATED_WALL_ARRAY_STD_M)
    if array_std_m is not None:
        return {'array_std_m': array_std_m, 'wall_array_std_m': array_std_m,
                'array_std_source': 'given'}
    if receivers_calibrated(array):
        return {'array_std_m': CALIBRATED_ARRAY_STD_M,
                'wall_array_std_m': CALIBRATED_WALL_ARRAY_STD_M,
                'array_std_source': 'receivers calibrated (the array file says so)'}
    return {'array_std_m': ARRAY_STD_M, 'wall_array_std_m': ARRAY_STD_M,
            'array_std_source': 'array file as drawn'}


def recorded_temperature(bag, topic: str) -> tuple[float, float, dict]:
    """The air's temperature over a recording from its sensor_msgs/Temperature messages on
    ``topic``: the readings' mean and its doubt, the larger of the readings' median stated
    standard deviation (floored, :func:`~echoloc_ros.core.thermometer.checked_reading`) and
    their spread over the drive (the air may change while it lasts), degC; and a summary
    (readings taken, refused, the last refusal).

    :raises ValueError: no reading on ``topic`` that could be taken (naming the topic and the
        last refusal).
    """
    import numpy as np

    from echoloc_ros.core.thermometer import checked_reading
    from echoloc_ros.ros.bag import read_messages
    readings, refused, last = [], 0, ''
    for name, log_time_ns, msg in read_messages(bag):
        if name != topic:
            continue
        try:
            readings.append(checked_reading(msg.temperature, msg.variance, 1e-9 * log_time_ns))
        except ValueError as exc:
            refused, last = refused + 1, str(exc)
    if not readings:
        raise ValueError(f'no temperature reading on {topic!r} in the recording could be '
                         f'taken ({refused} refused{": " + last if last else ""})')
    values = np.array([r.temperature_c for r in readings])
    std = max(float(np.median([r.std_c for r in readings])), float(np.std(values)))
    return float(values.mean()), std, {'topic': topic, 'readings': len(readings),
                                       'refused': refused, 'last_refused': last,
                                       'temperature_c': round(float(values.mean()), 3),
                                       'std_c': round(std, 3)}


def cmd_calibrate(args) -> int:
    """The array calibration measured from a recording's raw frames, written for the next
    start (echo_processor's ``array_calibration_file``)."""
    from echoloc_ros.ros import conversions
    from echoloc_ros.core.array_calibration import DirectPathCalibrator
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.echo_processing import EchoProcessor
    from echoloc_ros.ros.bag import read_messages
    if not args.bag.is_dir():
        raise SystemExit(f'echoloc calibrate-array: recording {str(args.bag)!r} is not a '
                         'directory (expected the output of echoloc record with '
                         '/echoloc/echoes)')
    try:
        array = load_array(args.array)
        calibrator = processor = calibration = None
        for topic, _, msg in read_messages(args.bag):
            if topic != args.topic or msg.array_id not in (array.name, ''):
                continue
            samples = conversions.echo_frame_samples(msg)
            if processor is None:
                processor = EchoProcessor(conversions.echo_frame_chirp(msg), msg.sample_rate_hz,
                                          array=array)
                calibrator = DirectPathCalibrator(processor.calibration_window,
                                                  msg.sample_rate_hz, min_frames=3,
                                                  max_frames=args.max_frames, every=1)
            calibration = calibrator.add(samples) or calibration
            if calibrator.seen >= args.max_frames:
                break
        if calibration is None or calibration.n_frames < args.min_frames:
            raise ValueError(f'{args.bag} holds {calibrator.seen if calibrator else 0} frames '
                             f'of array {array.name!r} on {args.topic}; need at least '
                             f'{args.min_frames} (--min-frames)')
        processor.set_calibration(calibration)
        fitted = {k: [float(f'{x:.6g}') for x in v] for k, v in
                  calibration.fitted_response(processor.chirp, array).items()}
    except ValueError as err:
        raise SystemExit(f'echoloc calibrate-array: {err}') from None
    out = calibration.save(args.out, {'array': array.name, 'fitted': fitted})
    print(json.dumps({'array': array.name, 'out': str(out), 'frames': calibration.n_frames,
                      'fitted': fitted}), flush=True)
    return 0


def cmd_calibrate_receivers(args) -> int:
    """The receivers' phase centres measured from a recording of the running graph (its echo
    features and the poses it published: no pose need be known), written as an array file."""
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.physics.localizer import PhysicsLocalizer
    from echoloc_ros.core.receiver_calibration import array_yaml, calibrated_from_fixes
    from echoloc_ros.core.room import load_room
    from echoloc_ros.ros.bag import posed_frames
    if not args.bag.is_dir():
        raise SystemExit(f'echoloc calibrate-receivers: recording {str(args.bag)!r} is not a '
                         'directory (expected the output of echoloc record with '
                         '/echoloc/features and /echoloc/pose)')
    try:
        room, array = load_room(args.room), load_array(args.array)
        tilts, imu = _recorded_tilts(args.bag, args.imu_topic, args.imu_tolerance_s)
        frames, counts = posed_frames(args.bag, max_pose_std_m=args.max_pose_std_m,
                                      max_yaw_std_deg=args.max_yaw_std_deg, tilts=tilts,
                                      tilt_tolerance_s=args.imu_tolerance_s)
        if not frames:
            raise ValueError(f'{args.bag} pairs no echo features with a published pose whose '
                             f'standard deviation is below {args.max_pose_std_m} m and '
                             f'{args.max_yaw_std_deg} deg (--max-pose-std-m, '
                             f'--max-yaw-std-deg){"" if tilts is None else " and a tilt"}'
                             f': {counts}')
        if tilts is not None:
            imu.update(_tilt_summary([frame[3] for frame in frames]))
        localizer = PhysicsLocalizer(room, array, Chirp(),
                                     processor=_equalising_processor(array,
                                                                     args.array_calibration))
        _, result, passes = calibrated_from_fixes(
            localizer, frames, args.passes, math.radians(args.max_yaw_std_deg),
            args.min_echoes)
    except ValueError as err:
        raise SystemExit(f'echoloc calibrate-receivers: {err}') from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(array_yaml(args.array, result))
    print(json.dumps({'array': array.name, 'room': room.name, 'out': str(args.out),
                      'frames': counts, 'imu': imu, 'passes': passes, **result.to_dict()}),
          flush=True)
    return 0


def _recorded_tilts(bag: Path, topic: str | None, tolerance_s: float):
    """The array's tilts by stamp from the recording's Imu messages on ``topic``
    (:func:`~echoloc_ros.ros.bag.recorded_tilts`), ``None`` for level; and the summary's
    ``imu`` entry saying which. ``topic`` ``None``: '/imu/data' where the recording holds
    messages on it, else level; ``''``: level.

    :raises ValueError: a topic given that holds no message, a tolerance not above 0, or a
        message no tilt can be read from (:func:`~echoloc_ros.ros.bag.recorded_tilts`).
    """
    from echoloc_ros.ros.bag import recorded_tilts
    if not (math.isfinite(tolerance_s) and tolerance_s > 0):
        raise ValueError(f'--imu-tolerance-s must be a finite number of seconds above 0, got '
                         f'{tolerance_s}')
    if topic == '':
        return None, {'topic': None, 'source': 'level (--imu-topic \'\')'}
    tilts = recorded_tilts(bag, topic or '/imu/data')
    if topic is None and not tilts.times:
        return None, {'topic': None, 'source': 'level (no /imu/data in the recording)'}
    if not tilts.times:
        raise ValueError(f'--imu-topic {topic!r}: the recording holds no message on it')
    return tilts, {'topic': topic or '/imu/data', 'source': 'given' if topic else 'auto',
                   'messages': len(tilts.times), 'tolerance_s': tolerance_s}


def _tilt_summary(tilts: list[tuple[float, float]]) -> dict:
    """How the frames used were tilted: their count, mean and largest roll and pitch, deg."""
    import numpy as np
    deg = np.rad2deg(np.asarray(tilts, dtype=float).reshape(-1, 2))
    return {'tilted_frames': len(tilts),
            'mean_roll_pitch_deg': np.round(deg.mean(axis=0), 4).tolist(),
            'max_abs_roll_pitch_deg': np.round(np.abs(deg).max(axis=0), 4).tolist()}


def _equalising_processor(array, calibration_file: Path | None):
    """The echo processor as the node ran it with ``calibration_file`` (echoloc
    calibrate-array's output): the receiver calibration then models how its equaliser moved
    each channel's echoes (``equaliser_advance``). ``None``: the processor without one."""
    if calibration_file is None:
        return None
    from echoloc_ros.core.array_calibration import ArrayCalibration
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.echo_processing import EchoProcessor
    if not Path(calibration_file).is_file():
        raise ValueError(f'--array-calibration {str(calibration_file)!r} is not a file '
                         '(expected the output of echoloc calibrate-array)')
    calibration = ArrayCalibration.load(calibration_file)
    processor = EchoProcessor(Chirp(), calibration.fs_hz, array=array)
    processor.set_calibration(calibration)
    return processor


def add_parsers(sub) -> None:
    p = sub.add_parser('calibrate-receivers', help='measure the receivers\' acoustic phase '
                       'centres from a recording of the running graph (echo features and the '
                       'poses it published) and write an array file with them (the '
                       'localizer\'s array parameter)')
    p.add_argument('bag', type=Path, help='recording directory (echoloc record) with '
                   '/echoloc/features and /echoloc/pose, taken while the array moves about '
                   'the room')
    p.add_argument('--room', default='default_room', help='room name or YAML path')
    p.add_argument('--array', default='square_4sensor', help='array name or YAML path')
    p.add_argument('--out', type=Path, required=True, help='array YAML to write')
    p.add_argument('--passes', type=int, default=2,
                   help='calibrate, re-localize every frame with the calibrated array, '
                        'calibrate again: passes in all')
    p.add_argument('--min-echoes', type=int, default=50,
                   help='isolated echoes needed (an echo with no other within 120 us)')
    p.add_argument('--max-pose-std-m', type=float, default=1.0,
                   help='use poses whose standard deviation is below this on every axis [m] '
                        '(loose: the pose is a starting point; every frame is localized '
                        'again and an echo off its predicted delay is not used)')
    p.add_argument('--max-yaw-std-deg', type=float, default=5.0,
                   help='use poses whose heading standard deviation is below this [deg]')
    p.add_argument('--array-calibration', type=Path, help='the echo processor\'s array '
                   'calibration (calibrate-array\'s file), whose equaliser the phases model')
    p.add_argument('--imu-topic', default=None,
                   help='the array\'s roll and pitch for each frame from the recording\'s '
                        'sensor_msgs/Imu orientations on this topic (the message stamped '
                        'nearest the frame), so the offsets are solved in the array\'s own '
                        'frame and a tilt is not taken for the receivers\' (default: '
                        '/imu/data where the recording has it, else level; \'\': level)')
    p.add_argument('--imu-tolerance-s', type=float, default=0.2,
                   help='a frame with no Imu message stamped within this [s] is not used '
                        '(counted no_tilt; the localizer\'s heading_tolerance_s)')
    p.set_defaults(func=cmd_calibrate_receivers)

    p = sub.add_parser('calibrate-array', help='measure the array\'s direct coupling and '
                       'transducer responses from a recording of raw frames and write the '
                       'array calibration file (echo_processor array_calibration_file)')
    p.add_argument('bag', type=Path, help='recording directory (echoloc record) with the '
                   'raw frames, taken while the array moves (its echoes change, its direct '
                   'arrival does not)')
    p.add_argument('--array', default='square_4sensor', help='array name or YAML path')
    p.add_argument('--out', type=Path, required=True, help='calibration YAML to write')
    p.add_argument('--topic', default='/echoloc/echoes', help='raw frame topic')
    p.add_argument('--max-frames', type=int, default=250,
                   help='frames used at most (10 s at 25 Hz)')
    p.add_argument('--min-frames', type=int, default=24, help='frames needed at least')
    p.set_defaults(func=cmd_calibrate)

    _add_calibrate_room_parser(sub)

    p = sub.add_parser('survey', help='bring a room file up to date: place its furniture from '
                       'a recording of the running graph (tracked poses and echo features)')
    p.add_argument('bag', type=Path, help='recording directory (echoloc record)')
    p.add_argument('--room', default='furnished_room', help='room name or YAML path')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--out', type=Path, required=True, help='room YAML to write')
    p.add_argument('--max-shift-m', type=float, default=1.0,
                   help='how far each box may have moved on each axis [m]')
    p.add_argument('--step-m', type=float, default=0.01, help='search step [m]')
    p.add_argument('--every', type=int, default=5, help='use every N-th posed frame')
    p.add_argument('--max-pose-std-m', type=float, default=0.02,
                   help='skip frames whose pose standard deviation exceeds this [m]')
    p.add_argument('--max-yaw-std-deg', type=float, default=0.5,
                   help='skip frames whose heading standard deviation exceeds this [deg] (the '
                   'localizer publishes the IMU\'s heading when its tracker refused the fix)')
    p.add_argument('--temperature-c', type=float, default=None,
                   help='air temperature (default: the room file\'s)')
    p.set_defaults(func=cmd_survey)


def _add_calibrate_room_parser(sub) -> None:
    p = sub.add_parser('calibrate-room', help='measure every wall, the floor and the '
                       'ceiling from a recording of a drive and write the room file as the '
                       'room stands (JSON summary)')
    p.add_argument('bag', type=Path, help='recording directory (echoloc record) with the '
                   'echo features and the published poses')
    p.add_argument('--room', default='default_room', help='room name or YAML path')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--out', type=Path, required=True, help='room YAML to write')
    p.add_argument('--temperature-c', type=float,
                   help='air temperature during the drive [C] (default: the room file\'s): '
                        'the speed of sound is the ruler')
    p.add_argument('--temperature-std-c', type=float, default=None,
                   help='how well that temperature is known, one standard deviation [C] '
                        '(default 1; e.g. 0.2 for a thermometer; with --temperature-topic, '
                        'the readings\'): where the room file\'s own scale disagrees with it, '
                        'the file\'s scale is kept')
    p.add_argument('--ruler', choices=('temperature', 'both', 'auto'), default='auto',
                   help='the room\'s scale where the temperature and the room file\'s own '
                        'scale agree: the one the echoes measured at the temperature, both, '
                        'each weighed by its doubt (the file\'s: its tolerance_m; for a '
                        'tape-measured room whose air is only guessed: where the temperature '
                        'is right, both moves the walls toward the file\'s scale), or auto '
                        '(default): both where the file\'s scale is the better ruler of the '
                        'two (a room within +-1 cm), else the temperature\'s')
    p.add_argument('--temperature-topic', default='',
                   help='take the air\'s temperature from the recording\'s '
                        'sensor_msgs/Temperature messages on this topic (record it with '
                        'echoloc record --topic TOPIC:sensor_msgs/msg/Temperature): their '
                        'mean, and their stated doubt or spread, whichever is larger')
    p.add_argument('--array-std-m', type=float, default=None,
                   help='what the array leaves every echo\'s path uncertain by, one standard '
                        'deviation [m] (default 0.001, or 0.0003 when --array is a file '
                        'calibrate-receivers wrote)')
    p.add_argument('--max-pose-std-m', type=float, default=0.05,
                   help='use poses whose standard deviation is below this on every axis [m]')
    p.add_argument('--max-yaw-std-deg', type=float, default=0.5,
                   help='use poses whose heading standard deviation is below this [deg]')
    p.set_defaults(func=cmd_calibrate_room)
