#!/usr/bin/env python3
"""``echoloc evaluate --rooms random:N`` split over processes by room, and pooled as it pools.

``run`` is ``echoloc evaluate`` (its own arguments after ``--``) localizing only the rooms
whose index ``i`` has ``i % OF == SHARD``; every room's frames come from its own seed
``[seed, i]`` as in one run, so the shards together localize exactly the frames of one run.
Each localized room's details (errors, truths, fixes, covariances, inside the 95 % ellipsoid,
published or withheld) go to ``--out`` (``.npz``). ``pool`` reads the shards' files and prints
the JSON line ``evaluate`` prints for the whole run (``pooled``, ``shoebox``,
``non_rectangular``, ``soft``, ``furnished``:
:func:`~echoloc_ros.offline.room_evaluation.published_summary` of the frames pooled; no
``per_room``), refusing a set of shards that misses a room or holds one twice. E.g.
``python scripts/evaluate-shards.py run --shard 0 --of 3 --out /tmp/s0.npz -- --rooms
random:30 --split dev --seed 7 --n 300 --snr-db 20 --heading-noise-deg 1 --tracked-frames 0``
for shards 0, 1 and 2, then ``python scripts/evaluate-shards.py pool --rooms random:30 --split
dev --seed 7 --n 300 /tmp/s0.npz /tmp/s1.npz /tmp/s2.npz``. On dev seed 7 (4 rooms, 8 frames)
the pooled line equals ``evaluate``'s in every group.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from echoloc_ros import cli
from echoloc_ros.offline import room_evaluation
from echoloc_ros.offline.room_evaluation import parse_rooms
from echoloc_ros.sim.room_generator import generate_rooms

KEYS = ('errors_m', 'truth_m', 'estimate_m', 'covariance_m2', 'inside_95', 'published')


def run(shard: int, of: int, out: str, evaluate_args: list[str]) -> int:
    """``echoloc evaluate`` on the rooms of one shard; their details saved to ``out``."""
    if not 0 <= shard < of:
        raise ValueError(f'shard must be in [0, {of}), got {shard}')
    real = room_evaluation.evaluate_fixes
    kept: dict[str, np.ndarray] = {}
    calls = [0]

    def one_room(room, *args, details=None, **kwargs):
        index = calls[0]
        calls[0] += 1
        if index % of != shard:
            return {}
        result = real(room, *args, details=details, **kwargs)
        for key in KEYS:
            kept[f'{index}/{key}'] = np.asarray(details.get(key, np.zeros(0)))
        kept[f'{index}/name'] = np.array(room.name)
        return result

    room_evaluation.evaluate_fixes = one_room
    try:
        code = cli.main(['evaluate', *evaluate_args])
    finally:
        room_evaluation.evaluate_fixes = real
    np.savez(out, shard=shard, of=of, **kept)
    return code


def pool(rooms_spec: str, split: str, seed: int, n: int, files: list[str]) -> dict:
    """The pooled figures of the shards' ``files`` (``evaluate``'s grouping and rounding).

    :raises ValueError: a shard file missing, a room missing from the shards, held twice,
        or not the split's.
    """
    rooms = generate_rooms(split, parse_rooms(rooms_spec), seed)
    found: dict[int, dict] = {}
    for path in files:
        if not Path(path).is_file():
            raise ValueError(f'shard file {path!r} does not exist (expected the .npz that '
                             f'evaluate-shards run --out wrote)')
        with np.load(path) as data:
            for index in sorted({int(k.split('/')[0]) for k in data.files if '/' in k}):
                if index in found:
                    raise ValueError(f'room {index} is in two shards ({path})')
                if str(data[f'{index}/name']) != rooms[index].name:
                    raise ValueError(f'{path}: room {index} is {data[f"{index}/name"]}, '
                                     f'expected {rooms[index].name}')
                found[index] = {key: data[f'{index}/{key}'] for key in KEYS
                                if f'{index}/{key}' in data.files}
    missing = sorted(set(range(len(rooms))) - set(found))
    if missing:
        raise ValueError(f'rooms {missing} are in none of the shards')
    frames = [room_evaluation.room_frames(found[index]) for index in range(len(rooms))]
    n_room = int(np.ceil(n / len(rooms)))
    out = room_evaluation._grouped(rooms, frames, [n_room] * len(rooms))
    out['frames_per_room'] = n_room
    return room_evaluation._rounded(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    one = sub.add_parser('run', help='one shard of echoloc evaluate --rooms')
    one.add_argument('--shard', type=int, required=True)
    one.add_argument('--of', type=int, required=True)
    one.add_argument('--out', required=True)
    one.add_argument('evaluate_args', nargs=argparse.REMAINDER)
    both = sub.add_parser('pool', help='the shards pooled')
    both.add_argument('--rooms', required=True)
    both.add_argument('--split', required=True)
    both.add_argument('--seed', type=int, required=True)
    both.add_argument('--n', type=int, required=True)
    both.add_argument('files', nargs='+')
    args = parser.parse_args()
    try:
        if args.command == 'run':
            rest = args.evaluate_args[1:] if args.evaluate_args[:1] == ['--'] else \
                args.evaluate_args
            return run(args.shard, args.of, args.out, rest)
        print(json.dumps(pool(args.rooms, args.split, args.seed, args.n, args.files)))
    except ValueError as err:
        print(f'evaluate-shards: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
