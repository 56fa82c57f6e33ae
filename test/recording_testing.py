"""A recording of the running graph from a simulated array, for the calibrate-receivers and
calibrate-room command tests: the echo features, the poses the graph published and, with
``imu``, the array's tilt on an Imu topic."""
import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message

from echoloc.msg import EchoFrame
from echoloc_ros.core.array_geometry import load_array, tilt_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.room import load_room
from echoloc_ros.ros import conversions
from echoloc_ros.ros.bag import BagWriter
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3
FRAME_NS = 40_000_000
# An Imu is stamped this long after its frame.
IMU_LAG_NS = 5_000_000


def imu_msg(roll_rad, pitch_rad, yaw_rad, stamp):
    """An Imu whose orientation is the array's yaw, pitch and roll (z-y-x)."""
    msg = conversions.imu_msg(yaw_rad, 1e-4, stamp, 'imu')
    r = tilt_matrix(roll_rad, pitch_rad)
    # The quaternion of yaw @ tilt, from its rotation matrix (w > 0 for these small angles).
    m = np.array([[np.cos(yaw_rad), -np.sin(yaw_rad), 0], [np.sin(yaw_rad), np.cos(yaw_rad), 0],
                  [0, 0, 1]]) @ r
    w = 0.5 * np.sqrt(1.0 + np.trace(m))
    msg.orientation.w = float(w)
    msg.orientation.x = float((m[2, 1] - m[1, 2]) / (4 * w))
    msg.orientation.y = float((m[0, 2] - m[2, 0]) / (4 * w))
    msg.orientation.z = float((m[1, 0] - m[0, 1]) / (4 * w))
    msg.orientation_covariance = [1e-4, 0.0, 0.0, 0.0, 1e-4, 0.0, 0.0, 0.0, 1e-4]
    return msg


def write_recording(path, hardware, n_frames, seed, poses=True, imu=None):
    """Random poses in the default room heard by ``hardware``, recorded as the graph records
    them: the features, and (``poses``) a published pose off the truth by a few millimetres
    and a degree's fraction, as a tracker's.

    :param seed: of the poses, the noise and the published poses' errors.
    :param imu: ``None``: no Imu; else a dict: ``topic`` (default ``/imu/data``), ``frames``
        (the frames that have an Imu, stamped :data:`IMU_LAG_NS` after them, carrying the
        hardware's tilt; default all) and ``bad_quaternion`` (its x is NaN).
    """
    room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(room, array, chirp, FS_HZ)
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    rng = np.random.default_rng(seed)
    bag = BagWriter(path)
    bag.add_topic('/echoloc/features', 'echoloc/msg/EchoFeatures')
    bag.add_topic('/echoloc/pose', 'geometry_msgs/msg/PoseWithCovarianceStamped')
    imu = None if imu is None else {'topic': '/imu/data', 'frames': range(n_frames),
                                    'bad_quaternion': False, **imu}
    if imu is not None:
        bag.add_topic(imu['topic'], 'sensor_msgs/msg/Imu')
    for k in range(n_frames):
        position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
        features = processor.process(simulator.simulate(position, yaw,
                                                        Scenario(hardware=hardware), rng))
        stamp = Time(sec=k // 25, nanosec=(k % 25) * FRAME_NS)
        frame = EchoFrame()
        frame.header.stamp, frame.seq, frame.array_id = stamp, k, array.name
        bag.write('/echoloc/features', k * FRAME_NS,
                  serialize_message(conversions.features_msg(features, frame, 0.001)))
        if poses:
            fix = position + rng.normal(0.0, 0.002, 3)
            pose = conversions.pose_msg(fix, 0.003 ** 2 * np.eye(3),
                                        yaw + np.deg2rad(0.3) * rng.standard_normal(),
                                        np.deg2rad(1.0) ** 2, stamp, 'map')
            bag.write('/echoloc/pose', k * FRAME_NS, serialize_message(pose))
        if imu is not None and k in imu['frames']:
            message = imu_msg(hardware.roll_rad, hardware.pitch_rad, yaw,
                              Time(sec=stamp.sec, nanosec=stamp.nanosec + IMU_LAG_NS))
            if imu['bad_quaternion']:
                message.orientation.x = float('nan')
            bag.write(imu['topic'], k * FRAME_NS + IMU_LAG_NS, serialize_message(message))
    bag.close()
