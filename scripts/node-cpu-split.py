"""Where the echo processor's and the localizer's CPU goes per frame, callback by part, in
one process without spinning (the nodes built as ``main()`` builds them, ``heading_source
fixed``; no DDS): taking each message (reading it from its bytes, as the nodes' serialized
subscriptions do), and the parts of each callback, serializing the features among them.
What a bench's ``cpu_ms_per_frame`` holds beyond these is the executor and DDS.

By default the processor publishes every features message, as in the two-process graph (where
the localizer subscribes), and so looks for the first echo; ``--one-process`` runs it as the
one process does with no other subscriber: the features handed over without publishing, the
first echo not looked for (``EchoProcessor.process(first_echo=False)``).

The frames are the bench's trajectory (default room, 20 dB). Thread CPU time a frame,
median over the frames after the first; one JSON line.

    python scripts/node-cpu-split.py --frames 100
"""
import argparse
import json
import os
import random
import time

import numpy as np


def _frames(n_frames: int, room_name: str) -> tuple[list[bytes], float]:
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message

    from echoloc_ros.core.array_geometry import load_array
    from echoloc_ros.core.chirp import Chirp
    from echoloc_ros.core.room import load_room
    from echoloc_ros.ros import conversions
    from echoloc_ros.sim.sim_array import SimulatedArray
    from echoloc_ros.sim.simulator import Scenario

    room, array, chirp = load_room(room_name), load_array('square_4sensor'), Chirp()
    sim = SimulatedArray(room, array, chirp, 250e3, Scenario(snr_db=20.0, seed=0), seed=0)
    frames, yaw_rad = [], 0.0
    for seq in range(n_frames):
        frame = sim.acquire(0.04 * seq)
        yaw_rad = yaw_rad or frame.measured_yaw_rad
        stamp = Time(sec=1000 + seq // 25, nanosec=40_000_000 * (seq % 25))
        frames.append(serialize_message(conversions.echo_frame_msg(
            frame.samples, stamp, 'echoloc_array', seq, array, chirp, 250e3,
            room.temperature_c)))
    return frames, float(yaw_rad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--method', choices=('physics', 'nn'), default='physics')
    parser.add_argument('--one-process', action='store_true',
                        help='the processor as in one process with no other subscriber')
    args = parser.parse_args()
    frames, yaw_rad = _frames(args.frames, args.room)

    # A domain of its own: a subscriber elsewhere would make the processor publish.
    os.environ.update(ROS_DOMAIN_ID=str(random.randint(150, 230)),
                      ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    import rclpy

    from echoloc.msg import EchoFeatures
    from echoloc_ros.nodes.echo_processor import EchoProcessorNode
    from echoloc_ros.nodes.localizer import LocalizerNode
    from echoloc_ros.ros import cdr, conversions
    rclpy.init(args=['--ros-args', '-p', 'heading_source:=fixed', '-p',
                     f'fixed_yaw_rad:={yaw_rad}', '-p', f'method:={args.method}', '-p',
                     f'room:={args.room}', '-p', 'self_calibrate:=false'])
    processor, localizer = EchoProcessorNode(), LocalizerNode()
    pipeline, step = localizer.pipeline, localizer.pipeline.step
    parts: dict[str, list[float]] = {}

    def timed(name: str, work):
        def wrapper(*a, **k):
            start = time.thread_time()
            try:
                return work(*a, **k)
            finally:
                parts.setdefault(name, []).append(time.thread_time() - start)
        return wrapper

    # The parts, timed where the nodes call them.
    for built in processor.processors.values():
        built.process = timed('process', built.process)
    processor.processor_for = timed('processor_for', processor.processor_for)
    conversions.features_view = timed('features_view', conversions.features_view)
    cdr.features_bytes = timed('features_bytes', cdr.features_bytes)
    conversions.features_from_msg = timed('features_from_msg', conversions.features_from_msg)
    conversions.pose_bytes = timed('pose_bytes', conversions.pose_bytes)
    pipeline.step = timed('pipeline_step', step)
    localizer.pose_pub.publish = timed('pose_publish', localizer.pose_pub.publish)
    sent: list[cdr.FeaturesView] = []
    processor.local_readers.append(lambda msg, features: sent.append(msg))
    if args.one_process:
        # As echo_localizer.join: the localizer takes the features from the processor, not
        # from a subscription of its own (which would make the processor publish them).
        for subscription in list(localizer.subscriptions):
            if subscription.msg_type is EchoFeatures:
                localizer.destroy_subscription(subscription)
    else:
        # As in the two-process graph: the localizer in another process subscribes.
        processor.pub.get_subscription_count = lambda: 1
    processor.pub.publish = timed('features_publish', processor.pub.publish)
    for data in frames:
        start = time.thread_time()
        frame = cdr.frame_view(data)
        parts.setdefault('take_frame', []).append(time.thread_time() - start)
        timed('on_frame', processor.on_frame)(frame)
        # What the processor published (or, in one process, would publish), read as the
        # localizer reads it.
        wire = cdr.features_bytes(sent[-1])
        start = time.thread_time()
        features = cdr.features_view(wire)
        parts.setdefault('take_features', []).append(time.thread_time() - start)
        timed('on_features', localizer.on_features)(features)
    localizer.destroy_node()
    processor.destroy_node()
    rclpy.try_shutdown()
    print(json.dumps({'frames': args.frames, 'room': args.room, 'method': args.method,
                      'one_process': args.one_process,
                      'thread_cpu_ms_median': {
                          name: round(1e3 * float(np.median(v[1:])), 3)
                          for name, v in parts.items()}}))


if __name__ == '__main__':
    main()
