"""What taking a message costs a node's main thread, apart from any work on it: a node joins a
running graph (``echoloc bringup`` in the same ``ROS_DOMAIN_ID``), subscribes to one of its
topics with a callback that only counts, and spins as the echoloc nodes spin
(``nodes.common.run``: ``spin_once`` in a loop, rclpy's events executor where it has one).

``--raw`` takes the serialized message (bytes) instead of rclpy's Python message: the
difference is the message's conversion. ``--executor single`` spins rclpy's
``SingleThreadedExecutor`` instead. The main thread's and the whole process's CPU time a
message, over ``--seconds`` after a warm ``--warm-s``; one JSON line.

    echoloc bringup &    # in another shell, the same ROS_DOMAIN_ID
    python scripts/executor-take-cpu.py --topic echoloc/echoes
    python scripts/executor-take-cpu.py --topic echoloc/echoes --raw
"""
import argparse
import json
import sys
import time

TOPICS = {'echoloc/echoes': ('echoloc.msg', 'EchoFrame', 'sensor'),
          'echoloc/features': ('echoloc.msg', 'EchoFeatures', 'reliable'),
          'echoloc/pose': ('geometry_msgs.msg', 'PoseWithCovarianceStamped', 'reliable')}


def main() -> None:
    """Print one JSON line: the topic, settings, messages and CPU ms a message."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--topic', choices=sorted(TOPICS), default='echoloc/echoes')
    parser.add_argument('--raw', action='store_true', help='take serialized messages')
    parser.add_argument('--executor', choices=('events', 'single'), default='events')
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--warm-s', type=float, default=3.0)
    args = parser.parse_args()
    import importlib

    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    module, name, reliability = TOPICS[args.topic]
    msg_type = getattr(importlib.import_module(module), name)
    rclpy.init()
    node = Node('executor_take_cpu')
    count = [0]

    def counted(_msg) -> None:
        count[0] += 1

    qos = QoSProfile(depth=1 if reliability == 'sensor' else 10,
                     reliability=ReliabilityPolicy.BEST_EFFORT if reliability == 'sensor'
                     else ReliabilityPolicy.RELIABLE)
    node.create_subscription(msg_type, args.topic, counted, qos, raw=args.raw)
    if args.executor == 'events':
        from rclpy.experimental import EventsExecutor
        executor = EventsExecutor()
    else:
        executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)

    def spin(seconds: float) -> None:
        end_s = time.monotonic() + seconds
        while rclpy.ok() and time.monotonic() < end_s:
            executor.spin_once(timeout_sec=0.2)

    spin(args.warm_s)
    taken0, thread0, process0 = count[0], time.thread_time(), time.process_time()
    spin(args.seconds)
    taken = count[0] - taken0
    thread_s, process_s = time.thread_time() - thread0, time.process_time() - process0
    node.destroy_node()
    rclpy.try_shutdown()
    if taken == 0:
        sys.exit(f'no message on {args.topic}: is a graph running in this ROS_DOMAIN_ID?')
    print(json.dumps({'topic': args.topic, 'raw': args.raw, 'executor': args.executor,
                      'messages': taken,
                      'main_thread_cpu_ms_per_message': round(1e3 * thread_s / taken, 3),
                      'process_cpu_ms_per_message': round(1e3 * process_s / taken, 3)}))


if __name__ == '__main__':
    main()
