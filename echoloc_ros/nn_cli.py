"""The neural localizer's `echoloc` subcommands: train, fit, optimize.

``echoloc_ros.cli`` registers them with :func:`add_parsers`.
"""
import json
import os
import time
from pathlib import Path


def _json_safe(result: dict) -> dict:
    return {k: v for k, v in result.items() if not k.startswith('_')}


def cmd_train(args) -> int:
    import torch
    from echoloc_ros.core import dataset
    from echoloc_ros.core.room import load_room
    from echoloc_ros.core.training import train
    torch.set_num_threads(args.threads)
    meta, _ = dataset.load(args.data)
    metrics = train(args.data, args.out, load_room(meta['room']), args.size, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                    seed=args.seed, resume=not args.no_resume, max_minutes=args.max_minutes,
                    workers=args.workers)
    print(json.dumps({'out': str(args.out), **metrics}), flush=True)
    return 0


def cmd_fit(args) -> int:
    """Simulate a training and a held-out set, train, compare NN and physics on the held-out."""
    import torch
    from echoloc_ros.core import dataset
    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.nn_localizer import compare_on_dataset
    from echoloc_ros.core.room import load_room
    from echoloc_ros.core.simulator import Scenario
    from echoloc_ros.core.training import train
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    room, array, chirp = load_room(args.room), load_array(args.array), Chirp()
    work = args.work or Path('data') / f'fit_{room.name}'
    train_dir, test_dir = work / 'train', work / 'test'
    dataset.generate(dataset.DatasetSpec(room, array, chirp, Scenario(snr_db=args.snr_db,
                                                                     seed=args.seed),
                                         args.n, args.seed), train_dir, workers=args.workers)
    dataset.generate(dataset.DatasetSpec(room, array, chirp, Scenario(snr_db=args.snr_db,
                                                                     seed=args.seed + 1),
                                         args.n_test, args.seed + 1), test_dir,
                     workers=args.workers)
    metrics = train(train_dir, args.out, room, args.size, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                    seed=args.seed, max_minutes=args.max_minutes, workers=args.workers)
    comparison = compare_on_dataset(args.out, test_dir, room, array, chirp,
                                    heading_noise_deg=args.heading_noise_deg, seed=args.seed)
    result = {'out': str(args.out), 'room': room.name, 'train': metrics,
              **_json_safe(comparison), 'seconds': round(time.perf_counter() - start, 1)}
    print(json.dumps(result), flush=True)
    if args.report:
        Path(args.report).write_text(json.dumps(result, indent=1))
    return 0


def cmd_optimize(args) -> int:
    """Float vs int8 (and TorchScript) on a dataset's cached inputs: accuracy and speed."""
    import numpy as np
    import torch
    from echoloc_ros.core import dataset
    from echoloc_ros.core.array_geometry import array_from_dict
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.nn_localizer import NeuralLocalizer
    from echoloc_ros.core.room import load_room
    from echoloc_ros.core.training import extract_inputs, heading_input
    torch.set_num_threads(args.threads)
    meta, _ = dataset.load(args.data)
    room, array, chirp = (load_room(meta['room']), array_from_dict(meta['array']),
                          Chirp.from_dict(meta['chirp']))
    data = extract_inputs(args.data, workers=args.workers)
    x, yaw, truth = data['x'][:args.n].float().numpy(), data['yaw_rad'][:args.n].numpy(), \
        data['position_m'][:args.n].numpy()
    result = {'n': int(x.shape[0]), 'threads': args.threads}
    variants = {level: NeuralLocalizer.from_checkpoint(args.model, room, array, chirp,
                                                       optimization_level=level,
                                                       num_threads=args.threads)
                for level in ('balanced', 'fast')}
    for name, loc in variants.items():
        pos, _ = loc.predict_inputs(x, yaw)
        single = []
        for i in range(min(200, x.shape[0])):
            t0 = time.perf_counter()
            loc.predict_inputs(x[i:i + 1], yaw[i:i + 1])
            single.append(1e3 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        loc.predict_inputs(x, yaw)
        batched = x.shape[0] / (time.perf_counter() - t0)
        err = 100 * np.linalg.norm(pos - truth, axis=1)
        result[name] = {'median_cm': float(np.median(err)),
                        'p95_cm': float(np.percentile(err, 95)),
                        'latency_ms_p50': float(np.percentile(single, 50)),
                        'latency_ms_p95': float(np.percentile(single, 95)),
                        'batched_frames_per_s': float(batched)}
    float_pos, _ = variants['balanced'].predict_inputs(x, yaw)
    fast_pos, _ = variants['fast'].predict_inputs(x, yaw)
    result['fast_vs_float_max_cm'] = float(100 * np.abs(fast_pos - float_pos).max())
    if args.torchscript:
        model = variants['balanced'].model
        example = (torch.from_numpy(x[:1]), heading_input(torch.from_numpy(yaw[:1])))
        with torch.inference_mode():
            traced = torch.jit.trace(model, example)
        traced.save(str(args.torchscript))
        result['torchscript'] = str(args.torchscript)
        result['torchscript_bytes'] = os.path.getsize(args.torchscript)
    print(json.dumps(result), flush=True)
    return 0


def _add_training_args(p) -> None:
    p.add_argument('--size', choices=('tiny', 'base'), default='tiny', help='model size')
    p.add_argument('--epochs', type=int, default=40)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--lr', type=float, default=2e-3, help='peak AdamW learning rate')
    p.add_argument('--patience', type=int, default=8,
                   help='epochs without a better validation median before stopping')
    p.add_argument('--max-minutes', type=float, help='stop training after this wall time')
    p.add_argument('--threads', type=int, default=1, help='torch threads')
    p.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                   help='processes for simulation and feature extraction')
    p.add_argument('--seed', type=int, default=0)


def add_parsers(sub) -> None:
    """Register ``train``, ``fit`` and ``optimize`` on an argparse subparsers object."""
    p = sub.add_parser('train', help='train the neural localizer on a simulated dataset')
    p.add_argument('--data', type=Path, required=True, help='dataset dir (echoloc simulate)')
    p.add_argument('--out', type=Path, required=True, help='checkpoint to write')
    p.add_argument('--no-resume', action='store_true', help='ignore OUT.state')
    _add_training_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser('fit', help='simulate, train and evaluate (NN vs physics) for a room')
    p.add_argument('--room', default='default_room')
    p.add_argument('--array', default='square_4sensor')
    p.add_argument('--n', type=int, default=3000, help='training frames')
    p.add_argument('--n-test', type=int, default=300, help='held-out frames')
    p.add_argument('--snr-db', type=float, default=20.0)
    p.add_argument('--heading-noise-deg', type=float, default=1.0)
    p.add_argument('--out', type=Path, required=True, help='checkpoint to write')
    p.add_argument('--work', type=Path, help='dataset dir (default data/fit_ROOM)')
    p.add_argument('--report', type=Path, help='also write the JSON here')
    _add_training_args(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser('optimize', help='int8 / TorchScript variants: accuracy and speed')
    p.add_argument('--model', type=Path, required=True)
    p.add_argument('--data', type=Path, required=True, help='dataset dir to measure on')
    p.add_argument('--n', type=int, default=300)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--workers', type=int, default=1)
    p.add_argument('--torchscript', type=Path, help='also write a traced TorchScript model')
    p.set_defaults(func=cmd_optimize)
