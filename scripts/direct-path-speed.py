"""Does the direct emitter->receiver path tell the speed of sound? (issue 18)

The direct path's length is the array's geometry (a few centimetres) and the array
self-calibration measures its delay (:meth:`ArrayCalibration.fitted_response`'s ``delay_s``,
beyond the file's geometry at 20 degC). Were both known well enough, the path would be an
absolute ruler for the air, which the room's echoes are not (a room ``1 + s`` larger in air
``1 + s`` faster sounds the same). This script calibrates the array on ``--frames`` frames of
each case and prints, per case, the fitted delays and the speed of sound they imply per
receiver, from the file's geometry and from the drawn (true) one, as one JSON line each.

Cases: the array as its file in 20 and 25 degC air (the signal: 25 degC is 0.88 % faster); the
file's transducers 1 % narrower; and ``--draws`` arrays of the realistic mix (resonances
+-0.2 kHz, receivers +-0.25 mm, tilt 0.25 deg) in 20 degC air.

Run: ``python scripts/direct-path-speed.py --frames 64 --seed 1 --draws 3`` (dev seeds).
"""

import argparse
import json

import numpy as np

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.array_calibration import DIRECT_C_MPS
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.room import load_room
from echoloc_ros.offline.evaluation import self_calibrate
from echoloc_ros.sim.model_error import Hardware, ModelError
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3


def implied(case: str, hardware: Hardware | None, temperature_c: float, frames: int,
            seed: int) -> dict:
    """Calibrate on ``frames`` frames of ``hardware`` (``None``: the file's) in air at
    ``temperature_c``; the fitted delays and the speed of sound they imply."""
    room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(room, array, chirp, FS_HZ)
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    scenario = Scenario(snr_db=20.0, temperature_c=temperature_c, hardware=hardware)
    fitted = self_calibrate(simulator, processor, scenario, frames, seed).fitted_response(
        chirp, array)
    delay_s = fitted['delay_s']
    file_m = np.linalg.norm(array.receivers_m - array.emitter_m, axis=1)
    true_m = file_m if hardware is None else np.linalg.norm(
        hardware.receivers_m - hardware.emitter_m, axis=1)
    true_c = speed_of_sound_mps(temperature_c)
    out = {'case': case, 'air_c': temperature_c, 'true_c_mps': round(true_c, 3),
           'delay_us': np.round(1e6 * delay_s, 4).tolist(),
           'bandwidth_hz': np.round(fitted['bandwidth_hz'], 1).tolist()}
    for name, length in (('file', file_m), ('true', true_m)):
        c = length / (file_m / DIRECT_C_MPS + delay_s)
        out[f'c_error_pct_{name}_geometry'] = np.round(100 * (c / true_c - 1), 4).tolist()
    out['path_mm'] = np.round(1e3 * file_m, 3).tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frames', type=int, default=64, help='calibration frames per case')
    parser.add_argument('--seed', type=int, default=1, help='model-error seed of the first draw')
    parser.add_argument('--draws', type=int, default=3, help='arrays of the mix drawn')
    args = parser.parse_args()
    array = load_array('square_4sensor')
    cases = [('file', None, 20.0), ('file', None, 25.0)]
    narrow = Hardware.nominal(array)
    narrow.emitter_bandwidth_hz *= 0.99
    narrow.receiver_bandwidth_hz = narrow.receiver_bandwidth_hz * 0.99
    cases.append(('bandwidth -1 %', narrow, 20.0))
    for k in range(args.draws):
        error = ModelError(resonance_spread_hz=200.0, receiver_offset_m=0.00025, tilt_deg=0.25,
                           seed=args.seed + k)
        cases.append((f'mix seed {args.seed + k}', error.draw_hardware(array), 20.0))
    for case, hardware, temperature_c in cases:
        print(json.dumps(implied(case, hardware, temperature_c, args.frames, args.seed)),
              flush=True)


if __name__ == '__main__':
    main()
