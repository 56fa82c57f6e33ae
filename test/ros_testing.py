"""Helpers for tests that run real nodes and listen to real topics (launch_pytest style)."""
import threading
import time
import uuid


def wait_for(predicate, timeout_s: float = 10.0, interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


class TopicRecorder:
    """A plain rclpy subscriber node that records (receive time, message) per topic."""

    def __init__(self, rclpy):
        from rclpy.executors import SingleThreadedExecutor
        self.node = rclpy.create_node(f'test_recorder_{uuid.uuid4().hex[:8]}')
        self.messages: dict[str, list] = {}
        self.lock = threading.Lock()
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def subscribe(self, msg_type, topic: str, qos) -> None:
        self.messages.setdefault(topic, [])

        def callback(msg, topic=topic):
            with self.lock:
                self.messages[topic].append((time.time(), msg))

        self.node.create_subscription(msg_type, topic, callback, qos)

    def get(self, topic: str) -> list:
        with self.lock:
            return list(self.messages.get(topic, []))

    def diagnostic_count(self, status_name: str, key: str,
                         topic: str = '/diagnostics') -> int:
        """The largest integer value of ``key`` in the diagnostic status ``status_name``
        recorded so far (0 if none), e.g. the frames a node has finished with."""
        counts = [int(v.value) for _, m in self.get(topic) for s in m.status
                  if s.name == status_name for v in s.values if v.key == key]
        return max(counts, default=0)

    def publisher(self, msg_type, topic: str, qos):
        return self.node.create_publisher(msg_type, topic, qos)

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=2.0)
        self.node.destroy_node()
