#!/usr/bin/env python3
"""The heading from the walls' first-order echoes against the heading given (issue 19).

For each frame of ``echoloc evaluate --rooms random:N --split S --seed K --n N`` (the same
rooms, poses, noise and heading draws), the floor and ceiling echoes are fitted and removed as
the physics localizer does before its wall scans, and
:func:`~echoloc_ros.core.physics.heading_step.wall_heading` estimates the heading offset on a
grid of ``--span-deg`` at ``--step-deg``. Prints one JSON line per frame (the given heading's
error and the estimate's, deg) and a summary last, e.g.
``python scripts/heading-study.py --split dev --seed 7 --n 300 --snr-db 20``.
"""

import argparse
import json

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics.heading_step import wall_heading, wall_heading_scores
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.offline.evaluation import direct_explained, random_frames
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.offline.room_evaluation import frames_seed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--split', default='dev')
    parser.add_argument('--rooms', type=int, default=30)
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--n', type=int, default=300)
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--span-deg', type=float, default=5.0)
    parser.add_argument('--step-deg', type=float, default=0.5)
    parser.add_argument('--save', help='an .npz of each frame\'s per-wall scores')
    args = parser.parse_args()
    rooms = generate_rooms(args.split, args.rooms, args.seed)
    array = load_array('square_4sensor')
    chirp = Chirp()
    n_room = int(np.ceil(args.n / len(rooms)))
    noise_rad = float(np.deg2rad(args.heading_noise_deg))
    span = np.deg2rad(args.span_deg)
    psi = np.arange(-span, span + 1e-9, np.deg2rad(args.step_deg))
    given_err, found_err = [], []
    saved = []
    for i, room in enumerate(rooms):
        room_seed = frames_seed(args.seed, i)
        processor = EchoProcessor(chirp, 250e3, array=array)
        loc = PhysicsLocalizer(room, array, chirp, 250e3, processor=processor)
        simulator = EchoSimulator(room, array, chirp, 250e3, max_order=2)
        frames = random_frames(simulator, Scenario(snr_db=args.snr_db, seed=args.seed),
                               n_room, room_seed)
        for k, (_, frame, _, yaw, draw, _) in enumerate(frames):
            features = processor.process(frame)
            if not direct_explained(features):
                continue
            given = yaw + noise_rad * draw
            fr = loc.frame(features, given, room.temperature_c, None)
            fr.yaw_info = 1.0 / noise_rad ** 2
            z, kappa = loc._height_candidates(fr)[0][:2]
            table = loc._vertical_fit(fr, features, room.vertices_m.mean(axis=0), z, kappa)[2]
            grid = np.arange(0.02, room.max_extent_m * 1.05 + 0.05, 0.004)
            found = wall_heading(fr, loc._normals[:-2], psi, grid, table)
            if args.save:
                saved.append((yaw - given, room.is_shoebox,
                              wall_heading_scores(fr, loc._normals[:-2], psi, grid,
                                                  table).sum(axis=0)))
            given_err.append(np.degrees(yaw - given))
            found_err.append(np.degrees(yaw - given - found))
            print(json.dumps({'room': i, 'frame': k, 'shoebox': room.is_shoebox,
                              'given_off_deg': round(given_err[-1], 2),
                              'found_off_deg': round(found_err[-1], 2)}), flush=True)
    if args.save:
        np.savez(args.save, psi=psi, off=[r[0] for r in saved], shoebox=[r[1] for r in saved],
                 scores=np.array([r[2] for r in saved]))
    g, f = np.abs(given_err), np.abs(found_err)
    print(json.dumps({'n': len(g), 'given_rms_deg': round(float(np.sqrt(np.mean(g ** 2))), 3),
                      'found_rms_deg': round(float(np.sqrt(np.mean(f ** 2))), 3),
                      'given_over_1.5': int(np.sum(g > 1.5)),
                      'found_over_1.5': int(np.sum(f > 1.5)),
                      'found_median_deg': round(float(np.median(f)), 3)}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
