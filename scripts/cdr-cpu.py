"""CPU time of the echo processor node's message codec, a call: reading one
``echoloc/EchoFrame`` from its bytes (``cdr.frame_view``: each field where the layout puts it)
against rosbags' reader (``cdr.frame_read``, what the node used before), and writing the
features (``cdr.features_bytes``) against rosbags' ``serialize_cdr``; warm (in a loop) and
cold (a 32 MB sweep of memory before each call, as the other processes' work evicts the
caches between two frames live). Each pair alternates pass by pass; the JSON holds the least
mean of each, us.

    python scripts/cdr-cpu.py --calls 300 --passes 5
"""
import argparse
import json
import time

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.ros import cdr, conversions


def mean_us(call, calls: int, sweep: np.ndarray | None) -> float:
    """Mean CPU time of ``call()``, us; ``sweep`` swept through the caches before each."""
    total_s = 0.0
    for _ in range(calls):
        if sweep is not None:
            np.add(sweep, 1.0, out=sweep)
        start_s = time.process_time()
        call()
        total_s += time.process_time() - start_s
    return 1e6 * total_s / calls


def main() -> None:
    """Print one JSON line: each call's least mean CPU time, warm and cold, us."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--calls', type=int, default=300)
    parser.add_argument('--passes', type=int, default=5)
    args = parser.parse_args()
    array, chirp = load_array('square_4sensor'), Chirp()
    samples = np.random.default_rng(0).integers(-3000, 3000, (4, 8000)).astype(np.int16)
    data = serialize_message(conversions.echo_frame_msg(
        samples, Time(sec=1, nanosec=2), 'echoloc_array', 7, array, chirp, 250e3))
    frame = cdr.frame_view(data)
    features = conversions.features_view(EchoProcessor(chirp, 250e3, array=array).process(
        conversions.echo_frame_samples(frame), first_echo=False), frame, 1e-3)
    store = cdr.typestore()
    calls = {'frame_view': lambda: cdr.frame_view(data),
             'frame_rosbags': lambda: cdr.frame_read(data),
             'features_bytes': lambda: cdr.features_bytes(features),
             'features_rosbags': lambda: store.serialize_cdr(features,
                                                             'echoloc/msg/EchoFeatures')}
    sweep = np.zeros(4_000_000)
    best: dict[str, float] = {}
    for _ in range(args.passes):
        for name, call in calls.items():
            for how, swept, n in (('warm', None, 10 * args.calls), ('cold', sweep, args.calls)):
                key = f'{name}_{how}_us'
                best[key] = min(best.get(key, np.inf), mean_us(call, n, swept))
    print(json.dumps({'frame_bytes': len(data), 'calls': args.calls, 'passes': args.passes,
                      **{k: round(v, 1) for k, v in best.items()}}))


if __name__ == '__main__':
    main()
