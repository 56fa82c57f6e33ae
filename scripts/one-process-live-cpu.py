"""Where the one process's CPU goes on a live graph: the echo processor and the localizer built
and joined as ``echo_localizer`` builds them, spun in this process as ``nodes.common.run``
spins them, beside the driver (and the furniture survey, as the bench's graph has it) started
as processes of their own in a ROS domain of their own.

Over ``--seconds`` after a warm ``--warm-s``, per frame the processor took: each of this
process's threads' CPU time (``/proc/self/task``) and wakes (voluntary context switches), the
main thread's, and with ``--profile N`` the main thread's functions by their own CPU time
(``cProfile`` with ``time.thread_time`` as its clock: CPU, not wall time, which a loaded
machine's run queue fills; the profiler's own cost is in every figure, most in code of many
small calls, so read its split, not its sum).
One JSON line; the profile's table before it.

    python scripts/one-process-live-cpu.py --seconds 30 [--profile 40] [--method nn]
"""
import argparse
import cProfile
import io
import json
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

from live_cpu import (minor_faults, spin_for, threads_cpu_s, threads_wakes, timed,
                      wrap_diagnostics)


def _wrap(processor, localizer, parts: dict[str, float]) -> None:
    """Time the frame's callback and its parts in ``parts`` (thread CPU, s): the algorithms
    (``process``, ``pipeline_step``) and what the nodes do around them."""
    from echoloc.msg import EchoFrame
    from echoloc_ros.nodes import echo_processor as processor_module
    from echoloc_ros.ros import conversions

    for subscription in processor.subscriptions:
        if subscription.msg_type is EchoFrame:
            subscription.callback = timed(parts, 'on_frame', subscription.callback)
    for built in processor.processors.values():
        built.process = timed(parts, 'process', built.process)
    localizer.pipeline.step = timed(parts, 'pipeline_step', localizer.pipeline.step)
    localizer.tracker.update_estimate = timed(parts, 'tracker_update',
                                              localizer.tracker.update_estimate)
    processor.local_readers[:] = [timed(parts, 'on_features', read)
                                  for read in processor.local_readers]
    for name in ('features_view', 'features_from_msg', 'pose_bytes'):
        wrapped = timed(parts, name, getattr(conversions, name))
        setattr(conversions, name, wrapped)
        if hasattr(processor_module.conversions, name):
            setattr(processor_module.conversions, name, wrapped)
    localizer.imu.take_all = timed(parts, 'imu_take_all', localizer.imu.take_all)
    for calibrator in processor.calibrators.values():
        calibrator.add = timed(parts, 'calibrator_add', calibrator.add)
    for name in ('publish_pose', 'localize', 'heading_for', 'tilt_for'):
        setattr(localizer, name, timed(parts, name, getattr(localizer, name)))
    for name in ('ranges_listened', 'first_echo_read', 'processor_for'):
        setattr(processor, name, timed(parts, name, getattr(processor, name)))
    localizer.echo_heading.follow = timed(parts, 'echo_heading_follow',
                                          localizer.echo_heading.follow)
    flush = timed(parts, 'flush_waiting', localizer.flush_waiting)
    localizer.flush_timer.callback = lambda: flush()


def _profile_table(profile: cProfile.Profile, frames: int, rows: int) -> str:
    """The ``rows`` functions of most own CPU time, ms a frame (own, with what they call)."""
    stats = pstats.Stats(profile)
    table = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:rows]
    out = io.StringIO()
    out.write(f'{"own ms/frame":>12} {"cum ms/frame":>12} {"calls/frame":>11}  function\n')
    for (path, line, name), (_, calls, own_s, cum_s, _) in table:
        where = f'{Path(path).name}:{line}' if line else path
        out.write(f'{1e3 * own_s / frames:12.4f} {1e3 * cum_s / frames:12.4f} '
                  f'{calls / frames:11.2f}  {name} ({where})\n')
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=30.0)
    parser.add_argument('--warm-s', type=float, default=8.0)
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--method', choices=('physics', 'nn'), default='physics')
    parser.add_argument('--parts', action='store_true',
                        help='the main thread split by callback and part (thread CPU)')
    parser.add_argument('--profile', type=int, default=0, metavar='N',
                        help='print the N functions of most own CPU time in the window')
    args = parser.parse_args()

    from echoloc_ros.ros.graph import GRAPH, ONE_PROCESS
    from echoloc_ros.ros.process_graph import NodeProcesses, isolated_ros_env
    log_dir = Path(tempfile.mkdtemp(prefix='echoloc-one-process-cpu-'))
    os.environ.update(isolated_ros_env(random.randint(101, 200), log_dir))
    overrides = {'localizer': {'method': args.method, 'room': args.room},
                 'driver': {'room': args.room}, 'furniture_survey': {'room': args.room}}
    others = tuple(spec for spec in GRAPH if spec.name in ('driver', 'furniture_survey'))
    graph = NodeProcesses(specs=others, env=dict(os.environ), log_dir=log_dir,
                          overrides=overrides)

    import rclpy
    from echoloc_ros.nodes.common import _executor
    from echoloc_ros.nodes.echo_localizer import build
    # The one process's own arguments, as the graph would start it.
    rclpy.init(args=graph.command(ONE_PROCESS)[3:])
    parts: dict[str, float] = {}
    if args.parts:
        wrap_diagnostics(parts)
        # Read when the nodes subscribe: wrapped before they are built.
        from echoloc_ros.ros import cdr
        for name in ('frame_view', 'imu_view'):
            setattr(cdr, name, timed(parts, name, getattr(cdr, name)))
    processor, localizer = build()
    if args.parts:
        _wrap(processor, localizer, parts)
    executor = _executor()
    for node in (processor, localizer):
        executor.add_node(node)
    profile = cProfile.Profile(time.thread_time) if args.profile else None
    try:
        with graph:
            spin_for(executor, args.warm_s)
            frames0, poses0 = processor.frames_in, localizer.poses_published
            parts.clear()
            fixes0 = localizer.pipeline.track_search.counts.copy()
            threads0, main0, wakes0 = threads_cpu_s(), time.thread_time(), threads_wakes()
            faults0 = minor_faults()
            if profile:
                profile.enable()
            spin_for(executor, args.seconds)
            if profile:
                profile.disable()
            main_s = time.thread_time() - main0
            frames = processor.frames_in - frames0
            poses = localizer.poses_published - poses0
            threads1, wakes1 = threads_cpu_s(), threads_wakes()
            faults = minor_faults() - faults0
            fixes1 = localizer.pipeline.track_search.counts
    finally:
        for node in (processor, localizer):
            executor.remove_node(node)
            node.destroy_node()
        rclpy.try_shutdown()
    if frames == 0:
        sys.exit(f'no frames taken: see the driver\'s log in {log_dir}')
    per_thread = {name: round(1e3 * (cpu - threads0.get(name, 0.0)) / frames, 3)
                  for name, cpu in threads1.items() if cpu > threads0.get(name, 0.0)}
    wakes = {name: round((count - wakes0.get(name, 0)) / frames, 2)
             for name, count in wakes1.items() if count > wakes0.get(name, 0)}
    split = {name: round(1e3 * value / frames, 3) for name, value in parts.items()}
    if parts:
        split['outside_callbacks'] = round(1e3 * (main_s - sum(
            parts.get(name, 0.0) for name in ('on_frame', 'flush_waiting', 'diagnostics')))
            / frames, 3)
        split['on_frame_outside_algorithms'] = round(1e3 * (parts.get('on_frame', 0.0) - sum(
            parts.get(name, 0.0) for name in ('process', 'pipeline_step'))) / frames, 3)
    if profile:
        print(_profile_table(profile, frames, args.profile))
    print(json.dumps({
        'room': args.room, 'method': args.method, 'seconds': args.seconds, 'frames': frames,
        'poses': poses, 'profiled': bool(profile),
        'process_cpu_ms_per_frame': round(sum(per_thread.values()), 3),
        'main_thread_cpu_ms_per_frame': round(1e3 * main_s / frames, 3),
        'threads_cpu_ms_per_frame': per_thread,
        'threads_wakes_per_frame': wakes,
        'minor_faults_per_frame': round(faults / frames, 2),
        'main_thread_parts_ms_per_frame': split,
        'fixes': {'local': fixes1.local - fixes0.local, 'full': fixes1.full - fixes0.full},
        'load': round(os.getloadavg()[0], 2)}))


if __name__ == '__main__':
    main()
