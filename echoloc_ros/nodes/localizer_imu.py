"""The localizer node's headings from ``imu/data``: each message kept as its bytes when it
arrives and read with the next frame.

The IMU publishes its message a few milliseconds before the frame it goes with reaches the
localizer, and between frames the node sleeps. Whatever the node runs first after it wakes runs
on cold caches: on this project's 2-core machine a heading read, checked and stored cost
0.03 ms a message back to back and 0.3 ms after 40 ms asleep, which is what it cost live, in a
callback of its own (``scripts/localizer-live-cpu.py``). Read in the features' callback, after
the features' own reading has warmed the same code, it costs a fraction of that. So a message
is only kept on arrival, with its arrival time, and read when the node next needs its
headings: a frame arriving, a frame waiting for its heading (at once, as before), the
diagnostics, or ``PENDING_MAX`` messages kept. Each is read, checked and stored, or refused, as
it would have been on arrival, in the order they came: the same headings, refusals and times.
"""
import collections
import time

from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Imu

from echoloc_ros.ros import cdr, conversions
from echoloc_ros.ros.imu_heading import heading_refusal

# Messages kept before they are read without waiting for a frame: at a 200 Hz IMU with no
# frames, this many bytes objects of 0.3 kB, read every 0.3 s (and every diagnostics period).
PENDING_MAX = 64


class ImuHeadings:
    """:class:`~echoloc_ros.nodes.localizer.LocalizerNode`'s part that takes ``imu/data``
    (a mixin: it reads and sets the node's heading state, ``headings``, ``waiting`` ...)."""

    def subscribe_imu(self) -> None:
        """Keep each message on ``imu/data`` as it comes (:meth:`keep_imu`)."""
        self.imu_pending: collections.deque = collections.deque()
        cdr.typestore()  # built now, at start-up, not at the first message read
        self.create_subscription(Imu, 'imu/data', self.keep_imu, qos_profile_sensor_data,
                                 raw=True)

    def keep_imu(self, data: bytes) -> None:
        """A message on ``imu/data``: kept with its arrival time; read now if a frame waits
        for its heading, or ``PENDING_MAX`` are kept."""
        self.imu_pending.append((time.monotonic(), data))
        if self.waiting or len(self.imu_pending) >= PENDING_MAX:
            self.take_headings()

    def take_headings(self) -> None:
        """Read the messages kept, in the order they came, each as on its arrival."""
        pending = self.imu_pending
        while pending:
            arrived_mono, data = pending.popleft()
            try:
                msg = cdr.imu_view(data)
            except ValueError as exc:
                self.refuse_heading('unreadable', str(exc), arrived_mono)
                continue
            self.on_imu(msg, arrived_mono)

    def refuse_heading(self, reason: str, detail: str, arrived_mono: float | None = None
                       ) -> None:
        """Count and log a heading refused; ``arrived_mono``: when it came (``None``: now)."""
        now = time.monotonic() if arrived_mono is None else arrived_mono
        self.headings_refused[reason] += 1
        self.last_refusal = f'{reason}: {detail}'
        if self.imu_refused_since_mono is None:
            self.imu_refused_since_mono = now
        self.imu_refused_mono = now
        self.get_logger().warning(f'heading on imu/data refused ({reason}): {detail}',
                                  throttle_duration_sec=2.0)

    def on_imu(self, msg: 'Imu | cdr.ImuOrientationView', arrived_mono: float | None = None
               ) -> None:
        """Check and store one heading (``arrived_mono``: when it came, ``None``: now); then
        localize the frames waiting whose heading it brings."""
        refusal = heading_refusal(msg, self.newest_frame_s)
        if refusal is not None:
            self.refuse_heading(*refusal, arrived_mono)
            return
        self.imu_accepted_mono = time.monotonic() if arrived_mono is None else arrived_mono
        self.imu_refused_since_mono = None
        # Roll and pitch go with the heading of the same message, paired with a frame by stamp
        # (the latest message's would make a frame's fix depend on when it was processed).
        self.headings.add(conversions.stamp_to_s(msg.header.stamp),
                          (conversions.quaternion_to_yaw(msg.orientation),
                           float(msg.orientation_covariance[8]),
                           conversions.quaternion_to_roll_pitch(msg.orientation)))
        while self.waiting and (conversions.stamp_to_s(self.waiting[0][1].header.stamp)
                                <= self.headings.latest_s()):
            self.localize(self.waiting.popleft()[1])
