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

# The last seq sent; seqs 5 and 6 are never sent, seq 9 goes out at a sample rate the echo
# processor refuses.
LAST = 60
NEVER_SENT = (5, 6)
REJECTED = 9


def _frames() -> dict[int, EchoFrame]:
    """The frames sent, by seq: the array standing still, stamped 40 ms apart."""
    room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
    sim = SimulatedArray(room, array, chirp, 250e3, Scenario(snr_db=20.0, seed=3), seed=3)
    samples = sim.acquire(0.0).samples
    frames = {}
    for seq in range(LAST + 1):
        if seq in NEVER_SENT:
            continue
        stamp = Time(sec=1 + seq // 25, nanosec=40_000_000 * (seq % 25))
        frames[seq] = conversions.echo_frame_msg(samples, stamp, 'echoloc_array', seq, array,
                                                 chirp, 125e3 if seq == REJECTED else 250e3,
                                                 room.temperature_c)
    return frames


def _counts(rec, name: str) -> dict[str, str]:
    """The newest diagnostic status ``name``'s values."""
    statuses = [s for _, m in rec.get('/diagnostics') for s in m.status if s.name == name]
    return {v.key: v.value for v in statuses[-1].values} if statuses else {}


def _accounted_to(rec, name: str) -> int | None:
    value = _counts(rec, name).get('seq accounted', '')
    return int(value) if value else None


def test_every_frame_without_a_pose_is_counted_where_it_was_lost(ros_env, tmp_path):
    frames = _frames()
    import rclpy
    rec = TopicRecorder(rclpy)
    rec.subscribe(PoseWithCovarianceStamped, '/echoloc/pose',
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
        # Seq 0 alone (it pays for the first frame's costs), then the rest: the first few 50 ms
        # apart (each taken, the track confirmed), then a burst far faster than either node.
        publisher.publish(frames[0])
        assert wait_for(lambda: _accounted_to(rec, 'localizer: Localization') == 0,
                        timeout_s=30.0), f'frame 0 not accounted; logs in {tmp_path}'
        for seq in sorted(frames)[1:-1]:
            publisher.publish(frames[seq])
            time.sleep(0.05 if seq < 20 else 0.001)
        # The last alone, so that it is neither overtaken nor lost in a full queue.
        time.sleep(0.5)
        publisher.publish(frames[LAST])
        assert wait_for(lambda: _accounted_to(rec, 'localizer: Localization') == LAST
                        and _accounted_to(rec, 'echo_processor: Frames') == LAST,
                        timeout_s=30.0), f'not every frame accounted; logs in {tmp_path}'
    finally:
        graph.stop()
        rec.close()
    localizer = _counts(rec, 'localizer: Localization')
    processor = _counts(rec, 'echo_processor: Frames')
    posed = len({conversions.stamp_key(m.header.stamp) for _, m in rec.get('/echoloc/pose')})
    assert int(localizer['poses published']) == posed
    # Every seq from 0 to LAST: a pose, or a frame counted without one.
    assert posed + int(localizer['frames without pose']) == LAST + 1, (posed, localizer)
    causes = ('frames dropped (overtaken)', 'frames failed', 'frames without heading',
              'frames without pose: no confirmed track',
              'frames without pose: off the echo heading track',
              'frames without pose: acquiring the heading')
    assert sum(int(localizer[k]) for k in causes) == int(localizer['frames without pose'])
    # The echo processor: the seqs never sent and overtaken in its queue, and the rejected one
    # (once: not also as a gap), all among the localizer's dropped (gaps in the features).
    assert int(processor['frames rejected']) == 1
    missed = int(processor['frames missed (seq gaps)'])
    assert missed >= len(NEVER_SENT)
    not_forwarded = int(processor['frames not forwarded'])
    withheld = int(_counts(rec, 'echo_processor: Array calibration')['frames withheld'])
    assert not_forwarded == missed + 1 + withheld
    assert int(localizer['frames dropped (overtaken)']) >= not_forwarded
    # The burst overtook frames, and the track was confirmed after its first fixes.
    assert int(localizer['frames dropped (overtaken)']) > not_forwarded or missed > 2
    assert int(localizer['frames without pose: no confirmed track']) >= 1
