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

try:  # Iron on: a subscription callback may take the message's info with it
    from rclpy.subscription import MessageInfo
except ImportError:  # Humble
    MessageInfo = None


def sent_s(info) -> float | None:
    """When the publisher wrote a message (its DDS source timestamp, s since the epoch), from
    its ``MessageInfo``; None where the middleware gives none. Unlike the time a listener's
    callback runs, it does not depend on when this process gets a core."""
    stamp_ns = info.get('source_timestamp', 0) if info else 0
    return 1e-9 * stamp_ns if stamp_ns > 0 else None


@dataclass
class Heard:
    """Everything received, keyed by acquisition stamp where the message has one."""

    poses: dict = field(default_factory=dict)       # stamp -> (recv_s, position, cov, frame_id)
    truths: dict = field(default_factory=dict)      # stamp -> position
    frames: dict = field(default_factory=dict)      # stamp -> (recv_s, seq)
    # ('pose' or 'frame', stamp) -> when its publisher sent it (:func:`sent_s`), where known
    sent: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)  # status name -> DiagnosticStatus


class GraphListener(Node):
    """Subscribes to pose, ground truth, diagnostics and optionally the raw frames."""

    def __init__(self, name: str = 'echoloc_listener', frames: bool = False):
        super().__init__(name)
        self.heard = Heard()
        self.lock = threading.Lock()
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.subscribe(PoseWithCovarianceStamped, 'echoloc/pose', self.on_pose, reliable)
        self.create_subscription(PoseStamped, 'echoloc/ground_truth', self.on_truth, reliable)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics,
                                 QoSProfile(depth=50))
        if frames:
            self.subscribe(EchoFrame, 'echoloc/echoes', self.on_frame, qos_profile_sensor_data)

    def subscribe(self, msg_type, topic: str, take, qos) -> None:
        """Subscribe ``take(msg, sent_s)``: ``sent_s`` from the message's info where this
        rclpy gives it (Iron on), else None."""
        if MessageInfo is None:
            self.create_subscription(msg_type, topic, lambda msg: take(msg, None), qos)
        else:
            self.create_subscription(msg_type, topic,
                                     lambda msg, info: take(msg, sent_s(info)), qos)

    def on_pose(self, msg: PoseWithCovarianceStamped, sent: float | None = None) -> None:
        position, cov = conversions.pose_position_covariance(msg)
        key = conversions.stamp_key(msg.header.stamp)
        with self.lock:
            self.heard.poses[key] = (time.time(), position, cov, msg.header.frame_id)
            if sent is not None:
                self.heard.sent['pose', key] = sent

    def on_truth(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        with self.lock:
            self.heard.truths[conversions.stamp_key(msg.header.stamp)] = np.array([p.x, p.y, p.z])

    def on_frame(self, msg: EchoFrame, sent: float | None = None) -> None:
        key = conversions.stamp_key(msg.header.stamp)
        with self.lock:
            self.heard.frames[key] = (time.time(), msg.seq)
            if sent is not None:
                self.heard.sent['frame', key] = sent

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
