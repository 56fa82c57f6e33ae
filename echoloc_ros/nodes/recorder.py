"""recorder: records echoloc's topics to MCAP (rosbag2 layout) as a node; ``echoloc record``.

The file format and its crash safety are :mod:`echoloc_ros.ros.bag`'s: this node only subscribes
(raw, without deserializing) and hands each message to a :class:`~echoloc_ros.ros.bag.BagWriter`.
"""
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from echoloc_ros.ros.bag import (DEFAULT_TOPICS, BagWriter, TopicSpec, message_class, qos_dict,
                                 topic_spec)


class BagRecorder(Node):
    """Subscribes to topics without deserializing them and writes them to a BagWriter.

    A topic's channel is created at its first message, with the QoS its publishers offer (so
    ``ros2 bag play`` can offer the same). Log times are the receive time on the node's clock,
    kept non-decreasing so the file reads in order even before it has an index.

    :param out_dir: the recording directory to create.
    :param topics: what to record; defaults to :data:`DEFAULT_TOPICS`.
    :param flush_period_s: how often the file is made complete on disk: the most a kill loses.
    :param fsync: fsync at every flush.
    """

    def __init__(self, out_dir: Path, topics: Sequence = DEFAULT_TOPICS,
                 flush_period_s: float = 1.0, fsync: bool = False,
                 node_name: str = 'echoloc_recorder'):
        if not flush_period_s > 0:
            raise ValueError(f'flush_period_s must be positive, got {flush_period_s}')
        specs = [topic_spec(t) for t in topics]
        # The file first: a directory that cannot be written must fail before a node exists
        # (rclpy's shutdown would destroy a half-built one).
        self.bag = BagWriter(out_dir, fsync=fsync)
        self._lock = threading.Lock()
        super().__init__(node_name)
        self._last_ns = 0
        for spec in specs:
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT
                             if spec.best_effort else ReliabilityPolicy.RELIABLE)
            self.create_subscription(
                message_class(spec.msgtype), spec.topic,
                lambda data, spec=spec: self._on_message(spec, data), qos, raw=True)
        self.create_timer(flush_period_s, self.flush)
        self.get_logger().info(f'recording {len(specs)} topics to {self.bag.path}')

    def _on_message(self, spec: TopicSpec, data: bytes) -> None:
        now_ns = self.get_clock().now().nanoseconds
        with self._lock:
            if spec.topic not in self.bag.channels:
                offered = [qos_dict(info.qos_profile)
                           for info in self.get_publishers_info_by_topic(spec.topic)]
                self.bag.add_topic(spec.topic, spec.msgtype, offered)
            self._last_ns = max(self._last_ns, now_ns)
            self.bag.write(spec.topic, self._last_ns, data)

    def flush(self) -> None:
        with self._lock:
            self.bag.flush()

    def destroy_node(self) -> None:
        with self._lock:
            self.bag.close()
        super().destroy_node()


def record(out_dir: Path, topics: Sequence | None = None, duration_s: float | None = None,
           flush_period_s: float = 1.0) -> dict[str, int]:
    """Record until Ctrl-C, SIGTERM or ``duration_s``; return the message count per topic.

    Initializes rclpy itself (with signal handlers), so call it from a plain process.
    """
    # rclpy's handlers turn SIGINT and SIGTERM into a shutdown, so both close the file cleanly.
    rclpy.init()
    node = None
    try:
        node = BagRecorder(Path(out_dir), topics or DEFAULT_TOPICS, flush_period_s)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while rclpy.ok() and (deadline is None or time.monotonic() < deadline):
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return {c.topic: c.count for c in node.bag.channels.values()} if node else {}
