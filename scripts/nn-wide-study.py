#!/usr/bin/env python3
"""Physics' fix of the wide proposal beside that of the first, on the frames the general
network doubts (issue 19, dev only; branch r37-04).

Reads ``scripts/nn-tie-study.py record`` rows (their seed, room, frame and doubt), draws the
same frames again as ``echoloc evaluate --rooms random:30 --split dev --seed S`` draws them,
and writes one JSON line a doubted frame: the fix ``NeuralLocalizer.fixes`` publishes
(``pub``), the network's own (``net``), physics' own fix (``guard``, of the first proposal
unless :data:`~echoloc_ros.core.nn_localizer.PHYSICS_FROM_WIDE` chose the wide one), physics'
fix of the wide proposal (``gwide``), each with its error, log evidence, residual ratio and
confidence, and whether a candidate of the wide proposal is within 10 cm of the truth::

    python scripts/nn-wide-study.py s8.jsonl,s9.jsonl --seed 8 --snr-db 10 --out w8.jsonl
"""
import argparse
import json
import sys

import numpy as np
from nn_study import FS_HZ

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.nn_localizer import NeuralLocalizer
from echoloc_ros.core.paths import GENERAL_MODEL, default_model_path
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.offline.room_evaluation import frames_seed
from echoloc_ros.sim.room_generator import generate_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario


def _row(estimate, truth: np.ndarray) -> dict:
    return {'err_cm': round(100 * float(np.linalg.norm(estimate.position_m - truth)), 2),
            'score': float(estimate.score), 'ratio': float(estimate.residual_ratio),
            'conf': float(estimate.confidence), 'pos': estimate.position_m.tolist()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('rows', help='nn-tie-study.py record files, comma-separated')
    ap.add_argument('--seed', type=int, required=True)
    ap.add_argument('--snr-db', type=float, default=10.0)
    ap.add_argument('--heading-noise-deg', type=float, default=1.0)
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    if args.seed in (0, 1):
        ap.error(f'--seed {args.seed} made the training or calibration rooms')
    rows = [json.loads(line) for path in args.rows.split(',') for line in open(path)
            if line.endswith('\n')]
    rows = [r for r in rows if r['seed'] == args.seed and r['doubted']]
    std = float(np.deg2rad(args.heading_noise_deg))
    array, chirp = load_array('square_4sensor'), Chirp()
    scenario = Scenario(snr_db=args.snr_db, seed=args.seed)
    with open(args.out, 'a') as out:
        for index in sorted({r['room'] for r in rows}):
            wanted = {r['frame'] for r in rows if r['room'] == index}
            room = generate_room('dev', index, args.seed)
            processor = EchoProcessor(chirp, FS_HZ, array=array)
            nn = NeuralLocalizer.from_checkpoint(default_model_path(GENERAL_MODEL), room, array,
                                                 chirp, FS_HZ, processor=processor)
            simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=2)
            frames = random_frames(simulator, scenario, max(wanted) + 1,
                                   frames_seed(args.seed, index))
            for k, (_, frame, position, yaw, draw, _) in enumerate(frames):
                if k not in wanted:
                    continue
                truth, heading = np.asarray(position), yaw + std * draw
                features = processor.process(frame)
                fix, network, physics = nn.fixes(features, heading, None, std)
                wider = nn.wide.propose(features, heading, None, std)
                near = np.linalg.norm(wider.positions_m() - truth, axis=1) < 0.1
                out.write(json.dumps({
                    'seed': args.seed, 'room': index, 'frame': k,
                    'furnished': bool(room.furniture), 'doubted': fix.doubted,
                    'kept': fix.wide_kept, 'pub': _row(fix.estimate, truth),
                    'net': _row(network, truth), 'guard': _row(physics, truth),
                    'gwide': _row(nn.physics.settled(wider), truth),
                    'wide_truth_in': bool(near.any())}) + '\n')
                out.flush()
            print(f'room {index} done', file=sys.stderr, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
