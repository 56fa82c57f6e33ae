"""Tracked laps of chosen generated rooms, one room after another, exactly as ``echoloc evaluate
--rooms random:N --split S --seed SEED --tracked-lap-s L --snr-db 20 --heading-noise-deg 1``
drives them (room ``i``'s noise from ``frames_seed(seed, i)``, its ``fitted_path``), with the
track search on or off; each room's vouched tracked poses are saved (``OUT/<room>.npz``) and
summarised on one JSON line, with the track search's counts (local fixes, full searches and
why), as soon as it is done, so that a run cut short still counts, and several processes can
share the rooms. ``pool`` pools the saved rooms of two runs over the
rooms both have.

    python scripts/track-search-laps.py run --split heldout --rooms 10 --seed 26 --mode on
        --only 0,1,2,3,4 --out /tmp/ho_on   (one command line)
    python scripts/track-search-laps.py pool /tmp/ho_off /tmp/ho_on
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.track_search import TrackSearch
from echoloc_ros.offline.evaluation import evaluate_tracked
from echoloc_ros.offline.room_evaluation import brief_summary, frames_seed, vouched_poses
from echoloc_ros.offline.tracked_path import fitted_path
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import Scenario


def run(args) -> int:
    rooms = generate_rooms(args.split, args.rooms, args.seed)
    only = [int(i) for i in args.only.split(',')] if args.only else range(len(rooms))
    if any(not 0 <= i < len(rooms) for i in only):
        raise SystemExit(f'--only {args.only}: expected room indices in [0, {len(rooms)})')
    args.out.mkdir(parents=True, exist_ok=True)
    array = load_array('square_4sensor')
    for i in only:
        room, path = rooms[i], fitted_path(rooms[i], args.lap_s)
        if path is None:
            print(json.dumps({'room': room.name, 'path': None}), flush=True)
            continue
        details: dict = {}
        search = TrackSearch() if args.mode == 'on' else False
        evaluate_tracked(room, array, Chirp(), Scenario(snr_db=args.snr_db, seed=args.seed),
                         None, frames_seed(args.seed, i), details=details, path=path,
                         heading_noise_deg=args.heading_noise_deg,
                         track_search=search)
        errors, inside, outside = vouched_poses(details)
        saved = {'errors': errors, 'inside': inside, 'outside': outside,
                 'n': len(details['vouched'])}
        np.savez(args.out / f'{room.name}.npz', **saved)
        counts = search.counts.as_dict() if search else {}
        print(json.dumps({'room': room.name, 'mode': args.mode,
                          **brief_summary(errors, inside, outside, saved['n']), **counts}),
              flush=True)
    return 0


def pool(args) -> int:
    runs = [{p.stem: dict(np.load(p)) for p in Path(d).glob('*.npz')} for d in args.dirs]
    common = sorted(set.intersection(*(set(r) for r in runs)))
    if not common:
        raise SystemExit(f'no room saved in every one of {[str(d) for d in args.dirs]}')
    for d, saved in zip(args.dirs, runs):
        rooms = [saved[name] for name in common]
        pooled = [np.concatenate([r[k] for r in rooms]) for k in ('errors', 'inside', 'outside')]
        meeting = sum(1 for r in rooms if r['n'] and len(r['errors'])
                      and np.percentile(100 * r['errors'], 95) <= 1.0 and not r['outside'].any())
        print(json.dumps({'run': str(d), 'rooms': common, 'rooms_meeting_bar': meeting,
                          **brief_summary(*pooled, int(sum(r['n'] for r in rooms)))}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser('run')
    p.add_argument('--split', choices=('dev', 'heldout'), required=True)
    p.add_argument('--rooms', type=int, required=True, help='N of random:N')
    p.add_argument('--seed', type=int, required=True)
    p.add_argument('--lap-s', type=float, default=12.0)
    p.add_argument('--snr-db', type=float, default=20.0)
    p.add_argument('--heading-noise-deg', type=float, default=1.0)
    p.add_argument('--mode', choices=('on', 'off'), required=True, help='the track search')
    p.add_argument('--only', help='room indices, comma-separated (default: all)')
    p.add_argument('--out', type=Path, required=True)
    p.set_defaults(func=run)
    p = sub.add_parser('pool')
    p.add_argument('dirs', nargs='+', type=Path)
    p.set_defaults(func=pool)
    args = parser.parse_args()
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
