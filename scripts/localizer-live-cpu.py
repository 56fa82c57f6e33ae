"""Where the localizer node's CPU goes on a live graph: a second localizer node joins a running
graph (``echoloc bringup`` in the same ``ROS_DOMAIN_ID``), takes the echo processor's features
and the driver's headings as the graph's own localizer does, and publishes its poses on topics
no one reads (``/localizer_live_cpu/...``).

Over ``--seconds`` after a warm ``--warm-s``, per features message taken: each of the
process's threads' CPU time (``/proc/self/task``), and in the main thread the callbacks
(``on_features``, ``on_imu``) and their parts (``pipeline.step``, the features' conversion,
the pose's building and publishing, the heading's checks), the diagnostics, and what the main
thread spent outside them (the executor taking and handing over each message, the timers).
``--unwrapped`` wraps nothing of the node's own: it only counts, for a figure without the
wrappers' cost. One JSON line.

    echoloc bringup &    # in another shell, the same ROS_DOMAIN_ID
    python scripts/localizer-live-cpu.py --seconds 30
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


def _timed(parts: dict[str, float], name: str, work):
    """``work``, its thread CPU time added to ``parts[name]`` (s) at each call."""
    def wrapper(*a, **k):
        start = time.thread_time()
        try:
            return work(*a, **k)
        finally:
            parts[name] = parts.get(name, 0.0) + time.thread_time() - start
    return wrapper


def _wrap_diagnostics(parts: dict[str, float]) -> None:
    """Time every diagnostic update (before the node is built: its timer holds the method)."""
    from echoloc_ros.ros.diagnostics import Updater
    update = _timed(parts, 'diagnostics', Updater.update)

    def timed_update(self) -> None:
        # One parameter, no more: rclpy hands a timer callback that takes one its TimerInfo.
        update(self)

    Updater.update = timed_update


def _wrap(node, parts: dict[str, float]) -> None:
    """Time the node's callbacks and their parts in ``parts`` (thread CPU, s)."""
    from echoloc.msg import EchoFeatures
    from sensor_msgs.msg import Imu

    from echoloc_ros.nodes import localizer as localizer_module
    from echoloc_ros.ros import conversions

    def timed(name: str, work):
        return _timed(parts, name, work)

    for subscription in node.subscriptions:
        if subscription.msg_type is EchoFeatures:
            subscription.callback = timed('on_features', subscription.callback)
        elif subscription.msg_type is Imu:
            subscription.callback = timed('on_imu', subscription.callback)
    flush = timed('flush_waiting', node.flush_waiting)
    node.flush_timer.callback = lambda: flush()  # no TimerInfo: as the node's own
    node.pipeline.step = timed('pipeline_step', node.pipeline.step)
    for name in ('features_from_msg', 'pose_msg'):
        setattr(conversions, name, timed(name, getattr(conversions, name)))
    localizer_module.heading_refusal = timed('heading_refusal', localizer_module.heading_refusal)
    node.pose_pub.publish = timed('pose_publish', node.pose_pub.publish)
    for name in ('publish_pose', 'heading_mode', 'localize'):
        setattr(node, name, timed(name, getattr(node, name)))


def main() -> None:
    """Print one JSON line: features taken, seconds, CPU ms a frame per thread and per part."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=30.0)
    parser.add_argument('--warm-s', type=float, default=8.0)
    parser.add_argument('--unwrapped', action='store_true', help='count only, wrap nothing')
    parser.add_argument('--ros-args', nargs=argparse.REMAINDER, default=[],
                        help='more arguments for the node (-p name:=value ...)')
    args = parser.parse_args()
    import rclpy
    from rclpy.experimental import EventsExecutor

    from echoloc_ros.nodes.localizer import LocalizerNode
    name = 'localizer_live_cpu'
    remaps = [arg for topic in ('pose', 'fix', 'markers')
              for arg in ('-r', f'echoloc/{topic}:=/{name}/{topic}')]
    rclpy.init(args=['--ros-args', '-r', f'__node:={name}', *remaps, *args.ros_args])
    parts: dict[str, float] = {}
    if not args.unwrapped:
        _wrap_diagnostics(parts)
    node = LocalizerNode()
    if not args.unwrapped:
        _wrap(node, parts)
    executor = EventsExecutor()
    executor.add_node(node)

    def spin(seconds: float) -> None:
        end_s = time.monotonic() + seconds
        while rclpy.ok() and time.monotonic() < end_s:
            executor.spin_once(timeout_sec=0.2)

    spin(args.warm_s)
    parts.clear()
    frames0, poses0 = node.frames_in, node.poses_published
    threads0, main0 = _threads_cpu_s(), time.thread_time()
    spin(args.seconds)
    main_s = time.thread_time() - main0
    frames, threads1 = node.frames_in - frames0, _threads_cpu_s()
    poses = node.poses_published - poses0
    node.destroy_node()
    rclpy.try_shutdown()
    if frames == 0:
        sys.exit('no features received: is a graph running in this ROS_DOMAIN_ID?')
    per_thread = {name: round(1e3 * (cpu - threads0.get(name, 0.0)) / frames, 3)
                  for name, cpu in threads1.items() if cpu > threads0.get(name, 0.0)}
    main_parts = {name: round(1e3 * value / frames, 3) for name, value in parts.items()}
    if not args.unwrapped:
        callbacks = ('on_features', 'on_imu', 'flush_waiting', 'diagnostics')
        outside = main_s - sum(parts.get(name, 0.0) for name in callbacks)
        main_parts['outside_callbacks'] = round(1e3 * outside / frames, 3)
    print(json.dumps({'frames': frames, 'poses': poses, 'seconds': args.seconds,
                      'process_cpu_ms_per_frame': round(sum(per_thread.values()), 3),
                      'threads_cpu_ms_per_frame': per_thread,
                      'main_thread_cpu_ms_per_frame': round(1e3 * main_s / frames, 3),
                      'main_thread_parts_ms_per_frame': main_parts}))


if __name__ == '__main__':
    main()
