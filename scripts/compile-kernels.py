"""Compile the physics localizer's loops (numba) into their on-disk cache, so that the first
node or test that localizes loads them instead of compiling them (10-20 s on a 2-core machine).

One simulated frame localized in the default, the furnished and the L-shaped room reaches every
kernel with the argument types the localizer passes at run time (and the echo processor's
first-echo pair fit, core/first_echo.py, and its delay fit, core/delay_fit.py, which
processing the frame reaches). Run by scripts/setup.sh when core/physics/kernels.py,
scan_kernels.py, axis_kernels.py (the balanced level's axis scans), heading_kernels.py (the
heading step before the wall scans), newton.py, fix_kernels.py (the final fit's residual floor,
misfit and covariance), path_trace.py, core/first_echo.py, core/delay_fit.py or
core/tracker_kernels.py (the tracker's frame, reached by a short tracked drive) changes.
"""
import time

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics import staged_search
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3


def main() -> None:
    """Localize one frame per room, printing how long compiling (or loading) took."""
    start = time.perf_counter()
    array, chirp = load_array('square_4sensor'), Chirp()
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    # The heading step is off by default; compiled here so that turning it on finds it cached
    # (staged_search reads it: setting the localizer module's name would change nothing).
    staged_search.HEADING_STEP = True
    for name in ('default_room', 'furnished_room', 'l_shaped_room'):
        room = load_room(name)
        rng = np.random.default_rng(0)
        position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
        samples = EchoSimulator(room, array, chirp, FS_HZ).simulate(
            position, yaw, Scenario(snr_db=20.0), rng)
        estimate = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor).localize(
            processor.process(samples), yaw)
        tracker = PoseTracker(room_volume_m3=room.volume_m3)
        for k in range(4):
            tracker.update_estimate(0.04 * k, estimate)
    print(f'[setup] physics kernels compiled and cached in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
