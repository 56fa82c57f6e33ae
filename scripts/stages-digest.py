"""A digest of the fixes the stages bench's drive gives (``echoloc bench --stages-only``: the
default trajectory at 20 dB, seed 0, each frame through ``Pipeline.step`` with the node's
tracker and its local fixes), to show that a change to the localizer left every fix the same
to the bit: run it before and after (each worktree with its own ``scripts/env.sh``) and
compare the lines.

Every fix's position, covariance, heading, speed of sound, score, residual ratio and
confidence, and whether it was a local fix, go into a SHA-256 (``sha256``); the JSON also
gives the localize CPU time a frame (thread CPU, BLAS on one thread; the frames simulated and
processed first, then localized twice, the second pass timed). ``--max-order all``
simulates every reflection order in the window (a shoebox room), the case of the late
orders' allowance (``core/physics/late_orders.py``).

    python scripts/stages-digest.py --max-order all
    python scripts/stages-digest.py --room furnished_room --method nn
"""
import argparse
import hashlib
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3


def main() -> None:
    """Print one JSON line: the room, method, order, frames, the digest and localize CPU."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--method', choices=('physics', 'nn'), default='physics')
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--max-order', default='2',
                        help='the simulation\'s highest reflection order, or all')
    args = parser.parse_args()
    max_order = args.max_order if args.max_order == 'all' else int(args.max_order)
    room, array, chirp = load_room(args.room), load_array('square_4sensor'), Chirp()
    limits = threadpool_limits(limits=1)
    # The bench's drive (offline/bench.py, bench_stages), its simulator to the order asked.
    sim = SimulatedArray(room, array, chirp, FS_HZ, Scenario(snr_db=20.0, seed=0), seed=0)
    sim.simulator = EchoSimulator(room, array, chirp, fs_hz=FS_HZ, max_order=max_order)
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    frames = []
    for i in range(args.frames):
        frame = sim.acquire(0.04 * i)
        frames.append((processor.process(frame.samples), frame.measured_yaw_rad))
    for timed in (False, True):
        pipeline = make_pipeline(args.method, room, array, chirp, FS_HZ, processor, 'balanced',
                                 tracker=PoseTracker(room_volume_m3=room.volume_m3),
                                 track_search=True)
        pipeline.warm_up()
        digest, cpu, local = hashlib.sha256(), [], 0
        for i, (features, yaw) in enumerate(frames):
            start = time.thread_time()
            result = pipeline.step(0.04 * i, features, yaw, temperature_c=room.temperature_c)
            cpu.append(time.thread_time() - start)
            e = result.fix.estimate
            local += bool(result.local)
            for value in (e.position_m, e.covariance_m2, e.yaw_rad, e.speed_of_sound_mps,
                          e.score, e.residual_ratio, e.confidence, bool(result.local)):
                digest.update(np.asarray(value, dtype=float).tobytes())
    limits.restore_original_limits()
    print(json.dumps({'room': args.room, 'method': args.method, 'max_order': args.max_order,
                      'frames': args.frames, 'local_fixes': local,
                      'sha256': digest.hexdigest()[:16],
                      'localize_cpu_ms': {q: round(1e3 * float(np.percentile(cpu, int(q[1:]))),
                                                   3) for q in ('p50', 'p95')}}))


if __name__ == '__main__':
    main()
