"""The `echoloc` command: run, watch, measure."""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from echoloc_ros.graph import parse_override


def _overrides(pairs: list[str]) -> dict[str, dict]:
    """``node.param=value`` pairs as per-node parameter overrides (:func:`parse_override`)."""
    out: dict[str, dict] = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        node, dot, param = key.partition('.')
        if not sep or not dot:
            raise SystemExit(f'--set {pair!r}: expected node.param=value, e.g. '
                             'driver.sim_snr_db=10')
        try:
            out.setdefault(node, {}).update(parse_override(node, param, value))
        except ValueError as error:
            raise SystemExit(f'--set {pair!r}: {error}') from None
    return out


def _interrupt(signum, frame):
    raise KeyboardInterrupt


# The nodes that read the room file (each has a `room` parameter).
ROOM_NODES = ('driver', 'localizer', 'furniture_survey')


def bringup_overrides(sets: list[str], room: str | None = None) -> dict[str, dict]:
    """Per-node parameter overrides from ``--set node.param=value`` pairs, and ``room`` for
    every node that reads the room file (unless a pair sets that node's room)."""
    overrides = _overrides(sets)
    if room:
        for node in ROOM_NODES:
            overrides.setdefault(node, {}).setdefault('room', room)
    return overrides


def cmd_bringup(args) -> int:
    from echoloc_ros.process_graph import NodeProcesses
    graph = NodeProcesses(params_file=args.params_file,
                          overrides=bringup_overrides(args.set, args.room))
    # SIGTERM (e.g. from a service manager) stops the graph the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    print(f'echoloc: starting {", ".join(s.name for s in graph.specs)} with '
          f'{graph.params_file}; Ctrl-C stops', file=sys.stderr)
    code = 0
    try:
        graph.start()
        if args.monitor:
            return _monitor(graph=graph)
        while True:
            exited = graph.exited()
            if exited:
                print(f'echoloc: node exited: {exited}; stopping the rest', file=sys.stderr)
                code = 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        codes = graph.stop()
        print(f'echoloc: stopped {codes}', file=sys.stderr)
    return code


def _monitor(duration_s: float | None = None, graph=None) -> int:
    import numpy as np
    import rclpy
    from echoloc_ros.listener import GraphListener, Spinner
    rclpy.init()
    listener = GraphListener('echoloc_monitor')
    start = time.time()
    last = start
    try:
        with Spinner(listener):
            while duration_s is None or time.time() - start < duration_s:
                time.sleep(1.0)
                if graph is not None and graph.exited():
                    print(f'echoloc: node exited: {graph.exited()}', file=sys.stderr)
                    return 1
                now = time.time()
                with listener.lock:
                    recent = [(k, v) for k, v in listener.heard.poses.items() if v[0] >= last]
                    truths = dict(listener.heard.truths)
                    levels = {name: s.level[0] for name, s in
                              listener.heard.diagnostics.items()}
                if not recent:
                    print(f'[{now - start:6.1f} s] waiting for /echoloc/pose ...', flush=True)
                    last = now
                    continue
                key, (recv_s, pos, cov, frame_id) = max(recent, key=lambda kv: kv[1][0])
                errors = [np.linalg.norm(v[1] - truths[k]) for k, v in recent if k in truths]
                latency_ms = [1e3 * (v[0] - (k[0] + 1e-9 * k[1])) for k, v in recent]
                sigma_mm = 1e3 * np.sqrt(np.maximum(np.diag(cov), 0))
                worst = max(levels.values(), default=0)
                print(f'[{now - start:6.1f} s] pose ({frame_id}) x={pos[0]:.3f} y={pos[1]:.3f} '
                      f'z={pos[2]:.3f} m  sigma=({sigma_mm[0]:.1f},{sigma_mm[1]:.1f},'
                      f'{sigma_mm[2]:.1f}) mm  rate={len(recent) / (now - last):.1f} Hz  '
                      f'latency={np.median(latency_ms):.1f} ms  '
                      + (f'error={100 * np.median(errors):.2f} cm  ' if errors else '')
                      + f'diagnostics={["OK", "WARN", "ERROR", "STALE"][worst]}', flush=True)
                last = now
    except KeyboardInterrupt:
        pass
    finally:
        listener.destroy_node()
        rclpy.try_shutdown()
    return 0


def cmd_monitor(args) -> int:
    return _monitor(args.duration)


def cmd_bench(args) -> int:
    from echoloc_ros import bench
    from echoloc_ros.core.protocol import bench_decoder
    print(json.dumps({'bench': 'decoder', **bench_decoder()}), flush=True)
    print(json.dumps(bench.bench_stages(args.frames, room=args.room, method=args.method,
                                        optimization_level=args.level, device=args.device)),
          flush=True)
    if not args.stages_only:
        contention = (os.cpu_count() or 1) if args.contention == -1 else args.contention
        print(json.dumps(bench.bench_graph(args.duration, args.params_file, method=args.method,
                                           contention=contention, device=args.device,
                                           room=args.room)),
              flush=True)
    return 0


def cmd_evaluate(args) -> int:
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.evaluation import evaluate_fixes, evaluate_tracked, rounded
    from echoloc_ros.core.room import load_room
    room, array, scenario = load_room(args.room), load_array(args.array), _scenario(args)
    if args.room_tolerance_m is not None:
        from dataclasses import replace
        try:
            room = replace(room, tolerance_m=args.room_tolerance_m)
        except ValueError as err:
            raise SystemExit(f'echoloc evaluate: {err}') from None
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
    scenario_json = {'snr_db': args.snr_db, 'temperature_c': args.temperature_c,
                     'gain_mismatch_db': args.gain_mismatch_db,
                     'dead_channel': args.dead_channel, 'clutter': args.clutter,
                     'furniture_shift_m': args.furniture_shift_m,
                     'furniture_known': args.furniture_known,
                     'heading_noise_deg': args.heading_noise_deg, 'seed': args.seed,
                     'model_error': {k: v for k, v in vars(_model_error(args)).items()
                                     if v and k != 'seed'},
                     'model_error_seed': args.model_error_seed, 'max_order': args.max_order,
                     'room_tolerance_m': room.tolerance_m,
                     'calibrate_frames': args.calibrate_frames,
                     'model_error_draws': args.model_error_draws, 'imu_tilt': args.imu_tilt,
                     'estimate_tilt': args.estimate_tilt}
    if args.no_wide_search:
        scenario_json['wide_search'] = False
    for method in methods:
        frames, tracked = {}, {}
        common = dict(optimization_level=args.level, heading_noise_deg=args.heading_noise_deg,
                      method=method, model_path=args.model,
                      furniture_shift_m=args.furniture_shift_m,
                      furniture_known=args.furniture_known,
                      wide_search=not args.no_wide_search)
        try:
            result = evaluate_fixes(room, array, Chirp(), scenario, args.n, args.seed,
                                    details=frames, model_error=_model_error(args),
                                    max_order=args.max_order,
                                    calibration_frames=args.calibrate_frames,
                                    model_error_draws=args.model_error_draws,
                                    imu_tilt=args.imu_tilt, estimate_tilt=args.estimate_tilt,
                                    **common)
            untracked = (scenario_json['model_error'] or args.max_order != 2
                         or args.calibrate_frames)
            if untracked and args.tracked_frames:
                raise SystemExit('echoloc evaluate: the model-error knobs, --max-order and '
                                 '--calibrate-frames apply to independent frames only; pass '
                                 f'--tracked-frames 0 (got {args.tracked_frames})')
            if args.tracked_frames != 0 and not untracked:
                track = evaluate_tracked(room, array, Chirp(), scenario, args.tracked_frames,
                                         args.seed, details=tracked,
                                         live_survey_s=args.live_survey_s, **common)
                result.update({k: v for k, v in track.items() if k.startswith('tracked_')
                               or k.startswith('live_survey_') or k == 'rejected_rate'})
        except ValueError as err:
            raise SystemExit(f'echoloc evaluate --method {method}: {err}') from None
        out = {'method': method, 'room': room.name, 'level': args.level,
               'scenario': scenario_json,
               **rounded(result)}
        if args.plot:
            from echoloc_ros.plots import evaluation_png
            plot = args.plot if len(methods) == 1 else args.plot.with_name(
                f'{args.plot.stem}_{method}{args.plot.suffix}')
            out['plot'] = str(evaluation_png(
                room, frames, tracked or None, plot,
                f'{method} in {room.name}: {args.snr_db:g} dB SNR, heading noise '
                f'{args.heading_noise_deg:g} deg, median {result["median_cm"]:.2f} cm, p95 '
                f'{result["p95_cm"]:.2f} cm, gross {100 * result["gross_rate_10cm"]:.1f} %'))
        print(json.dumps(out), flush=True)
    return 0


def _evaluate_room_calibration(args, room, array) -> int:
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.evaluation import rounded
    from echoloc_ros.core.room_calibration_evaluation import evaluate_room_calibration
    if args.method != 'physics' or args.surface_offset_m <= 0:
        raise SystemExit('echoloc evaluate --calibrate-room-s: needs --method physics and '
                         f'--surface-offset-m > 0; got --method {args.method}, '
                         f'--surface-offset-m {args.surface_offset_m}')
    try:
        result = evaluate_room_calibration(
            room, array, Chirp(), args.snr_db, _model_error(args), args.calibrate_room_s,
            args.n, args.seed, args.heading_noise_deg)
    except ValueError as err:
        raise SystemExit(f'echoloc evaluate --calibrate-room-s: {err}') from None
    print(json.dumps({'method': 'physics', 'room': room.name,
                      'scenario': {'snr_db': args.snr_db, 'seed': args.seed,
                                   'surface_offset_m': args.surface_offset_m,
                                   'model_error_seed': args.model_error_seed,
                                   'room_tolerance_m': room.tolerance_m,
                                   'heading_noise_deg': args.heading_noise_deg,
                                   'calibrate_room_s': args.calibrate_room_s},
                      **rounded(result)}), flush=True)
    return 0


def cmd_calibrate_room(args) -> int:
    """The room's shell measured from a recording of a drive, written as a room file."""
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.physics.localizer import PhysicsLocalizer
    from echoloc_ros.core.room import load_room
    from echoloc_ros.core.room_calibration import RoomCalibration, room_yaml
    from echoloc_ros.recording import posed_frames
    if not args.bag.is_dir():
        raise SystemExit(f'echoloc calibrate-room: recording {str(args.bag)!r} is not a '
                         'directory (expected the output of echoloc record)')
    try:
        room, array = load_room(args.room), load_array(args.array)
        frames, counts = posed_frames(args.bag, max_pose_std_m=args.max_pose_std_m,
                                      max_yaw_std_deg=args.max_yaw_std_deg)
        calibration = RoomCalibration(PhysicsLocalizer(room, array, Chirp()))
        for features, position, yaw in frames:
            calibration.add(features, position, yaw, args.temperature_c)
        result = calibration.solve()
    except ValueError as err:
        raise SystemExit(f'echoloc calibrate-room: {err}') from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(room_yaml(args.room, result))
    print(json.dumps({'room': room.name, 'out': str(args.out), 'frames': counts,
                      **result.to_dict()}), flush=True)
    return 0


def _evaluate_survey(args, room, array, methods) -> int:
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.evaluation import evaluate_survey, rounded
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
    from echoloc_ros.core.ambiguity import ambiguity_bound
    from echoloc_ros.core.evaluation import rounded
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


def cmd_survey(args) -> int:
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.room import load_room
    from echoloc_ros.core.survey import FurnitureSurvey, write_room_file
    from echoloc_ros.recording import posed_frames
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


def cmd_calibrate(args) -> int:
    """The array calibration measured from a recording's raw frames, written for the next
    start (echo_processor's ``array_calibration_file``)."""
    from echoloc_ros import conversions
    from echoloc_ros.core.array_calibration import DirectPathCalibrator
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.echo_processing import EchoProcessor
    from echoloc_ros.recording import read_messages
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


def cmd_record(args) -> int:
    from echoloc_ros.recording import record
    if args.out.exists():
        raise SystemExit(f'echoloc record: {args.out} exists; give a new directory')
    try:
        counts = record(args.out, args.topic, args.duration, args.flush_period)
    except OSError as exc:
        raise SystemExit(f'echoloc record: cannot write {args.out}: '
                         f'{exc.strerror or exc}') from None
    print(json.dumps({'path': str(args.out), 'messages': counts}), flush=True)
    return 0


def cmd_metrics(args) -> int:
    from echoloc_ros.metrics import serve_metrics
    return serve_metrics(args.port, args.host, str(args.token_file or ''),
                         str(args.tls_cert or ''), str(args.tls_key or ''))


def _scenario(args, array=None):
    """The scenario of the arguments; with ``array``, its hardware drawn from the model-error
    arguments (``evaluate`` draws the hardware and the room itself)."""
    from echoloc_ros.core.simulator import Scenario
    error = _model_error(args)
    hardware = error.draw_hardware(array) if array is not None and error.changes_array else None
    return Scenario(snr_db=args.snr_db, temperature_c=args.temperature_c,
                    gain_mismatch_db=args.gain_mismatch_db, dead_channel=args.dead_channel,
                    n_random_clutter=args.clutter, seed=args.seed, hardware=hardware)


def _model_error(args):
    from echoloc_ros.core.model_error import ModelError
    try:
        return ModelError(
            resonance_offset_hz=args.resonance_offset_hz,
            resonance_spread_hz=args.resonance_spread_hz,
            bandwidth_range_hz=args.bandwidth_range_hz, gain_db=args.channel_gain_db,
            delay_s=args.channel_delay_s, receiver_offset_m=args.receiver_offset_m,
            emitter_offset_m=args.emitter_offset_m, tilt_deg=args.tilt_deg,
            surface_offset_m=args.surface_offset_m, seed=args.model_error_seed)
    except ValueError as err:
        raise SystemExit(f'echoloc: {err}') from None


def _add_model_error_args(p) -> None:
    """The options of how the simulated array and room differ from their files."""
    g = p.add_argument_group('model error', 'how the simulated array and room differ from '
                             'their files (each drawn uniform in +-the value, once per run; '
                             'the localizer reads the files)')
    g.add_argument('--resonance-offset-hz', type=float, default=0.0,
                   help='every transducer\'s resonance off the file, drawn once per array [Hz]')
    g.add_argument('--resonance-spread-hz', type=float, default=0.0,
                   help='each transducer\'s resonance further off [Hz]')
    g.add_argument('--bandwidth-range-hz', type=float, nargs=2, metavar=('LO', 'HI'),
                   help='the array\'s transducer bandwidth drawn in [LO, HI] [Hz]')
    g.add_argument('--channel-gain-db', type=float, default=0.0,
                   help='each channel\'s gain off nominal [dB]')
    g.add_argument('--channel-delay-s', type=float, default=0.0,
                   help='each channel\'s extra delay [s]')
    g.add_argument('--receiver-offset-m', type=float, default=0.0,
                   help='each receiver coordinate off the array file [m]')
    g.add_argument('--emitter-offset-m', type=float, default=0.0,
                   help='each emitter coordinate off the array file [m]')
    g.add_argument('--tilt-deg', type=float, default=0.0, help='array roll and pitch [deg]')
    g.add_argument('--surface-offset-m', type=float, default=0.0,
                   help='each room surface off the room file (evaluate only) [m]')
    g.add_argument('--model-error-seed', type=int, default=0, help='seed of the draw')


def _add_scenario_args(p) -> None:
    p.add_argument('--snr-db', type=float, default=20.0, help='echo SNR [dB]')
    p.add_argument('--temperature-c', type=float, help='true air temperature [C] '
                   '(default: the room file\'s; the localizer is told the room file\'s)')
    p.add_argument('--gain-mismatch-db', type=float, default=0.0,
                   help='std of each receiver\'s gain error [dB]')
    p.add_argument('--dead-channel', type=int, help='receiver that outputs only noise')
    p.add_argument('--clutter', type=int, default=0,
                   help='random panels per frame that the room file does not know')
    p.add_argument('--seed', type=int, default=0)
    _add_model_error_args(p)


def cmd_simulate(args) -> int:
    import time as _time
    from echoloc_ros.core import dataset
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.room import load_room
    spec = dataset.DatasetSpec(load_room(args.room), load_array(args.array), Chirp(),
                               _scenario(args, load_array(args.array)), args.n, args.seed,
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
    from echoloc_ros import markers
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.echo_processing import EchoProcessor
    from echoloc_ros.core.physics.localizer import PhysicsLocalizer
    from echoloc_ros.core.room import load_room
    from echoloc_ros.core.simulator import EchoSimulator
    from echoloc_ros.render import render_markers_png
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


def cmd_fake_device(args) -> int:
    import numpy as np
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.fake_device import FakeArrayDevice, FaultConfig
    from echoloc_ros.core.room import load_room
    from echoloc_ros.core.simulator import EchoSimulator, Scenario
    room, array = load_room(args.room), load_array(args.array)
    sim = EchoSimulator(room, array, Chirp(), fs_hz=250e3)
    rng = np.random.default_rng(args.seed)
    scenario = Scenario(snr_db=args.snr_db, seed=args.seed)
    position = np.array(args.position)

    def frame_source(seq: int) -> np.ndarray:
        return sim.simulate(position, args.yaw, scenario=scenario, rng=rng)

    faults = FaultConfig(bit_flip_rate=args.bit_flip_rate, drop_byte_rate=args.drop_byte_rate,
                         stall_at_s=args.stall_at, stall_s=args.stall_for,
                         dead_channel=args.dead_channel, clip_channel=args.clip_channel,
                         seed=args.seed)
    device = FakeArrayDevice(frame_source, link_path=args.link, n_channels=array.n_receivers,
                             window_samples=sim.n_samples, frame_rate_hz=args.rate,
                             faults=faults, array_id=array.name)
    signal.signal(signal.SIGTERM, _interrupt)
    device.start()
    print(json.dumps({'port': device.path, 'position_m': args.position, 'yaw_rad': args.yaw}),
          flush=True)
    try:
        start = time.monotonic()
        disappeared = False
        while True:
            time.sleep(0.05)
            if (args.disappear_at is not None and not disappeared
                    and time.monotonic() - start >= args.disappear_at):
                disappeared = True
                device.disappear(args.disappear_for)
    except KeyboardInterrupt:
        pass
    finally:
        device.stop()
    return 0


def cmd_hw_test(args) -> int:
    import serial
    from echoloc_ros.core.hw_test import run_hw_test
    try:
        checks = run_hw_test(args.port, timeout_s=args.timeout)
    except serial.SerialException as exc:
        print(f'FAIL  open   {args.port}: {exc}')
        return 2
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<6} {check.detail}")
    if args.json:
        print(json.dumps({c.name: {'ok': c.ok, **c.data} for c in checks}))
    return 0 if all(c.ok for c in checks) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='echoloc', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('bringup', help='start the nodes: driver, echo_processor, localizer, '
                       'furniture_survey')
    p.add_argument('--params-file', type=Path, help='node parameter YAML '
                   '(default: config/echoloc.yaml)')
    p.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                   help='override a parameter, e.g. driver.sim_snr_db=10')
    p.add_argument('--room', help='room file (name or path) of every node that reads one '
                   f'({", ".join(ROOM_NODES)}); a --set of one node\'s room wins')
    p.add_argument('--monitor', action='store_true', help='also print pose, error and rate')
    p.set_defaults(func=cmd_bringup)

    p = sub.add_parser('monitor', help='print pose, error vs ground truth, rate, latency')
    p.add_argument('--duration', type=float, help='seconds (default: until Ctrl-C)')
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser('bench', help='latency, rate, drops and memory as JSON')
    p.add_argument('--frames', type=int, default=100, help='frames for the per-stage bench')
    p.add_argument('--duration', type=float, default=20.0, help='seconds of the graph bench')
    p.add_argument('--params-file', type=Path)
    p.add_argument('--stages-only', action='store_true')
    p.add_argument('--method', choices=('physics', 'nn'), default='physics',
                   help='localizer (nn: the shipped model for the default room)')
    p.add_argument('--level', choices=('fast', 'balanced', 'accurate'), default='balanced',
                   help='optimization level of the per-stage bench')
    p.add_argument('--room', default='default_room', help='room (name or YAML path)')
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu',
                   help='where the nn runs (the JSON says where it ran)')
    p.add_argument('--contention', type=int, nargs='?', const=-1, default=0, metavar='N',
                   help='graph bench with N busy processes competing for the CPU (no N: one '
                   'per core)')
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser('evaluate', help='accuracy and calibration on simulated poses (JSON, '
                       'PNG)')
    p.add_argument('--method', choices=('physics', 'nn', 'both'), default='physics',
                   help='localizer; both: physics then nn on the same frames')
    p.add_argument('--model', type=Path,
                   help='nn checkpoint (default: the shipped models/ROOM.pt)')
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
    p.add_argument('--room-tolerance-m', type=float,
                   help='the room file\'s tolerance_m as the localizer reads it (default: the '
                        'file\'s)')
    p.add_argument('--max-order', type=int, default=2,
                   help='highest reflection order simulated')
    p.add_argument('--calibrate-frames', type=int, default=0,
                   help='frames the processor calibrates the array on before the scored ones '
                        '(0: the array file\'s model)')
    p.add_argument('--model-error-draws', type=int, default=1,
                   help='spread the frames over this many arrays and rooms drawn from the '
                        'model-error options (seeds --model-error-seed on)')
    p.add_argument('--calibrate-room-s', type=float,
                   help='drive this long with the room file (its surfaces off by '
                        '--surface-offset-m), calibrate the room from the drive, then compare '
                        'the stale, calibrated and true rooms on --n random frames [s]')
    p.add_argument('--imu-tilt', action='store_true',
                   help='the localizer is told the array\'s drawn roll and pitch (--tilt-deg), '
                        'as the IMU\'s orientation on /imu/data gives them')
    p.add_argument('--estimate-tilt', action='store_true',
                   help='the localizer estimates the array\'s roll and pitch from each frame\'s '
                        'floor and ceiling echoes (no IMU reports them)')
    p.add_argument('--no-wide-search', action='store_true',
                   help='nn: do not search again, widely, the frames the network doubts')
    _add_scenario_args(p)
    p.set_defaults(func=cmd_evaluate)

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
    p.add_argument('--max-pose-std-m', type=float, default=0.05,
                   help='use poses whose standard deviation is below this on every axis [m]')
    p.add_argument('--max-yaw-std-deg', type=float, default=0.5,
                   help='use poses whose heading standard deviation is below this [deg]')
    p.set_defaults(func=cmd_calibrate_room)

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

    p = sub.add_parser('record', help='record the graph\'s topics to MCAP (rosbag2 layout)')
    p.add_argument('out', type=Path, help='recording directory to create')
    p.add_argument('--topic', action='append', metavar='TOPIC:TYPE',
                   help='a topic and its package/msg/Type (repeat); default: all of echoloc\'s')
    p.add_argument('--duration', type=float, help='seconds (default: until Ctrl-C)')
    p.add_argument('--flush-period', type=float, default=1.0,
                   help='seconds between flushes: the most a crash loses')
    p.set_defaults(func=cmd_record)

    p = sub.add_parser('metrics', help='serve Prometheus /metrics and /health from the graph')
    p.add_argument('--port', type=int, default=9101, help='0 picks a free port')
    p.add_argument('--host', default='127.0.0.1', help='address to bind; any but loopback '
                   'needs --token-file')
    p.add_argument('--token-file', type=Path, help='file holding a bearer token every request '
                   'must carry (Authorization: Bearer <token>)')
    p.add_argument('--tls-cert', type=Path, help='PEM certificate: serve HTTPS')
    p.add_argument('--tls-key', type=Path, help='PEM private key of --tls-cert')
    p.set_defaults(func=cmd_metrics)

    from echoloc_ros import nn_cli
    nn_cli.add_parsers(sub)

    p = sub.add_parser('simulate', help='write a simulated dataset (frames, poses, scenario)')
    p.add_argument('--room', default='default_room')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--n', type=int, required=True, help='frames')
    p.add_argument('--out', type=Path, required=True, help='dataset directory (resumable)')
    p.add_argument('--chunk-size', type=int, default=256, help='frames per file')
    p.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    _add_scenario_args(p)
    p.set_defaults(func=cmd_simulate)

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
    _add_model_error_args(p)
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser('fake-device', help='emulate the array on a pseudo-terminal, streaming '
                       'simulated echoes, with optional faults')
    p.add_argument('--link', default='/tmp/echoloc_array', help='stable symlink to the pty '
                   '(give it to the driver as port)')
    p.add_argument('--room', default='default_room')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--position', type=float, nargs=3, default=[2.0, 1.5, 0.3],
                   metavar=('X', 'Y', 'Z'), help='where the emulated array sits [m]')
    p.add_argument('--yaw', type=float, default=0.0, help='its heading [rad]')
    p.add_argument('--rate', type=float, default=25.0, help='default frame rate [Hz]')
    p.add_argument('--snr-db', type=float, default=20.0)
    p.add_argument('--seed', type=int, default=0)
    _add_model_error_args(p)
    p.add_argument('--bit-flip-rate', type=float, default=0.0, help='per byte')
    p.add_argument('--drop-byte-rate', type=float, default=0.0, help='per byte')
    p.add_argument('--stall-at', type=float, help='seconds after start to go silent')
    p.add_argument('--stall-for', type=float, default=0.0, help='seconds of silence')
    p.add_argument('--dead-channel', type=int)
    p.add_argument('--clip-channel', type=int)
    p.add_argument('--disappear-at', type=float, help='seconds after start to unplug')
    p.add_argument('--disappear-for', type=float, default=2.0, help='seconds unplugged')
    p.set_defaults(func=cmd_fake_device)

    p = sub.add_parser('hw-test', help='check an array on a port: ping, info, status, a frame')
    p.add_argument('--port', required=True)
    p.add_argument('--timeout', type=float, default=1.0, help='seconds per reply')
    p.add_argument('--json', action='store_true', help='also print the results as JSON')
    p.set_defaults(func=cmd_hw_test)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    raise SystemExit(main())
