"""Where the echo processor node's CPU goes on a live graph: a second processor node joins a
running graph (``echoloc bringup`` in the same ``ROS_DOMAIN_ID``), takes the driver's frames
as the graph's own processor does, and publishes its features on a topic no one reads
(``--features-topic``), so that it looks for the first echo as the two-process graph's does
(not at all: its only readers would be the localizer and the survey).

Over ``--seconds`` after a warm ``--warm-s``, per frame received: each of the process's
threads' CPU time (``/proc/self/task``: the main thread, which runs the executor and the
callbacks, and the middleware's), and in the main thread the callback ``on_frame`` and its
parts, the diagnostics, and what the main thread spent outside them (the executor taking
and handing over each message). One JSON line.

    echoloc bringup &    # in another shell, the same ROS_DOMAIN_ID
    python scripts/processor-live-cpu.py --seconds 30
"""
import argparse
import json
import os
import sys
import time


def _threads_cpu_s() -> dict[str, float]:
    """CPU time (user + system) of each of this process's threads, s, by name and id."""
    tick = os.sysconf('SC_CLK_TCK')
    out = {}
    for tid in os.listdir('/proc/self/task'):
        try:
            stat = open(f'/proc/self/task/{tid}/stat').read()
            name = open(f'/proc/self/task/{tid}/comm').read().strip()
        except OSError:
            continue
        fields = stat[stat.rfind(')') + 2:].split()
        out[f'{name}:{tid}'] = (int(fields[11]) + int(fields[12])) / tick
    return out


def main() -> None:
    """Print one JSON line: frames, seconds, CPU ms a frame per thread and per part."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=30.0)
    parser.add_argument('--warm-s', type=float, default=6.0)
    parser.add_argument('--features-topic', default='/processor_live_cpu/features')
    args = parser.parse_args()
    import rclpy
    from rclpy.experimental import EventsExecutor

    from echoloc_ros.nodes.echo_processor import EchoProcessorNode
    from echoloc_ros.ros import conversions
    from echoloc_ros.ros.diagnostics import Updater
    rclpy.init(args=['--ros-args', '-r', '__node:=processor_live_cpu', '-r',
                     f'echoloc/features:={args.features_topic}'])
    parts: dict[str, float] = {}

    def timed(name: str, work):
        def wrapper(*a, **k):
            start = time.thread_time()
            try:
                return work(*a, **k)
            finally:
                parts[name] = parts.get(name, 0.0) + time.thread_time() - start
        return wrapper

    update = timed('diagnostics', Updater.update)

    def timed_update(self) -> None:
        # One parameter, no more: rclpy hands a timer callback that takes one its TimerInfo.
        update(self)

    Updater.update = timed_update
    node = EchoProcessorNode()
    # The subscription's callback reads the serialized frame and calls on_frame with it.
    node.sub.callback = timed('on_frame', node.sub.callback)
    for processor in node.processors.values():
        processor.process = timed('process', processor.process)
    for calibrator in node.calibrators.values():
        calibrator.add = timed('calibrator_add', calibrator.add)
    for name in ('processor_for', 'ranges_listened', 'first_echo_read'):
        setattr(node, name, timed(name, getattr(node, name)))
    for name in ('features_view', 'features_msg', 'echo_frame_samples'):
        if hasattr(conversions, name):  # features_msg: before the features went as bytes
            setattr(conversions, name, timed(name, getattr(conversions, name)))
    node.pub.publish = timed('features_publish', node.pub.publish)
    try:  # the features serialized without a message (this branch on)
        from echoloc_ros.ros import cdr
        cdr.features_bytes = timed('features_bytes', cdr.features_bytes)
    except ImportError:
        pass
    executor = EventsExecutor()
    executor.add_node(node)

    def spin(seconds: float) -> None:
        end_s = time.monotonic() + seconds
        while rclpy.ok() and time.monotonic() < end_s:
            executor.spin_once(timeout_sec=0.2)

    spin(args.warm_s)
    parts.clear()
    frames0, threads0, main0 = node.frames_in, _threads_cpu_s(), time.thread_time()
    spin(args.seconds)
    main_s = time.thread_time() - main0
    frames, threads1 = node.frames_in - frames0, _threads_cpu_s()
    node.destroy_node()
    rclpy.try_shutdown()
    if frames == 0:
        sys.exit('no frames received: is a graph running in this ROS_DOMAIN_ID?')
    per_thread = {name: round(1e3 * (cpu - threads0.get(name, 0.0)) / frames, 3)
                  for name, cpu in threads1.items() if cpu > threads0.get(name, 0.0)}
    main_parts = {name: round(1e3 * value / frames, 3) for name, value in parts.items()}
    outside = main_s - parts.get('on_frame', 0.0) - parts.get('diagnostics', 0.0)
    main_parts['outside_callbacks'] = round(1e3 * outside / frames, 3)
    print(json.dumps({'frames': frames, 'seconds': args.seconds,
                      'process_cpu_ms_per_frame': round(sum(per_thread.values()), 3),
                      'threads_cpu_ms_per_frame': per_thread,
                      'main_thread_cpu_ms_per_frame': round(1e3 * main_s / frames, 3),
                      'main_thread_parts_ms_per_frame': main_parts}))


if __name__ == '__main__':
    main()
