"""The neural localizer's `echoloc` subcommands: train, fit, fit-general, calibrate,
optimize.

:mod:`echoloc_ros.cli` registers them with :func:`add_parsers`.
"""
import json
import os
import time
from pathlib import Path


def cmd_train(args) -> int:
    import torch
    from echoloc_ros.offline import dataset
    from echoloc_ros.core.room import load_room
    from echoloc_ros.offline.training import train
    torch.set_num_threads(args.threads)
    meta, _ = dataset.load(args.data)
    room = None if meta.get('general') else load_room(meta['room'])
    metrics = train(args.data, args.out, room, args.size, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                    seed=args.seed, resume=not args.no_resume, max_minutes=args.max_minutes)
    print(json.dumps({'out': str(args.out), **metrics}), flush=True)
    return 0


def cmd_fit(args) -> int:
    """Make candidate data, train, then evaluate NN and physics on the same held-out frames."""
    import resource

    import torch
    from echoloc_ros.offline import dataset
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.offline.evaluation import evaluate_fixes, rounded
    from echoloc_ros.offline.nn_calibration import calibrate_covariance
    from echoloc_ros.core.room import load_room
    from echoloc_ros.sim.simulator import Scenario
    from echoloc_ros.offline.training import CandidateSpec, train
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    room, array, chirp = load_room(args.room), load_array(args.array), Chirp()
    work = args.work or Path('data') / f'fit_{room.name}'
    try:
        spec = CandidateSpec(room, array, chirp, args.n, args.seed, n_candidates=args.candidates)
    except ValueError as err:
        raise SystemExit(f'echoloc fit --candidates {args.candidates}: {err}') from None
    dataset.generate(spec, work / 'candidates', workers=args.workers, desc='candidates')
    data_s = time.perf_counter() - start
    metrics = train(work / 'candidates', args.out, room, args.size, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                    seed=args.seed, max_minutes=args.max_minutes)
    result = {'out': str(args.out), 'room': room.name, 'frames': args.n,
              'data_seconds': round(data_s, 1), 'train': metrics}
    shift = args.furniture_shift_m if room.furniture else 0.0
    scenario = Scenario(snr_db=args.snr_db)
    if args.n_calibrate:
        result['calibration'] = calibrate_covariance(
            args.out, room, array, chirp, scenario, args.n_calibrate, args.seed + 2_000_003,
            args.heading_noise_deg, shift)
    for method in ('physics', 'nn'):
        if args.n_test:
            evaluation = evaluate_fixes(room, array, chirp, scenario, args.n_test,
                                        args.seed + 1_000_003, method=method,
                                        model_path=args.out,
                                        heading_noise_deg=args.heading_noise_deg,
                                        furniture_shift_m=shift)
            result[method] = rounded(evaluation)
    result['held_out'] = {'n': args.n_test, 'snr_db': args.snr_db,
                          'heading_noise_deg': args.heading_noise_deg,
                          'furniture_shift_m': shift}
    result['seconds'] = round(time.perf_counter() - start, 1)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result['peak_rss_mb'] = round(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                      children) / 1024, 1)
    print(json.dumps(result), flush=True)
    if args.report:
        Path(args.report).write_text(json.dumps(result, indent=1))
    return 0


def cmd_fit_general(args) -> int:
    """Make room-independent candidate data over many rooms, then train one model on it."""
    import resource

    import torch
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.offline import dataset
    from echoloc_ros.offline.general_training import GeneralCandidateSpec, training_rooms
    from echoloc_ros.offline.training import train
    torch.set_num_threads(args.threads)
    start, cpu0 = time.perf_counter(), _cpu_s()
    try:
        rooms = training_rooms(args.dev_rooms, args.room_seed, not args.no_project_rooms)
        spec = GeneralCandidateSpec(rooms, load_array(args.array), Chirp(), args.n, args.seed,
                                    options=(('snr_db', tuple(args.snr_db)),
                                             ('n_candidates', args.candidates)))
    except ValueError as err:
        raise SystemExit(f'echoloc fit-general: {err}') from None
    work = args.work or Path('data') / 'fit_general'
    dataset.generate(spec, work / 'candidates', workers=args.workers, desc='candidates')
    data_s, data_cpu_s = time.perf_counter() - start, _cpu_s() - cpu0
    metrics = train(work / 'candidates', args.out, None, args.size, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                    seed=args.seed, max_minutes=args.max_minutes)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = {'out': str(args.out), 'rooms': len(rooms), 'dev_rooms': args.dev_rooms,
              'room_seed': args.room_seed, 'project_rooms': not args.no_project_rooms,
              'frames': args.n, 'snr_db': list(args.snr_db),
              'data_seconds': round(data_s, 1), 'data_cpu_minutes': round(data_cpu_s / 60, 2),
              'train': metrics,
              'train_cpu_minutes': round((_cpu_s() - cpu0 - data_cpu_s) / 60, 2),
              'seconds': round(time.perf_counter() - start, 1),
              'peak_rss_mb': round(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                       children) / 1024, 1)}
    print(json.dumps(result), flush=True)
    return 0


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cmd_calibrate(args) -> int:
    """Fit a model's covariance scale on simulated frames (one room, or ``--rooms random:N``
    of the dev split pooled) and store it in the checkpoint."""
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.room import load_room
    from echoloc_ros.offline import nn_calibration
    from echoloc_ros.sim.simulator import Scenario
    if args.rooms is not None:
        return _calibrate_rooms(args)
    if args.split is not None:
        raise SystemExit(f'echoloc calibrate: --split {args.split} applies to --rooms '
                         'random:N only')
    if len(args.snr_db) != 1:
        raise SystemExit(f'echoloc calibrate --room: one --snr-db, got {args.snr_db} (several '
                         'apply to --rooms random:N)')
    room = load_room(args.room or 'default_room')
    shift = args.furniture_shift_m if room.furniture else 0.0
    try:
        result = nn_calibration.calibrate_covariance(
            args.model, room, load_array(args.array), Chirp(), Scenario(snr_db=args.snr_db[0]),
            args.n, args.seed, args.heading_noise_deg, shift)
    except ValueError as err:
        raise SystemExit(f'echoloc calibrate: {err}') from None
    print(json.dumps({'model': str(args.model), **result}), flush=True)
    return 0


def _calibrate_rooms(args) -> int:
    """``echoloc calibrate --rooms random:N --split dev``: one scale over the rooms pooled."""
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.offline.evaluation import rounded
    from echoloc_ros.offline.nn_calibration import calibrate_covariance_rooms
    from echoloc_ros.offline.room_evaluation import parse_rooms
    if args.room is not None or args.furniture_shift_m:
        raise SystemExit('echoloc calibrate --rooms: no --room and no --furniture-shift-m, got '
                         f'--room {args.room}, --furniture-shift-m {args.furniture_shift_m}')
    start, cpu0 = time.perf_counter(), _cpu_s()
    try:
        result = calibrate_covariance_rooms(
            args.model, args.split or 'dev', parse_rooms(args.rooms), args.seed,
            load_array(args.array), Chirp(), args.snr_db, args.n, args.heading_noise_deg)
    except ValueError as err:
        raise SystemExit(f'echoloc calibrate --rooms: {err}') from None
    print(json.dumps({'model': str(args.model), 'split': args.split or 'dev',
                      'seed': args.seed, 'snr_db': args.snr_db,
                      **rounded({k: v for k, v in result.items()
                                 if k not in ('rooms', 'per_snr')}),
                      'per_snr': {k: rounded(v) for k, v in result['per_snr'].items()},
                      'n_rooms': len(result['rooms']),
                      'seconds': round(time.perf_counter() - start, 1),
                      'cpu_minutes': round((_cpu_s() - cpu0) / 60, 2)}), flush=True)
    return 0


def cmd_optimize(args) -> int:
    """Float, int8 and frozen TorchScript forms of a ranker on a candidate dataset: how often
    each chooses as the float model does, how often it is wrong, and its speed."""
    import numpy as np
    import torch
    from echoloc_ros.core.model import load_checkpoint
    from echoloc_ros.core.nn_localizer import frozen_script, quantize
    from echoloc_ros.core.model import model_inputs
    from echoloc_ros.offline.training import evaluate_choices, load_examples, validation_frames
    torch.set_num_threads(args.threads)
    _, data = load_examples(args.data)
    if args.validation:
        data = validation_frames(data)
    data = {k: v[:args.n] for k, v in data.items()}
    model, ckpt = load_checkpoint(args.model)
    temperature = float(ckpt.get('temperature', 1.0))
    script = frozen_script(model, {k: v[:1].numpy() for k, v in data.items()})
    variants = {'float': model, 'int8': quantize(model), 'torchscript': script}
    if args.torchscript:
        script.save(str(args.torchscript))
    n = len(data['present'])
    result = {'n': n, 'validation': args.validation, 'threads': args.threads,
              'batch': args.batch,
              'parameters': sum(p.numel() for p in model.parameters()),
              'checkpoint_bytes': os.path.getsize(args.model)}
    singles = [model_inputs({k: v[i:i + 1] for k, v in data.items()})
               for i in range(min(300, n))]
    batches = [model_inputs({k: v[i:i + args.batch] for k, v in data.items()})
               for i in range(0, n, args.batch)]
    choices = {}
    for name, net in variants.items():
        scored = evaluate_choices(net, data, temperature)
        choices[name] = scored['logits'][:, :-1].argmax(dim=1)
        with torch.inference_mode():
            for inputs in singles[:20]:
                net(*inputs)     # warm-up (TorchScript optimises on its first runs)
            single = []
            for inputs in singles:
                t0 = time.perf_counter()
                net(*inputs)
                single.append(1e3 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for inputs in batches:
                net(*inputs)
            batched = n / (time.perf_counter() - t0)
        result[name] = {'wrong': round(scored['wrong'], 4),
                        'physics_wrong': round(scored['physics_wrong'], 4),
                        'latency_ms_p50': round(float(np.percentile(single, 50)), 3),
                        'latency_ms_p95': round(float(np.percentile(single, 95)), 3),
                        'batched_frames_per_s': round(batched, 1)}
    for name in variants:
        if name != 'float':
            result[f'{name}_same_choice'] = round(float(
                torch.mean((choices[name] == choices['float']).float())), 4)
    if args.torchscript:
        result['torchscript_path'] = str(args.torchscript)
        result['torchscript_bytes'] = os.path.getsize(args.torchscript)
    print(json.dumps(result), flush=True)
    return 0


def _add_training_args(p) -> None:
    p.add_argument('--size', choices=('tiny', 'base'), default='tiny', help='model size')
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=2e-3, help='peak AdamW learning rate')
    p.add_argument('--patience', type=int, default=6,
                   help='epochs without fewer wrong validation choices before stopping')
    p.add_argument('--max-minutes', type=float, help='stop training after this wall time')
    p.add_argument('--threads', type=int, default=os.cpu_count() or 1, help='torch threads')
    p.add_argument('--seed', type=int, default=0)


def add_parsers(sub) -> None:
    """Register ``train``, ``fit``, ``fit-general``, ``calibrate`` and ``optimize`` on an
    argparse subparsers object."""
    p = sub.add_parser('train', help='train the neural localizer on a candidate dataset')
    p.add_argument('--data', type=Path, required=True,
                   help='candidate dataset dir (echoloc fit makes one in WORK/candidates)')
    p.add_argument('--out', type=Path, required=True, help='checkpoint to write')
    p.add_argument('--no-resume', action='store_true', help='ignore OUT.state')
    _add_training_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser('fit', help='simulate, train and evaluate (NN vs physics) for a room')
    p.add_argument('--room', default='default_room')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--n', type=int, default=16000, help='training frames (resumable)')
    p.add_argument('--n-test', type=int, default=200, help='held-out frames (0: skip)')
    p.add_argument('--snr-db', type=float, default=10.0, help='SNR of the held-out frames')
    p.add_argument('--heading-noise-deg', type=float, default=1.0,
                   help='heading error of the held-out frames [deg]')
    p.add_argument('--furniture-shift-m', type=float, default=1.0,
                   help='held-out frames: furniture moved by up to this [m]')
    p.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                   help='processes making the training data')
    p.add_argument('--candidates', type=int, default=12,
                   help='candidate slots the network ranks per frame (more see more of the '
                   'proposer\'s weaker candidates, at a cost in inference time)')
    p.add_argument('--n-calibrate', type=int, default=200,
                   help='frames (same scenario as the held-out ones, other seed) that fit the '
                   'covariance scale (0: skip)')
    p.add_argument('--out', type=Path, required=True, help='checkpoint to write')
    p.add_argument('--work', type=Path, help='dataset dir (default data/fit_ROOM)')
    p.add_argument('--report', type=Path, help='also write the JSON here')
    _add_training_args(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser('fit-general', help='simulate many rooms and train one '
                       'room-independent model (any room)')
    p.add_argument('--dev-rooms', type=int, default=40,
                   help='generated rooms of the dev split to train on')
    p.add_argument('--room-seed', type=int, default=0, help='seed of the generated rooms')
    p.add_argument('--no-project-rooms', action='store_true',
                   help='leave out the project\'s own rooms (default, furnished, l_shaped)')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--n', type=int, default=8000, help='training frames, over all rooms')
    p.add_argument('--snr-db', type=float, nargs=2, default=(8.0, 22.0),
                   metavar=('LOW', 'HIGH'), help='SNR range of the training frames, dB')
    p.add_argument('--candidates', type=int, default=12, help='candidate slots per frame')
    p.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                   help='processes making the training data')
    p.add_argument('--out', type=Path, required=True, help='checkpoint to write')
    p.add_argument('--work', type=Path, help='dataset dir (default data/fit_general)')
    _add_training_args(p)
    p.set_defaults(func=cmd_fit_general)

    _add_calibrate_parser(sub)

    p = sub.add_parser('optimize', help='int8 / TorchScript variants: accuracy and speed')
    p.add_argument('--model', type=Path, required=True)
    p.add_argument('--data', type=Path, required=True, help='candidate dataset to measure on')
    p.add_argument('--n', type=int, default=2000, help='the first N frames measured')
    p.add_argument('--validation', action='store_true',
                   help='measure on the frames training validates on (the last 10 %%), not '
                   'on the first: to compare two checkpoints on frames neither trained on')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--batch', type=int, default=16, help='frames per batch (throughput)')
    p.add_argument('--torchscript', type=Path,
                   help='also write the frozen TorchScript model (what level fast runs)')
    p.set_defaults(func=cmd_optimize)


def _add_calibrate_parser(sub) -> None:
    p = sub.add_parser('calibrate', help='fit the covariance scale of an nn model on '
                       'simulated frames of one room or of generated dev rooms (fit does this)')
    p.add_argument('--model', type=Path, required=True)
    p.add_argument('--room', help='the room (default default_room); not with --rooms')
    p.add_argument('--rooms', metavar='random:N',
                   help='instead of --room: N generated rooms of --split dev (drawn with '
                   '--seed), the frames pooled (a room-independent model\'s scale)')
    p.add_argument('--split', choices=('dev', 'heldout'),
                   help='with --rooms: only dev is accepted (held-out rooms are for reporting)')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--n', type=int, default=200, help='frames (with --rooms: over all rooms '
                   'and SNRs)')
    p.add_argument('--snr-db', type=float, nargs='+', default=[20.0],
                   help='SNR of the frames, dB (with --rooms, several: each room at each)')
    p.add_argument('--heading-noise-deg', type=float, default=1.0)
    p.add_argument('--furniture-shift-m', type=float, default=0.0)
    p.add_argument('--seed', type=int, default=2_000_003,
                   help='frames\' seed (with --rooms also the rooms\')')
    p.set_defaults(func=cmd_calibrate)
