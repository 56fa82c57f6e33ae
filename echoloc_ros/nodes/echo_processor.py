"""echo_processor: band-pass, matched filter, envelope, time of flight and SNR per channel."""
import collections
import re
import statistics
import time
from typing import Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Range
from std_msgs.msg import Header

from echoloc.msg import EchoFeatures, EchoFrame
from echoloc_ros.ros import cdr, conversions
from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.array_calibration import ArrayCalibration, DirectPathCalibrator
from echoloc_ros.core.array_geometry import load_named_array
from echoloc_ros.core.echo_processing import (DIRECT_RESIDUAL_LIMIT_DB, EchoProcessor,
                                              direct_explained)
from echoloc_ros.core.echo_processing import EchoFeatures as CoreFeatures
from echoloc_ros.ros.diagnostics import ERROR, OK, WARN, FrequencyStatus, FrequencyStatusParam
from echoloc_ros.core.warm_up import warm_processor
from echoloc_ros.nodes.common import MAX_SEQ_GAP, declare, declare_chirp, diagnostic_updater, \
    limit_threads, run, subscribe_serialized, warm_up

# Processors kept, one per (array, chirp, sample rate) a frame names: a stream has one; a peer
# sending 300 chirp variants grew the node by 51 MB when none was let go.
MAX_PROCESSORS = 2
# The nodes of this graph that subscribe to echoloc/features and read neither the first echo
# nor the noise floor (tof_s, tof_cfd_s, snr_db, noise_floor): while every subscriber is one of
# these, the features go out without them (NaN), as the one process hands them over. Any other
# subscriber (a recorder, a node of the robot's own) gets them.
FIRST_ECHO_UNREAD_BY = frozenset({'localizer', 'furniture_survey'})
# How often the subscribers' names are looked up again while their count stays the same, s.
SUBSCRIBERS_CHECK_S = 1.0


class EchoProcessorNode(Node):
    """Turns EchoFrame (``echoes``) into EchoFeatures (``features``)."""

    def __init__(self):
        super().__init__('echo_processor')
        limit_threads(self)
        self.expected_fs_hz = declare(
            self, 'expected_sample_rate_hz', 250000.0, 'reject frames at another sample rate '
            '[Hz]; 0 accepts any rate that can carry the chirp', min_value=0.0, max_value=2e6,
            on_set=lambda fs_hz: setattr(self, 'expected_fs_hz', fs_hz))
        self.decimation = declare(self, 'decimation', 4, 'baseband decimation factor of the '
                                  'matched-filter output', read_only=True, min_value=1,
                                  max_value=32)
        expected_rate_hz = declare(self, 'expected_rate_hz', 25.0, 'frame rate the frequency '
                                   'diagnostic expects [Hz]', read_only=True, min_value=0.1,
                                   max_value=1000.0)
        self.calibration_file = declare(
            self, 'array_calibration_file', '', 'array calibration (echoloc calibrate-array) '
            'used from the start; empty: calibrate from the frames only', read_only=True)
        self.self_calibrate = declare(
            self, 'self_calibrate', True, 'keep the array calibration current from the frames '
            '(the direct arrival is the same in every frame)', read_only=True)
        self.processors: collections.OrderedDict[tuple, EchoProcessor] = \
            collections.OrderedDict()
        self.calibrators: dict[int, DirectPathCalibrator] = {}
        self.fitted: dict[int, dict] = {}
        self.withheld = 0
        self.period_withheld = 0
        self.last_residual_db = float('nan')
        self.frames_in = 0
        self.frames_rejected = 0
        self.period_in = 0
        self.period_rejected = 0
        self.last_error = ''
        self.last_error_kind = ''
        self.last_seq = None
        self.gaps = 0
        # Frames never received (overtaken in this node's depth-1 queue, or lost on the way):
        # the frames in the gaps of seq, as the localizer counts them.
        self.frames_missed = 0
        self.latency_ms = []

        self.pub = self.create_publisher(EchoFeatures, 'echoloc/features', QoSProfile(depth=10))
        # Readers of each features message's fields and the features themselves in this process
        # (the localizer in one process: nodes/echo_localizer.py), called after it is
        # published; while there are any, it is published only when another process subscribes.
        self.local_readers: list[Callable[[cdr.FeaturesView, CoreFeatures], None]] = []
        self.publish_ranges = declare(
            self, 'publish_ranges', True, 'publish the first echo of each receiver as '
            'sensor_msgs/Range on echoloc/range_<i>, in the receiver\'s frame '
            '<frame>_rx<i>', on_set=lambda publish: setattr(self, 'publish_ranges', publish))
        self.range_pubs: list = []
        # Whether a subscriber of the features may read the first echo, for this many
        # subscribers, looked up at this monotonic time (first_echo_read).
        self.first_echo_readers = (0, False, -float('inf'))
        # Depth 1: a frame overtaken while the last was processed is dropped (counted in
        # gaps), so that a busy CPU delays the newest frame, not a queue of old ones. Taken
        # serialized: the fields read and the samples are read where they lie in the bytes.
        self.sub = subscribe_serialized(
            self, EchoFrame, 'echoloc/echoes', cdr.frame_view, self.on_frame,
            QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT),
            self.frame_unreadable)
        self.updater = diagnostic_updater(self, 'echo_processor')
        self.frequency = FrequencyStatus(FrequencyStatusParam(
            {'min': expected_rate_hz, 'max': expected_rate_hz}, tolerance=0.25),
            name='Feature rate')
        self.updater.add(self.frequency)
        self.updater.add('Frames', self.frames_status)
        self.updater.add('Array calibration', self.calibration_status)
        # The frames name their array, chirp and rate (single precision, as a frame carries
        # them); these say which to expect.
        chirp = declare_chirp(self)
        expected = EchoFrame(
            array_id=declare(self, 'array', 'square_4sensor', 'array (name in config/arrays) '
                             'the frames are expected from: warm_up builds its processor',
                             read_only=True), chirp_kind=chirp.kind, chirp_window=chirp.window,
            **{name: float(np.float32(value)) for name, value in (
                ('chirp_f0_hz', chirp.f0_hz), ('chirp_f1_hz', chirp.f1_hz),
                ('chirp_duration_s', chirp.duration_s),
                ('sample_rate_hz', self.expected_fs_hz or 250e3))})
        warm_up(self, f'the processor for {expected.array_id}, {chirp.kind} '
                f'{1e-3 * chirp.f0_hz:g}-{1e-3 * chirp.f1_hz:g} kHz at '
                f'{1e-3 * expected.sample_rate_hz:g} kHz', lambda: self.warm(expected))

    def warm(self, expected: EchoFrame) -> None:
        """Build the processor for ``expected``'s array, chirp and rate, and run a synthetic
        frame through it (and the self-calibration's code) and into a features message (not
        published, not counted, not calibrated from); create the range publishers."""
        processor = self.processor_for(expected)
        features = warm_processor(processor, calibration=self.self_calibrate)
        cdr.features_bytes(conversions.features_view(features, expected, 0.0))
        if self.publish_ranges:
            self.range_publishers(processor.array.n_receivers)

    def range_publishers(self, n_channels: int) -> list:
        """The publishers of ``echoloc/range_<i>``, at least ``n_channels`` of them."""
        while len(self.range_pubs) < n_channels:
            self.range_pubs.append(self.create_publisher(
                Range, f'echoloc/range_{len(self.range_pubs)}', qos_profile_sensor_data))
        return self.range_pubs

    def processor_for(self, frame: EchoFrame) -> EchoProcessor:
        """The processor for this frame's array, chirp and sample rate, built once each.

        The array's transducer response is part of the matched filter's reference, so delays
        come out as the physical ones the localizer models.
        """
        key = (frame.array_id, frame.chirp_kind, frame.chirp_f0_hz, frame.chirp_f1_hz,
               frame.chirp_duration_s, frame.chirp_window, frame.sample_rate_hz)
        if key in self.processors:
            self.processors.move_to_end(key)
            return self.processors[key]
        # A name from config/arrays, never a path: ValueError names a bad or unknown array_id.
        array = load_named_array(frame.array_id)
        processor = EchoProcessor(conversions.echo_frame_chirp(frame), frame.sample_rate_hz,
                                  decimation=self.decimation, array=array)
        if self.calibration_file:
            # A file that does not fit this array is named and the frames calibrate anew.
            try:
                processor.set_calibration(ArrayCalibration.load(self.calibration_file))
            except (OSError, ValueError) as exc:
                self.get_logger().error(f'array_calibration_file {self.calibration_file!r} '
                                        f'not used: {exc}')
        self.processors[key] = processor
        # The first calibration after 24 frames (1 s at 25 Hz), then one every 250 frames (10 s:
        # each costs ~50 ms of CPU, the transducers drift over minutes).
        self.calibrators[id(processor)] = DirectPathCalibrator(processor.calibration_window,
                                                               frame.sample_rate_hz, every=250)
        while len(self.processors) > MAX_PROCESSORS:
            _, dropped = self.processors.popitem(last=False)
            del self.calibrators[id(dropped)]
        return self.processors[key]

    def frame_unreadable(self, exc: ValueError) -> None:
        """Bytes on echoloc/echoes that are no EchoFrame: in the Frames diagnostic's summary
        as a frame rejected; its seq unread, it is counted as missed by the gap it leaves."""
        self.period_in += 1
        self.period_rejected += 1
        self.reject(f'frame unreadable: {exc}')

    def reject(self, error: str) -> None:
        """Log why a frame was rejected: each new kind of problem at once, a repeat of the last
        one at most every 5 s (the count is in diagnostics), so a bad stream does not flood
        the log."""
        self.last_error = error
        kind = re.sub(r'[\d.]+', '#', error)
        if kind != self.last_error_kind:
            self.last_error_kind = kind
            self.get_logger().error(error)
        else:
            self.get_logger().error(error, throttle_duration_sec=5.0)

    def on_frame(self, frame: 'EchoFrame | cdr.FrameView') -> None:
        start = time.perf_counter()
        self.frames_in += 1
        self.period_in += 1
        # Before the frame is checked: a rejected frame is counted as rejected, not as a gap.
        if self.last_seq is not None and frame.seq != (self.last_seq + 1) & 0xFFFFFFFF:
            self.gaps += 1
            if 0 < frame.seq - self.last_seq <= MAX_SEQ_GAP:
                self.frames_missed += frame.seq - self.last_seq - 1
        self.last_seq = frame.seq
        try:
            if self.expected_fs_hz > 0 and frame.sample_rate_hz != self.expected_fs_hz:
                raise ValueError(f'sample_rate_hz={frame.sample_rate_hz:g}, expected '
                                 f'{self.expected_fs_hz:g} (parameter expected_sample_rate_hz)')
            samples = conversions.echo_frame_samples(frame)
            processor = self.processor_for(frame)
            if self.self_calibrate:
                calibration = self.calibrators[id(processor)].add(samples)
                if calibration is not None:
                    processor.set_calibration(calibration)
            # The first echo is for the range sensors and the features' readers that read it:
            # looked for only while one may (the localizer and the furniture survey read the
            # baseband and the direct arrival alone; it is a third of process()'s cost).
            subscribers = self.pub.get_subscription_count()
            published = not self.local_readers or subscribers > 0
            # As many as the array has receivers, not as the frame says: a frame claiming more
            # is refused by process(), and must not leave a publisher per claimed channel.
            ranges = self.ranges_listened(processor.array.n_receivers)
            features = processor.process(
                samples, first_echo=self.first_echo_read(subscribers) or any(ranges))
        except ValueError as exc:
            self.frames_rejected += 1
            self.period_rejected += 1
            self.reject(f'frame seq={frame.seq} rejected: {exc}')
            return
        self.last_residual_db = features.direct_residual_db
        if not direct_explained(features):
            self.withheld += 1
            self.period_withheld += 1
            self.get_logger().warning(
                f'direct_path_unexplained: frame seq={frame.seq} withheld; the direct arrival\'s '
                f'residual is {features.direct_residual_db:.1f} dB (limit '
                f'{DIRECT_RESIDUAL_LIMIT_DB:g} dB): the array differs from its model and is '
                'not calibrated yet', throttle_duration_sec=5.0)
            return
        elapsed_s = time.perf_counter() - start
        # The message's fields, serialized only where it is published (no message built).
        msg = conversions.features_view(features, frame, elapsed_s)
        if published:
            self.pub.publish(cdr.features_bytes(msg))
        self.frequency.tick()
        if any(ranges):
            self.publish_first_echo_ranges(frame, features, ranges)
        self.latency_ms.append(1e3 * elapsed_s)
        for read in self.local_readers:
            read(msg, features)

    def calibration_status(self, stat):
        withheld, self.period_withheld = self.period_withheld, 0
        calibrations = [p.calibration for p in self.processors.values()
                        if p.calibration is not None]
        if withheld:
            stat.summary(WARN, f'direct_path_unexplained: {withheld} frames withheld (direct '
                         f'arrival residual {self.last_residual_db:.1f} dB > '
                         f'{DIRECT_RESIDUAL_LIMIT_DB:g} dB)')
        elif not calibrations:
            stat.summary(OK, 'array model (not calibrated yet)')
        else:
            stat.summary(OK, f'calibrated from {calibrations[-1].n_frames} frames')
        stat.add('frames withheld', str(self.withheld))
        stat.add('direct residual (dB)', f'{self.last_residual_db:.1f}')
        for processor in self.processors.values():
            calibration = processor.calibration
            if calibration is not None:
                if id(calibration) not in self.fitted:
                    # A fit per channel: once per calibration, not per report.
                    self.fitted = {id(calibration): calibration.fitted_response(
                        processor.chirp, processor.array)}
                fitted = self.fitted[id(calibration)]
                for name, unit, scale in (('center_hz', 'kHz', 1e-3),
                                          ('bandwidth_hz', 'kHz', 1e-3),
                                          ('delay_s', 'us', 1e6), ('gain', '', 1.0)):
                    stat.add(f'{processor.array.name} {name.split("_")[0]} {unit}'.strip(),
                             ' '.join(f'{scale * v:.3f}' for v in fitted[name]))
        return stat

    def first_echo_read(self, subscribers: int) -> bool:
        """Whether one of the ``subscribers`` of ``echoloc/features`` (their count) may read
        the first echo: a node not in ``FIRST_ECHO_UNREAD_BY`` of this node's namespace, or one
        whose name the graph does not give yet. The names are looked up when the count
        changes, and every ``SUBSCRIBERS_CHECK_S`` while it stays the same."""
        if subscribers == 0:
            return False
        count, read, checked_s = self.first_echo_readers
        now_s = time.monotonic()
        if subscribers != count or now_s - checked_s >= SUBSCRIBERS_CHECK_S:
            # This graph's own nodes only: a node of that name in another namespace (a
            # robot's own) may read the first echo.
            names = [(info.node_namespace, info.node_name) for info in
                     self.get_subscriptions_info_by_topic(self.pub.topic_name)]
            ours = self.get_namespace()
            read = (len(names) < subscribers
                    or any(space != ours or name not in FIRST_ECHO_UNREAD_BY
                           for space, name in names))
            self.first_echo_readers = (subscribers, read, now_s)
        return read

    def ranges_listened(self, n_channels: int) -> list[bool]:
        """Which receivers' ``echoloc/range_<i>`` someone subscribes to (none while
        ``publish_ranges`` is off)."""
        if not self.publish_ranges:
            return []
        return [pub.get_subscription_count() > 0 for pub in self.range_publishers(n_channels)]

    def publish_first_echo_ranges(self, frame: EchoFrame, features,
                                  listened: list[bool]) -> None:
        # Four messages a frame that nobody may read: built only for the receivers listened to.
        temperature_c = frame.temperature_c if np.isfinite(frame.temperature_c) else 20.0
        c = float(speed_of_sound_mps(temperature_c))
        window_s = frame.n_samples / frame.sample_rate_hz
        for i, msg in enumerate(conversions.range_msgs(features, frame.header, c, window_s)):
            # Each receiver's own frame (REP-105 style child of the array's frame), so that a
            # consumer places the range where that transducer is.
            if listened[i]:
                msg.header = Header(stamp=frame.header.stamp,
                                    frame_id=f'{frame.header.frame_id}_rx{i}')
                self.range_pubs[i].publish(msg)

    def frames_status(self, stat):
        latency, self.latency_ms = self.latency_ms, []
        seen, rejected = self.period_in, self.period_rejected
        self.period_in = self.period_rejected = 0
        if rejected:
            # Every frame bad since the last report: the stream is unusable, not just noisy.
            stat.summary(ERROR if rejected == seen else WARN,
                         f'{rejected}/{seen} frames rejected; last: {self.last_error}')
        elif seen == 0:
            stat.summary(WARN, 'no frames received')
        else:
            stat.summary(OK, 'processing frames')
        stat.add('frames received', str(self.frames_in))
        stat.add('frames rejected', str(self.frames_rejected))
        stat.add('sequence gaps', str(self.gaps))
        # Every frame up to 'seq accounted' that was not forwarded as features is one of these.
        stat.add('frames missed (seq gaps)', str(self.frames_missed))
        not_forwarded = self.frames_missed + self.frames_rejected + self.withheld
        stat.add('frames not forwarded', str(not_forwarded))
        stat.add('seq accounted', '' if self.last_seq is None else str(self.last_seq))
        if latency:
            # statistics' median of a second's frames: numpy's percentile cost 0.3 ms a report
            # live (the same value to the last bit or two, shown to 0.01 ms).
            stat.add('processing latency p50 (ms)', f'{statistics.median(latency):.2f}')
            stat.add('processing latency max (ms)', f'{max(latency):.2f}')
        return stat


def main(args=None) -> int:
    return run(EchoProcessorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
