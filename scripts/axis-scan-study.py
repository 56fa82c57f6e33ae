#!/usr/bin/env python3
"""What the axis scans (issue 19: ``PhysicsLocalizer(axis_rivals=True)``, the peaks of the
evidence along x and y through each fix spanned by its covariance, and those it does not beat
refined) cost and change, the same frames localized with them and without, in one process.

``cpu``: the CPU time of ``localize`` per frame (this process's, BLAS held to one thread) over
the bench's trajectory at 20 dB (as ``scripts/localize-cpu.py``; random poses in a plan that
is not a shoebox), the settings alternated pass by pass: ``off`` (no scans), ``on`` (every
fix scanned, ``axis_gate`` off) and ``gated`` (the scans where they pay,
:meth:`AxisRivals._scans_pay`); the JSON gives each pass's p50 and mean, ms, and the scans'
own CPU a frame (``scan_ms``, thread time in ``_evidence_peaks`` and the gate's
``_axis_shares``, each pass's mean).

``widening``: ``--n`` random frames of the room (``--seed``, ``--snr-db``, 1 deg heading
noise, as ``echoloc evaluate`` draws them); for each setting coverage_95, outside_999 and the
gross rate, and between ``off`` and ``on`` (``--gated``: the gated scans) how many positions
moved, and of the fixes right (< 10 cm) in both how many had a published sigma widened by
more than 1 %, 2 times and 10 times.

    python scripts/axis-scan-study.py cpu --room default_room --frames 60 --passes 3
    python scripts/axis-scan-study.py widening --room furnished_room --n 200 --snr-db 10
    python scripts/axis-scan-study.py cpu --room dev:25 --frames 40 --passes 2
"""
import argparse
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.offline.evaluation import (CHI2_95_3DOF, CHI2_999_3DOF, direct_explained,
                                            random_frames)
from echoloc_ros.sim.room_generator import generate_room
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3
HEADING_STD_RAD = float(np.deg2rad(1.0))


def cpu(args, room, array, chirp, processor, localizers) -> dict:
    """Each pass's localize CPU p50 and mean (ms) per setting."""
    frames = []
    if room.is_shoebox:
        sim = SimulatedArray(room, array, chirp, FS_HZ, Scenario(snr_db=20.0, seed=0), seed=0)
        for i in range(args.frames):
            frame = sim.acquire(0.04 * i)
            frames.append((processor.process(frame.samples), frame.measured_yaw_rad))
    else:
        # The bench's figure-of-eight may leave another plan: random poses instead.
        simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=2)
        for _, frame, _, yaw, _, _ in random_frames(
                simulator, Scenario(snr_db=20.0, seed=0), args.frames, 0):
            frames.append((processor.process(frame), yaw))
    out = {name: [] for name in localizers}
    scan_s = {name: [] for name in localizers}
    with threadpool_limits(limits=1):
        for loc in localizers.values():
            loc.localize(*frames[0])
        for _ in range(args.passes):
            for name, loc in localizers.items():
                cpu_s = []
                loc.scan_s = 0.0
                for features, yaw in frames:
                    start = time.process_time()
                    loc.localize(features, yaw)
                    cpu_s.append(time.process_time() - start)
                out[name].append([round(1e3 * float(np.percentile(cpu_s, 50)), 3),
                                  round(1e3 * float(np.mean(cpu_s)), 3)])
                scan_s[name].append(round(1e3 * loc.scan_s / len(frames), 3))
    return {'frames': args.frames, 'p50_mean_ms': out, 'scan_ms': scan_s}


def _timed_scans(loc: PhysicsLocalizer) -> None:
    """Add the thread CPU time of ``loc``'s scans and gate to ``loc.scan_s``."""
    for name in ('_evidence_peaks', '_axis_shares'):
        work = getattr(loc, name)

        def wrapper(*a, work=work, **k):
            start = time.thread_time()
            try:
                return work(*a, **k)
            finally:
                loc.scan_s += time.thread_time() - start
        setattr(loc, name, wrapper)


def widening(args, room, array, chirp, processor, localizers) -> dict:
    """Coverage, outside_999 and gross per setting, and what changed between them."""
    simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=2)
    errors = {name: [] for name in localizers}
    d2 = {name: [] for name in localizers}
    sigma = {name: [] for name in localizers}
    for _, frame, position, yaw, draw, _ in random_frames(
            simulator, Scenario(snr_db=args.snr_db, seed=args.seed), args.n, args.seed):
        features = processor.process(frame)
        if not direct_explained(features):
            continue
        for name, loc in localizers.items():
            estimate = loc.localize(features, yaw + HEADING_STD_RAD * draw,
                                    yaw_std_rad=HEADING_STD_RAD)
            error = estimate.position_m - position
            errors[name].append(error)
            d2[name].append(float(error @ np.linalg.solve(estimate.covariance_m2, error)))
            sigma[name].append(np.sqrt(np.diag(estimate.covariance_m2)))
    out = {}
    for name in localizers:
        e, m = np.linalg.norm(errors[name], axis=1), np.array(d2[name])
        out[name] = {'n': int(e.size), 'gross_rate_10cm': round(float(np.mean(e > 0.1)), 4),
                     'coverage_95': round(float(np.mean(m <= CHI2_95_3DOF)), 4),
                     'outside_999': round(float(np.mean(m > CHI2_999_3DOF)), 4)}
    moved = np.linalg.norm(np.array(errors['on']) - np.array(errors['off']), axis=1) > 1e-6
    right = ((np.linalg.norm(errors['on'], axis=1) < 0.1)
             & (np.linalg.norm(errors['off'], axis=1) < 0.1))
    growth = np.max(np.array(sigma['on']) / np.array(sigma['off']), axis=1)[right]
    out['moved'] = int(moved.sum())
    out['right_both'] = int(right.sum())
    out['right_widened'] = {'1pct': int(np.sum(growth > 1.01)), 'x2': int(np.sum(growth > 2)),
                            'x10': int(np.sum(growth > 10))}
    return out


def main() -> None:
    """Print one JSON line for the room."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('what', choices=('cpu', 'widening'))
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--level', default='balanced')
    parser.add_argument('--frames', type=int, default=60)
    parser.add_argument('--passes', type=int, default=3)
    parser.add_argument('--n', type=int, default=200)
    parser.add_argument('--snr-db', type=float, default=10.0)
    parser.add_argument('--seed', type=int, default=20)
    parser.add_argument('--gated', action='store_true', help='widening: the gated scans')
    args = parser.parse_args()
    # dev:N: room N of the dev split (seed 7), as echoloc evaluate --rooms draws it.
    room = (generate_room('dev', int(args.room[4:]), 7) if args.room.startswith('dev:')
            else load_room(args.room))
    array, chirp = load_array('square_4sensor'), Chirp()
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    localizers = {name: PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor,
                                         optimization_level=args.level, axis_rivals=on)
                  for name, on in (('off', False), ('on', True), ('gated', True))}
    localizers['on'].axis_gate = False
    if args.what == 'cpu':
        for loc in localizers.values():
            loc.scan_s = 0.0
            _timed_scans(loc)
    else:
        localizers = {'off': localizers['off'],
                      'on': localizers['gated' if args.gated else 'on']}
    study = cpu if args.what == 'cpu' else widening
    print(json.dumps({'what': args.what, 'room': args.room, 'level': args.level,
                      **study(args, room, array, chirp, processor, localizers)}))


if __name__ == '__main__':
    main()
