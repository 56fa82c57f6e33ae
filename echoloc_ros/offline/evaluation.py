"""Accuracy and latency of a localizer (physics or neural) on simulated frames, per frame and
tracked."""

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.array_calibration import ArrayCalibration, DirectPathCalibrator
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor, direct_explained
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.pipeline import FrameResult, Pipeline, make_pipeline
from echoloc_ros.core.room import Room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.sim.trajectory import LissajousTrajectory
from echoloc_ros.core.receiver_calibration import equalised_with
from echoloc_ros.offline.receiver_evaluation import calibrated_receivers
from echoloc_ros.offline.tracked_path import drive, moved_off_path, on_path, tracked_path

CHI2_95_3DOF = float(stats.chi2.ppf(0.95, 3))
CHI2_999_3DOF = float(stats.chi2.ppf(0.999, 3))
# Seed offset of the frames an evaluation calibrates the array on (never scored).
CALIBRATION_SEED_OFFSET = 104729
# A reported range is the first room echo when within this much path of it: 2 cm (58 us)
# is under half the point response's main lobe (1 / 12 kHz: 83 us, 2.9 cm), so a neighbouring
# echo is not mistaken for it, and far below the 0.34-0.45 ms by which a direct-path residual
# precedes the floor echo.
FIRST_ECHO_TOLERANCE_M = 0.02


def error_metrics(errors_m: np.ndarray, inside_95: np.ndarray) -> dict[str, float]:
    """Summary of position errors.

    :param errors_m: Euclidean position errors ``(n,)``, m.
    :param inside_95: whether each truth lay inside the estimate's 95 % ellipsoid ``(n,)``.
    :return: ``median_cm``, ``p95_cm``, ``mean_cm``, ``success_rate_5cm``, ``gross_rate_10cm``,
        ``coverage_95``.
    """
    errors_cm = 100.0 * np.asarray(errors_m, dtype=float)
    return {
        'median_cm': float(np.median(errors_cm)),
        'p95_cm': float(np.percentile(errors_cm, 95)),
        'mean_cm': float(np.mean(errors_cm)),
        'success_rate_5cm': float(np.mean(errors_cm <= 5.0)),
        'gross_rate_10cm': float(np.mean(errors_cm > 10.0)),
        'coverage_95': float(np.mean(inside_95)),
    }


def rounded(result: dict, digits: int = 4) -> dict:
    """``result`` with its floats, and the floats in its lists, rounded for JSON output."""
    def one(v):
        if isinstance(v, float):
            return round(v, digits)
        return [one(x) for x in v] if isinstance(v, list) else v
    return {k: one(v) for k, v in result.items()}


def rate_interval(count: int, n: int, level: float = 0.95) -> list[float]:
    """Wilson score interval of a rate seen ``count`` times in ``n`` independent frames: 200
    frames leave a 3 % rate anywhere in about 1.4–6.4 %."""
    interval = stats.binomtest(int(count), int(n)).proportion_ci(level, method='wilson')
    return [float(interval.low), float(interval.high)]


def holds_truth_95(error_m: np.ndarray, covariance_m2: np.ndarray) -> bool:
    """Whether the truth, ``error_m`` from the estimate, lies in its 95 % ellipsoid."""
    """Whether an error lies inside the 95 % ellipsoid of a covariance."""
    return float(error_m @ np.linalg.solve(covariance_m2, error_m)) <= CHI2_95_3DOF


def first_echo_delays_s(simulator: EchoSimulator, position_m: np.ndarray, yaw_rad: float,
                        scenario: Scenario, furniture: list | None = None) -> np.ndarray:
    """Per receiver, the delay of the shortest reflected path (room surface or furniture)
    that reaches it, as the simulator produces the frame [s]; inf where none does.

    Random clutter panels (``scenario.n_random_clutter``) are not included.

    :param furniture: the furniture as it stands; ``None``: the room file's.
    """
    paths = simulator.paths(position_m, yaw_rad, scenario.temperature_c,
                            hardware=scenario.hardware, furniture=furniture)
    delays = [np.where(path.amplitude > 0, path.delay_s, np.inf)
              for path in paths if path.kind != 'direct']
    return np.min(delays, axis=0) if delays else np.full(simulator.array.n_receivers, np.inf)


def first_echo_figures(tof_s: np.ndarray, first_echo_s: np.ndarray, speed_of_sound_mps: float,
                       tolerance_m: float = FIRST_ECHO_TOLERANCE_M) -> dict[str, object]:
    """How often the reported first echo (``EchoFeatures.tof_s``, what ``/echoloc/range_<i>``
    publishes) is the true one (:func:`first_echo_delays_s`), over all (frame, receiver).

    :param tof_s: reported first-echo delays, any shape; NaN (no echo) is a miss.
    :param first_echo_s: true first-echo delays, the same shape.
    :return: ``range_first_echo_rate`` (within ``tolerance_m`` of path) with its
        ``range_first_echo_rate_ci95`` (:func:`rate_interval`), and ``range_early_rate``: the
        share reported earlier than the first echo by more than the tolerance (a direct-path
        residual or noise taken for an echo; the other misses are a later or merged echo).
    """
    path_error_m = (np.asarray(tof_s) - np.asarray(first_echo_s)) * speed_of_sound_mps
    hits = np.nan_to_num(np.abs(path_error_m), nan=np.inf) <= tolerance_m
    early = np.nan_to_num(path_error_m, nan=0.0) < -tolerance_m
    return {'range_first_echo_rate': float(np.mean(hits)),
            'range_first_echo_rate_ci95': rate_interval(np.count_nonzero(hits), hits.size),
            'range_early_rate': float(np.mean(early))}


def random_frames(simulator: EchoSimulator, scenario: Scenario, n: int, seed: int | list[int],
                  margin_m: float = 0.4, z_range_m: tuple[float, float] = (0.2, 1.2),
                  furniture_shift_m: float = 0.0
                  ) -> Iterator[tuple[Room, np.ndarray, np.ndarray, float, float, float]]:
    """The frames of :func:`evaluate_fixes`: the same ``seed`` gives the same frames.

    Per frame, the furniture of ``simulator.room`` moved by up to ``furniture_shift_m``
    (:meth:`Room.rearranged`; none: as in the room file), a pose and its frame
    (:meth:`EchoSimulator.simulate_random_pose`) and one standard normal draw for the error of
    the heading given to the localizer.

    :return: iterator of ``(world, frame, position_m, yaw_rad, heading_draw, simulate_s)``;
        ``world`` is ``simulator.room`` itself when the furniture did not move.
    """
    room = simulator.room
    rng = np.random.default_rng(seed)
    for _ in range(n):
        world, frame_scenario = room, scenario
        if furniture_shift_m > 0 and room.furniture:
            moved = room.rearranged(rng, furniture_shift_m)
            world = replace(room, furniture=moved)
            frame_scenario = replace(scenario, furniture=moved)
        t0 = time.perf_counter()
        frame, position, yaw = simulator.simulate_random_pose(world, frame_scenario, rng,
                                                              margin_m, z_range_m)
        simulate_s = time.perf_counter() - t0
        yield world, frame, position, yaw, float(rng.standard_normal()), simulate_s


def self_calibrate(simulator: EchoSimulator, processor: EchoProcessor, scenario: Scenario,
                   n_frames: int, seed: int) -> ArrayCalibration:
    """The array calibration measured from ``n_frames`` frames at random poses, as the
    processor's calibrator builds it while running.

    :param n_frames: frames (at least 3), e.g. 64: 2.6 s at 25 frames/s.
    """
    calibrator = DirectPathCalibrator(processor.calibration_window, processor.fs_hz,
                                      min_frames=n_frames, max_frames=n_frames, every=1)
    calibration = None
    for _, frame, *_ in random_frames(simulator, scenario, n_frames, seed):
        calibration = calibrator.add(frame) or calibration
    return calibration


def evaluate_fixes(room: Room, array: ArrayGeometry, chirp: Chirp, scenario: Scenario,
                   n: int, seed: int, fs_hz: float = 250e3,
                   assumed_temperature_c: float | None = None, margin_m: float = 0.4,
                   z_range_m: tuple[float, float] = (0.2, 1.2),
                   optimization_level: str = 'balanced', heading_noise_deg: float = 0.0,
                   details: dict | None = None, method: str = 'physics',
                   model_path: str | Path | None = None, furniture_shift_m: float = 0.0,
                   furniture_known: bool = False, wide_search: bool = True,
                   model_error: ModelError | None = None, max_order: int | str = 2,
                   calibration_frames: int = 0, attitude: str = 'level',
                   receiver_frames: int = 0, receiver_passes: int = 0,
                   withhold_doubted: bool = False) -> dict[str, float]:
    """Localize ``n`` random poses and summarise accuracy, honesty and latency.

    Poses are uniform in the room at least ``margin_m`` from walls and furniture, height
    uniform in ``z_range_m``, yaw uniform in [-pi, pi); the yaw is given to the localizer.
    The same ``seed`` gives the same frames to every method.

    :param room: the room (its file's temperature is what the localizer assumes unless
        ``assumed_temperature_c``, ``None``: the room's, says otherwise).
    :param scenario: SNR, true temperature, gain mismatch, dead channel, clutter.
    :param n: number of poses, drawn with ``seed`` (and the noise) at ``fs_hz`` (Hz).
    :param margin_m: least distance of poses from walls and furniture, m (``z_range_m``: heights).
    :param optimization_level: of the localizer (``'fast'``, ``'balanced'``, ``'accurate'``).
    :param heading_noise_deg: std of the error of the heading given to the localizer, deg.
    :param details: if a dict, receives per-fix arrays ``truth_m``, ``estimate_m``,
        ``covariance_m2``, ``errors_m``, ``inside_95`` and ``published`` (for plots).
    :param method: ``'physics'`` or ``'nn'`` (:func:`~echoloc_ros.core.pipeline.make_localizer`;
        ``model_path``: the ``nn`` method's checkpoint).
    :param furniture_shift_m: in every frame the room's furniture stands moved by up to this
        on each axis from where the room file (which the localizer reads) has it.
    :param furniture_known: the localizer is told where the moved furniture stands (the room
        file was brought up to date; an ``nn`` model stays the one trained before).
    :param wide_search: the ``nn`` method searches again, widely, the frames it doubts.
    :param model_error: the world's array and room are drawn from this (``draws`` of them);
        the localizer reads the files (and errors are measured in the file's frame).
    :param max_order: highest reflection order simulated (``'all'``: all in the window).
    :param calibration_frames: frames (other poses, never scored) the processor calibrates the
        array on first (:func:`self_calibrate`); 0: the array file's model.
    :param attitude: roll and pitch told: ``'level'``, ``'imu'`` (the drawn) or ``'estimate'``.
    :param receiver_frames: and ``receiver_passes``: :func:`calibrated_receivers` (physics).
    :param withhold_doubted: :attr:`~echoloc_ros.core.pipeline.Pipeline.withhold_doubted`.
    :return: :func:`_scored` of the published fixes (``withheld_rate``: the other frames,
        :func:`_frame_result`) and in ``all_fixes`` of every fix localized, withheld or not
        (what withholding changed), ``range_*`` (all frames: :func:`first_echo_figures`),
        ``latency_ms_p50``/``_p95`` of the localizer, ``simulate_ms_p50``,
        ``process_ms_p50``, ``n``, ``speed_error_mps_median`` and ``confidence_median``; for
        ``nn`` also ``inference_ms_p50``/``_p95`` of the network alone and the shares of frames
        searched widely (``wide_search_rate``) and fixed from its candidates (``wide_kept_rate``).
    """
    if n < 1:
        raise ValueError(f'n must be >= 1, got {n}')
    processor = EchoProcessor(chirp, fs_hz, array=array)
    pipeline = make_pipeline(method, room, array, chirp, fs_hz, processor, optimization_level,
                             model_path, wide_search)
    pipeline.withhold_doubted = withhold_doubted
    log = _Columns()
    true_c = speed_of_sound_mps(room.temperature_c if scenario.temperature_c is None
                                else scenario.temperature_c)
    heading_noise_rad, yaw_std_rad = _heading_noise(heading_noise_deg)
    frames = _drawn_frames(room, array, chirp, fs_hz, processor, scenario, n, seed, model_error,
                           (max_order, calibration_frames, (receiver_frames, receiver_passes and (
                               heading_noise_rad, yaw_std_rad, receiver_passes), details),
                            margin_m, z_range_m, furniture_shift_m), pipeline, attitude)
    for k, (world, frame, position, yaw, draw, sim_s, first_s, told) in enumerate(frames):
        if furniture_known and world is not room:
            pipeline.take_room(world)
        t1 = time.perf_counter()
        features = processor.process(frame)
        t2 = time.perf_counter()
        result = _frame_result(pipeline, k, features, yaw + heading_noise_rad * draw,
                               yaw_std_rad, assumed_temperature_c, told)
        t3 = time.perf_counter()
        log.add(tof_s=features.tof_s, first_echo_s=first_s,
                withheld=result is None or not result.published)
        if result is None:
            continue
        _score_fix(log, position, result.fix, true_c, result.published)
        log.add(simulate_ms=1e3 * sim_s, process_ms=1e3 * (t2 - t1), latency_ms=1e3 * (t3 - t2))
    return _fixes_result(log, n, method, details, true_c)


def _frame_result(pipeline: Pipeline, k: int, features: EchoFeatures, yaw_rad: float,
                  yaw_std_rad: float | None, temperature_c: float | None,
                  tilt_rad: tuple[float, float] | None) -> FrameResult | None:
    """Frame ``k`` through the pipeline, ``None`` where its direct arrival is one the model or
    calibration does not explain (:func:`direct_explained`; not localized, not published)."""
    if not direct_explained(features):
        return None
    return pipeline.step(k / 25.0, features, yaw_rad, yaw_std_rad, temperature_c,
                         tilt_rad=tilt_rad)


def _drawn_frames(room: Room, array: ArrayGeometry, chirp: Chirp, fs_hz: float,
                  processor: EchoProcessor, scenario: Scenario, n: int, seed: int,
                  model_error: ModelError | None, options: tuple, pipeline: Pipeline,
                  attitude: str) -> Iterator[tuple]:
    """:func:`random_frames` of :func:`evaluate_fixes`, ``n`` in all, spread over
    ``model_error.draws`` worlds (seeds ``model_error.seed`` on; none: the files' world),
    each position in the room file's frame, then :func:`first_echo_delays_s` and last the
    tilt told to the localizer.

    :param options: ``(max_order, calibration_frames, (receiver_frames, from_fixes,
        details), margin_m, z_range_m, furniture_shift_m)`` of :func:`evaluate_fixes`.
    :param attitude: ``'level'`` (tilt told: ``None``), ``'imu'`` (the drawn array's roll
        and pitch) or ``'estimate'`` (``None``, and the pipeline estimates it afresh for each
        array drawn).
    """
    if attitude not in ('level', 'imu', 'estimate'):
        raise ValueError(f'attitude must be \'level\', \'imu\' or \'estimate\', got {attitude!r}')
    max_order, calibration_frames, (receiver_frames, from_fixes, details), *frame_args = options
    pipeline.estimate_tilt = attitude == 'estimate'
    file_localizer = pipeline.localizer
    if receiver_frames and not isinstance(file_localizer, PhysicsLocalizer):
        raise ValueError('the receivers are calibrated for the physics localizer only')
    draws = 1 if model_error is None else model_error.draws
    counts = np.diff(np.round(np.linspace(0, n, draws + 1)).astype(int))
    for j, count in enumerate(counts):
        error = None if model_error is None else replace(model_error, seed=model_error.seed + j)
        if receiver_frames:
            equalised_with(processor, array)
        simulator, drawn, origin = _simulated_world(room, array, chirp, fs_hz, scenario, error,
                                                    max_order, processor, calibration_frames,
                                                    seed)
        hardware = drawn.hardware
        tilt = None if hardware is None else (hardware.roll_rad, hardware.pitch_rad)
        pipeline.tilts.clear()
        if receiver_frames:
            pipeline.localizer = calibrated_receivers(
                file_localizer, processor, simulator, drawn, origin, receiver_frames,
                [seed + CALIBRATION_SEED_OFFSET, j, 1], from_fixes or None,
                None if details is None else details.setdefault('receivers', []),
                tilt if attitude == 'imu' else None)
        # One draw keeps the seeds of a single world.
        frame_seed = seed if j == 0 else [seed, j]
        frames = random_frames(simulator, drawn, count, frame_seed, *frame_args)
        for shown, frame, position, yaw, *rest in frames:
            first_s = first_echo_delays_s(simulator, position, yaw, drawn, shown.furniture)
            yield (shown, frame, position + origin, yaw, *rest, first_s,
                   tilt if attitude == 'imu' else None)


def _simulated_world(room: Room, array: ArrayGeometry, chirp: Chirp, fs_hz: float,
                     scenario: Scenario, model_error: ModelError | None, max_order: int | str,
                     processor: EchoProcessor, calibration_frames: int,
                     seed: int) -> tuple[EchoSimulator, Scenario, np.ndarray]:
    """The simulator of the world as it is (drawn from ``model_error``, or the files'), the
    scenario with its drawn hardware and air (:meth:`ModelError.draw_air_c` about its own)
    and the drawn room's origin in the file's frame [m]; the processor calibrated on
    ``calibration_frames`` frames of it first, if any."""
    world, origin = room, np.zeros(3)
    if model_error is not None:
        truth = model_error.draw_room(room)
        world, origin = truth.room, truth.origin_m
        if model_error.changes_array:
            scenario = replace(scenario, hardware=model_error.draw_hardware(array))
        if model_error.air_std_c > 0:
            scenario = replace(scenario, temperature_c=model_error.draw_air_c(
                room.temperature_c if scenario.temperature_c is None else scenario.temperature_c))
    simulator = EchoSimulator(world, array, chirp, fs_hz, max_order=max_order)
    if calibration_frames > 0:
        processor.set_calibration(self_calibrate(simulator, processor, scenario,
                                                 calibration_frames,
                                                 seed + CALIBRATION_SEED_OFFSET))
    return simulator, scenario, origin


def _heading_noise(heading_noise_deg: float) -> tuple[float, float | None]:
    """The heading error's std [rad] and the std the localizer is told: as an IMU reports it,
    or None (its default prior) when the heading is exact."""
    heading_noise_rad = float(np.deg2rad(heading_noise_deg))
    return heading_noise_rad, heading_noise_rad if heading_noise_deg > 0 else None


class _Columns:
    """Per-frame values by name, added frame by frame and read back as arrays."""

    def __init__(self):
        self.columns: dict[str, list] = {}

    def add(self, **values) -> None:
        for name, value in values.items():
            self.columns.setdefault(name, []).append(value)

    def __getitem__(self, name: str) -> np.ndarray:
        return np.array(self.columns.get(name, []))

    def __len__(self) -> int:
        """Frames scored (each has a position error)."""
        return len(self.columns.get('errors_m', []))


def _score_fix(log: _Columns, position_m: np.ndarray, fix, true_c_mps: float,
               published: bool = True) -> None:
    """Add one fix's error, its covariance's honesty, the localizer's own figures and whether
    it is published."""
    estimate = fix.estimate
    error = estimate.position_m - position_m
    log.add(inference_ms=1e3 * fix.inference_s, wide=(fix.wide, fix.wide_kept),
            published=published,
            truth_m=position_m, estimate_m=estimate.position_m,
            covariance_m2=estimate.covariance_m2, errors_m=float(np.linalg.norm(error)),
            inside_95=holds_truth_95(error, estimate.covariance_m2),
            outside_999=(float(error @ np.linalg.solve(estimate.covariance_m2, error))
                         > CHI2_999_3DOF),
            confidence=estimate.confidence,
            speed_error_mps=abs(estimate.speed_of_sound_mps - true_c_mps))


def _scored(log: _Columns, chosen: np.ndarray) -> dict:
    """:func:`error_metrics`, ``outside_999`` (the share outside their own 99.9 % ellipsoid),
    ``gross_rate_10cm_ci95`` (:func:`rate_interval`) and their count ``scored`` over the
    ``chosen`` fixes of ``log``."""
    errors = log['errors_m'][chosen]
    return {**error_metrics(errors, log['inside_95'][chosen]),
            'outside_999': float(np.mean(log['outside_999'][chosen])),
            'gross_rate_10cm_ci95': rate_interval(np.count_nonzero(errors > 0.1), errors.size),
            'scored': int(errors.size)}


def _percentiles(result: dict, name: str, values: np.ndarray) -> None:
    result[f'{name}_p50'] = float(np.percentile(values, 50))
    result[f'{name}_p95'] = float(np.percentile(values, 95))


def _fixes_result(log: _Columns, n: int, method: str, details: dict | None,
                  true_c_mps: float) -> dict[str, float]:
    """What :func:`evaluate_fixes` returns (and puts in ``details``), from its per-frame log."""
    if details is not None:
        details.update({name: log[name] for name in ('truth_m', 'estimate_m', 'covariance_m2',
                                                     'errors_m', 'inside_95', 'published')})
    receivers = {} if details is None or 'receivers' not in details else {
        'receivers': details['receivers']}
    ranges = first_echo_figures(log['tof_s'], log['first_echo_s'], true_c_mps)
    published = log['published'].astype(bool)
    if not np.any(published):
        return {'withheld_rate': 1.0, 'n': n, **ranges, **receivers,
                **({'all_fixes': _scored(log, np.ones(len(log), dtype=bool))}
                   if len(log) else {})}
    result = _scored(log, published)
    result.update(ranges, **receivers)
    result.update({'withheld_rate': float(np.mean(log['withheld'])),
                   'all_fixes': _scored(log, np.ones(len(log), dtype=bool))})
    for name in ('latency_ms', 'simulate_ms', 'process_ms'):
        _percentiles(result, name, log[name])
    result.update({
        'speed_error_mps_median': float(np.median(log['speed_error_mps'])),
        'confidence_median': float(np.median(log['confidence'])),
        'n': n,
    })
    if method == 'nn':
        _percentiles(result, 'inference_ms', log['inference_ms'])
        wide = np.array(log['wide'], dtype=bool)
        result['wide_search_rate'] = float(np.mean(wide[:, 0]))
        result['wide_kept_rate'] = float(np.mean(wide[:, 1]))
    return result


def evaluate_tracked(room: Room, array: ArrayGeometry, chirp: Chirp, scenario: Scenario,
                     n_frames: int | None, seed: int, fs_hz: float = 250e3,
                     frame_rate_hz: float = 25.0, assumed_temperature_c: float | None = None,
                     optimization_level: str = 'balanced', tracker: PoseTracker | None = None,
                     heading_noise_deg: float = 0.0, details: dict | None = None,
                     method: str = 'physics', model_path: str | Path | None = None,
                     furniture_shift_m: float = 0.0, furniture_known: bool = False,
                     live_survey_s: float | None = None, wide_search: bool = True,
                     path: LissajousTrajectory | None = None,
                     track_search=True) -> dict[str, float]:
    """Localize frames along a trajectory and track them: per-frame and tracked accuracy.

    The array follows :func:`tracked_path` (a figure-of-eight, heading along the path, given
    to the localizer), one frame every ``1 / frame_rate_hz`` from t = 0. Every fix goes to the
    :class:`PoseTracker`; the tracked position is its published track after the fix.

    :param room: the room (``W, L`` are its plan's extents).
    :param scenario: SNR, true temperature, gain mismatch, dead channel, clutter.
    :param n_frames: number of frames; ``None``: one lap (every stretch of the path).
    :param seed: seed of the noise.
    :param fs_hz: sampling rate, Hz.
    :param frame_rate_hz: frames per second.
    :param assumed_temperature_c: temperature given to the localizer; ``None`` is the room's.
    :param optimization_level: of the localizer.
    :param tracker: the filter (``None``: :class:`PoseTracker` for the room).
    :param heading_noise_deg: std of the error of the heading given to the localizer, deg.
    :param details: if a dict, receives per-frame arrays ``t_s``, ``truth_m``,
        ``estimate_m``, ``tracked_m``, ``tracked_covariance_m2``, ``errors_m``,
        ``tracked_errors_m`` (for plots) and ``vouched`` (a confirmed track vouched for the
        pose: the node publishes only those).
    :param method: ``'physics'`` or ``'nn'`` (:func:`~echoloc_ros.core.pipeline.make_localizer`;
        ``model_path``: the ``nn`` method's checkpoint).
    :param furniture_shift_m: the furniture stands moved by up to this on each axis from
        where the room file has it (once, for the whole run), kept off the trajectory.
    :param furniture_known: the localizer is told where it stands (:func:`evaluate_fixes`).
    :param live_survey_s: if set, a :class:`~echoloc_ros.core.survey.LiveSurvey` keeps the
        localizer's room up to date from the tracked frames, placing the boxes every this many
        seconds (what the ``furniture_survey`` node does).
    :param wide_search: as :func:`evaluate_fixes`.
    :param path: the path driven, its origin at the plan's lower corner (``None``:
        :func:`tracked_path`).
    :param track_search: as :func:`~echoloc_ros.core.pipeline.make_pipeline`'s (the node's).
    :return: per-frame :func:`error_metrics`, the same for the track with a ``tracked_``
        prefix, ``tracked_max_cm``, ``tracked_published_outside_999`` (published poses with the
        truth outside their 99.9 % ellipsoid), ``rejected_rate`` (fixes the gate refused),
        ``latency_ms_p50``/``latency_ms_p95`` of the localizer and ``n`` (frames localized:
        a pose where moved boxes hide every wall gives none).
    """
    if n_frames is not None and n_frames < 1:
        raise ValueError(f'n_frames must be >= 1, got {n_frames}')
    if frame_rate_hz <= 0:
        raise ValueError(f'frame_rate_hz must be positive, got {frame_rate_hz}')
    rng = np.random.default_rng(seed)
    lo = room.vertices_m.min(axis=0)
    path = tracked_path(room) if path is None else path
    if n_frames is None:
        n_frames = int(np.ceil(path.period_s * frame_rate_hz))
    scenario = _furniture_off_path(room, scenario, path, lo, rng, furniture_shift_m)
    simulator = EchoSimulator(room, array, chirp, fs_hz)
    processor = EchoProcessor(chirp, fs_hz, array=array)
    known = furniture_known and scenario.furniture is not None
    told = replace(room, furniture=scenario.furniture) if known else room
    tracker = PoseTracker(room_volume_m3=room.volume_m3) if tracker is None else tracker
    tracker.reset()
    pipeline = make_pipeline(method, told, array, chirp, fs_hz, processor, optimization_level,
                             model_path, wide_search, tracker=tracker, track_search=track_search)
    live = (None if live_survey_s is None
            else _LiveRoom(pipeline, told, array, chirp, fs_hz, processor, live_survey_s))
    log = _Columns()
    heading_noise_rad, yaw_std_rad = _heading_noise(heading_noise_deg)
    for t_s, position, features, told_yaw in drive(path, lo, simulator, processor, scenario, rng,
                                                   n_frames, frame_rate_hz, heading_noise_rad):
        t0 = time.perf_counter()
        out = pipeline.step(t_s, features, told_yaw, yaw_std_rad, assumed_temperature_c)
        log.add(t_s=t_s, latency_ms=1e3 * (time.perf_counter() - t0))
        _score_track(log, position, out)
        if live is not None:
            live.offer(t_s, features, out, assumed_temperature_c)
    return _tracked_result(log, details, live, room.furniture if scenario.furniture is None
                           else scenario.furniture)


class _LiveRoom:
    """The localizer's room kept up to date from the tracked frames, as the
    ``furniture_survey`` node does it (:class:`~echoloc_ros.core.survey.LiveSurvey`)."""

    def __init__(self, pipeline, told: Room, array: ArrayGeometry, chirp: Chirp, fs_hz: float,
                 processor: EchoProcessor, period_s: float):
        from echoloc_ros.core.survey import FurnitureSurvey, LiveSurvey
        self.pipeline = pipeline
        self.survey = LiveSurvey(FurnitureSurvey(told, array, chirp, fs_hz,
                                                 processor=processor), period_s=period_s)

    def offer(self, t_s: float, features, out, temperature_c: float | None) -> None:
        """Give the survey one tracked frame; when a placement moves a box, the localizer
        takes up the room as it now stands."""
        live = self.survey
        live.offer(t_s, features, out.position_m, out.covariance_m2, out.yaw_rad,
                   out.yaw_variance_rad2, temperature_c)
        if live.due(t_s):
            now = live.place(t_s)
            if now is not None:
                self.pipeline.take_room(now)

    def result(self, standing: list) -> dict:
        """Placements made, and each box's plan error [cm] against where it stands."""
        return {'live_survey_placements': self.survey.placements,
                'live_survey_box_error_cm': {
                    now.name: round(100.0 * float(np.linalg.norm(now.min_m[:2]
                                                                 - truth.min_m[:2])), 2)
                    for now, truth in zip(self.survey.room.furniture, standing)}}


def _furniture_off_path(room: Room, scenario: Scenario, path: LissajousTrajectory,
                        origin_xy: np.ndarray, rng: np.random.Generator,
                        furniture_shift_m: float) -> Scenario:
    """The scenario with the room's furniture moved by up to ``furniture_shift_m``, off the
    path (once, for the whole drive); none to move: as given, refused if a box is on the path."""
    if furniture_shift_m > 0 and room.furniture:
        return replace(scenario, furniture=moved_off_path(room, path, origin_xy, rng,
                                                          furniture_shift_m))
    if on_path(scenario.furniture or room.furniture, path, origin_xy):
        raise ValueError(f'room {room.name!r}: a box stands within 0.2 m of the tracked path')
    return scenario


def _score_track(log: _Columns, position_m: np.ndarray, out) -> None:
    """Add one frame's fix and published track, each against the truth."""
    estimate = out.fix.estimate
    error = estimate.position_m - position_m
    track_error = out.position_m - position_m
    d2 = float(track_error @ np.linalg.solve(out.covariance_m2, track_error))
    log.add(truth_m=position_m, estimate_m=estimate.position_m, tracked_m=out.position_m,
            tracked_covariance_m2=out.covariance_m2, errors_m=float(np.linalg.norm(error)),
            inside_95=holds_truth_95(error, estimate.covariance_m2),
            tracked_errors_m=float(np.linalg.norm(track_error)),
            tracked_inside_95=d2 <= CHI2_95_3DOF, tracked_outside_999=d2 > CHI2_999_3DOF,
            rejected=not out.accepted, vouched=out.vouched)


def _tracked_result(log: _Columns, details: dict | None, live: _LiveRoom | None,
                    standing: list) -> dict[str, float]:
    """What :func:`evaluate_tracked` returns (and puts in ``details``), from its per-frame log
    and its live survey, if any (``standing``: the furniture as it stands)."""
    if details is not None:
        details.update({name: log[name] for name in
                        ('t_s', 'truth_m', 'estimate_m', 'tracked_m', 'tracked_covariance_m2',
                         'errors_m', 'tracked_errors_m', 'vouched')})
    result = error_metrics(log['errors_m'], log['inside_95'])
    result.update({f'tracked_{key}': value for key, value in
                   error_metrics(log['tracked_errors_m'], log['tracked_inside_95']).items()})
    result.update({
        'tracked_max_cm': float(100.0 * np.max(log['tracked_errors_m'])),
        # The bar's "no tracked pose outside its 99.9 % ellipsoid": the poses the node
        # publishes (a confirmed track vouches for them).
        'tracked_published_outside_999': int(np.sum(log['tracked_outside_999']
                                                    & log['vouched'])),
        'rejected_rate': float(np.mean(log['rejected'])),
        'latency_ms_p50': float(np.percentile(log['latency_ms'], 50)),
        'latency_ms_p95': float(np.percentile(log['latency_ms'], 95)),
        'n': len(log),
    })
    if live is not None:
        result.update(live.result(standing))
    return result
