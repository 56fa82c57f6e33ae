#!/usr/bin/env python3
"""Where the general network loses to physics, frame by frame (issue 19, dev split only).

For each frame of ``echoloc evaluate --rooms random:N --split dev --seed S`` (the same
frames), runs physics' ``localize`` and the network's steps one by one and writes one JSON
line a frame: the errors of physics' fix and of the network's, the network's probabilities of
its choice and of physics' best candidate, whether it doubted the frame and searched it
widely, the nearest candidate to the truth in each proposal, and the error physics' own
``finish`` (and its wider look) reaches on the network's proposal.

    python scripts/nn-choice-study.py --rooms 30 --seed 7 --n 300 --snr-db 10
        --model models/general.pt --out /tmp/study.jsonl    (one line)
"""
import argparse
import json
import sys

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor, direct_explained
from echoloc_ros.core.nn_localizer import (WIDE_BEST_PROBABILITY, WIDE_NONE_PROBABILITY,
                                           NeuralLocalizer)
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3


def _nearest(proposal, truth_m: np.ndarray) -> tuple[int, float]:
    d = np.linalg.norm(proposal.positions_m() - truth_m, axis=1)
    return int(np.argmin(d)), float(d.min())


def _probability_at(proposal, p: np.ndarray, position_m: np.ndarray) -> float:
    """The network's probability of the candidates within 10 cm of ``position_m``."""
    d = np.linalg.norm(proposal.positions_m() - position_m, axis=1)
    return float(p[:-1][d < 0.1].sum())


def _physics_on(nn: NeuralLocalizer, proposal, index: int):
    """Physics' finish of candidate ``index`` of ``proposal``, and its wider look after."""
    physics = nn.physics
    estimate = physics.finish(proposal, index)
    wider = estimate
    if proposal.localizer._doubtful_fix(estimate):
        other = physics.finish(proposal.localizer._wider_look(proposal, estimate))
        wider = other if physics._replaces(estimate, other) else estimate
    return estimate, wider


def frame_record(nn: NeuralLocalizer, physics: PhysicsLocalizer, features, yaw_told: float,
                 yaw_std: float, position: np.ndarray) -> dict:
    err = lambda e: float(np.linalg.norm(e.position_m - position))  # noqa: E731
    fixed = physics.localize(features, yaw_told, yaw_std_rad=yaw_std)
    proposal = nn.physics.propose(features, yaw_told, None, yaw_std)
    p, _ = nn.rank(proposal)
    doubted = bool(p[-1] > WIDE_NONE_PROBABILITY or p[:-1].max() < WIDE_BEST_PROBABILITY)
    near, near_m = _nearest(proposal, position)
    rec = {'physics_m': err(fixed), 'physics_conf': fixed.confidence,
           'physics_ratio': fixed.residual_ratio, 'physics_score': fixed.score,
           'p_physics': _probability_at(proposal, p, fixed.position_m),
           'p0': float(p[0]), 'p_best': float(p[:-1].max()), 'p_none': float(p[-1]),
           'choice': int(np.argmax(p[:-1])), 'doubted': doubted,
           'near': near, 'near_m': near_m, 'p_near': float(p[near]),
           'score_gap': float(proposal.scores[0] - proposal.scores[1])
           if len(proposal.scores) > 1 else np.inf,
           'n_cand': len(proposal.thetas)}
    first, wider = _physics_on(nn, proposal, 0)
    rec['cand0_m'], rec['cand0_wider_m'] = err(first), err(wider)
    chosen, final = proposal, p
    if doubted:
        wide = nn.wide.propose(features, yaw_told, None, yaw_std)
        q, _ = nn.rank(wide)
        wnear, wnear_m = _nearest(wide, position)
        rec.update({'wide_p_best': float(q[:-1].max()), 'wide_choice': int(np.argmax(q[:-1])),
                    'wide_near': wnear, 'wide_near_m': wnear_m, 'wide_p_near': float(q[wnear]),
                    'kept': bool(q[:-1].max() > p[:-1].max())})
        if rec['kept']:
            chosen, final = wide, q
    index = int(np.argmax(final[:-1]))
    estimate = nn.physics.finish(chosen, index, final, nn.covariance_scale)
    rec['nn_m'] = err(estimate)
    rec['nn_conf'] = estimate.confidence
    rec['nn_score'] = estimate.score
    rec['nn_ratio'] = estimate.residual_ratio
    rec['nn_p'] = float(final[index])
    rec['nn_from_physics_m'] = float(np.linalg.norm(estimate.position_m - fixed.position_m))
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rooms', type=int, default=30)
    ap.add_argument('--split', default='dev', choices=('dev',))
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--n', type=int, default=300)
    ap.add_argument('--snr-db', type=float, default=10.0)
    ap.add_argument('--heading-noise-deg', type=float, default=1.0)
    ap.add_argument('--model', default='models/general.pt')
    ap.add_argument('--first-room', type=int, default=0)
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    array, chirp = load_array('square_4sensor'), Chirp()
    rooms = generate_rooms(args.split, args.rooms, args.seed)
    n_room = int(np.ceil(args.n / len(rooms)))
    noise = float(np.deg2rad(args.heading_noise_deg))
    scenario = Scenario(snr_db=args.snr_db, seed=args.seed)
    with open(args.out, 'a') as out:
        for i, room in enumerate(rooms):
            if i < args.first_room:
                continue
            processor = EchoProcessor(chirp, FS_HZ, array=array)
            nn = NeuralLocalizer.from_checkpoint(args.model, room, array, chirp, FS_HZ,
                                                 processor=processor)
            physics = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
            simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=2)
            room_seed = int(np.random.SeedSequence([args.seed, i]).generate_state(1)[0])
            frames = random_frames(simulator, scenario, n_room, room_seed)
            for k, (_, frame, position, yaw, draw, _) in enumerate(frames):
                features = processor.process(frame)
                if not direct_explained(features):
                    continue
                rec = frame_record(nn, physics, features, yaw + noise * draw, noise, position)
                rec.update({'room': i, 'name': room.name, 'frame': k,
                            'shoebox': room.is_shoebox})
                out.write(json.dumps(rec) + '\n')
                out.flush()
            print(f'room {i} done', file=sys.stderr, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
