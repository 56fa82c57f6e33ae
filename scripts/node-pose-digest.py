"""A digest of the poses the echo processor and the localizer nodes publish for the same frames,
to show that a change to the nodes leaves every published pose the same to the bit: run it
before and after (in each worktree, with its own ``scripts/env.sh``) and compare the lines.

The nodes are built as ``main()`` builds them (``heading_source fixed``, no self-calibration,
``wide_search_max_hz`` 0 so that no wide search depends on the wall clock) and driven in one
process without spinning, as ``scripts/node-cpu-split.py`` drives them, in the two-process
form: each frame taken from its serialized bytes, the features the processor publishes
serialized and taken by the localizer from those bytes, as DDS carries them. The digest is a
SHA-256 of every field of every pose published on ``echoloc/pose``; ``features_sha256`` one of
the bytes of every features message the processor published but their last four, the
processing time (rosbags' writer and the layout written by hand zero the padding alike).
``--one-process``: the two nodes joined as ``echo_localizer`` joins them, the features handed
over in the process (none published, no ``features_sha256``). ``--save F`` keeps the poses'
numbers (stamp, position, quaternion, covariance) in ``F`` (.npy); ``--against F`` adds how far
these poses are from those (``max_position_diff_m``, ``max_covariance_diff``: the largest
difference in the position's 3x3 over its largest entry), for code that changes the last
bits (the tracker compiled at r38-02: 1e-12 or less).
Code from before the nodes took their messages serialized (no ``echoloc_ros.ros.cdr``) is
driven through rclpy's messages instead. One JSON line.

    python scripts/node-pose-digest.py --room furnished_room --method nn --frames 120
"""
import argparse
import hashlib
import importlib.util
import json
import os
import random
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=120)
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--method', choices=('physics', 'nn'), default='physics')
    parser.add_argument('--one-process', action='store_true',
                        help='the features handed over as in the one process')
    parser.add_argument('--save', help='keep the poses\' numbers in this .npy file')
    parser.add_argument('--against', help='compare with the poses kept by --save')
    args = parser.parse_args()
    # The bench's trajectory, as node-cpu-split.py makes it.
    spec = importlib.util.spec_from_file_location(
        'node_cpu_split', Path(__file__).with_name('node-cpu-split.py'))
    split = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(split)
    frames, yaw_rad = split._frames(args.frames, args.room)

    # A domain of its own, as node-cpu-split.py.
    os.environ.update(ROS_DOMAIN_ID=str(random.randint(150, 230)),
                      ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.serialization import deserialize_message, serialize_message

    from echoloc.msg import EchoFeatures, EchoFrame
    from echoloc_ros.nodes.echo_processor import EchoProcessorNode
    from echoloc_ros.nodes.localizer import LocalizerNode
    try:
        from echoloc_ros.ros import cdr
    except ImportError:  # before the nodes took their messages serialized
        cdr = None
    rclpy.init(args=['--ros-args', '-p', 'heading_source:=fixed', '-p',
                     f'fixed_yaw_rad:={yaw_rad}', '-p', f'method:={args.method}', '-p',
                     f'room:={args.room}', '-p', 'self_calibrate:=false', '-p',
                     'wide_search_max_hz:=0.0'])
    processor, localizer = EchoProcessorNode(), LocalizerNode()
    if args.one_process:
        from echoloc_ros.nodes.echo_localizer import join
        join(processor, localizer)
    else:
        # As in the two-process graph: the localizer in another process subscribes.
        processor.pub.get_subscription_count = lambda: 1
    sent: list[bytes] = []
    poses: list = []
    processor.pub.publish = lambda msg: sent.append(
        msg if isinstance(msg, bytes) else serialize_message(msg))
    localizer.pose_pub.publish = lambda msg: poses.append(
        deserialize_message(msg, PoseWithCovarianceStamped) if isinstance(msg, bytes) else msg)
    for data in frames:
        processor.on_frame(cdr.frame_view(data) if cdr
                           else deserialize_message(data, EchoFrame))
        if not args.one_process:
            localizer.on_features(cdr.features_view(sent[-1]) if cdr
                                  else deserialize_message(sent[-1], EchoFeatures))
    localizer.destroy_node()
    processor.destroy_node()
    rclpy.try_shutdown()
    digest = hashlib.sha256()
    for pose in poses:
        p, q = pose.pose.pose.position, pose.pose.pose.orientation
        digest.update(repr((pose.header.stamp.sec, pose.header.stamp.nanosec,
                            pose.header.frame_id, p.x, p.y, p.z, q.x, q.y, q.z, q.w,
                            tuple(pose.pose.covariance))).encode())
    numbers = _numbers(poses)
    if args.save:
        np.save(args.save, numbers)
    close = {} if not args.against else _against(numbers, np.load(args.against))
    wire = hashlib.sha256(b''.join(data[:-4] for data in sent)) if cdr and sent else None
    print(json.dumps({'room': args.room, 'method': args.method, 'frames': args.frames,
                      'one_process': args.one_process,
                      'poses': len(poses), 'sha256': digest.hexdigest()[:16],
                      'features_sha256': wire and wire.hexdigest()[:16], **close}))


def _numbers(poses: list) -> np.ndarray:
    """Each pose's stamp (s), position, quaternion and covariance (36), a row each."""
    rows = []
    for pose in poses:
        p, q = pose.pose.pose.position, pose.pose.pose.orientation
        rows.append([pose.header.stamp.sec + 1e-9 * pose.header.stamp.nanosec, p.x, p.y, p.z,
                     q.x, q.y, q.z, q.w, *pose.pose.covariance])
    return np.array(rows, dtype=float).reshape(-1, 44)


def _against(numbers: np.ndarray, kept: np.ndarray) -> dict:
    """How far ``numbers`` are from ``kept`` (the same frames' poses)."""
    if numbers.shape != kept.shape or not np.array_equal(numbers[:, 0], kept[:, 0]):
        return {'against': f'other poses: {numbers.shape} against {kept.shape}'}
    block = 8 + np.array([0, 1, 2, 6, 7, 8, 12, 13, 14])  # the position's 3x3 of the 6x6
    covariance = np.abs(numbers[:, block] - kept[:, block]).max(axis=1)
    return {'max_position_diff_m': float(np.abs(numbers[:, 1:4] - kept[:, 1:4]).max()),
            'max_quaternion_diff': float(np.abs(numbers[:, 4:8] - kept[:, 4:8]).max()),
            'max_covariance_diff': float((covariance / np.abs(kept[:, block]).max(axis=1)).max()),
            'max_yaw_variance_diff': float(np.abs(numbers[:, 43] - kept[:, 43]).max())}


if __name__ == '__main__':
    main()
