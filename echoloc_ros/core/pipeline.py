"""The per-frame pipeline that is both shipped and measured: localize, track, publish heading.

The localizer node (:mod:`echoloc_ros.nodes.localizer`), ``echoloc evaluate``
(:mod:`echoloc_ros.offline.evaluation`), ``echoloc bench`` and ``echoloc fit`` all build a
:class:`Pipeline` with :func:`make_pipeline` and call :meth:`Pipeline.step` once per frame, so
that every published figure is a figure of the code path the node runs.
"""

from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.attitude import estimate_tilt
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor
from echoloc_ros.core.localization import Fix, Localizer
from echoloc_ros.core.paths import default_model_path
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import Room
from echoloc_ros.core.room_tolerance import room_covariance, with_model_doubt
from echoloc_ros.core.track_search import TrackSearch
from echoloc_ros.core import tracker_kernels
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.core.warm_up import room_features
from echoloc_ros.core.withhold import doubted

# Frames whose tilt estimates the published tilt is the median of (1 s at 25 frames/s).
TILT_WINDOW = 25
# Why a frame's pose is not published (:attr:`FrameResult.unpublished`), as the localizer
# node's diagnostics count them.
NO_CONFIRMED_TRACK = 'no confirmed track'
DOUBTED_WITHHELD = 'doubted fix withheld'


@dataclass(frozen=True)
class FrameResult:
    """What :meth:`Pipeline.step` made of one frame.

    :ivar fix: the localizer's fix and how it was reached.
    :ivar position_m: the position to publish ``(3,)`` (the track's, when tracking), m.
    :ivar covariance_m2: its covariance ``(3, 3)``, m^2.
    :ivar yaw_rad: the heading to publish: the fix's when the tracker took the fix, else the
        heading given, rad.
    :ivar yaw_variance_rad2: its variance, rad^2.
    :ivar accepted: the tracker took the fix (always, without a tracker).
    :ivar unpublished: why the pose is not published, '' where it is: no confirmed track
        vouches for it (:data:`NO_CONFIRMED_TRACK`), or, without a tracker, the fix is one the
        localizer cannot tell from a rival (:data:`DOUBTED_WITHHELD`,
        :attr:`Pipeline.withhold_doubted`). The node publishes nothing else.
    :ivar tracker_restarted: the frame was stamped before the last one, and the tracker was
        restarted for it (a recording played again, a clock reset).
    :ivar wide_skipped: the localizer doubted the frame and has a wide search, but the caller
        did not allow one.
    :ivar local: the fix is a local one from the track's prediction
        (:class:`~echoloc_ros.core.track_search.TrackSearch`), not the full search's.
    """

    fix: Fix
    position_m: np.ndarray
    covariance_m2: np.ndarray
    yaw_rad: float
    yaw_variance_rad2: float
    accepted: bool
    unpublished: str = ''
    tracker_restarted: bool = False
    wide_skipped: bool = False
    local: bool = False

    @property
    def published(self) -> bool:
        """The node publishes the pose."""
        return not self.unpublished

    @property
    def vouched(self) -> bool:
        """A confirmed track vouches for the pose (always, without a tracker)."""
        return self.unpublished != NO_CONFIRMED_TRACK

    @property
    def withheld(self) -> bool:
        """The fix is withheld as one the localizer cannot tell from a rival."""
        return self.unpublished == DOUBTED_WITHHELD


@dataclass
class PipelineCounts:
    """Running totals of a :class:`Pipeline` (what its diagnostics report).

    :ivar frames: frames localized.
    :ivar gated: fixes the tracker refused.
    :ivar unvouched: poses no confirmed track vouched for (:data:`NO_CONFIRMED_TRACK`).
    :ivar wide_searches: frames searched widely.
    :ivar wide_kept: of those, frames fixed from the wide search's candidates.
    :ivar wide_skipped: doubted frames not searched widely (the caller's budget).
    :ivar withheld: fixes withheld (:attr:`Pipeline.withhold_doubted`, :data:`DOUBTED_WITHHELD`).
    """

    frames: int = 0
    gated: int = 0
    unvouched: int = 0
    wide_searches: int = 0
    wide_kept: int = 0
    wide_skipped: int = 0
    withheld: int = 0


@dataclass
class Pipeline:
    """A localizer and, optionally, the tracker its fixes feed.

    :ivar localizer: the localizer in use.
    :ivar tracker: the tracker; ``None`` publishes each fix as it is.
    :ivar method: the method in use (``'physics'`` or ``'nn'``).
    :ivar model_info: the network in use, in words (empty for physics).
    :ivar model_error: why the network asked for is not in use (empty if none was refused).
    :ivar estimate_tilt: a frame whose roll and pitch are not given (no IMU reports them) has
        them estimated from the floor and ceiling echoes
        (:func:`~echoloc_ros.core.attitude.estimate_tilt`, about 5 ms a frame) rather than
        taken as level: the median of the last ``TILT_WINDOW`` frames' estimates (a frame
        whose floor echo a wall's overlaps can be 0.5 deg off; a mounting or a ramp stays for
        seconds).
    :ivar track_search: with a tracker, which frames get a local fix from the track's
        prediction instead of the full search (:class:`TrackSearch`); ``None``: the full
        search every frame.
    :ivar withhold_doubted: without a tracker, a fix the localizer cannot tell from a rival
        (:func:`~echoloc_ros.core.withhold.doubted`: confidence 0, its fit leaves the frame
        unexplained or a candidate metres away explains the echoes as well, its published
        covariance holding the whole room, or one whose fit explains too little of the frame)
        is not published (:attr:`FrameResult.unpublished`
        :data:`DOUBTED_WITHHELD`, counted in :attr:`PipelineCounts.withheld`). At 10 dB half
        of such fixes in shoeboxes are gross, and every gross fix there is one (dev split,
        issue 19, branches r34-84, r35-92). With a tracker every fix goes to it (a doubted fix
        is a hypothesis the track can rule on: the tracker takes it by its own covariance,
        only where its prediction agrees).
    """

    localizer: Localizer
    tracker: PoseTracker | None = None
    method: str = 'physics'
    model_info: str = ''
    model_error: str = ''
    counts: PipelineCounts = field(default_factory=PipelineCounts)
    estimate_tilt: bool = False
    tilts: deque = field(default_factory=lambda: deque(maxlen=TILT_WINDOW))
    track_search: TrackSearch | None = None
    withhold_doubted: bool = False

    @property
    def room(self) -> Room:
        """The room the localizer works in (as it stands now)."""
        return self.localizer.room

    @property
    def device(self) -> str:
        """Where the network runs (``'cpu'`` or ``'cuda'``); physics runs on the CPU."""
        return str(self.localizer.device) if self.method == 'nn' else 'cpu'

    def step(self, t_s: float, features: EchoFeatures, yaw_rad: float,
             yaw_std_rad: float | None = None, temperature_c: float | None = None,
             wide_search_allowed: bool = True,
             tilt_rad: tuple[float, float] | None = None) -> FrameResult:
        """Localize one frame and track it.

        :param t_s: the frame's acquisition time, s.
        :param features: the frame's echo features.
        :param yaw_rad: the heading given for the frame, rad.
        :param yaw_std_rad: its standard deviation, rad (:meth:`Localizer.fix`).
        :param temperature_c: assumed air temperature, degC; ``None``: the room file's.
        :param wide_search_allowed: a doubted frame may be searched widely now.
        :param tilt_rad: the array's roll and pitch (an IMU's), rad; ``None``: level.
        :raises ValueError: a frame or heading the localizer cannot use (nothing counted).
        """
        if tilt_rad is None and self.estimate_tilt:
            self.tilts.append(estimate_tilt(getattr(self.localizer, 'physics', self.localizer),
                                            features, temperature_c))
            tilt_rad = tuple(np.median(self.tilts, axis=0))
        local = False
        if self.track_search is not None and self.tracker is not None:
            fix, local = self.track_search.fix(self, t_s, features, yaw_rad, yaw_std_rad,
                                               temperature_c, wide_search_allowed, tilt_rad)
        else:
            fix = self.localizer.fix(features, yaw_rad, temperature_c, yaw_std_rad,
                                     wide_search_allowed, tilt_rad)
        # The room file's tolerance and the array file's doubt are what the echoes cannot
        # tell: they widen every fix. Each is the same error frame after frame, so the tracker
        # fuses the fixes without them, and the track, which cannot average them out, is
        # widened by them after.
        untolerated = fix.estimate
        fix = replace(fix, estimate=with_model_doubt(untolerated, self.room))
        estimate = fix.estimate
        counts = self.counts
        counts.frames += 1
        counts.wide_searches += fix.wide
        counts.wide_kept += fix.wide_kept
        skipped = fix.doubted and not fix.wide and self.localizer.wide_search
        counts.wide_skipped += skipped
        position, covariance, accepted, restarted = (estimate.position_m,
                                                     estimate.covariance_m2, True, False)
        unpublished = ''
        if (self.tracker is None and self.withhold_doubted
                and doubted(estimate, self.room.is_shoebox)):
            unpublished = DOUBTED_WITHHELD
            counts.withheld += 1
        if self.tracker is not None:
            last = self.tracker.last_t_s
            restarted = last is not None and t_s < last
            if restarted:
                self.tracker.reset()
                if self.track_search is not None:
                    self.track_search.reset()
            position, covariance, accepted = self.tracker.update_estimate(t_s, untolerated)
            covariance = covariance + room_covariance(self.room, position)
            if untolerated.array_covariance_m2 is not None:
                covariance = covariance + untolerated.array_covariance_m2
            counts.gated += not accepted
            if not self.tracker.initialised:
                unpublished = NO_CONFIRMED_TRACK
                counts.unvouched += 1
        # The echoes refine the heading too: publish the fix's, unless the tracker refused the
        # fix it came with (then the heading given stands).
        if accepted:
            yaw, yaw_var = estimate.yaw_rad, estimate.yaw_variance_rad2
        else:
            yaw, yaw_var = yaw_rad, (0.0 if yaw_std_rad is None else yaw_std_rad) ** 2
        return FrameResult(fix, position, covariance, yaw, yaw_var, accepted, unpublished,
                           restarted, skipped, local)

    def warm_up(self, seed: int = 0) -> None:
        """Before the first frame: run :meth:`step` once on a synthetic frame of the room
        (:func:`~echoloc_ros.core.warm_up.room_features`), so that the compiled code is loaded
        before the first real frame, then forget it: the tracker holds no track, the counts
        and tilts are as before, and the next frames' results are those of a pipeline never
        warmed, to the bit.

        :raises ValueError: as :meth:`step` (the room or array cannot make such a frame).
        """
        physics = getattr(self.localizer, 'physics', self.localizer)
        features, temperature_c = room_features(physics, seed)
        counts, tilts = replace(self.counts), deque(self.tilts, maxlen=self.tilts.maxlen)
        search = self.track_search
        search_counts = None if search is None else search.counts.copy()
        try:
            self.step(0.0, features, 0.0, None, temperature_c)
            physics.warm_kernels(features, temperature_c)
        finally:
            self.counts, self.tilts = counts, tilts
            if self.tracker is not None:
                self.tracker.reset()
                # The first frame starts a track: its association is first met later.
                tracker_kernels.warm_up()
            if search is not None:
                search.counts = search_counts
                search.reset()

    def take_room(self, room: Room) -> None:
        """Localize from now on in ``room`` as it stands now (its furniture moved).

        :raises ValueError: another room than the localizer's.
        """
        self.localizer = self.localizer.with_room(room)


def make_localizer(method: str, room: Room, array: ArrayGeometry, chirp: Chirp,
                   fs_hz: float = 250e3, processor: EchoProcessor | None = None,
                   optimization_level: str = 'balanced',
                   model_path: str | Path | None = None, wide_search: bool = True,
                   device: str = 'cpu', num_threads: int | None = 1
                   ) -> tuple[Localizer, str]:
    """``'physics'``: :class:`PhysicsLocalizer` at ``optimization_level``; ``'nn'``: the
    :class:`~echoloc_ros.core.nn_localizer.NeuralLocalizer` in ``model_path`` (``None``: the
    shipped model for the room), its network at ``optimization_level`` on ``device``, with its
    wide search for the frames it doubts unless ``wide_search`` is false.

    :return: the localizer and, for ``nn``, the network in use in words.
    :raises ValueError: an unknown method, an unusable checkpoint.
    """
    if method == 'physics':
        return PhysicsLocalizer(room, array, chirp, fs_hz, processor=processor,
                                optimization_level=optimization_level), ''
    if method != 'nn':
        raise ValueError(f"method must be 'physics' or 'nn', got {method!r}")
    # torch is imported only when the network is asked for (start-up time, memory).
    from echoloc_ros.core.nn_localizer import NeuralLocalizer
    path = default_model_path(room.name) if model_path is None else Path(model_path)
    localizer = NeuralLocalizer.from_checkpoint(
        path, room, array, chirp, fs_hz, processor=processor, device=device,
        optimization_level=optimization_level, num_threads=num_threads,
        wide_search=wide_search)
    info = (f'{path} ({optimization_level}, {device}, proposals '
            f'{localizer.physics.optimization_level}, wide search '
            f'{"on" if wide_search else "off"})')
    return localizer, info


def make_pipeline(method: str, room: Room, array: ArrayGeometry, chirp: Chirp,
                  fs_hz: float = 250e3, processor: EchoProcessor | None = None,
                  optimization_level: str = 'balanced',
                  model_path: str | Path | None = None, wide_search: bool = True,
                  device: str = 'cpu', num_threads: int | None = 1,
                  tracker: PoseTracker | None = None, fallback: bool = False,
                  track_search: TrackSearch | None | bool = True) -> Pipeline:
    """The pipeline of :func:`make_localizer`'s localizer and ``tracker``.

    :param track_search: with a tracker, the :class:`TrackSearch` that chooses each frame's
        search; ``True``: one with its defaults (as the node runs); ``False`` or ``None``: the
        full search every frame.

    :param fallback: a network that cannot be used (missing or mismatched checkpoint, no
        CUDA) gives way to physics, with the reason in :attr:`Pipeline.model_error` (the node
        keeps localizing); without it the error is raised (an evaluation of ``nn`` must not
        measure physics).
    :raises ValueError: as :func:`make_localizer` (without ``fallback``).
    """
    try:
        localizer, info = make_localizer(method, room, array, chirp, fs_hz, processor,
                                         optimization_level, model_path, wide_search, device,
                                         num_threads)
    except ValueError as exc:
        if not fallback or method != 'nn':
            raise
        path = model_path or default_model_path(room.name)
        localizer = PhysicsLocalizer(room, array, chirp, fs_hz, processor=processor,
                                     optimization_level=optimization_level)
        return Pipeline(localizer, tracker, 'physics',
                        model_error=f'model_path {str(path)!r} unusable: {exc}; using physics',
                        track_search=_track_search(track_search))
    return Pipeline(localizer, tracker, method, info,
                    track_search=_track_search(track_search))


def _track_search(track_search: TrackSearch | None | bool) -> TrackSearch | None:
    """:func:`make_pipeline`'s ``track_search`` as a :class:`TrackSearch` or ``None``."""
    if track_search is True:
        return TrackSearch()
    return track_search or None
