"""Why ``Pipeline.step`` costs more in the live localizer node than in ``echoloc bench
--stages-only``: the same frames (the bench's trajectory, 20 dB, processed once) localized by
the node's pipeline (tracker, track search) under each ``--conditions``, in rounds that
alternate them, each pass from a fresh track:

- ``hot``: frame after frame, nothing between them (as ``scripts/localize-cpu.py``);
- ``node_inputs``: as ``hot`` with what the node passes that the stages bench does not: the
  IMU's heading standard deviation (the sim driver's 1 deg) and its roll and pitch (level);
- ``evicted``: ``--evict-mb`` of memory written between frames, as the driver, the echo
  processor and the middleware do between two of the node's frames;
- ``slept``: 40 ms asleep between frames (the frame period: the core may run other work);
- ``gc_frozen``: ``gc.freeze()`` before the pass (the objects made so far never scanned
  again), with ``evicted``'s eviction;
- ``gc_off``: the collector off through the pass, with ``evicted``'s eviction.

Per condition: the CPU time of ``step`` a frame (thread CPU, BLAS held to one thread as the
nodes hold it), the mean and p50/p95 over all its passes, and how many collections ran inside
``step`` and their CPU. One JSON line.

    python scripts/step-cold-cpu.py --frames 150 --rounds 3
"""
import argparse
import gc
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

from live_cpu import GcClock

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import Scenario

FS_HZ = 250e3
CONDITIONS = ('hot', 'node_inputs', 'evicted', 'slept', 'gc_frozen', 'gc_off')


def run_pass(pipeline, frames, condition: str, evict: np.ndarray, clock: GcClock,
             room) -> list[float]:
    """One pass over ``frames`` from a fresh track; each step's thread CPU time, s."""
    pipeline.tracker.reset()
    pipeline.track_search.reset()
    node_inputs = condition != 'hot'
    cpu = []
    if condition == 'gc_frozen':
        gc.collect()
        gc.freeze()
    if condition == 'gc_off':
        gc.disable()
    try:
        for i, (features, yaw_rad) in enumerate(frames):
            if condition in ('evicted', 'gc_frozen', 'gc_off'):
                evict += 1.0
            elif condition == 'slept':
                time.sleep(0.04)
            clock.counting = True
            start = time.thread_time()
            pipeline.step(0.04 * i, features, yaw_rad,
                          np.deg2rad(1.0) if node_inputs else None, room.temperature_c,
                          True, (0.0, 0.0) if node_inputs else None)
            cpu.append(time.thread_time() - start)
            clock.counting = False
    finally:
        gc.enable()
        if condition == 'gc_frozen':
            gc.unfreeze()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--method', choices=('physics', 'nn'), default='physics')
    parser.add_argument('--frames', type=int, default=150)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--evict-mb', type=float, default=16.0)
    parser.add_argument('--conditions', default=','.join(CONDITIONS))
    args = parser.parse_args()
    conditions = args.conditions.split(',')
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        parser.error(f'--conditions {sorted(unknown)}: expected some of {CONDITIONS}')
    room, array, chirp = load_room(args.room), load_array('square_4sensor'), Chirp()
    sim = SimulatedArray(room, array, chirp, FS_HZ, Scenario(snr_db=20.0, seed=0), seed=0)
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    pipeline = make_pipeline(args.method, room, array, chirp, FS_HZ, processor,
                             tracker=PoseTracker(room_volume_m3=room.volume_m3))
    frames = []
    for i in range(args.frames):
        frame = sim.acquire(0.04 * i)
        frames.append((processor.process(frame.samples), frame.measured_yaw_rad))
    evict = np.zeros(int(args.evict_mb * 2**20 / 8))
    clock = GcClock()
    cpu: dict[str, list[float]] = {name: [] for name in conditions}
    gcs = {name: [0, 0.0] for name in conditions}
    with threadpool_limits(limits=1):
        pipeline.warm_up()
        for _ in range(args.rounds):
            for name in conditions:
                clock.count, clock.cpu_s = 0, 0.0
                cpu[name] += run_pass(pipeline, frames, name, evict, clock, room)
                gcs[name][0] += clock.count
                gcs[name][1] += clock.cpu_s
    n = args.frames * args.rounds
    print(json.dumps({'room': args.room, 'method': args.method, 'frames': args.frames,
                      'rounds': args.rounds, 'evict_mb': args.evict_mb, **{
                          name: {'step_cpu_ms_mean': round(1e3 * float(np.mean(c)), 3),
                                 'p50': round(1e3 * float(np.percentile(c, 50)), 3),
                                 'p95': round(1e3 * float(np.percentile(c, 95)), 3),
                                 'gc_in_step_per_frame': round(gcs[name][0] / n, 3),
                                 'gc_in_step_ms_per_frame': round(1e3 * gcs[name][1] / n, 3)}
                          for name, c in cpu.items()}}))


if __name__ == '__main__':
    main()
