"""CPU time of ``EchoProcessor.process`` per frame, in-process and warm, with the first echo
looked for and without it (``first_echo=False``: the one process with no other reader of the
features), alternated pass by pass so that both see the same load (docs/results.md, "Issue 20:
where Pipeline.step and process spend a frame").

The frames are the bench's trajectory at 20 dB; each pass gives the p50 and p95 of the frames'
CPU time (this process's, BLAS held to one thread as the nodes hold it), and the JSON holds the
least of each over the passes.

    python scripts/process-cpu.py --room default_room --frames 60 --passes 8
"""
import argparse
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import Scenario

FS_HZ = 250e3


def main() -> None:
    """Print one JSON line: the room, frames, passes and process CPU p50/p95 (ms) with and
    without the first echo."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--frames', type=int, default=60)
    parser.add_argument('--passes', type=int, default=8)
    args = parser.parse_args()
    room, array, chirp = load_room(args.room), load_array('square_4sensor'), Chirp()
    sim = SimulatedArray(room, array, chirp, FS_HZ, Scenario(snr_db=20.0, seed=0), seed=0)
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    frames = [sim.acquire(0.04 * i).samples for i in range(args.frames)]
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    with threadpool_limits(limits=1):
        for rep in range(args.passes + 1):
            for first_echo in (True, False):
                cpu_s = []
                for samples in frames:
                    start = time.process_time()
                    processor.process(samples, first_echo=first_echo)
                    cpu_s.append(time.process_time() - start)
                if rep:
                    runs[first_echo].append((1e3 * np.percentile(cpu_s, 50),
                                             1e3 * np.percentile(cpu_s, 95)))

    def least(first_echo: bool) -> dict[str, float]:
        return {'p50': round(min(r[0] for r in runs[first_echo]), 3),
                'p95': round(min(r[1] for r in runs[first_echo]), 3)}

    print(json.dumps({'room': args.room, 'frames': args.frames, 'passes': args.passes,
                      'process_cpu_ms': least(True),
                      'process_without_first_echo_cpu_ms': least(False)}))


if __name__ == '__main__':
    main()
