"""Physics-based localization in a known room from one frame of echoes, with the heading
given by the robot corrected from the echoes.

The method (details and sources in ``docs/physics.md``):

1. Per surface, a 1-D coherent score: the receivers' analytic matched-filter outputs
   ``z_i(tau) = baseband_i(tau) exp(j 2 pi f_c tau)`` summed at the delays of that surface's
   first-order echo, as a function of the emitter's distance to the surface. With heading known,
   a wall's echo delays depend on that distance only.
2. Height and speed of sound from the floor and ceiling: their apparent distances (at the
   assumed speed) add up to ``H c0 / c``. The floor and ceiling paths, which do not depend on x
   and y, are then fitted and removed.
3. Wall candidates: in a shoebox per axis, from every path that moves with that axis alone
   (its walls and their floor and ceiling double bounces); pairs are ranked with the corner
   echoes, and the weaker axis is scanned again once the stronger axis' echoes are fitted and
   removed. In other floor plans a grid over the plan and scans along each axis.
4. Every candidate is scored by the evidence of the full image-source model (orders 1-2, known
   furniture faces): the matched-filter outputs at the predicted delays, with the point
   response's overlap between paths (a Gram matrix) and a Gaussian prior on each path's complex
   amplitude. Working on the matched-filter outputs at the predicted delays instead of on the
   baseband bins makes a score cost tens of microseconds.
5. The best are refined by Gauss-Newton on the likelihood with the path amplitudes projected
   out (variable projection), with an analytic gradient and information built from the same
   outputs and the point response's derivatives. The covariance is the inverse information,
   scaled by the noise the fit leaves where its echoes lie, plus a floor and the spread
   toward a competitor that explains the echoes almost as well.

The heading given is a prior, not a fact: 1 deg of error moves a receiver 7 cm from the emitter
by 1.2 mm, 0.9 rad of carrier phase, which decoheres the scores. Its offset psi is searched on a
grid for the wall candidates (a wall's echoes across the array measure it) and refined as a
fifth parameter with the prior as a regulariser; the position covariance marginalises it."""

from dataclasses import replace
from functools import cached_property

import numpy as np

from echoloc_ros.core.acoustics import air_absorption_db_per_m, speed_of_sound_mps
from echoloc_ros.core.array_geometry import ArrayGeometry, tilt_matrix, yaw_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor
from echoloc_ros.core.localization import Fix
from echoloc_ros.core.physics.candidates import CandidateSearch
from echoloc_ros.core.physics.array_doubt import array_doubt, origin_jacobian
from echoloc_ros.core.physics.axis_rivals import AxisRivals
from echoloc_ros.core.physics.config import (AXIS_REFINE_GAP, HEIGHT_PEAKS, DEFAULT_YAW_STD_RAD,
                                             N_THETA, OPTIMIZATION_LEVELS,
                                             RIVAL_MIN_PROBABILITY, UNEXPLAINED_RATIO,
                                             UNSEPARATED_GAP, WIDER_LOOK, YAW)
from echoloc_ros.core.physics.covariance import Covariance
from echoloc_ros.core.physics.evidence import Evidence
from echoloc_ros.core.physics.images import ImageSources
from echoloc_ros.core.physics.matched_filter import (Frame, PointResponse, check_features,
                                                     lower_quartile, upsample)
from echoloc_ros.core.physics.refinement import Refinement
from echoloc_ros.core.physics.results import Estimate, Fit, Proposal
from echoloc_ros.core.physics.staged_search import proposal_stages, run_stages
from echoloc_ros.core.physics.wider_look import WiderLook
from echoloc_ros.core.physics.wider_rival import with_unchosen
from echoloc_ros.core.room import Room
from echoloc_ros.core.room_tolerance import with_tolerated_rivals

# The array is a horizontal one: beyond this roll or pitch its floor and ceiling echoes leave
# the search's assumptions (heights, the floor and ceiling as the nearest echoes).
MAX_TILT_RAD = float(np.deg2rad(15.0))


class PhysicsLocalizer(ImageSources, Evidence, Refinement, CandidateSearch, WiderLook,
                       Covariance, AxisRivals):
    """Localize the array in a known room from matched-filter features.

    :param room: the room (its file's temperature is the default assumption).
    :param array: the array geometry.
    :param chirp: the emitted ping.
    :param fs_hz: sampling rate of the frames, Hz.
    :param processor: the processor that made the features (for its point response); ``None``
        builds the default one for ``array``.
    :param n_candidates: candidates kept per axis and per kind of score; ``None`` takes the
        optimization level's.
    :param speed_tolerance: relative range searched for the speed of sound (0.05 = +-5 %,
        about +-28 degC).
    :param position_floor_m: standard deviation added to every axis of the covariance, m. At
        0.1 mm it was as large as the height's own (0.10-0.14 mm at 20 dB) and doubled its
        variance; at 0.02 mm it adds at most 4 % to any axis' variance.
    :param z_range_m: heights the array can be at, m; ``None`` is the lower half of the room.
        A horizontal planar array with up-down symmetric transducers hears the same echoes at
        height z and H - z, so one half of the room must be ruled out.
    :param grid_step_m: step of the 1-D distance grids, m.
    :param max_iterations: Newton iterations of the final fit; ``None`` takes the
        optimization level's.
    :param n_rescan: peaks kept from the second scan of the weaker axis (see
        :meth:`_shoebox_candidates`); ``None``: ``n_candidates``. A learned ranker that
        chooses among the candidates gains from more; the evidence alone picks wrong more
        often among more.
    :param min_relative_amplitude: paths weaker than this fraction of the strongest wall echo
        are left out of the model.
    :param optimization_level: ``'fast'``, ``'balanced'`` or ``'accurate'``: how many
        candidates are generated, scored with the full model and polished, and how many Newton
        iterations the winner gets (:data:`OPTIMIZATION_LEVELS`). In the default room
        ``'fast'`` takes about 0.8 times the time of ``'balanced'`` (most of a frame's work is
        the same scans and fits), ``'accurate'`` about 1.5 times, trying a second height and
        more candidates. The levels also set the step of the heading offsets tried for the
        wall candidates (1.5, 0.75, 0.5 deg); the heading is refined in every level.
        ``'balanced'`` and ``'accurate'`` also scan each finished fix's evidence along x and
        y for rivals its candidates missed, and refine those it does not clearly beat (about
        5.5 ms more a frame in the default room).
    :param axis_rivals: whether :meth:`finish` scans for those rivals
        (:meth:`_evidence_peaks`); ``None``: as the level says.
    """

    #: physics alone has no wide search (:class:`~echoloc_ros.core.localization.Localizer`).
    wide_search = False

    def __init__(self, room: Room, array: ArrayGeometry, chirp: Chirp, fs_hz: float = 250e3,
                 processor: EchoProcessor | None = None, n_candidates: int | None = None,
                 speed_tolerance: float = 0.05, position_floor_m: float = 0.00002,
                 z_range_m: tuple[float, float] | None = None, grid_step_m: float = 0.003,
                 max_iterations: int | None = None, min_relative_amplitude: float = 0.08,
                 optimization_level: str = 'balanced', n_rescan: int | None = None,
                 axis_rivals: bool | None = None) -> None:
        if optimization_level not in OPTIMIZATION_LEVELS:
            raise ValueError(f'optimization_level must be one of '
                             f'{sorted(OPTIMIZATION_LEVELS)}, got {optimization_level!r}')
        level = OPTIMIZATION_LEVELS[optimization_level]
        self.room = room
        self.array = array
        self.chirp = chirp
        self.fs_hz = fs_hz
        self.processor = processor or EchoProcessor(chirp, fs_hz, array=array)
        self.optimization_level = optimization_level
        self.n_candidates = level.n_candidates if n_candidates is None else n_candidates
        self.max_iterations = level.max_iterations if max_iterations is None \
            else max_iterations
        self.n_rescan = self.n_candidates if n_rescan is None else n_rescan
        if min(self.n_candidates, self.max_iterations, self.n_rescan) < 1:
            raise ValueError(f'n_candidates, max_iterations and n_rescan must be >= 1, got '
                             f'{self.n_candidates}, {self.max_iterations} and {self.n_rescan}')
        self.n_pairs = level.n_pairs
        self.n_polish = level.n_polish
        self.n_heights = level.n_heights
        self.n_explain = level.n_explain
        self.polish_iterations = level.polish_iterations
        self.yaw_step_rad = float(np.deg2rad(level.yaw_step_deg))
        self.axis_rivals = level.axis_rivals if axis_rivals is None else bool(axis_rivals)
        self.speed_tolerance = speed_tolerance
        self.position_floor_m = position_floor_m
        self.grid_step_m = grid_step_m
        self.z_range_m = (0.02, 0.5 * room.height_m) if z_range_m is None else tuple(z_range_m)
        if not 0.0 <= self.z_range_m[0] < self.z_range_m[1] <= room.height_m:
            raise ValueError(f'z_range_m must lie within [0, {room.height_m}], got {z_range_m}')
        self.min_relative_amplitude = min_relative_amplitude
        self._init_args = dict(fs_hz=fs_hz, n_candidates=n_candidates,
                               speed_tolerance=speed_tolerance,
                               position_floor_m=position_floor_m, z_range_m=z_range_m,
                               grid_step_m=grid_step_m, max_iterations=max_iterations,
                               min_relative_amplitude=min_relative_amplitude,
                               optimization_level=optimization_level, n_rescan=n_rescan,
                               axis_rivals=axis_rivals)
        self._subsets: dict[tuple[bool, ...], 'PhysicsLocalizer'] = {}
        self._shoebox = room.is_shoebox
        self._surfaces = self._build_surfaces()
        self._build_images()
        self._n_walls = room.vertices_m.shape[0]
        self._normals = np.array([s.normal for s in self._surfaces])
        self._offsets = np.array([s.offset for s in self._surfaces])
        # Which images move with x and with y: a shoebox's families separate by axis.
        moves = np.abs(np.eye(3)[None] - self._img_m).sum(axis=1)[:, :2] > 1e-9     # (P, 2)
        room_paths = self._room_image & ~self._vertical_only
        self._moves = [room_paths & moves[:, a] for a in range(2)]
        # Opposite-wall pairs (paths longer than twice the room) add little but cost time.
        short = np.array([len(seq) == 1 or any(i >= self._n_walls for i in seq)
                          for seq in self._sequences])
        self._family = [room_paths & moves[:, a] & ~moves[:, 1 - a] & short for a in range(2)]
        self._corner = room_paths & moves[:, 0] & moves[:, 1]
        # Known furniture faces facing along each axis: when a box hides a wall, its face is
        # the echo that places the array on that axis.
        faces = np.zeros((3, len(self._sequences)), dtype=bool)
        for p, _, axis, _, _ in self._faces:
            faces[axis, p] = True
        self._face_moves = list(faces[:2])
        self.response = PointResponse(self.processor, chirp.center_hz)
        # Tops of known boxes the array may stand over (:meth:`_z_candidates`).
        self._box_tops = sorted({float(b.max_m[2]) for b in room.furniture
                                 if b.max_m[2] < self.z_range_m[1]})
        # Variance of a position drawn uniformly over the room (the spread of "no candidate
        # is right" in a learned ranker's mixture).
        extent = np.append(np.ptp(room.vertices_m, axis=0), self.z_range_m[1] - self.z_range_m[0])
        self._room_spread_m2 = extent ** 2 / 12.0
        # Baseband noise is correlated over the point response: residual power per bin counts
        # this many bins per independent sample.
        dt = self.processor.decimation / self.processor.fs_hz
        g = self.processor.point_response(np.arange(-200, 201) * dt)
        self._correlation_factor = float(np.sum(np.abs(g) ** 2) / np.abs(g[200]) ** 2)

    def frame(self, features: EchoFeatures, yaw_rad: float, temperature_c: float,
              tilt_rad: tuple[float, float] | None = None) -> Frame:
        """What the model reads of one frame at the given heading, temperature and roll and
        pitch (``None``: level).

        :raises ValueError: a tilt out of range, features :func:`check_features` refuses.
        """
        if tilt_rad is not None and not (np.shape(tilt_rad) == (2,)
                                         and np.all(np.abs(tilt_rad) <= MAX_TILT_RAD)):
            raise ValueError(f'tilt_rad must be (roll, pitch), each finite and within '
                             f'+-{MAX_TILT_RAD:.3f} rad (15 deg), got {tilt_rad}')
        check_features(features)
        tilt = np.eye(3) if tilt_rad is None else tilt_matrix(*tilt_rad)
        rotation = yaw_matrix(yaw_rad) @ tilt
        offsets = (self.array.receivers_m - self.array.emitter_m) @ rotation.T
        direct = np.nan_to_num(features.direct_tof_s, nan=0.0)
        # The processor's noise floor is a median over the whole window, which echoes and
        # their sidelobes raise; the lower quartile of |b|^2 (ln(4/3) sigma^2 for complex
        # Gaussian noise) is less affected.
        t_start = float(np.max(direct)) + 1.2 * self.processor.mainlobe_half_width_s
        first = int(np.ceil((t_start - features.start_s) / features.bin_width_s))
        power = np.abs(features.baseband[:, max(first, 0):]) ** 2
        noise = np.sqrt(lower_quartile(power) / np.log(4.0 / 3.0))
        noise = np.maximum(noise, 1e-12)
        table = upsample(features.baseband)
        return Frame(
            features=features, offsets=offsets, c0=speed_of_sound_mps(temperature_c),
            absorb=air_absorption_db_per_m(self.chirp.center_hz, temperature_c,
                                           self.room.humidity_pct) * np.log(10) / 20,
            t_min=float(np.max(direct)) + 1.2 * self.processor.mainlobe_half_width_s,
            t_max=features.start_s + features.bin_width_s * (features.baseband.shape[1] - 1),
            weights=1.0 / noise ** 2, table=table, tilt=tilt)

    def for_receivers(self, working: np.ndarray) -> 'PhysicsLocalizer':
        """The same localizer for the array without its dead receivers (built once each)."""
        key = tuple(bool(w) for w in working)
        if sum(key) < 2:
            raise ValueError(f'only {sum(key)} of {len(key)} receivers work (a working '
                             'receiver hears the direct emitter path); need at least 2')
        if key not in self._subsets:
            kept = ','.join(map(str, np.flatnonzero(working)))
            array = replace(self.array, name=f'{self.array.name}[{kept}]',
                            receivers_m=self.array.receivers_m[working],
                            gains=self.array.gains[working],
                            position_std_m=self.array.position_std_m[working])
            self._subsets[key] = PhysicsLocalizer(self.room, array, self.chirp,
                                                  processor=self.processor, **self._init_args)
        return self._subsets[key]

    def fit_room_at(self, fr: Frame, emitter_m: np.ndarray) -> Fit:
        """Every path of the model fitted to the frame with the emitter at ``emitter_m``
        ``(3,)``, the speed of sound free (two Gauss-Newton steps; amplitudes free): the
        room's own echoes at a known pose (:func:`~echoloc_ros.core.survey.explain_at`)."""
        theta = np.array([[*emitter_m, 1.0, 0.0]])
        paths = np.ones((1, len(self._sequences)), dtype=bool)
        return self._newton(fr, theta, paths, np.array([3]), 2, need_info=False)

    @property
    def n_room_paths(self) -> int:
        """Number of the room's image paths (orders 1 and 2, furniture left out)."""
        return int(np.count_nonzero(self._room_image))

    def room_echoes(self, fr: Frame, thetas: np.ndarray) -> tuple[np.ndarray, ...]:
        """The room's image paths (furniture left out: it is what moves) as candidates
        ``thetas (M, 5)`` predict them: delays ``(M, P, n)`` s, amplitudes ``(M, P, n)``
        (without the frame's amplitude scale), and which are heard ``(M, P)``: inside the
        window and not hidden by known furniture."""
        paths = np.flatnonzero(self._room_image)
        tau, amp, _ = self._paths(fr, thetas, paths, keep=np.ones(len(paths), dtype=bool))
        heard = (self._valid_batch(fr, thetas)[:, paths]
                 & np.all((tau > fr.t_min) & (tau < fr.t_max), axis=-1))
        return tau, amp, heard

    def with_room(self, room: Room) -> 'PhysicsLocalizer':
        """The same localizer for ``room`` as it stands now: the same room (by name) with its
        furniture moved, added or removed in the room file."""
        if room.name != self.room.name:
            raise ValueError(f'with_room takes the same room with other furniture; got room '
                             f'{room.name!r} for a localizer of {self.room.name!r}')
        return PhysicsLocalizer(room, self.array, self.chirp, processor=self.processor,
                                **self._init_args)

    def with_array(self, array: ArrayGeometry) -> 'PhysicsLocalizer':
        """The same localizer for ``array`` (the file's array with its receivers calibrated:
        :mod:`~echoloc_ros.core.receiver_calibration`)."""
        return PhysicsLocalizer(self.room, array, self.chirp, processor=self.processor,
                                **self._init_args)

    def warm_kernels(self, features: EchoFeatures, temperature_c: float) -> None:
        """Run once, on ``features`` of a synthetic frame, the compiled code a frame's
        :meth:`localize` may not reach: a full search's axis shares (:meth:`_axis_shares`) and
        the final model's evidence (:meth:`_final_model`), so that the first real frame that
        needs them does not load them (40 ms once). Nothing is kept."""
        fr = self.frame(features, 0.0, temperature_c)
        centre = self.room.vertices_m.mean(axis=0)
        theta = np.array([centre[0], centre[1], min(0.3, self.z_range_m[1]), 1.0, 0.0])
        self._axis_shares(fr, theta)
        self._final_model(fr, theta[None])

    def localize(self, features: EchoFeatures, yaw_rad: float,
                 temperature_c: float | None = None,
                 yaw_std_rad: float | None = None,
                 tilt_rad: tuple[float, float] | None = None) -> Estimate:
        """Position (and a heading correction) of the array from one frame.

        :param features: output of :meth:`EchoProcessor.process` for the frame.
        :param yaw_rad: heading of the array given by the robot (IMU, compass), rad.
        :param temperature_c: assumed air temperature, degC; ``None`` takes the room file's.
            The speed of sound is re-estimated from the echoes around this value.
        :param yaw_std_rad: standard deviation of the error of ``yaw_rad``, rad: the heading is
            estimated from the echoes with a Gaussian prior of this width around ``yaw_rad``
            (offsets searched within 3 of them, at most 10 deg). ``None`` takes
            :data:`DEFAULT_YAW_STD_RAD` (2 deg); 0 declares the heading exact.
        :param tilt_rad: the array's roll and pitch, rad (an IMU's); ``None``: level. A 1 deg
            tilt moves a receiver 7 cm out 1.2 mm up, most of a radian of the floor echo's
            carrier phase.
        :return: :class:`Estimate`; its covariance includes the heading's uncertainty.
        """
        proposal = self.propose(features, yaw_rad, temperature_c, yaw_std_rad, tilt_rad)
        return self.settled(proposal)

    def settled(self, proposal: Proposal) -> Estimate:
        """The fix :meth:`localize` publishes for ``proposal``: its best candidate finished
        (:meth:`finish`) and, where that leaves the frame doubtful or an axis' evidence peaks
        where the fix does not clearly beat it, searched again (:class:`WiderLook`), the fix
        then chosen by :meth:`WiderLook._choice` (and refined once more from its own axis
        peaks that beat it, :meth:`WiderLook._ahead_refined`), carrying the fix not chosen as a
        rival (:func:`~echoloc_ros.core.physics.wider_rival.with_unchosen`). The network's
        localizer takes physics' own fix from here too."""
        estimate, peaks = self._finished(proposal)
        loc, fr = proposal.localizer, proposal.frame
        theta = loc._fix_theta(proposal, estimate)
        if loc.axis_rivals and HEIGHT_PEAKS:
            peaks = peaks + loc._height_peaks(fr, theta)
        # Peaks of the evidence along an axis, across through them and over the plan's other
        # strips, that the fix does not clearly beat are refined (:meth:`_peaks_across`), and
        # the best polished rivals that refine near it or above (:meth:`_polished_rivals`), and
        # its refits from the lobes either side that beat it (:meth:`_lobe_rivals`).
        peaks = peaks + loc._peaks_across(fr, theta, estimate, peaks) + loc._polished_rivals(
            proposal, theta, estimate) + loc._lobe_rivals(proposal, theta, estimate)
        better = [top for gap, top in peaks if gap < AXIS_REFINE_GAP]
        second = None
        if WIDER_LOOK and (loc._doubtful_fix(estimate) or loc._heading_moved(proposal, estimate)):
            # Searched again where the first fix is doubtful (:class:`WiderLook`).
            second = loc._wider_look(proposal, estimate, better)
        elif WIDER_LOOK and better:
            second = loc._peaks_refined(proposal, estimate, better)
        if second is not None:
            other, other_peaks = self._finished(second)
            choice = self._choice(estimate, other)
            # The fix not chosen rides along as a rival for a tracker (with_unchosen).
            if choice == 'other':
                estimate = with_unchosen(self._ahead_refined(second, other, other_peaks),
                                         estimate)
            elif choice == 'kept':
                estimate = with_unchosen(loc._kept(proposal, second, estimate), other)
        # A heading the caller's prior rules out is doubted (:meth:`_heading_doubted`).
        return loc._heading_doubted(proposal, estimate)

    def fix(self, features: EchoFeatures, yaw_rad: float, temperature_c: float | None = None,
            yaw_std_rad: float | None = None, wide_search_allowed: bool = True,
            tilt_rad: tuple[float, float] | None = None) -> Fix:
        """:meth:`localize` as a :class:`~echoloc_ros.core.localization.Fix` (the
        :class:`~echoloc_ros.core.localization.Localizer` protocol; physics has no wide search,
        so ``wide_search_allowed`` changes nothing)."""
        return Fix(self.localize(features, yaw_rad, temperature_c, yaw_std_rad, tilt_rad))

    def propose(self, features: EchoFeatures, yaw_rad: float,
                temperature_c: float | None = None,
                yaw_std_rad: float | None = None,
                tilt_rad: tuple[float, float] | None = None) -> Proposal:
        """The candidate poses of one frame, scored and the best few polished: everything
        :meth:`localize` does before it commits to one (same arguments). :meth:`finish` turns
        a proposal and a chosen candidate into an :class:`Estimate`."""
        return run_stages(proposal_stages(self, features, yaw_rad, temperature_c, yaw_std_rad,
                                          tilt_rad))

    def _checked(self, features: EchoFeatures, yaw_rad: float, temperature_c: float | None,
                 yaw_std_rad: float | None) -> tuple[float, float]:
        """The heading's standard deviation and the temperature :meth:`propose` works with.

        :raises ValueError: a channel count that is not the array's, a non-finite heading, a
            negative or non-finite heading std, a temperature outside [-40, 60] degC.
        """
        if features.n_channels != self.array.n_receivers:
            raise ValueError(f'features have {features.n_channels} channels, array '
                             f'{self.array.name!r} has {self.array.n_receivers}')
        if not np.isfinite(yaw_rad):
            raise ValueError(f'yaw_rad must be finite, got {yaw_rad}')
        yaw_std = DEFAULT_YAW_STD_RAD if yaw_std_rad is None else float(yaw_std_rad)
        if not (np.isfinite(yaw_std) and yaw_std >= 0.0):
            raise ValueError(f'yaw_std_rad must be finite and >= 0, got {yaw_std_rad}')
        temperature = self.room.temperature_c if temperature_c is None else temperature_c
        if not -40.0 <= temperature <= 60.0:
            raise ValueError(f'temperature_c must be in [-40, 60], got {temperature}')
        return yaw_std, temperature

    @cached_property
    def _wall_directions(self) -> np.ndarray:
        """The walls' distinct inward normals ``(S, 3)``: walls facing the same way share the
        heading step's reads and scores."""
        return np.unique(np.round(self._normals[:-2], 9), axis=0)

    def _vertical_fit(self, fr: Frame, features: EchoFeatures, centre: np.ndarray, z: float,
                      kappa: float) -> tuple[np.ndarray, float, np.ndarray]:
        """The floor and ceiling fitted at height ``z`` and speed ratio ``kappa``: the fitted
        ``theta (5,)`` (at the heading offset 0), the amplitude scale of their echoes, and the
        baseband with their echoes removed (complex64) that the wall scans read."""
        # Floor and ceiling paths do not depend on x, y or the heading: fit (z, c) on them
        # alone, then remove them, since they are the strongest distractors of the wall
        # scores.
        fit = self._newton(fr, np.array([[centre[0], centre[1], z, kappa, 0.0]]),
                           self._vertical_only[None], np.array([2, 3]), 1,
                           need_info=False)
        theta, coef = fit.theta[0], fit.coef
        tau, amp = fit.tau, fit.amp
        strength = np.sum(amp[0] ** 2 * fr.weights, axis=-1)
        gain = float(np.sum(np.abs(coef[0]) * strength) / max(np.sum(strength), 1e-300))
        cleaned = features.baseband - self.synthesise(fr, tau[0], amp[0], coef[0])
        # Scans interpolate linearly: the baseband's own rate is enough for them.
        return theta, gain, cleaned.astype(np.complex64)

    @staticmethod
    def _unseparated(proposal: Proposal, index: int) -> bool:
        """Whether a polished candidate 5 cm or more from candidate ``index`` scores within
        ``UNSEPARATED_GAP`` of it (both polished alike, so their evidence compares). A
        proposal of one polished candidate (a local fix's) has none apart from it."""
        if proposal.n_polished == 1 and index == 0:
            return False
        polished = np.arange(proposal.n_polished)
        apart = np.linalg.norm(proposal.thetas[polished, :3] - proposal.thetas[index, :3],
                               axis=1) >= 0.05
        return bool(np.any(proposal.scores[polished[apart]]
                           > proposal.scores[index] - UNSEPARATED_GAP))

    def _physics_alone(self, proposal: Proposal, index: int, theta: np.ndarray, score: float,
                       rivals: list, ratio: float, cov: np.ndarray, allowance: float = 0.0
                       ) -> tuple[np.ndarray, float, np.ndarray, list]:
        """The published covariance ``(3, 3)``, confidence and local covariance of a fix the
        physics alone chose (:meth:`finish`): refined ``theta (5,)`` of evidence ``score``, its
        ``rivals``, residual ``ratio``, own ``cov`` and ``allowance``. Doubtful when its echoes
        are unexplained or a polished rival is not separated from it; widened toward the peaks
        along x and y it cannot tell from it (:meth:`_evidence_peaks`, also returned: empty
        unless ``axis_rivals`` and :meth:`_scans_pay`) and :func:`with_tolerated_rivals`."""
        doubtful = ratio > UNEXPLAINED_RATIO or self._unseparated(proposal, index)
        peaks = (self._evidence_peaks(proposal.frame, theta) if self.axis_rivals
                 and self._scans_pay(proposal.frame, theta, score, rivals, ratio, doubtful)
                 else [])
        along = [(gap, np.append(top[:2] - theta[:2], 0.0)) for gap, top in peaks]
        local = self._physics_covariance(cov, theta[:3], score, rivals, False, False, along)[0]
        local = 0.5 * (local + local.T) + self.position_floor_m ** 2 * np.eye(3)
        published, confidence = self._physics_covariance(cov, theta[:3], score, rivals,
                                                         doubtful, True, along)
        published = with_tolerated_rivals(published, allowance, score, theta, rivals, along)
        return published, confidence, local, peaks

    def finish(self, proposal: Proposal, index: int = 0,
               probabilities: np.ndarray | None = None,
               component_scale: float = 1.0) -> Estimate:
        """Refine candidate ``index`` of ``proposal`` in all parameters and give its
        :class:`Estimate`.

        :param index: which of ``proposal.thetas``; 0 is the physics choice.
        :param probabilities: probability of each candidate being the right one ``(M,)``
            and, last, of none being right ``(M + 1,)`` (from a learned ranker). ``None``
            derives the spread toward the rivals from their evidence gaps.
        :param component_scale: with ``probabilities``, the fix's own covariance is scaled by
            this (a calibration fitted on held-out frames, see ``echoloc calibrate``).
        :return: the fix; its covariance adds the rivals' spread (a mixture's second moment).
        """
        return self._finished(proposal, index, probabilities, component_scale)[0]

    def _fix_fit(self, proposal: Proposal, index: int) -> tuple:
        """Candidate ``index`` of ``proposal`` refined in all parameters, and what
        :meth:`_finished` derives from that fit alone, whatever the ranker's probabilities:
        ``(theta (5,), score, amp (P, n), residual ratio, covariance (5, 5) of the parameters,
        covariance (3, 3) of the position, the ratio's allowance, the array's doubt (3, 3), the
        share of its pose's predicted echo energy the fit misses (:meth:`_missing_share`))``.

        Kept on the proposal (:attr:`Proposal.refined`): the network's path finishes its
        chosen candidate and then physics' own choice (:meth:`settled`), most often the same
        candidate of the same proposal; a frame is not changed once proposed, so the second
        finish reads the first's fit (the same bits).
        """
        if index in proposal.refined:
            return proposal.refined[index]
        fr = proposal.frame
        theta = proposal.thetas[index]
        free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
        model, valid, fit = self._final_fit(fr, theta, free, self.max_iterations)
        theta, info, score = fit.theta[0], fit.info[0], float(fit.evidence[0])
        tau, amp = fit.tau, fit.amp
        # The fit synthesised once for both the doubt's ratio and the information's. The ratio
        # is at least 1 (the noise alone): the late orders' allowance is computed only above.
        fitted = model._fit_residual(fr, tau[0], amp[0], fit.coef[0])
        ratio = model._residual_ratio(fr, tau[0], amp[0], fit.coef[0], fitted, theta, 1.0)
        yaw = proposal.yaw_given_rad + float(theta[YAW])
        jacobian = origin_jacobian(fr, self.array.emitter_m, yaw)
        # The information over the noise the fit leaves where its echoes lie, not over the
        # residual ratio the doubt is judged by (:meth:`_information_ratio`).
        full_cov = self._covariance(info, model._information_ratio(fr, tau[0], amp[0],
                                                                   fit.coef[0], fitted),
                                    fr.yaw_info)
        cov = jacobian @ full_cov @ jacobian.T
        doubt = jacobian @ array_doubt(model, fr, theta, valid, free, yaw_matrix(yaw) @ fr.tilt,
                                       self.array) @ jacobian.T
        proposal.refined[index] = (theta, score, amp, ratio, full_cov, cov, model.judged_allowance,
                                   doubt, model._missing_share(fr, amp[0], fit.coef[0]))
        return proposal.refined[index]

    def _finished(self, proposal: Proposal, index: int = 0,
                  probabilities: np.ndarray | None = None,
                  component_scale: float = 1.0) -> tuple[Estimate, list]:
        """:meth:`finish`'s fix, and the peaks along x and y its covariance spans
        (:meth:`_evidence_peaks`; empty with ``probabilities`` or without ``axis_rivals``)."""
        if proposal.localizer is not self:
            return proposal.localizer._finished(proposal, index, probabilities,
                                                component_scale)
        fr, yaw_rad = proposal.frame, proposal.yaw_given_rad
        (theta, score, amp, ratio, full_cov, cov, allowance, doubt,
         missing) = self._fix_fit(proposal, index)
        others = [i for i in range(len(proposal.thetas)) if i != index]
        # Candidates more than 2 cm from the refined fix, all measured at once.
        away = np.linalg.norm(proposal.thetas[:, :3] - theta[:3], axis=1) > 0.02
        rivals = [(proposal.scores[i], proposal.thetas[i], i) for i in others if away[i]]
        rivals.sort(key=lambda r: -r[0])
        yaw = yaw_rad + float(theta[YAW])
        emitter_m = fr.tilt @ self.array.emitter_m
        component, listed, local, peaks = None, [], None, []
        if probabilities is None:
            cov, confidence, local, peaks = self._physics_alone(proposal, index, theta, score,
                                                                rivals, ratio, cov, allowance)
        else:
            p = np.asarray(probabilities, dtype=float)
            if p.shape != (len(proposal.thetas) + 1,):
                raise ValueError(f'probabilities must have {len(proposal.thetas) + 1} entries '
                                 f'(one per candidate and one for none), got {p.shape}')
            # Candidates within 2 cm of the refined fix are the same place: their share is
            # the fix's.
            kept = {i for _, _, i in rivals}
            confidence = float(p[index] + sum(p[i] for i in others if i not in kept))
            component = component_scale * cov
            cov = self._region_covariance(component, theta[:3], rivals, p, index)
            component = 0.5 * (component + component.T) + self.position_floor_m ** 2 * np.eye(3)
            listed = sorted([(p[i], t) for _, t, i in rivals if p[i] >= RIVAL_MIN_PROBABILITY],
                            key=lambda r: -r[0])
        cov = 0.5 * (cov + cov.T) + self.position_floor_m ** 2 * np.eye(3)

        def origin(t: np.ndarray) -> np.ndarray:
            return t[:3] - yaw_matrix(yaw_rad + t[YAW]) @ emitter_m

        return Estimate(position_m=origin(theta), covariance_m2=cov,
                        speed_of_sound_mps=float(fr.c0 * theta[3]), confidence=confidence,
                        score=float(score), n_echoes=int(np.count_nonzero(amp[0, :, 0] > 0)),
                        candidates_m=np.array([origin(theta)]
                                              + [origin(t) for _, t, _ in rivals[:4]]),
                        residual_ratio=ratio, missing_share=missing, yaw_rad=yaw,
                        yaw_variance_rad2=float(full_cov[YAW, YAW]) if fr.yaw_free else 0.0,
                        component_covariance_m2=component, local_covariance_m2=local,
                        rivals_m=np.array([origin(t) for _, t in listed]).reshape(-1, 3),
                        rival_probabilities=np.array([q for q, _ in listed], dtype=float),
                        array_covariance_m2=doubt), peaks
