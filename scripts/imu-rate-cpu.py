"""The CPU a pose of the process that runs the localizer while ``imu/data`` comes faster than the
frames, as a robot's IMU does (100-400 Hz; the sim driver sends one heading a frame).

Beside a running graph (``echoloc bringup`` in the same ``ROS_DOMAIN_ID``), for ``--seconds``
nothing is added (``without``), then for as long the driver's newest heading is sent again on
``imu/data`` at ``--rate-hz``, stamped now (``with``): the process ``--pid``'s CPU time
(``/proc``) over each window, per pose heard on ``/echoloc/pose``. One JSON line.

    echoloc bringup &    # the same ROS_DOMAIN_ID; --pid: its echo_localizer (or localizer)
    python scripts/imu-rate-cpu.py --pid 12345 --rate-hz 200
"""
import argparse
import json
import os
import time
from pathlib import Path

FRAME_ID = 'imu_rate_cpu'


def _cpu_s(pid: int) -> float:
    stat = Path(f'/proc/{pid}/stat').read_text()
    fields = stat[stat.rindex(')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--pid', type=int, required=True)
    parser.add_argument('--rate-hz', type=float, default=200.0)
    parser.add_argument('--seconds', type=float, default=20.0)
    args = parser.parse_args()

    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Imu

    from echoloc_ros.nodes.common import _executor
    rclpy.init()
    node = rclpy.create_node('imu_rate_cpu')
    newest: list = []
    poses: list[float] = []
    node.create_subscription(Imu, 'imu/data', lambda msg: newest.append(msg)
                             if msg.header.frame_id != FRAME_ID else None,
                             qos_profile_sensor_data)
    node.create_subscription(PoseWithCovarianceStamped, 'echoloc/pose',
                             lambda msg: poses.append(time.monotonic()),
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    publisher = node.create_publisher(Imu, 'imu/data', qos_profile_sensor_data)

    sent = [0]

    def resend() -> None:
        if newest:
            sent[0] += 1
            msg = newest[-1]
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.header.frame_id = FRAME_ID
            publisher.publish(msg)

    executor = _executor()
    executor.add_node(node)

    def window(seconds: float) -> dict:
        start_cpu, start = _cpu_s(args.pid), time.monotonic()
        while time.monotonic() - start < seconds:
            executor.spin_once(timeout_sec=0.05)
        end_cpu, end = _cpu_s(args.pid), time.monotonic()
        n = sum(start <= t < end for t in poses)
        return {'poses': n, 'cpu_ms_per_pose': round(1e3 * (end_cpu - start_cpu) / n, 3)
                if n else None}

    try:
        window(5.0)  # the subscriptions matched, the first headings heard
        without = window(args.seconds)
        timer = node.create_timer(1.0 / args.rate_hz, resend)
        with_ = window(args.seconds)
        node.destroy_timer(timer)
        with_['sent_hz'] = round(sent[0] / args.seconds, 1)
    finally:
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps({'pid': args.pid, 'rate_hz': args.rate_hz, 'without': without,
                      'with': with_}), flush=True)


if __name__ == '__main__':
    main()
