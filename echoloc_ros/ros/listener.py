"""An rclpy node that listens to the graph's outputs and keeps what it heard.

Serves `echoloc monitor` and `echoloc bench`; it is an ordinary subscriber like any user's.
"""
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from echoloc.msg import EchoFrame
from echoloc_ros.core.stamps import paired
from echoloc_ros.ros import conversions


@dataclass
class Heard:
    """Everything received, keyed by acquisition stamp where the message has one."""

    poses: dict = field(default_factory=dict)       # stamp -> (recv_s, position, cov, frame_id)
    truths: dict = field(default_factory=dict)      # stamp -> position
    frames: dict = field(default_factory=dict)      # stamp -> (recv_s, seq)
    diagnostics: dict = field(default_factory=dict)  # status name -> DiagnosticStatus


class GraphListener(Node):
    """Subscribes to pose, ground truth, diagnostics and optionally the raw frames."""

    def __init__(self, name: str = 'echoloc_listener', frames: bool = False):
        super().__init__(name)
        self.heard = Heard()
        self.lock = threading.Lock()
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(PoseWithCovarianceStamped, 'echoloc/pose', self.on_pose,
                                 reliable)
        self.create_subscription(PoseStamped, 'echoloc/ground_truth', self.on_truth, reliable)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics,
                                 QoSProfile(depth=50))
        if frames:
            self.create_subscription(EchoFrame, 'echoloc/echoes', self.on_frame,
                                     qos_profile_sensor_data)

    def on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        position, cov = conversions.pose_position_covariance(msg)
        with self.lock:
            self.heard.poses[conversions.stamp_key(msg.header.stamp)] = (
                time.time(), position, cov, msg.header.frame_id)

    def on_truth(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        with self.lock:
            self.heard.truths[conversions.stamp_key(msg.header.stamp)] = np.array([p.x, p.y, p.z])

    def on_frame(self, msg: EchoFrame) -> None:
        with self.lock:
            self.heard.frames[conversions.stamp_key(msg.header.stamp)] = (time.time(), msg.seq)

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self.lock:
            for status in msg.status:
                self.heard.diagnostics[status.name] = status

    def errors_m(self, since_s: float = 0.0) -> np.ndarray:
        """Position error of each pose received after ``since_s`` whose stamp has a truth."""
        with self.lock:
            return np.array([np.linalg.norm(pose[1] - truth) for _, pose, truth
                             in paired(self.heard.poses, self.heard.truths)
                             if pose[0] >= since_s])

    def pose_stamps(self) -> list[tuple[int, int]]:
        with self.lock:
            return list(self.heard.poses)


class Spinner:
    """Spin a node in a background thread: ``with Spinner(node): ...``."""

    def __init__(self, node: Node):
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(node)
        self.thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except rclpy.executors.ExternalShutdownException:
            pass

    def __enter__(self) -> 'Spinner':
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=2.0)
