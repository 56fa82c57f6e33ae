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
wrappers' cost. The garbage collector's runs on the main thread are counted, and their CPU,
beside the parts (``gc``; ``gc_in_step``: those inside ``pipeline.step``). With ``--replay``,
the arguments of every ``pipeline.step`` of the window are kept and, after it, the same frames
are stepped again from a fresh track in this process, frame after frame, with nothing between
them and then with the frame period asleep between them (``replay``: the step's CPU ms a
frame, the live one of the same frames beside): the live frames against the stages bench's
conditions. One JSON line.

    echoloc bringup &    # in another shell, the same ROS_DOMAIN_ID
    python scripts/localizer-live-cpu.py --seconds 30
"""
import argparse
import json
import sys
import time

from live_cpu import GcClock, per_frame, spin_for, threads_cpu_s, timed, wrap_diagnostics


def _wrap(node, parts: dict[str, float]) -> None:
    """Time the node's callbacks and their parts in ``parts`` (thread CPU, s)."""
    from echoloc.msg import EchoFeatures
    from sensor_msgs.msg import Imu

    from echoloc_ros.nodes import localizer as localizer_module
    from echoloc_ros.ros import conversions

    def timed_part(name: str, work):
        return timed(parts, name, work)

    # The headings' subscription is polled at each frame (node.imu), not in the node's list.
    polled = [node.imu.subscription] if hasattr(node, 'imu') else []
    for subscription in [*node.subscriptions, *polled]:
        if subscription.msg_type is EchoFeatures:
            subscription.callback = timed_part('on_features', subscription.callback)
        elif subscription.msg_type is Imu:
            subscription.callback = timed_part('on_imu', subscription.callback)
    flush = timed_part('flush_waiting', node.flush_waiting)
    node.flush_timer.callback = lambda: flush()  # no TimerInfo: as the node's own
    node.pipeline.step = timed_part('pipeline_step', node.pipeline.step)
    for name in ('features_from_msg', 'pose_msg'):
        setattr(conversions, name, timed_part(name, getattr(conversions, name)))
    localizer_module.heading_refusal = timed_part('heading_refusal',
                                                  localizer_module.heading_refusal)
    node.pose_pub.publish = timed_part('pose_publish', node.pose_pub.publish)
    # Inside pipeline.step: the search, the tracker, the room's and the array's doubt.
    from echoloc_ros.core import pipeline as pipeline_module
    search = node.pipeline.track_search
    if search is not None:
        search.fix = timed_part('track_search_fix', search.fix)
    node.tracker.update_estimate = timed_part('tracker_update', node.tracker.update_estimate)
    for name in ('room_covariance', 'with_model_doubt'):
        setattr(pipeline_module, name, timed_part(name, getattr(pipeline_module, name)))
    for name in ('publish_pose', 'heading_mode', 'localize'):
        setattr(node, name, timed_part(name, getattr(node, name)))


def _record_steps(node, clock: GcClock, steps: list | None) -> None:
    """Mark the collector's runs inside ``pipeline.step``; keep each step's CPU and
    arguments in ``steps`` (unless ``None``)."""
    step = node.pipeline.step

    def recorded(*a, **k):
        clock.in_step = True
        start = time.thread_time()
        try:
            return step(*a, **k)
        finally:
            if steps is not None:
                steps.append((time.thread_time() - start, a, k))
            clock.in_step = False
    node.pipeline.step = recorded


def _replay(pipeline, step, steps: list) -> dict:
    """``steps`` stepped again from a fresh track: hot, then the frame period asleep
    between frames; each the step's CPU ms a frame (mean, p50), and the live one's."""
    out = {'live': [live for live, _, _ in steps]}
    searches = {}
    for name, pause_s in (('hot', 0.0), ('slept', 0.04)):
        pipeline.tracker.reset()
        pipeline.track_search.reset()
        before = pipeline.track_search.counts.copy()
        cpu = []
        for _, a, k in steps:
            if pause_s:
                time.sleep(pause_s)
            start = time.thread_time()
            local = step(*a, **k).local
            cpu.append(time.thread_time() - start)
            if local:
                out.setdefault(f'{name}_local', []).append(cpu[-1])
        out[name] = cpu
        counts = pipeline.track_search.counts
        searches[name] = {'local': counts.local - before.local, 'full': counts.full - before.full}
    return {name: {'mean': round(1e3 * sum(cpu) / len(cpu), 3),
                   'p50': round(1e3 * sorted(cpu)[len(cpu) // 2], 3), **searches.get(name, {})}
            for name, cpu in out.items()}


def main() -> None:
    """Print one JSON line: features taken, seconds, CPU ms a frame per thread and per part."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=30.0)
    parser.add_argument('--warm-s', type=float, default=8.0)
    parser.add_argument('--unwrapped', action='store_true', help='count only, wrap nothing')
    parser.add_argument('--replay', action='store_true',
                        help='step the window\'s frames again after it, hot and slept')
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
        wrap_diagnostics(parts)
    node = LocalizerNode()
    clock, steps = GcClock(), []
    raw_step = node.pipeline.step
    _record_steps(node, clock, steps if args.replay else None)
    if not args.unwrapped:
        _wrap(node, parts)
    executor = EventsExecutor()
    executor.add_node(node)

    spin_for(executor, args.warm_s)
    parts.clear()
    steps.clear()
    clock.counting = True
    frames0, poses0 = node.frames_in, node.poses_published
    threads0, main0 = threads_cpu_s(), time.thread_time()
    spin_for(executor, args.seconds)
    main_s = time.thread_time() - main0
    clock.counting = False
    frames, threads1 = node.frames_in - frames0, threads_cpu_s()
    poses = node.poses_published - poses0
    if frames == 0:
        sys.exit('no features received: is a graph running in this ROS_DOMAIN_ID?')
    callbacks = None if args.unwrapped else ('on_features', 'on_imu', 'flush_waiting',
                                             'diagnostics')
    # The window's split, before the replay adds to its parts.
    split = per_frame(frames, threads0, threads1, main_s, parts, callbacks)
    replay = _replay(node.pipeline, raw_step, steps) if args.replay else None
    node.destroy_node()
    rclpy.try_shutdown()
    print(json.dumps({'frames': frames, 'poses': poses, 'seconds': args.seconds, **split,
                      'gc': {'per_frame': round(clock.count / frames, 3),
                             'ms_per_frame': round(1e3 * clock.cpu_s / frames, 3),
                             'in_step_per_frame': round(clock.count_in_step / frames, 3),
                             'in_step_ms_per_frame': round(1e3 * clock.cpu_in_step_s / frames,
                                                           3)},
                      **({'replay': replay} if replay else {})}))


if __name__ == '__main__':
    main()
