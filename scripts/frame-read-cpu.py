"""CPU time of reading one ``echoloc/EchoFrame`` from its bytes, as the echo processor node
does (``cdr.frame_view``: the fields read where the layout puts them) against rosbags' reader
(``cdr.frame_read``, what the node used before), warm (in a loop) and cold (a 32 MB sweep of
memory between two reads, as the other processes' work evicts the caches between two frames
live). The two readers alternate pass by pass; the JSON holds the least mean of each, us.

    python scripts/frame-read-cpu.py --reads 300 --passes 5
"""
import argparse
import json
import time

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.ros import cdr, conversions


def mean_us(read, data: bytes, reads: int, sweep: np.ndarray | None) -> float:
    """Mean CPU time of ``read(data)``, us; ``sweep`` swept through the caches before each."""
    total_s = 0.0
    for _ in range(reads):
        if sweep is not None:
            np.add(sweep, 1.0, out=sweep)
        start_s = time.process_time()
        read(data)
        total_s += time.process_time() - start_s
    return 1e6 * total_s / reads


def main() -> None:
    """Print one JSON line: each reader's least mean CPU time a read, warm and cold, us."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--reads', type=int, default=300)
    parser.add_argument('--passes', type=int, default=5)
    args = parser.parse_args()
    array = load_array('square_4sensor')
    samples = np.random.default_rng(0).integers(-3000, 3000, (4, 8000)).astype(np.int16)
    data = serialize_message(conversions.echo_frame_msg(
        samples, Time(sec=1, nanosec=2), 'echoloc_array', 7, array, Chirp(), 250e3))
    cdr.typestore()
    sweep = np.zeros(4_000_000)
    best: dict[str, float] = {}
    for _ in range(args.passes):
        for name, read in (('frame_view', cdr.frame_view), ('rosbags', cdr.frame_read)):
            for how, swept in (('warm', None), ('cold', sweep)):
                key = f'{name}_{how}_us'
                best[key] = min(best.get(key, np.inf),
                                mean_us(read, data, args.reads if swept is not None
                                        else 10 * args.reads, swept))
    print(json.dumps({'bytes': len(data), 'reads': args.reads, 'passes': args.passes,
                      **{k: round(v, 1) for k, v in best.items()}}))


if __name__ == '__main__':
    main()
