"""What reflections of order 3 and up do to the physics localizer, and what its final fit with
the room's order-3 images (``images.FINAL_ORDER``) takes back: the same poses and noise
simulated at order 2 and at every order in the window, each localized with the final fit of
orders 1-2 (as before issue 18's fix) and with the fix's (docs/results.md, issue 18).

    python scripts/higher-orders.py --room default_room --snr-db 20 --n 300 --seed 7

One JSON line per (simulated orders, final fit): median, p95, gross share, coverage_95, the
share outside the 99.9 % ellipsoid, the share whose residual ratio holds them doubtful and the
localizer's CPU per frame.
"""
import argparse
import json
import time

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics import images
from echoloc_ros.core.physics.config import UNEXPLAINED_RATIO
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.offline.evaluation import CHI2_999_3DOF, holds_truth_95, random_frames
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3


def main() -> None:
    """Print the JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--n', type=int, default=300)
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    args = parser.parse_args()
    room, array, chirp = load_room(args.room), load_array('square_4sensor'), Chirp()
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    yaw_std = float(np.deg2rad(args.heading_noise_deg))
    final_order = images.FINAL_ORDER
    for order in (2, 'all'):
        simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=order)
        frames = [(processor.process(frame), position, yaw, draw) for _, frame, position, yaw,
                  draw, _ in random_frames(simulator, Scenario(snr_db=args.snr_db), args.n,
                                           args.seed)]
        for final in (2, final_order):
            images.FINAL_ORDER = final
            localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
            errors, inside, m2, doubtful, cpu_s = [], [], [], [], 0.0
            for features, position, yaw, draw in frames:
                start = time.process_time()
                estimate = localizer.localize(features, yaw + yaw_std * draw, None, yaw_std)
                cpu_s += time.process_time() - start
                error = estimate.position_m - position
                errors.append(float(np.linalg.norm(error)))
                inside.append(holds_truth_95(error, estimate.covariance_m2))
                m2.append(float(error @ np.linalg.solve(estimate.covariance_m2, error)))
                doubtful.append(estimate.residual_ratio > UNEXPLAINED_RATIO)
            errors, m2 = np.array(errors), np.array(m2)
            print(json.dumps({
                'room': room.name, 'snr_db': args.snr_db, 'seed': args.seed, 'n': args.n,
                'max_order': order, 'final_fit_order': final,
                'median_cm': round(100 * float(np.median(errors)), 4),
                'p95_cm': round(100 * float(np.percentile(errors, 95)), 4),
                'gross_rate_10cm': round(float(np.mean(errors > 0.1)), 4),
                'coverage_95': round(float(np.mean(inside)), 4),
                'outside_999': round(float(np.mean(m2 > CHI2_999_3DOF)), 4),
                'doubtful_rate': round(float(np.mean(doubtful)), 4),
                'localize_cpu_ms': round(1e3 * cpu_s / len(frames), 2)}), flush=True)
    images.FINAL_ORDER = final_order


if __name__ == '__main__':
    main()
