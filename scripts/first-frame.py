"""A node's first frames in a fresh process: what the node costs to start, and what its first
frames cost beside the later ones (compiled code loading, the processor built for the frame's
chirp), CPU and wall time.

The frames (the bench's trajectory, default room, 20 dB) are simulated and processed here,
serialized, and handed to fresh processes, one per run and node: each builds the node as
``main()`` does (its parameters, ``warm_up`` as given), then calls its callback on the frames
one after the other, without spinning (the localizer with ``heading_source fixed``, so each
frame is localized when it arrives). One JSON line per run and node, then the medians.

    python scripts/first-frame.py --runs 3
    python scripts/first-frame.py --runs 3 --warm-up false --method nn
"""
import argparse
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NODES = ('echo_processor', 'localizer')


def simulate(path: Path, n_frames: int) -> float:
    """Write ``n_frames`` serialized EchoFrame and EchoFeatures messages to ``path``; return
    the first frame's measured heading (rad)."""
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message

    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.echo_processing import EchoProcessor
    from echoloc_ros.core.room import load_room
    from echoloc_ros.ros import conversions
    from echoloc_ros.sim.sim_array import SimulatedArray
    from echoloc_ros.sim.simulator import Scenario

    room, array, chirp, fs_hz = load_room('default_room'), load_array('square_4sensor'), \
        Chirp(), 250e3
    sim = SimulatedArray(room, array, chirp, fs_hz, Scenario(snr_db=20.0, seed=0), seed=0)
    processor = EchoProcessor(chirp, fs_hz, array=array)
    frames, features, yaws = [], [], []
    for seq in range(n_frames):
        frame = sim.acquire(0.04 * seq)
        stamp = Time(sec=1000 + seq // 25, nanosec=40_000_000 * (seq % 25))
        msg = conversions.echo_frame_msg(frame.samples, stamp, 'echoloc_array', seq, array,
                                         chirp, fs_hz, room.temperature_c)
        frames.append(serialize_message(msg))
        features.append(serialize_message(conversions.features_msg(
            processor.process(frame.samples), msg, 0.0)))
        yaws.append(frame.measured_yaw_rad)
    path.write_bytes(pickle.dumps({'echo_processor': frames, 'localizer': features}))
    return float(yaws[0])


def child(node_name: str, path: Path, ros_args: list[str]) -> None:
    """In a fresh process: build the node, run its callback on each frame, print JSON."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    import rclpy
    from rclpy.serialization import deserialize_message

    from echoloc.msg import EchoFeatures, EchoFrame
    if node_name == 'echo_processor':
        from echoloc_ros.nodes.echo_processor import EchoProcessorNode as NodeClass
        msg_type = EchoFrame
    else:
        from echoloc_ros.nodes.localizer import LocalizerNode as NodeClass
        msg_type = EchoFeatures
    imported = (time.perf_counter() - start_wall, time.process_time() - start_cpu)
    rclpy.init(args=['--ros-args', *ros_args])
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    node = NodeClass()
    built = (time.perf_counter() - start_wall, time.process_time() - start_cpu)
    callback = node.on_frame if node_name == 'echo_processor' else node.on_features
    messages = [deserialize_message(data, msg_type)
                for data in pickle.loads(path.read_bytes())[node_name]]
    frames = []
    for msg in messages:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        callback(msg)
        frames.append((time.perf_counter() - start_wall, time.process_time() - start_cpu))
    node.destroy_node()
    rclpy.try_shutdown()
    ms = [[round(1e3 * wall, 2), round(1e3 * cpu, 2)] for wall, cpu in frames]
    print(json.dumps({'node': node_name, 'import_ms': [round(1e3 * v, 1) for v in imported],
                      'build_ms': [round(1e3 * v, 1) for v in built],
                      'first_frame_ms': ms[0], 'later_frames_median_ms':
                      [round(float(np.median([f[0] for f in ms[1:]])), 2),
                       round(float(np.median([f[1] for f in ms[1:]])), 2)]}))


def main() -> None:
    """Print one JSON line per run and node (times as [wall, cpu] ms), then the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--frames', type=int, default=5)
    parser.add_argument('--method', choices=('physics', 'nn'), default='physics')
    parser.add_argument('--warm-up', choices=('true', 'false'), default='true')
    parser.add_argument('--child', nargs=2, metavar=('NODE', 'PATH'), help=argparse.SUPPRESS)
    args, ros_args = parser.parse_known_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), ros_args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'frames.pickle'
        yaw_rad = simulate(path, args.frames)
        env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(100, 200)),
                   ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_LOG_DIR=tmp)
        results = {name: [] for name in NODES}
        for _ in range(args.runs):
            for name in NODES:
                params = ['-p', f'warm_up:={args.warm_up}']
                if name == 'localizer':
                    params += ['-p', 'heading_source:=fixed', '-p', f'fixed_yaw_rad:={yaw_rad}',
                               '-p', f'method:={args.method}']
                out = subprocess.run([sys.executable, __file__, '--child', name, str(path),
                                      *params], env=env, capture_output=True, text=True,
                                     check=True).stdout
                line = json.loads(out.strip().splitlines()[-1])
                print(json.dumps(line))
                results[name].append(line)
        for name, lines in results.items():
            print(json.dumps({'node': name, 'runs': len(lines), 'warm_up': args.warm_up,
                              'method': args.method, **{
                                  key: [round(float(np.median([r[key][i] for r in lines])), 1)
                                        for i in range(2)]
                                  for key in ('build_ms', 'first_frame_ms',
                                              'later_frames_median_ms')}}))


if __name__ == '__main__':
    main()
