"""The first-echo ranges of `echoloc evaluate` (range_first_echo_rate, range_early_rate) on the
same frames, without localizing them: with the pair fit (core/first_echo.py) and with the
single fit it refines, side by side. A quick dev check (200 frames in under a minute).

    python scripts/first-echo-ranges.py --n 200 --model-error-seed 1 --calibrate-frames 250
    python scripts/first-echo-ranges.py --n 200 --perfect --seed 7
"""
import argparse
import json

import numpy as np

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.offline import evaluation
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.simulator import Scenario

FS_HZ = 250e3


def main() -> None:
    """Print one JSON line: the figures with the pair fit (``pair``) and without (``single``)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0, help='seed of the frames')
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--model-error-seed', type=int, default=1)
    parser.add_argument('--calibrate-frames', type=int, default=250)
    parser.add_argument('--perfect', action='store_true',
                        help='the files\' world (no transducer mismatch, no calibration)')
    args = parser.parse_args()
    room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    single = EchoProcessor(chirp, FS_HZ, array=array)
    single._overlap.earliest = lambda baseband, times, tau, threshold: tau
    pipeline = make_pipeline('physics', room, array, chirp, FS_HZ, processor, 'balanced', None,
                             True)
    error = None if args.perfect else ModelError(
        resonance_offset_hz=1500, bandwidth_range_hz=(9000, 15000), seed=args.model_error_seed)
    frames = evaluation._drawn_frames(
        room, array, chirp, FS_HZ, processor, Scenario(snr_db=args.snr_db), args.n, args.seed,
        error, (2, 0 if args.perfect else args.calibrate_frames, (0, None, None), 0.4,
                (0.2, 1.2), 0.0), pipeline, 'level')
    pair_s, single_s, first_s = [], [], []
    for _, frame, _, _, _, _, first, _ in frames:
        if single.calibration is not processor.calibration:
            single.set_calibration(processor.calibration)
        pair_s.append(processor.process(frame).tof_s)
        single_s.append(single.process(frame).tof_s)
        first_s.append(first)
    c = speed_of_sound_mps(room.temperature_c)
    print(json.dumps({'args': vars(args), **{
        name: evaluation.rounded(evaluation.first_echo_figures(np.array(tof), np.array(first_s),
                                                               c))
        for name, tof in (('pair', pair_s), ('single', single_s))}}))


if __name__ == '__main__':
    main()
