"""A digest of the features the echo processor gives, to show that a speed-up of it changed
no bit of them: run it before and after a change and compare the lines.

Per room and SNR, ``--frames`` frames of the bench's trajectory, each processed with and
without the first echo (``EchoProcessor.process(first_echo=...)``), first with the array's
model and then with a self-calibration taken from the first 24 frames (as the node makes it);
every field of every result goes into one SHA-256 per room and SNR, and every field of the
features message the node builds of each (``conversions.features_msg``) into another
(``message_sha256``; not the serialized message, whose alignment padding is not set).

    python scripts/feature-digest.py --frames 40
"""
import argparse
import array
import hashlib
import json
from dataclasses import fields

import numpy as np
from threadpoolctl import threadpool_limits

from echoloc_ros.core.array_calibration import DirectPathCalibrator
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import Scenario

FS_HZ = 250e3


def _digest(room_name: str, snr_db: float, n_frames: int) -> dict:
    from builtin_interfaces.msg import Time

    from echoloc_ros.ros import conversions
    room, geometry, chirp = load_room(room_name), load_array('square_4sensor'), Chirp()
    sim = SimulatedArray(room, geometry, chirp, FS_HZ, Scenario(snr_db=snr_db, seed=0), seed=0)
    frames = [sim.acquire(0.04 * i).samples for i in range(n_frames)]
    processor = EchoProcessor(chirp, FS_HZ, array=geometry)
    calibrator = DirectPathCalibrator(processor.calibration_window, FS_HZ)
    calibration = None
    for samples in frames[:24]:
        calibration = calibrator.add(samples) or calibration
    features_sha, message_sha = hashlib.sha256(), hashlib.sha256()
    for calibrated in (None, calibration):
        processor.set_calibration(calibrated)
        for seq, samples in enumerate(frames):
            msg = conversions.echo_frame_msg(samples, Time(sec=seq), 'echoloc_array', seq,
                                             geometry, chirp, FS_HZ)
            for first_echo in (True, False):
                features = processor.process(conversions.echo_frame_samples(msg),
                                             first_echo=first_echo)
                for field in fields(features):
                    value = np.asarray(getattr(features, field.name))
                    features_sha.update(field.name.encode() + str(value.dtype).encode())
                    features_sha.update(np.ascontiguousarray(value).tobytes())
                message = conversions.features_msg(features, msg, 0.0)
                for name in message.get_fields_and_field_types():
                    value = getattr(message, name)
                    message_sha.update(name.encode() + (bytes(value) if isinstance(
                        value, array.array) else repr(value).encode()))
    return {'sha256': features_sha.hexdigest()[:16],
            'message_sha256': message_sha.hexdigest()[:16]}


def main() -> None:
    """Print one JSON line: the frames and each room and SNR's digests."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rooms', nargs='+', default=['default_room', 'furnished_room'])
    parser.add_argument('--snr-db', type=float, nargs='+', default=[20.0, 10.0])
    parser.add_argument('--frames', type=int, default=40)
    args = parser.parse_args()
    if args.frames < 24:
        parser.error(f'--frames {args.frames}: expected at least 24 (the calibration\'s)')
    with threadpool_limits(limits=1):
        digests = {f'{room}@{snr:g}dB': _digest(room, snr, args.frames)
                   for room in args.rooms for snr in args.snr_db}
    print(json.dumps({'frames': args.frames, 'digests': digests}))


if __name__ == '__main__':
    main()
