#!/usr/bin/env python3
"""Where the network's published fix differs from physics' (issue 19, dev split only).

``record`` draws ``echoloc evaluate --rooms random:N --split dev --seed S``'s frames (the same
frames) and writes one JSON line a frame: the truth, the room's groups, physics' fix exactly
as ``--method physics`` publishes it (the axis and height scans on), and the network's steps
(:meth:`NeuralLocalizer.fixes`: the published fix, the network's own fix with its
probability, doubt and wide search, and the physics fix its guard compared against). ``replay``
then publishes, per rule, either the network's fix or physics', and prints per group the gross
rate, coverage_95 and share outside the 99.9 % ellipsoid beside physics' on the same frames:

    python scripts/nn-guard-study.py record --seed 7 --n 300 --snr-db 10 --out rows.jsonl
    python scripts/nn-guard-study.py record --room default_room --seed 20 --n 300 --out d.jsonl
    python scripts/nn-guard-study.py replay rows.jsonl [more.jsonl ...]
"""
import argparse
import json
import sys

import numpy as np
from nn_study import FS_HZ, GROUPS, apart_m, fix_row, group_line, in_group

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor, direct_explained
from echoloc_ros.core.nn_localizer import PHYSICS_KEPT_GAP, SAME_PLACE_M, NeuralLocalizer
from echoloc_ros.core.physics.config import UNEXPLAINED_RATIO
from echoloc_ros.core.paths import default_model_path
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.offline.room_evaluation import frames_seed, is_soft
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import EchoSimulator, Scenario


def frame_record(nn: NeuralLocalizer, physics: PhysicsLocalizer, scanned: PhysicsLocalizer,
                 features, yaw_told: float, yaw_std: float) -> dict:
    """Physics' published fix, physics' fix with the scans on the network's proposal
    (``scanned``: the network's proposer with the axis and height scans), and the network's
    steps on the same frame."""
    fixed = physics.localize(features, yaw_told, None, yaw_std)
    own = scanned.localize(features, yaw_told, None, yaw_std)
    fix, network, guard = nn.fixes(features, yaw_told, None, yaw_std)
    # The network's own fix's confidence is its probability (with the candidates at the
    # same place).
    return {'physics': fix_row(fixed), 'scanned': fix_row(own), 'network': fix_row(network),
            'guard': None if guard is None else fix_row(guard), 'published': fix_row(fix.estimate),
            'doubted': bool(fix.doubted), 'wide': bool(fix.wide), 'kept': bool(fix.wide_kept)}


def record(args) -> int:
    """One JSON line a frame (see the module's docstring)."""
    array, chirp = load_array('square_4sensor'), Chirp()
    if args.room:
        # A project room with its own network, its frames as ``evaluate --room R --seed S``.
        rooms = [load_room(args.room)]
        model = default_model_path(args.room)
    else:
        rooms = generate_rooms(args.split, args.rooms, args.seed)
        model = args.model
    n_room = int(np.ceil(args.n / len(rooms)))
    noise = float(np.deg2rad(args.heading_noise_deg))
    scenario = Scenario(snr_db=args.snr_db, seed=args.seed)
    with open(args.out, 'a') as out:
        for i, room in enumerate(rooms):
            if i < args.first_room:
                continue
            processor = EchoProcessor(chirp, FS_HZ, array=array)
            # The network's path as it was before physics' own fix scanned (the published
            # fix of the old rule; ``scanned`` below is the new guard's physics).
            nn = NeuralLocalizer.from_checkpoint(model, room, array, chirp, FS_HZ,
                                                 processor=processor, physics_scans=False)
            physics = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
            scanned = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor,
                                       n_rescan=nn.physics.n_rescan)
            simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=2)
            seed = args.seed if args.room else frames_seed(args.seed, i)
            frames = random_frames(simulator, scenario, n_room, seed)
            for k, (_, frame, position, yaw, draw, _) in enumerate(frames):
                features = processor.process(frame)
                if not direct_explained(features):
                    continue
                rec = frame_record(nn, physics, scanned, features, yaw + noise * draw, noise)
                rec.update({'room': i, 'frame': k, 'truth_m': np.asarray(position).tolist(),
                            'shoebox': room.is_shoebox, 'soft': is_soft(room),
                            'furnished': bool(room.furniture)})
                out.write(json.dumps(rec) + '\n')
                out.flush()
            print(f'room {i} done', file=sys.stderr, flush=True)
    return 0


def guard_stands(physics: dict, network: dict, gap: float = PHYSICS_KEPT_GAP,
                 max_ratio: float = UNEXPLAINED_RATIO, relative: bool = False) -> bool:
    """:meth:`NeuralLocalizer.physics_stands` on recorded fixes, its gap and ratio free;
    ``relative``: physics' residual ratio may also be up to the network fix's own."""
    limit = max(max_ratio, network['ratio']) if relative else max_ratio
    return bool(apart_m(physics, network) >= SAME_PLACE_M and physics['ratio'] <= limit
                and physics['score'] > network['score'] + gap)


def _guarded(field: str, gap: float = PHYSICS_KEPT_GAP, max_ratio: float = UNEXPLAINED_RATIO,
             defer_below: float = 0.0, relative: bool = False):
    """The rule: physics' fix ``field`` (``'physics'``: physics' own proposal; ``'scanned'``:
    the network's proposal, scanned; ``'guard'``: the network's proposal, unscanned) stands
    where :func:`guard_stands` says, or where the network's probability of its fix is below
    ``defer_below`` in a plan that is not a shoebox; else the network's fix."""
    def rule(r: dict) -> dict:
        physics, network = r[field], r['network']
        defer = not r['shoebox'] and network['confidence'] < defer_below
        stands = guard_stands(physics, network, gap, max_ratio, relative)
        return physics if defer or stands else network
    return rule


RULES = {
    'published': lambda r: r['published'],
    'physics': lambda r: r['physics'],
    'scanned_alone': lambda r: r['scanned'],
    'network': lambda r: r['network'],
    'guard_unscanned': _guarded('guard'),
    'guard_scanned': _guarded('scanned'),
    'guard_physics': _guarded('physics'),
    'guard_scanned_gap0': _guarded('scanned', 0.0),
    'guard_physics_gap0': _guarded('physics', 0.0),
    'guard_scanned_any_ratio': _guarded('scanned', PHYSICS_KEPT_GAP, np.inf),
    'guard_scanned_gap0_any_ratio': _guarded('scanned', 0.0, np.inf),
    'guard_scanned_relative': _guarded('scanned', relative=True),
    'guard_scanned_relative_gap0': _guarded('scanned', 0.0, relative=True),
    'guard_unscanned_relative': _guarded('guard', relative=True),
    'guard_scanned_defer05': _guarded('scanned', defer_below=0.5),
    'guard_scanned_defer09': _guarded('scanned', defer_below=0.9),
}


def replay(args) -> int:
    """Each rule's gross, coverage_95 and outside share per group, and the frames where it
    is right and physics not (won) or the other way (lost)."""
    rows = [json.loads(line) for path in args.rows for line in open(path)]
    for name in args.rules:
        rule = RULES[name]
        line = {'rule': name, 'n': len(rows)}
        for group in GROUPS:
            mine = [r for r in rows if in_group(r, group)]
            if not mine:
                continue
            line[group], _ = group_line([rule(r) for r in mine], mine)
        print(json.dumps(line))
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
    rec.add_argument('--first-room', type=int, default=0)
    rec.add_argument('--room', help='a project room (its own network) instead of --rooms')
    rec.add_argument('--out', required=True)
    rep = sub.add_parser('replay')
    rep.add_argument('rows', nargs='+')
    rep.add_argument('--rules', nargs='+', default=list(RULES), choices=sorted(RULES))
    args = ap.parse_args()
    return record(args) if args.command == 'record' else replay(args)


if __name__ == '__main__':
    sys.exit(main())
