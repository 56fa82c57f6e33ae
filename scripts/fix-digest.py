"""A digest of the fixes a localizer gives, to show that a speed-up changed no bit of them:
run it before and after a change and compare the lines.

Per room (the default and furnished rooms, and generated dev rooms: an even index is a
shoebox, an odd one is not), ``--frames`` random poses at ``--snr-db`` with the heading given
``--heading-noise-deg`` off (the frames of ``echoloc evaluate``'s ``random_frames``, seed
``--seed``), each localized by the pipeline of ``--method`` without a tracker. Every fix's
position, covariance, heading, speed of sound, score, residual ratio, confidence and the
network's probabilities go into a SHA-256 per room (``sha256``), the positions alone into
another (``position_sha256``: the same poses where a change moves only the covariances' last
bits); one JSON line gives the digests and the fixes' mean error (a check that the frames
localized at all). ``--save`` writes every fix's position and covariance (``.npz``) to compare
two runs by their largest difference.

    python scripts/fix-digest.py --frames 12
    python scripts/fix-digest.py --method nn --rooms default_room furnished_room dev:1
"""
import argparse
import hashlib
import json

import numpy as np
from threadpoolctl import threadpool_limits

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.paths import default_model_path
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import Room, load_room
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.sim.room_generator import generate_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3


def _room(name: str) -> Room:
    """A room file's name, or ``dev:<index>``: the generated dev room of seed 0."""
    if name.startswith('dev:'):
        return generate_room('dev', int(name[4:]), 0)
    return load_room(name)


def _digest(room: Room, method: str, frames: int, seed: int, snr_db: float,
            heading_noise_deg: float) -> dict:
    """The room's digests and the fixes' mean error (cm), and each fix's position and
    covariance ``(frames, 12)``."""
    array, chirp = load_array('square_4sensor'), Chirp()
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    model = None
    if method == 'nn' and not default_model_path(room.name).is_file():
        model = default_model_path('general')
    pipeline = make_pipeline(method, room, array, chirp, FS_HZ, processor, model_path=model)
    simulator = EchoSimulator(room, array, chirp, FS_HZ)
    noise_rad = float(np.deg2rad(heading_noise_deg))
    digest, positions = hashlib.sha256(), hashlib.sha256()
    errors, saved = [], []
    for _, frame, position, yaw, draw, _ in random_frames(
            simulator, Scenario(snr_db=snr_db, seed=seed), frames, seed):
        features = processor.process(frame)
        fix = pipeline.localizer.fix(features, yaw + noise_rad * draw,
                                     yaw_std_rad=noise_rad or None)
        estimate = fix.estimate
        for value in (estimate.position_m, estimate.covariance_m2, estimate.yaw_rad,
                      estimate.speed_of_sound_mps, estimate.score, estimate.residual_ratio,
                      estimate.confidence, estimate.candidates_m, estimate.rivals_m,
                      estimate.rival_probabilities):
            digest.update(np.ascontiguousarray(value, dtype=float).tobytes())
        positions.update(np.ascontiguousarray(estimate.position_m, dtype=float).tobytes())
        errors.append(float(np.linalg.norm(estimate.position_m - position)))
        saved.append(np.concatenate([estimate.position_m, estimate.covariance_m2.ravel()]))
    return {'sha256': digest.hexdigest()[:16], 'position_sha256': positions.hexdigest()[:16],
            'mean_error_cm': round(100.0 * float(np.mean(errors)), 4)}, np.array(saved)


def main() -> None:
    """Print one JSON line: the method, settings and each room's digest."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--method', choices=('physics', 'nn'), default='physics')
    parser.add_argument('--rooms', nargs='+',
                        default=['default_room', 'furnished_room', 'dev:0', 'dev:1'])
    parser.add_argument('--frames', type=int, default=12)
    parser.add_argument('--seed', type=int, default=20)
    parser.add_argument('--snr-db', type=float, default=10.0)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--save', help='.npz: each room\'s positions and covariances '
                        '(frames, 12)')
    args = parser.parse_args()
    rooms, saved = {}, {}
    with threadpool_limits(limits=1):
        for name in args.rooms:
            rooms[name], saved[name] = _digest(_room(name), args.method, args.frames,
                                               args.seed, args.snr_db, args.heading_noise_deg)
    if args.save:
        np.savez(args.save, **saved)
    print(json.dumps({'method': args.method, 'frames': args.frames, 'seed': args.seed,
                      'snr_db': args.snr_db, 'rooms': rooms}))


if __name__ == '__main__':
    main()
