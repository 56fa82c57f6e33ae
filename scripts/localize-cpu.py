"""CPU time of ``Pipeline.step`` per frame, in-process and warm: the figure to compare two
versions of the localizer with, run back to back (docs/results.md, "CPU time per frame").

The frames are simulated and processed once (the bench's trajectory, 20 dB), then localized
``--passes`` times after a warm-up pass; each pass gives the p50 and p95 of the frames' CPU
time (this process's, with BLAS held to one thread as the nodes hold it), and the JSON holds
the smallest of each over the passes (the least disturbed by other work on the machine).

With ``--parts``, the JSON also gives each part's thread CPU time a frame (its p50, the least
over the passes): the physics ``frame`` (the upsampling), ``propose``, ``finish`` (the
network's call), ``settled`` (physics' own finish, its wider look and axis scans) and
``_fix_fit`` (the chosen candidate's final model, refinement, residual and covariance,
inside either; a candidate finished twice is fitted once), and for
``nn`` the network's inputs (``candidate_example``) and its forward pass
(``probabilities``); with ``--tracked`` the pipeline feeds the node's tracker
(``PoseTracker``, its defaults and the room's volume), whose ``update_estimate`` is a part
too.

    python scripts/localize-cpu.py --room furnished_room --frames 60 --passes 3
    python scripts/localize-cpu.py --method nn --parts --tracked
"""
import argparse
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.core.track_search import FULL_SEARCH_PERIOD_S, TrackSearch
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import Scenario

FS_HZ = 250e3


def main() -> None:
    """Print one JSON line: the method, room, level, frames, passes and localize CPU p50/p95
    (ms)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--method', choices=('physics', 'nn'), default='physics',
                        help='nn: the shipped model for the room, on the CPU')
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--level', default='balanced')
    parser.add_argument('--frames', type=int, default=60)
    parser.add_argument('--passes', type=int, default=3)
    parser.add_argument('--parts', action='store_true', help='also each part\'s CPU a frame')
    parser.add_argument('--tracked', action='store_true', help='feed the node\'s tracker')
    parser.add_argument('--track-search', choices=('on', 'off'), default='on',
                        help='with --tracked: a local fix from the track\'s prediction where it '
                        'stands in for the full search (the node\'s track_search); off: the '
                        'full search every frame')
    parser.add_argument('--period-s', type=float, default=FULL_SEARCH_PERIOD_S,
                        help='with --track-search on: its full_search_period_s [s]')
    args = parser.parse_args()
    room, array, chirp = load_room(args.room), load_array('square_4sensor'), Chirp()
    sim = SimulatedArray(room, array, chirp, FS_HZ, Scenario(snr_db=20.0, seed=0), seed=0)
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    tracker = PoseTracker(room_volume_m3=room.volume_m3) if args.tracked else None
    try:
        search = TrackSearch(period_s=args.period_s) if args.track_search == 'on' else None
    except ValueError as err:
        parser.error(str(err))
    pipeline = make_pipeline(args.method, room, array, chirp, FS_HZ, processor, args.level,
                             tracker=tracker, track_search=search)
    parts: dict[str, list[float]] = {}
    if args.parts:
        _time_parts(pipeline, parts)
    frames = []
    for i in range(args.frames):
        frame = sim.acquire(0.04 * i)
        frames.append((processor.process(frame.samples), frame.measured_yaw_rad))
    p50, p95 = [], []
    part_p50: dict[str, list[float]] = {}
    with threadpool_limits(limits=1):
        for rep in range(args.passes + 1):
            cpu_s = []
            parts.clear()
            for i, (features, yaw_rad) in enumerate(frames):
                start = time.process_time()
                pipeline.step(100.0 * rep + 0.04 * i, features, yaw_rad,
                              temperature_c=room.temperature_c)
                cpu_s.append(time.process_time() - start)
            if rep:
                p50.append(1e3 * np.percentile(cpu_s, 50))
                p95.append(1e3 * np.percentile(cpu_s, 95))
                for name, times in parts.items():
                    part_p50.setdefault(name, []).append(1e3 * np.percentile(times, 50))
    out = {'method': args.method, 'room': args.room, 'level': args.level,
           'frames': args.frames, 'passes': args.passes, 'tracked': args.tracked,
           'localize_cpu_ms': {'p50': round(min(p50), 3), 'p95': round(min(p95), 3)}}
    if args.tracked:
        out['track_search'] = args.track_search
        if search is not None:
            out.update({'period_s': search.period_s, **search.counts.as_dict()})
    if args.parts:
        out['parts_cpu_ms_p50'] = {name: round(min(v), 3) for name, v in part_p50.items()}
    print(json.dumps(out))


def _time_parts(pipeline, parts: dict[str, list[float]]) -> None:
    """Time each part of ``pipeline``'s step where the step calls it (thread CPU time, one
    entry a call, in ``parts``)."""
    from echoloc_ros.core import nn_localizer

    def timed(owner, name: str) -> None:
        work = getattr(owner, name)

        def wrapper(*a, **k):
            start = time.thread_time()
            try:
                return work(*a, **k)
            finally:
                parts.setdefault(name, []).append(time.thread_time() - start)
        setattr(owner, name, wrapper)

    localizer = pipeline.localizer
    physics = getattr(localizer, 'physics', localizer)
    for name in ('frame', 'propose', 'finish', 'settled', '_fix_fit'):
        timed(physics, name)
    if physics is not localizer:
        timed(localizer, 'probabilities')
        timed(nn_localizer, 'candidate_example')
    if pipeline.tracker is not None:
        timed(pipeline.tracker, 'update_estimate')


if __name__ == '__main__':
    main()
