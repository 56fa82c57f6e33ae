"""localizer: the array's position in the known room from echo features and the heading."""
import collections
import time
from typing import NamedTuple

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from geometry_msgs.msg import PoseWithCovarianceStamped
from sensor_msgs.msg import Imu
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from echoloc.msg import EchoFeatures
from echoloc_ros.ros import cdr, conversions, markers
from echoloc_ros.core.array_geometry import load_array, yaw_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_heading import EchoHeading, acquire
from echoloc_ros.core.echo_processing import EchoFeatures as CoreFeatures
from echoloc_ros.core.localization import Localizer
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room, room_from_yaml
from echoloc_ros.core.stamps import StampBuffer
from echoloc_ros.ros.imu_heading import HEADING_STAMP_MAX_S, heading_refusal
from echoloc_ros.ros.diagnostics import OK, FrequencyStatus, FrequencyStatusParam
from echoloc_ros.nodes.common import (MAX_SEQ_GAP, PolledSubscription, RefusalLog, declare,
                                      declare_chirp, diagnostic_updater, limit_threads, run,
                                      subscribe_serialized, warm_up)
from echoloc_ros.nodes.localizer_status import (IMU_FRESH_S, LocalizerState, heading_fields,
                                                heading_status, localization_status,
                                                model_status, node_state)
from echoloc_ros.nodes.temperature_input import TemperatureInput
from echoloc_ros.nodes.track_search_params import declare_track_search
from echoloc_ros.nodes.tracker_params import declare_tracker
from echoloc_ros.nodes.withhold_params import declare_withhold_doubted

METHODS = ('physics', 'nn')
DEVICES = ('cpu', 'cuda')
HEADING_SOURCES = ('auto', 'imu', 'echoes', 'fixed')


class StartUp(NamedTuple):
    """The parameters read once, at start-up, to build the node's parts."""

    model_path: str
    device: str
    wide_search: bool
    room_name: str
    array_name: str
    chirp: Chirp
    expected_rate_hz: float


class LocalizerNode(Node):
    """Publishes PoseWithCovarianceStamped on ``echoloc/pose`` for each EchoFeatures."""

    def __init__(self):
        super().__init__('localizer')
        threads = limit_threads(self)
        start = self.declare_localizer_parameters()
        self.declare_heading_parameters()
        self.declare_pose_parameters()
        self.temperature = TemperatureInput(self)
        self.build_pipeline(start, threads)
        self.reset_state()
        self.create_io()
        self.updater = diagnostic_updater(self, f'localizer:{self.room.name}')
        self.frequency = FrequencyStatus(FrequencyStatusParam(
            {'min': start.expected_rate_hz, 'max': start.expected_rate_hz}, tolerance=0.25),
            name='Pose rate')
        self.updater.add(self.frequency)
        self.updater.add('Localization', self.localization_status)
        if self.method == 'nn':
            self.updater.add('Neural model', self.model_status)
        warm_up(self, f'the {self.active_method} pipeline in {self.room.name}',
                self.pipeline.warm_up)

    def declare_localizer_parameters(self) -> StartUp:
        """The method and what it localizes with; return the values read once, at start-up."""
        self.method = declare(self, 'method', 'physics', 'localization method: physics, or nn '
                              '(physics proposes candidates, the trained network chooses, '
                              'physics refines; falls back to physics if the model cannot be '
                              'used)', read_only=True, choices=METHODS)
        model_path = declare(self, 'model_path', '', 'nn checkpoint; empty: the shipped '
                             'models/<room>.pt', read_only=True)
        device = declare(self, 'device', 'cpu', 'where the nn runs: cpu or cuda',
                         read_only=True, choices=DEVICES)
        wide_search = declare(self, 'wide_search', True, 'nn: propose again, more widely '
                              '(physics\' accurate level), the frames the network doubts; '
                              'about 10 % of frames in a furnished room at 10 dB, each 4-5 '
                              'times the proposal time', read_only=True)
        self.wide_search_max_hz = declare(
            self, 'wide_search_max_hz', 1.0, 'nn: at most this many wide searches a second, '
            'so that they cost a small CPU little of its frame rate (each costs 80-120 ms on '
            'this project\'s 2-core machine); 0: no limit', read_only=True, min_value=0.0,
            max_value=1000.0)
        room_name = declare(self, 'room', 'default_room', 'room YAML (name in config/rooms or '
                            'path) the array is in', read_only=True)
        array_name = declare(self, 'array', 'square_4sensor', 'array YAML the frames come '
                             'from', read_only=True)
        chirp = declare_chirp(self)
        self.temperature_c = declare(self, 'temperature_c', 20.0, 'assumed air temperature '
                                     '[deg C]; the localizer also estimates the speed of sound',
                                     min_value=-40.0, max_value=60.0,
                                     on_set=self.setter('temperature_c'))
        self.optimization_level = declare(
            self, 'optimization_level', 'balanced', 'speed/robustness trade-off of the '
            'localizer: fast, balanced or accurate (physics: candidates per axis, refinement '
            'steps; nn: fast runs the network as a frozen TorchScript graph)',
            read_only=True, choices=('fast', 'balanced', 'accurate'))
        self.target_latency_ms = declare(self, 'target_latency_ms', 40.0, 'per-frame latency '
                                         'above which diagnostics warn [ms]', min_value=0.1,
                                         max_value=1000.0,
                                         on_set=self.setter('target_latency_ms'))
        expected_rate_hz = declare(self, 'expected_rate_hz', 25.0, 'pose rate the frequency '
                                   'diagnostic expects [Hz]', read_only=True, min_value=0.1,
                                   max_value=1000.0)
        return StartUp(model_path, device, wide_search, room_name, array_name, chirp,
                       expected_rate_hz)

    def declare_heading_parameters(self) -> None:
        """Where each frame's heading comes from."""
        self.heading_source = declare(
            self, 'heading_source', 'auto', 'auto (the imu topic while it gives headings, '
            'else the echoes), imu, echoes (acquired from the echoes, then tracked) or fixed '
            '(fixed_yaw_rad)', choices=HEADING_SOURCES, on_set=self.setter('heading_source'))
        self.fixed_yaw_rad = declare(self, 'fixed_yaw_rad', 0.0, 'heading when heading_source '
                                     'is fixed [rad]', min_value=-np.pi, max_value=np.pi,
                                     on_set=self.setter('fixed_yaw_rad'))
        self.heading_std_deg = declare(self, 'heading_std_deg', 2.0, 'std of the heading error '
                                       'assumed when the source gives none (fixed heading, or '
                                       'an IMU without covariance) [deg]; 0 trusts it exactly',
                                       min_value=0.0, max_value=45.0,
                                       on_set=self.setter('heading_std_deg'))
        self.heading_tolerance_s = declare(self, 'heading_tolerance_s', 0.2, 'max stamp '
                                           'difference between a frame and its heading [s]',
                                           read_only=True, min_value=0.0, max_value=10.0)

    def declare_pose_parameters(self) -> None:
        """What is published, in which frames."""
        self.map_frame = declare(self, 'map_frame', 'map', 'frame of the published pose '
                                 '(REP-105)', read_only=True)
        self.base_frame = declare(self, 'base_frame', 'base_link', 'the robot frame whose pose '
                                  'is published (REP-105), placed by array_in_base_xyz and '
                                  'array_in_base_yaw_rad', read_only=True)
        self.set_array_in_base_xyz(declare(
            self, 'array_in_base_xyz', [0.0, 0.0, 0.0], 'where the array\'s origin is in '
            'base_frame, x y z [m] (the base_frame -> array joint of a URDF); zeros: the pose '
            'is the array\'s', on_set=self.set_array_in_base_xyz))
        self.array_in_base_yaw_rad = declare(
            self, 'array_in_base_yaw_rad', 0.0, 'the array\'s heading in base_frame [rad]',
            min_value=-np.pi, max_value=np.pi, on_set=self.set_array_in_base_yaw)
        self.tracking = declare(self, 'tracking', True, 'publish the tracked pose (constant-'
                                'velocity Kalman filters that take each fix with its rivals '
                                'by probabilistic data association; competing tracks) on '
                                'echoloc/pose; false: the fix itself', on_set=self.set_tracking)
        self.publish_markers = declare(self, 'publish_markers', True, 'publish rviz markers '
                                       '(room, array, 95 % ellipsoid, echo paths)',
                                       on_set=self.setter('publish_markers'))
        self.room_updates = declare(self, 'room_updates', True, 'take up the room as the '
                                    'furniture_survey node publishes it on echoloc/room '
                                    '(furniture moved since the room file)', read_only=True)

    def build_pipeline(self, start: StartUp, threads: int) -> None:
        """The room, the array and the pipeline with its tracker."""
        self.room = load_room(start.room_name)
        self.array = load_array(start.array_name)
        # The same pipeline as echoloc evaluate's; a network that cannot be used gives way
        # to physics, with the reason in diagnostics.
        self.pipeline = make_pipeline(
            self.method, self.room, self.array, start.chirp,
            optimization_level=self.optimization_level, model_path=start.model_path or None,
            wide_search=start.wide_search, device=start.device, num_threads=threads,
            fallback=True)
        self.pipeline.estimate_tilt = declare(
            self, 'estimate_tilt', False, 'roll and pitch from the echoes when no IMU gives them',
            on_set=lambda value: setattr(self.pipeline, 'estimate_tilt', value))
        self.model_error, self.model_info = self.pipeline.model_error, self.pipeline.model_info
        if self.model_error:
            self.get_logger().error(self.model_error)
        self.active_method = self.pipeline.method
        self.tracker = declare_tracker(self)
        self.pipeline.tracker = self.tracker if self.tracking else None
        self.track_search = declare_track_search(self, self.pipeline)
        declare_withhold_doubted(self, self.pipeline)

    def reset_state(self) -> None:
        """The headings, counters and last results the callbacks and diagnostics share."""
        self.headings = StampBuffer(horizon_s=2 * HEADING_STAMP_MAX_S)
        self.echo_heading = EchoHeading()
        self.heading_used = ''
        self.headings_refused: collections.Counter = collections.Counter()
        self.last_refusal = ''
        self.imu_accepted_mono = -np.inf
        self.imu_refused_mono = -np.inf
        # When the IMU's headings started being refused (None while the last one was taken).
        self.imu_refused_since_mono: float | None = None
        self.newest_frame_s: float | None = None
        self.first_frame_mono: float | None = None
        self.started_mono = time.monotonic()
        self.rooms_taken = 0
        self.rooms_refused = 0
        self.room_refusals = RefusalLog(self.get_logger())
        self.room_error = ''

        self.frames_in = 0
        self.frames_failed = 0
        self.no_heading = 0
        self.last_wide_s = -np.inf
        self.last_error = ''
        self.last_estimate = None
        self.last_inference_s = 0.0
        self.last_pose_monotonic_s: float | None = None
        self.latency_ms: list[float] = []
        self.last_seq: int | None = None
        self.frames_dropped = 0
        # Poses out, and frames without one by cause beyond dropped, failed and no heading.
        self.poses_published = 0
        self.unposed = collections.Counter()
        # Features whose heading has not arrived yet, with their arrival time (and the
        # processor's own, handed over in one process): like a message filter, each frame
        # waits (up to heading_tolerance_s) for the heading at its stamp.
        self.waiting: collections.deque = collections.deque()

    def create_io(self) -> None:
        """Publishers, subscriptions and timers."""
        pose_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, 'echoloc/pose',
                                              pose_qos)
        # The fix of each frame on its own, beside the tracked pose: the one to fuse (the
        # tracked pose already averages the fixes over time; fusing it double-counts them).
        self.fix_pub = self.create_publisher(PoseWithCovarianceStamped, 'echoloc/fix', pose_qos)
        self.marker_pub = self.create_publisher(MarkerArray, 'echoloc/markers', QoSProfile(
            depth=2))
        # rviz subscribes volatile: the static room is re-sent every few seconds.
        self.create_timer(2.0, self.publish_room_markers)
        # The headings and the features are taken serialized and read where they are used.
        # The headings are read when a frame comes (and by the flush timer and diagnostics):
        # an IMU does not wake the node at its own rate. The queue holds 0.5 s at 200 Hz.
        self.imu = PolledSubscription(
            self, Imu, 'imu/data', cdr.imu_view, self.on_imu,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT),
            lambda exc: self.refuse_heading('unreadable', str(exc)))
        if self.room_updates:
            # Latched on the survey's side: a localizer started later still gets the room.
            self.create_subscription(String, 'echoloc/room', self.on_room, QoSProfile(
                depth=1, reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL))
        # Depth 1: while a frame is being localized, a newer one replaces any older one
        # waiting, so the next pose is always of the newest frame (an overtaken frame is
        # dropped, and counted by the gap in seq, rather than localized late).
        subscribe_serialized(self, EchoFeatures, 'echoloc/features', cdr.features_view,
                             self.on_features, QoSProfile(depth=1), self.features_unreadable)
        # It runs only while a frame waits: an idle 50 Hz timer costs CPU every period.
        self.flush_timer = self.create_timer(0.02, self.flush_waiting)
        self.flush_timer.cancel()

    def set_array_in_base_yaw(self, yaw_rad: float) -> None:
        self.array_in_base_yaw_rad = yaw_rad
        self.tracker.array_in_base_yaw_rad = float(yaw_rad)

    def setter(self, name: str):
        """An on_set that stores the new value in the attribute the node reads each frame."""
        return lambda value: setattr(self, name, value)

    def set_tracking(self, tracking: bool) -> None:
        if tracking and not self.tracking:
            # The track stood still while the fixes went out untracked: start it afresh.
            self.tracker.reset()
        self.tracking = tracking
        self.pipeline.tracker = self.tracker if tracking else None

    def set_array_in_base_xyz(self, xyz) -> None:
        xyz = np.asarray(xyz, dtype=float)
        if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
            raise ValueError(f'array_in_base_xyz={xyz.tolist()}: expected three finite numbers '
                             'x, y, z [m]')
        self.array_in_base_xyz = xyz
        if hasattr(self, 'tracker'):
            # The array's swing as the base turns (the tracker's hold of its heading).
            self.tracker.array_in_base_xyz = xyz.copy()

    def heading_mode(self) -> str:
        """Where this frame's heading comes from: imu, echoes or fixed."""
        if self.heading_source != 'auto':
            return self.heading_source
        now = time.monotonic()
        # The first frames wait for the IMU as with heading_source imu: at start-up the frames
        # may come before the IMU's first message has been heard.
        if now - self.imu_accepted_mono < IMU_FRESH_S or (
                self.first_frame_mono is None or now - self.first_frame_mono < IMU_FRESH_S):
            return 'imu'
        return 'echoes'

    def refuse_heading(self, reason: str, detail: str) -> None:
        now = time.monotonic()
        self.headings_refused[reason] += 1
        self.last_refusal = f'{reason}: {detail}'
        if self.imu_refused_since_mono is None:
            self.imu_refused_since_mono = now
        self.imu_refused_mono = now
        self.get_logger().warning(f'heading on imu/data refused ({reason}): {detail}',
                                  throttle_duration_sec=2.0)

    def on_imu(self, msg: 'Imu | cdr.ImuOrientationView') -> None:
        refusal = heading_refusal(msg, self.newest_frame_s)
        if refusal is not None:
            self.refuse_heading(*refusal)
            return
        self.imu_accepted_mono = time.monotonic()
        self.imu_refused_since_mono = None
        # Roll and pitch go with the heading of the same message, paired with a frame by stamp
        # (the latest message's would make a frame's fix depend on when it was processed).
        self.headings.add(conversions.stamp_to_s(msg.header.stamp),
                          (conversions.quaternion_to_yaw(msg.orientation),
                           float(msg.orientation_covariance[8]),
                           conversions.quaternion_to_roll_pitch(msg.orientation)))
        while self.waiting and (conversions.stamp_to_s(self.waiting[0][1].header.stamp)
                                <= self.headings.latest_s()):
            self.localize(*self.waiting.popleft()[1:])

    def flush_waiting(self) -> None:
        """Frames that waited too long for their heading go ahead with the nearest one."""
        self.imu.take_all()
        now = time.monotonic()
        while self.waiting and now - self.waiting[0][0] > self.heading_tolerance_s:
            self.localize(*self.waiting.popleft()[1:])
        if not self.waiting:
            self.flush_timer.cancel()

    def heading_for(self, t_s: float) -> tuple[float, float] | None:
        self.heading_used = self.heading_mode()
        if self.heading_used == 'fixed':
            return self.fixed_yaw_rad, 0.0
        if self.heading_used == 'echoes':
            return self.echo_heading.prior(t_s)
        imu = self.headings.at(t_s, self.heading_tolerance_s)
        return None if imu is None else imu[:2]

    def tilt_for(self, t_s: float) -> tuple[float, float] | None:
        """The array's roll and pitch from the IMU message nearest the frame's stamp (within
        heading_tolerance_s), or None where none is: level, or estimated from the echoes."""
        imu = self.headings.at(t_s, self.heading_tolerance_s)
        return None if imu is None else imu[2]

    def features_unreadable(self, exc: ValueError) -> None:
        # Its seq unread, the frame is counted as dropped by the gap it leaves.
        self.last_error = f'features on echoloc/features unreadable: {exc}'
        self.get_logger().error(self.last_error, throttle_duration_sec=1.0)

    def on_features(self, msg: 'EchoFeatures | cdr.FeaturesView',
                    handed: CoreFeatures | None = None) -> None:
        """A frame's features: ``msg``, and where the echo processor in this process hands
        them over, its own ``handed`` (read as from ``msg``, without its copies)."""
        # The headings that came since the last frame first, as if each had woken the node.
        self.imu.take_all()
        self.frames_in += 1
        # Frames overtaken here or upstream leave a gap in seq. A seq that goes back, or jumps
        # by more than MAX_SEQ_GAP, is a restarted driver or another publisher, not a gap.
        if self.last_seq is not None and 0 < msg.seq - self.last_seq <= MAX_SEQ_GAP:
            self.frames_dropped += msg.seq - self.last_seq - 1
        self.last_seq = msg.seq
        t_s = conversions.stamp_to_s(msg.header.stamp)
        if self.newest_frame_s is None:
            self.first_frame_mono = time.monotonic()
            # Headings that came before the first frame had nothing to be checked against.
            far = self.headings.drop_outside(t_s - HEADING_STAMP_MAX_S, t_s + HEADING_STAMP_MAX_S)
            if far:
                self.headings_refused['stamp far from frames'] += far
        self.newest_frame_s = t_s
        mode = self.heading_mode()
        # A frame still waiting for its heading is overtaken by this one: dropped and counted.
        self.frames_dropped += len(self.waiting)
        self.waiting.clear()
        if mode == 'imu' and t_s > self.headings.latest_s():
            self.waiting.append((time.monotonic(), msg, handed))
            self.flush_timer.reset()
            return
        if mode == 'echoes' and self.echo_heading.prior(t_s) is None:
            if not self.acquire_heading(msg, t_s):
                return
            if not self.echo_heading.locked:
                self.unposed['acquiring the heading'] += 1
                return
        self.localize(msg, handed)

    def acquire_heading(self, msg: EchoFeatures, t_s: float) -> bool:
        """Look for the heading over the full turn in this frame (0.4 s of CPU); False
        where the frame failed (counted in frames_failed)."""
        try:
            if msg.array_id != self.array.name:
                raise ValueError(f'array_id={msg.array_id!r}, expected {self.array.name!r} '
                                 '(parameter array)')
            # The network's proposals come from its physics localizer: search with that.
            started = time.monotonic()
            found = acquire(getattr(self.localizer, 'physics', self.localizer),
                            conversions.features_from_msg(msg),
                            self.temperature.current(self.temperature_c)[0])
        except ValueError as exc:
            self.frames_failed += 1
            self.last_error = f'frame seq={msg.seq}: heading acquisition: {exc}'
            self.get_logger().error(self.last_error, throttle_duration_sec=1.0)
            return False
        if self.echo_heading.offer(found, t_s, time.monotonic() - started):
            mirror = self.echo_heading.mirror_probability
            self.get_logger().info(
                f'heading acquired from the echoes: {np.rad2deg(found.yaw_rad):.1f} deg'
                + (f' ({100 * mirror:.0f} % likely half a turn away: this room is symmetric)'
                   if mirror > 0.01 else ''))
        return True

    def publish_pose(self, publisher, position_m: np.ndarray, covariance_m2: np.ndarray,
                     yaw_rad: float, yaw_var: float, stamp) -> None:
        """Publish the pose of base_frame, given the array's."""
        if self.heading_used == 'echoes':
            covariance_m2, yaw_var = self.echo_heading.widen(position_m, covariance_m2, yaw_var)
        base_yaw = yaw_rad - self.array_in_base_yaw_rad
        if self.array_in_base_xyz.any():
            base_position = position_m - yaw_matrix(base_yaw) @ self.array_in_base_xyz
            # An error in the heading swings the base around the array on the lever arm.
            swing = yaw_matrix(base_yaw + 0.5 * np.pi) @ (self.array_in_base_xyz
                                                          * [1.0, 1.0, 0.0])
            lever_m2 = yaw_var * np.outer(swing, swing)
        else:
            # The array at base_frame's origin: no lever arm. The same numbers as the rotations
            # of a zero vector give, to the bit (+0.0), without them.
            base_position, lever_m2 = position_m - 0.0, yaw_var * 0.0
        publisher.publish(conversions.pose_bytes(
            base_position, covariance_m2 + lever_m2, base_yaw, yaw_var, stamp, self.map_frame))

    def localize(self, msg: EchoFeatures, handed: CoreFeatures | None = None) -> None:
        start = time.perf_counter()
        t_s = conversions.stamp_to_s(msg.header.stamp)
        heading = self.heading_for(t_s)
        if heading is None:
            self.no_heading += 1
            self.get_logger().warning(f'no heading within {self.heading_tolerance_s} s of frame '
                                      f'seq={msg.seq}; skipped', throttle_duration_sec=2.0)
            return
        yaw_rad, yaw_var = heading
        # An IMU that reports no usable variance (0, or the "unknown" 1e6 convention) gets the
        # default; so does a fixed heading.
        if not 0.0 < yaw_var < 1.0:
            yaw_var = np.deg2rad(self.heading_std_deg) ** 2
        try:
            if msg.array_id != self.array.name:
                raise ValueError(f'array_id={msg.array_id!r}, expected {self.array.name!r} '
                                 '(parameter array)')
            features = (conversions.features_from_msg(msg) if handed is None
                        else conversions.features_handed(handed, msg.seq))
            result = self.pipeline.step(t_s, features, yaw_rad, float(np.sqrt(yaw_var)),
                                        self.temperature.current(self.temperature_c)[0],
                                        self.wide_search_due(),
                                        self.tilt_for(t_s))
        except ValueError as exc:
            self.frames_failed += 1
            self.last_error = f'frame seq={msg.seq}: {exc}'
            self.get_logger().error(self.last_error, throttle_duration_sec=1.0)
            return
        if result.tracker_restarted:
            self.get_logger().warning(
                f'frame seq={msg.seq} stamped {t_s:.3f} s, before the last frame: tracker '
                'restarted', throttle_duration_sec=1.0)
        if result.fix.wide:
            self.last_wide_s = time.monotonic()
        estimate = result.fix.estimate
        self.last_estimate = estimate
        self.last_inference_s = result.fix.inference_s
        if not self.echo_heading.follow(t_s, estimate.yaw_rad, self.heading_used == 'echoes',
                                        estimate.residual_ratio):
            # Localized from the echo track's heading, it did not explain the frame or turned
            # away from the track: the heading it was given was wrong, so is the fix.
            self.unposed['off the echo heading track'] += 1
            return
        if self.fix_pub.get_subscription_count():  # a volatile topic: none to keep it for
            self.publish_pose(self.fix_pub, estimate.position_m, estimate.covariance_m2,
                              estimate.yaw_rad, estimate.yaw_variance_rad2, msg.header.stamp)
        if not result.published:
            # No confirmed track vouches for this fix (start-up, or fresh fixes after a gap),
            # or, not tracking, it is withheld as one the localizer cannot tell from a rival:
            # a navigation stack is better served by no pose than by a wrong one.
            self.unposed[result.unpublished] += 1
            return
        self.last_pose_monotonic_s = time.monotonic()
        position, covariance = result.position_m, result.covariance_m2
        yaw_rad, yaw_var = result.yaw_rad, result.yaw_variance_rad2
        self.publish_pose(self.pose_pub, position, covariance, yaw_rad, yaw_var,
                          msg.header.stamp)
        self.poses_published += 1
        self.frequency.tick()
        if self.publish_markers and self.marker_pub.get_subscription_count():  # ~1 ms a frame
            _, receivers = self.array.to_world(position, yaw_rad)
            self.marker_pub.publish(markers.marker_array(markers.estimate_markers(
                position, yaw_rad, covariance, receivers,
                self.room.reflection_points_m(position), self.map_frame, msg.header.stamp)))
        self.latency_ms.append(1e3 * (time.perf_counter() - start))

    @property
    def localizer(self) -> Localizer:
        """The pipeline's localizer (a room update replaces it)."""
        return self.pipeline.localizer

    @localizer.setter
    def localizer(self, localizer: Localizer) -> None:
        self.pipeline.localizer = localizer

    def wide_search_due(self) -> bool:
        """Whether a doubted frame may be searched widely now (``wide_search_max_hz``)."""
        if self.wide_search_max_hz <= 0.0:
            return True
        return time.monotonic() - self.last_wide_s >= 1.0 / self.wide_search_max_hz

    def on_room(self, msg: String) -> None:
        """The room as it now stands (furniture moved since the room file): localize in it.
        A room that is not this one (another name, plan or height) is refused with an error
        and the room in use is kept."""
        try:
            room = room_from_yaml(msg.data)
            if (room.name != self.room.name or room.height_m != self.room.height_m
                    or room.vertices_m.shape != self.room.vertices_m.shape
                    or not np.allclose(room.vertices_m, self.room.vertices_m)):
                raise ValueError(f'room {room.name!r} ({room.vertices_m.tolist()}, '
                                 f'{room.height_m} m high) is not the room in use, '
                                 f'{self.room.name!r} ({self.room.vertices_m.tolist()}, '
                                 f'{self.room.height_m} m high); only its furniture may change')
            localizer = self.localizer.with_room(room)
        except ValueError as exc:
            self.rooms_refused += 1
            self.room_error = f'room on echoloc/room refused: {exc}'
            self.room_refusals.error(self.room_error)
            return
        self.localizer, self.room = localizer, room
        self.rooms_taken += 1
        self.room_error = ''
        self.get_logger().info('localizing with the furniture as surveyed: ' + ', '.join(
            f'{box.name} at ({box.min_m[0]:.3f}, {box.min_m[1]:.3f}) m' for box in
            room.furniture))
        self.publish_room_markers()

    def publish_room_markers(self) -> None:
        if self.publish_markers and self.marker_pub.get_subscription_count():
            self.marker_pub.publish(markers.marker_array(markers.room_markers(
                self.room, self.map_frame, self.get_clock().now().to_msg())))

    def status_state(self, latency_ms: list[float] | None = None) -> LocalizerState:
        """What the diagnostics read now, with ``latency_ms`` (none if not given)."""
        return node_state(self, latency_ms)

    def destroy_node(self) -> None:
        if hasattr(self, 'imu'):  # not where the node refused its parameters before it
            self.imu.destroy()
        super().destroy_node()

    def model_status(self, stat):
        return model_status(stat, self.status_state())

    def localization_status(self, stat):
        # Each report reads the latencies of the frames since the last one.
        latency, self.latency_ms = self.latency_ms, []
        self.imu.take_all()
        stat = localization_status(stat, self.status_state(latency))
        level, message = heading_status(self)
        if level > OK:
            stat.mergeSummary(level, message)
        level, message, fields = self.temperature.status(self.temperature_c)
        if level > OK:
            stat.mergeSummary(level, message)
        for key, value in fields:
            stat.add(key, value)
        stat.add('pose of', f'{self.base_frame} in {self.map_frame}')
        return heading_fields(stat, self)


def main(args=None) -> int:
    return run(LocalizerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
