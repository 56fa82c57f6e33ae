#!/usr/bin/env python3
"""The network's fixes outside their 99.9 % ellipsoid (issue 19, dev split only): per frame of
``echoloc evaluate --method nn --rooms random:N --split dev --seed S`` (the same frames), the
network's fix and physics' own (:meth:`NeuralLocalizer.physics_fix`) with their positions,
covariances, evidence and residual ratios, which one :meth:`NeuralLocalizer.fix` publishes and
the published covariance, so that rules for covering the other fix can be replayed:

    python scripts/nn-outside-study.py record --seed 7 --n 300 --snr-db 10 --out rows.jsonl
    python scripts/nn-outside-study.py replay rows.jsonl

``replay`` prints, per ``--gaps`` value, the share of published fixes outside their 99.9 %
ellipsoid, coverage_95 and how many right fixes (under 10 cm) the two-point rule
(:func:`two_point_covariance`: the published fix's covariance spanning the other fix) widens
by more than 1 %; ``--doubt`` replays instead the network's fix published with physics' own
covariance added where physics' fix is the same place and doubtful (confidence 0).
"""
import argparse
import json
import sys

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor, direct_explained
from echoloc_ros.core.nn_localizer import SAME_PLACE_M, NeuralLocalizer
from echoloc_ros.core.physics.config import AMBIGUOUS_GAP, RIVAL_COVER_WEIGHT
from echoloc_ros.offline.evaluation import CHI2_95_3DOF, CHI2_999_3DOF, random_frames
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.offline.room_evaluation import frames_seed

FS_HZ = 250e3


def _fix(estimate) -> dict:
    return {'position_m': estimate.position_m.tolist(),
            'covariance_m2': np.asarray(estimate.covariance_m2).ravel().tolist(),
            'score': float(estimate.score), 'ratio': float(estimate.residual_ratio),
            'confidence': float(estimate.confidence)}


def record(args) -> int:
    """One JSON line a frame: the truth, both fixes and the published one."""
    array, chirp = load_array('square_4sensor'), Chirp()
    rooms = generate_rooms(args.split, args.rooms, args.seed)
    n_room = int(np.ceil(args.n / len(rooms)))
    noise = float(np.deg2rad(args.heading_noise_deg))
    scenario = Scenario(snr_db=args.snr_db, seed=args.seed)
    with open(args.out, 'a') as out:
        for i, room in enumerate(rooms):
            processor = EchoProcessor(chirp, FS_HZ, array=array)
            nn = NeuralLocalizer.from_checkpoint(args.model, room, array, chirp, FS_HZ,
                                                 processor=processor)
            simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=2)
            room_seed = frames_seed(args.seed, i)
            for k, (_, frame, position, yaw, draw, _) in enumerate(
                    random_frames(simulator, scenario, n_room, room_seed)):
                features = processor.process(frame)
                if not direct_explained(features):
                    continue
                fix, network, physics = nn.fixes(features, yaw + noise * draw, None, noise)
                rec = {'room': i, 'frame': k, 'shoebox': room.is_shoebox,
                       'truth_m': np.asarray(position).tolist(),
                       'network': _fix(network), 'physics': _fix(physics),
                       'published': _fix(fix.estimate),
                       'stands': nn.physics_stands(physics, network)}
                out.write(json.dumps(rec) + '\n')
                out.flush()
            print(f'room {i} done', file=sys.stderr, flush=True)
    return 0


def two_point_covariance(covariance_m2: np.ndarray, kept_m: np.ndarray, other_m: np.ndarray,
                         gap: float, cover_gap: float) -> np.ndarray:
    """The rule replayed: ``covariance_m2 (3, 3)`` of the published fix at ``kept_m (3,)``
    widened toward the other fix at ``other_m (3,)``, the second moment about the kept fix of a
    two-point mixture (as ``EchoHeading.widen`` spans its mirror): the other's weight
    ``1 / (1 + exp(gap / AMBIGUOUS_GAP))`` from the kept fix's evidence less the other's,
    at least ``RIVAL_COVER_WEIGHT`` while ``gap`` is under ``cover_gap``; fixes under
    ``SAME_PLACE_M`` apart are one place."""
    d = np.asarray(other_m, dtype=float) - np.asarray(kept_m, dtype=float)
    if np.linalg.norm(d) < SAME_PLACE_M:
        return covariance_m2
    weight = 1.0 / (1.0 + np.exp(min(gap / AMBIGUOUS_GAP, 700.0)))
    if gap < cover_gap:
        weight = max(weight, RIVAL_COVER_WEIGHT)
    return covariance_m2 + weight * np.outer(d, d)


def _d2(fix: dict, cov: np.ndarray, truth: np.ndarray) -> float:
    e = np.asarray(fix['position_m']) - truth
    return float(e @ np.linalg.solve(cov, e))


def replay(args) -> int:
    """Each rule's outside share, coverage and right fixes widened over recorded lines."""
    rows = [json.loads(line) for path in args.rows for line in open(path)]
    for gap in [None] + args.gaps:
        outside = inside = widened = 0
        for r in rows:
            truth = np.asarray(r['truth_m'])
            kept, other = ((r['physics'], r['network']) if r['stands']
                           else (r['network'], r['physics']))
            base = np.reshape(r['published']['covariance_m2'], (3, 3))
            cov = base
            gap_m = np.linalg.norm(np.subtract(kept['position_m'], other['position_m']))
            if gap is not None and not args.doubt:
                cov = two_point_covariance(base, np.asarray(kept['position_m']),
                                           np.asarray(other['position_m']),
                                           kept['score'] - other['score'], gap)
            elif gap is not None and gap_m < SAME_PLACE_M and other['confidence'] == 0.0:
                cov = base + np.reshape(other['covariance_m2'], (3, 3))
            d2 = _d2(r['published'], cov, truth)
            outside += d2 > CHI2_999_3DOF
            inside += d2 <= CHI2_95_3DOF
            right = np.linalg.norm(np.asarray(r['published']['position_m']) - truth) < 0.1
            widened += bool(right and np.any(np.diag(cov) > 1.01 * np.diag(base)))
        rule = 'as published' if gap is None else ('physics doubt' if args.doubt else gap)
        print(json.dumps({'cover_gap': rule, 'n': len(rows),
                          'outside_999': round(outside / len(rows), 4),
                          'coverage_95': round(inside / len(rows), 4),
                          'right_widened': widened}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='command', required=True)
    rec = sub.add_parser('record')
    rec.add_argument('--rooms', type=int, default=30)
    rec.add_argument('--split', default='dev', choices=('dev',))
    rec.add_argument('--seed', type=int, default=7)
    rec.add_argument('--n', type=int, default=300)
    rec.add_argument('--snr-db', type=float, default=10.0)
    rec.add_argument('--heading-noise-deg', type=float, default=1.0)
    rec.add_argument('--model', default='models/general.pt')
    rec.add_argument('--out', required=True)
    rep = sub.add_parser('replay')
    rep.add_argument('rows', nargs='+')
    rep.add_argument('--gaps', type=float, nargs='+', default=[10.0, 30.0, 100.0, 300.0, 1000.0])
    rep.add_argument('--doubt', action='store_true',
                     help="replay physics' doubt at the same place instead (one line)")
    args = ap.parse_args()
    return record(args) if args.command == 'record' else replay(args)


if __name__ == '__main__':
    sys.exit(main())
