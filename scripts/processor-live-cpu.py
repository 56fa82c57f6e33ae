"""Where the echo processor node's CPU goes on a live graph: a second processor node joins a
running graph (``echoloc bringup`` in the same ``ROS_DOMAIN_ID``), takes the driver's frames
as the graph's own processor does, and publishes its features on a topic no one reads
(``--features-topic``), so that it looks for the first echo as the two-process graph's does
(not at all: its only readers would be the localizer and the survey).

Over ``--seconds`` after a warm ``--warm-s``, per frame received: each of the process's
threads' CPU time (``/proc/self/task``: the main thread, which runs the executor and the
callbacks, and the middleware's), and in the main thread the callback ``on_frame`` (reading
the frame's bytes, ``frame_view``, and the node's ``on_frame``) and its parts, the
diagnostics (``fitted_response`` among them), and what the main thread spent outside them
(the executor taking and handing over each message). One JSON line.

    echoloc bringup &    # in another shell, the same ROS_DOMAIN_ID
    python scripts/processor-live-cpu.py --seconds 30
"""
import argparse
import json
import sys
import time

from live_cpu import per_frame, spin_for, threads_cpu_s, timed, wrap_diagnostics


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
    rclpy.init(args=['--ros-args', '-r', '__node:=processor_live_cpu', '-r',
                     f'echoloc/features:={args.features_topic}'])
    parts: dict[str, float] = {}

    wrap_diagnostics(parts)

    def timed_part(name: str, work):
        return timed(parts, name, work)

    from echoloc_ros.core.array_calibration import ArrayCalibration
    from echoloc_ros.ros import cdr
    # Before the node is built, which holds them: reading each frame from its bytes, and the
    # calibration's fitted response, which the diagnostics report once per calibration.
    cdr.frame_view = timed_part('frame_view', cdr.frame_view)
    ArrayCalibration.fitted_response = timed_part('fitted_response',
                                                  ArrayCalibration.fitted_response)
    node = EchoProcessorNode()
    # The subscription's callback reads the serialized frame and calls on_frame with it.
    node.sub.callback = timed_part('on_frame', node.sub.callback)
    for processor in node.processors.values():
        processor.process = timed_part('process', processor.process)
    for calibrator in node.calibrators.values():
        calibrator.add = timed_part('calibrator_add', calibrator.add)
    for name in ('processor_for', 'ranges_listened', 'first_echo_read'):
        setattr(node, name, timed_part(name, getattr(node, name)))
    for name in ('features_view', 'features_msg', 'echo_frame_samples'):
        if hasattr(conversions, name):  # features_msg: before the features went as bytes
            setattr(conversions, name, timed_part(name, getattr(conversions, name)))
    node.pub.publish = timed_part('features_publish', node.pub.publish)
    cdr.features_bytes = timed_part('features_bytes', cdr.features_bytes)
    executor = EventsExecutor()
    executor.add_node(node)

    spin_for(executor, args.warm_s)
    parts.clear()
    frames0, threads0, main0 = node.frames_in, threads_cpu_s(), time.thread_time()
    spin_for(executor, args.seconds)
    main_s = time.thread_time() - main0
    frames, threads1 = node.frames_in - frames0, threads_cpu_s()
    node.destroy_node()
    rclpy.try_shutdown()
    if frames == 0:
        sys.exit('no frames received: is a graph running in this ROS_DOMAIN_ID?')
    print(json.dumps({'frames': frames, 'seconds': args.seconds,
                      **per_frame(frames, threads0, threads1, main_s, parts,
                                  ('on_frame', 'diagnostics'))}))


if __name__ == '__main__':
    main()
