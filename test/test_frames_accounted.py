"""Every frame without a pose is counted by the node that lost it: frames never sent (a seq
gap), a frame the echo processor rejects, frames overtaken in the echo processor and in the
localizer by a burst, and fixes no confirmed track vouches for. The localizer's counts and
the poses published add up to every frame up to the seq they account for."""
import time

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy

from echoloc.msg import EchoFrame
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import load_room
from echoloc_ros.ros import conversions
from echoloc_ros.ros.graph import GRAPH
from echoloc_ros.ros.process_graph import NodeProcesses
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import Scenario
from ros_testing import TopicRecorder, wait_for

# After the warm-up frames: the frames sent, seqs FIRST to FIRST + LAST; FIRST + 5 and
# FIRST + 6 are never sent, FIRST + 9 goes out at a sample rate the echo processor refuses.
LAST = 60
NEVER_SENT = (5, 6)
REJECTED = 9


class Frames:
    """Frames of the array standing still, by seq, stamped 40 ms apart."""

    def __init__(self):
        self.room, self.array, self.chirp = (load_room('default_room'),
                                             load_array('square_4sensor'), Chirp())
        sim = SimulatedArray(self.room, self.array, self.chirp, 250e3,
                             Scenario(snr_db=20.0, seed=3), seed=3)
        self.samples = sim.acquire(0.0).samples

    def __call__(self, seq: int, fs_hz: float = 250e3) -> EchoFrame:
        stamp = Time(sec=1 + seq // 25, nanosec=40_000_000 * (seq % 25))
        return conversions.echo_frame_msg(self.samples, stamp, 'echoloc_array', seq,
                                          self.array, self.chirp, fs_hz,
                                          self.room.temperature_c)


LOCALIZATION, FRAMES = 'localizer: Localization', 'echo_processor: Frames'
POSE = '/echoloc/pose'


def _counts(rec, name: str) -> dict[str, str]:
    """The newest diagnostic status ``name``'s values."""
    statuses = [s for _, m in rec.get('/diagnostics') for s in m.status if s.name == name]
    return {v.key: v.value for v in statuses[-1].values} if statuses else {}


def _accounted_to(rec, name: str) -> int | None:
    value = _counts(rec, name).get('seq accounted', '')
    return int(value) if value else None


def test_every_frame_without_a_pose_is_counted_where_it_was_lost(ros_env, tmp_path):
    frame = Frames()
    import rclpy
    rec = TopicRecorder(rclpy)
    rec.subscribe(PoseWithCovarianceStamped, POSE,
                  QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    rec.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=50))
    publisher = rec.publisher(EchoFrame, '/echoloc/echoes', QoSProfile(depth=LAST))
    graph = NodeProcesses(
        specs=tuple(s for s in GRAPH if s.name in ('echo_processor', 'localizer')),
        env=ros_env, log_dir=tmp_path, overrides={'localizer': {
            'heading_source': 'fixed', 'room_updates': False, 'publish_markers': False}})
    try:
        graph.start()
        assert wait_for(lambda: publisher.get_subscription_count() > 0
                        and rec.node.count_publishers('/echoloc/pose') > 0, timeout_s=60.0), \
            f'nodes not up in 60 s; logs in {tmp_path}: {graph.exited()}'
        # One frame every 0.3 s until the localizer has accounted for one (a best-effort
        # frame sent before the echo processor has matched this publisher is lost, uncounted:
        # before its first frame a node cannot know of it); then its counts when settled.
        warm = iter(range(1000))
        assert wait_for(lambda: publisher.publish(frame(next(warm)))
                        or _accounted_to(rec, LOCALIZATION) is not None,
                        timeout_s=60.0, interval_s=0.3), f'no frame accounted; logs in {tmp_path}'
        first = next(warm)
        assert wait_for(lambda: _accounted_to(rec, LOCALIZATION) == first - 1, timeout_s=30.0)
        start = _counts(rec, LOCALIZATION)
        start_missed = _counts(rec, FRAMES).get('frames not forwarded', '0')
        # The first few 50 ms apart (each taken, the track confirmed), then a burst far faster
        # than either node; the last alone, so that it is neither overtaken nor lost.
        for k in range(LAST):
            if k not in NEVER_SENT:
                publisher.publish(frame(first + k, 125e3 if k == REJECTED else 250e3))
            time.sleep(0.05 if k < 20 else 0.001)
        time.sleep(0.5)
        publisher.publish(frame(first + LAST))
        assert wait_for(lambda: _accounted_to(rec, LOCALIZATION) == first + LAST
                        and _accounted_to(rec, FRAMES) == first + LAST,
                        timeout_s=30.0), f'not every frame accounted; logs in {tmp_path}'
    finally:
        graph.stop()
        rec.close()
    end = _counts(rec, LOCALIZATION)
    localizer = {k: int(end[k]) - int(start[k]) for k in end if k.startswith(('frames', 'poses'))}
    processor = _counts(rec, FRAMES)
    sent = {conversions.stamp_key(frame(first + k).header.stamp) for k in range(LAST + 1)}
    posed = len(sent & {conversions.stamp_key(m.header.stamp) for _, m in rec.get(POSE)})
    assert localizer['poses published'] == posed
    # Every seq from first to first + LAST: a pose, or a frame counted without one.
    assert posed + localizer['frames without pose'] == LAST + 1, (posed, localizer)
    causes = ('frames dropped (overtaken)', 'frames failed', 'frames without heading',
              'frames without pose: no confirmed track',
              'frames without pose: off the echo heading track',
              'frames without pose: acquiring the heading',
              'frames without pose: doubted fix withheld')
    assert sum(localizer[k] for k in causes) == localizer['frames without pose']
    # The echo processor: the seqs never sent and overtaken in its queue, and the rejected one
    # (once: not also as a gap), all among the localizer's dropped (gaps in the features).
    assert int(processor['frames rejected']) == 1
    missed = int(processor['frames missed (seq gaps)'])
    assert missed >= len(NEVER_SENT)
    not_forwarded = int(processor['frames not forwarded'])
    withheld = int(_counts(rec, 'echo_processor: Array calibration')['frames withheld'])
    # (Counted over the whole run: the warm-up frames were taken one by one, none missed.)
    assert not_forwarded == missed + 1 + withheld
    assert localizer['frames dropped (overtaken)'] >= not_forwarded - int(start_missed)
    # The burst overtook frames.
    assert localizer['frames dropped (overtaken)'] > len(NEVER_SENT) + 1
