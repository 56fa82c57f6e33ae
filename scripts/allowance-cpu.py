"""CPU time of the room tolerance's allowance (issue 18) a fix, against the fix's whole
``localize``: the default room stated within ``--room-tolerance-m``, frames of the exact room
at 20 dB, thread CPU time with BLAS held to one thread. ``--without`` replaces the allowance
by 0 (the residual judged against the noise alone), to run back to back with it.
``--surface-offset-m`` draws the simulated room's surfaces off the file by up to that
(``--model-error-seed``), where the tolerated rivals are spanned; ``--rivals-off`` leaves them
out (:func:`~echoloc_ros.core.room_tolerance.with_tolerated_rivals`, issue 18, r32-64).

    python scripts/allowance-cpu.py
    python scripts/allowance-cpu.py --without
    python scripts/allowance-cpu.py --surface-offset-m 0.03 [--rivals-off]
"""
import argparse
import json
import time
from dataclasses import replace

import numpy as np
from threadpoolctl import threadpool_limits

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
import echoloc_ros.core.physics.localizer as localizer_module
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3


def main() -> None:
    """Print one JSON line: frames, localize CPU a frame and the allowance's (ms)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--room-tolerance-m', type=float, default=0.03)
    parser.add_argument('--without', action='store_true')
    parser.add_argument('--surface-offset-m', type=float, default=0.0)
    parser.add_argument('--model-error-seed', type=int, default=1)
    parser.add_argument('--rivals-off', action='store_true')
    args = parser.parse_args()
    room = load_room('default_room')
    array, chirp = load_array('square_4sensor'), Chirp()
    world = ModelError(surface_offset_m=args.surface_offset_m,
                       seed=args.model_error_seed).draw_room(room)
    simulator = EchoSimulator(world.room, array, chirp, FS_HZ)
    if args.rivals_off:
        localizer_module.with_tolerated_rivals = lambda covariance, *rest: covariance
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    localizer = PhysicsLocalizer(replace(room, tolerance_m=args.room_tolerance_m), array,
                                 chirp, processor=processor)
    spent: list[float] = []
    allowance = PhysicsLocalizer._tolerance_allowance

    def timed(model, *rest):
        start = time.thread_time()
        value = 0.0 if args.without else allowance(model, *rest)
        spent.append(time.thread_time() - start)
        return value

    PhysicsLocalizer._tolerance_allowance = timed
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(args.frames):
        position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
        frames.append((processor.process(simulator.simulate(position - world.origin_m, yaw,
                                                            Scenario(snr_db=20.0), rng)), yaw))
    with threadpool_limits(1):
        localizer.localize(*frames[0], 20.0)
        spent.clear()
        start = time.thread_time()
        for features, yaw in frames:
            localizer.localize(features, yaw, 20.0)
        total = time.thread_time() - start
    print(json.dumps({'frames': len(frames), 'without': args.without,
                      'surface_offset_m': args.surface_offset_m, 'rivals_off': args.rivals_off,
                      'localize_ms': round(1e3 * total / len(frames), 2),
                      'allowance_ms': round(1e3 * sum(spent) / len(frames), 3),
                      'allowance_calls': len(spent) / len(frames)}), flush=True)


if __name__ == '__main__':
    main()
