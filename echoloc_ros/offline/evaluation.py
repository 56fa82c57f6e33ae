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
from echoloc_ros.core.pipeline import Pipeline, make_pipeline
from echoloc_ros.core.room import Room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.sim.trajectory import LissajousTrajectory

CHI2_95_3DOF = float(stats.chi2.ppf(0.95, 3))
CHI2_999_3DOF = float(stats.chi2.ppf(0.999, 3))
# Seed offset of the frames an evaluation calibrates the array on (never scored).
CALIBRATION_SEED_OFFSET = 104729


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


def _inside_95(error_m: np.ndarray, covariance_m2: np.ndarray) -> bool:
    """Whether an error lies inside the 95 % ellipsoid of a covariance."""
    return float(error_m @ np.linalg.solve(covariance_m2, error_m)) <= CHI2_95_3DOF


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
                   n_frames: int, seed: int | list[int]) -> ArrayCalibration:
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
                     assumed_temperature_c: float | None = None,
                     margin_m: float = 0.4,
                     z_range_m: tuple[float, float] = (0.2, 1.2),
                     optimization_level: str = 'balanced', heading_noise_deg: float = 0.0,
                     details: dict | None = None, method: str = 'physics',
                     model_path: str | Path | None = None,
                     furniture_shift_m: float = 0.0,
                     furniture_known: bool = False,
                     wide_search: bool = True, model_error: ModelError | None = None,
                     max_order: int = 2, calibration_frames: int = 0,
                     model_error_draws: int = 1, imu_tilt: bool = False,
                     estimate_tilt: bool = False) -> dict[str, float]:
    """Localize ``n`` random poses and summarise accuracy, honesty and latency.

    Poses are uniform in the room at least ``margin_m`` from walls and furniture, height
    uniform in ``z_range_m``, yaw uniform in [-pi, pi); the yaw is given to the localizer.
    The same ``seed`` gives the same frames to every method.

    :param room: the room (its file's temperature is what the localizer assumes unless
        ``assumed_temperature_c`` says otherwise; ``scenario.temperature_c`` is the truth).
    :param array: the array.
    :param chirp: the ping.
    :param scenario: SNR, true temperature, gain mismatch, dead channel, clutter.
    :param n: number of poses.
    :param seed: seed of poses and noise.
    :param fs_hz: sampling rate, Hz.
    :param assumed_temperature_c: temperature given to the localizer; ``None`` is the room's.
    :param margin_m: minimum distance of poses from walls and furniture, m.
    :param z_range_m: range of array heights, m.
    :param optimization_level: of the localizer (``'fast'``, ``'balanced'``, ``'accurate'``).
    :param heading_noise_deg: std of the error of the heading given to the localizer, deg.
    :param details: if a dict, receives per-frame arrays ``truth_m``, ``estimate_m``,
        ``covariance_m2``, ``errors_m``, ``inside_95`` (for plots).
    :param method: ``'physics'`` or ``'nn'``
        (:func:`~echoloc_ros.core.pipeline.make_localizer`).
    :param model_path: the ``nn`` method's checkpoint.
    :param furniture_shift_m: in every frame the room's furniture stands moved by up to this
        on each axis from where the room file (which the localizer reads) has it.
    :param furniture_known: the localizer is told where the moved furniture stands (the room
        file was brought up to date; an ``nn`` model stays the one trained before).
    :param wide_search: the ``nn`` method searches again, widely, the frames it doubts.
    :param model_error: the simulated world's array and room are drawn from this; the
        localizer reads the files (and errors are measured in the file's frame).
    :param max_order: highest reflection order simulated.
    :param calibration_frames: frames (other poses, never scored) the processor calibrates the
        array on first (:func:`self_calibrate`); 0: the array file's model.
    :param model_error_draws: the frames are spread over this many worlds drawn from
        ``model_error`` (seeds ``model_error.seed`` on): one draw is one array and one room,
        whose errors are the same in every frame, so a rate over one draw says little.
    :param imu_tilt: the localizer is told the drawn array's roll and pitch (as an IMU's
        orientation gives them); otherwise it takes the array as level, or with
        ``estimate_tilt`` estimates it from the frames (:attr:`Pipeline.estimate_tilt`, afresh
        for each array drawn).
    :return: :func:`error_metrics` (over the published fixes; a frame whose direct arrival the
        model or calibration does not explain is withheld, ``withheld_rate``) plus
        ``outside_999`` (share outside their own 99.9 % ellipsoid),
        ``gross_rate_10cm_ci95`` (:func:`rate_interval`),
        ``latency_ms_p50``/``latency_ms_p95`` of the localizer and ``simulate_ms_p50``,
        ``process_ms_p50``, ``n``, ``speed_error_mps_median`` and ``confidence_median``; for
        ``nn`` also ``inference_ms_p50``/``inference_ms_p95`` of the network alone, and the
        shares of frames searched widely (``wide_search_rate``) and fixed from the wide
        search's candidates (``wide_kept_rate``).
    """
    if n < 1:
        raise ValueError(f'n must be >= 1, got {n}')
    processor = EchoProcessor(chirp, fs_hz, array=array)
    pipeline = make_pipeline(method, room, array, chirp, fs_hz, processor, optimization_level,
                             model_path, wide_search)
    pipeline.estimate_tilt = estimate_tilt
    inference, wide, outside_999, withheld = [], [], [], 0
    true_c = speed_of_sound_mps(room.temperature_c if scenario.temperature_c is None
                                else scenario.temperature_c)
    errors, inside, latency, sim_ms, proc_ms, c_err, confidence = ([] for _ in range(7))
    truths, estimates, covariances = [], [], []
    heading_noise_rad = np.deg2rad(heading_noise_deg)
    # The localizer is told the heading's std, as an IMU reports it; none: its default prior.
    yaw_std_rad = heading_noise_rad if heading_noise_deg > 0 else None
    frames = _drawn_frames(room, array, chirp, fs_hz, processor, scenario, n, seed,
                           model_error, model_error_draws, max_order, calibration_frames,
                           margin_m, z_range_m, furniture_shift_m)
    last_tilt = None
    for k, (world, frame, position, yaw, heading_draw, sim_s, tilt) in enumerate(frames):
        if tilt != last_tilt:
            # Another array drawn: its own tilt, estimated afresh.
            pipeline.tilts.clear()
            last_tilt = tilt
        if furniture_known and world is not room:
            pipeline.take_room(world)
        t1 = time.perf_counter()
        features = processor.process(frame)
        t2 = time.perf_counter()
        if not direct_explained(features):
            withheld += 1
            continue
        told_yaw = yaw + heading_noise_rad * heading_draw
        fix = pipeline.step(k / 25.0, features, told_yaw, yaw_std_rad, assumed_temperature_c,
                            tilt_rad=tilt if imu_tilt else None).fix
        estimate = fix.estimate
        t3 = time.perf_counter()
        inference.append(1e3 * fix.inference_s)
        wide.append((fix.wide, fix.wide_kept))
        truths.append(position)
        estimates.append(estimate.position_m)
        covariances.append(estimate.covariance_m2)
        error = estimate.position_m - position
        errors.append(float(np.linalg.norm(error)))
        inside.append(_inside_95(error, estimate.covariance_m2))
        outside_999.append(float(error @ np.linalg.solve(estimate.covariance_m2, error))
                           > CHI2_999_3DOF)
        sim_ms.append(1e3 * sim_s)
        proc_ms.append(1e3 * (t2 - t1))
        latency.append(1e3 * (t3 - t2))
        c_err.append(abs(estimate.speed_of_sound_mps - true_c))
        confidence.append(estimate.confidence)
    if details is not None:
        details.update(truth_m=np.array(truths), estimate_m=np.array(estimates),
                       covariance_m2=np.array(covariances), errors_m=np.array(errors),
                       inside_95=np.array(inside))
    if not errors:
        return {'withheld_rate': 1.0, 'n': n}
    errors = np.array(errors)
    result = error_metrics(errors, np.array(inside))
    result.update({
        'outside_999': float(np.mean(outside_999)),
        'withheld_rate': withheld / n,
        'gross_rate_10cm_ci95': rate_interval(np.count_nonzero(errors > 0.1), errors.size),
        'latency_ms_p50': float(np.percentile(latency, 50)),
        'latency_ms_p95': float(np.percentile(latency, 95)),
        'simulate_ms_p50': float(np.percentile(sim_ms, 50)),
        'simulate_ms_p95': float(np.percentile(sim_ms, 95)),
        'process_ms_p50': float(np.percentile(proc_ms, 50)),
        'process_ms_p95': float(np.percentile(proc_ms, 95)),
        'speed_error_mps_median': float(np.median(c_err)),
        'confidence_median': float(np.median(confidence)),
        'n': n,
    })
    if method == 'nn':
        result['inference_ms_p50'] = float(np.percentile(inference, 50))
        result['inference_ms_p95'] = float(np.percentile(inference, 95))
        wide = np.array(wide, dtype=bool)
        result['wide_search_rate'] = float(np.mean(wide[:, 0]))
        result['wide_kept_rate'] = float(np.mean(wide[:, 1]))
    return result


def _drawn_frames(room: Room, array: ArrayGeometry, chirp: Chirp, fs_hz: float,
                  processor: EchoProcessor, scenario: Scenario, n: int, seed: int,
                  model_error: ModelError | None, draws: int, max_order: int,
                  calibration_frames: int, *frame_args
                  ) -> Iterator[tuple[Room, np.ndarray, np.ndarray, float, float, float,
                                      tuple[float, float]]]:
    """:func:`random_frames` of :func:`evaluate_fixes`, ``n`` in all, spread over ``draws``
    worlds drawn from ``model_error`` (none: the files' own), each with the drawn array's
    roll and pitch (rad) last; each position is in the room file's frame. The processor is
    calibrated on each world's array first when ``calibration_frames`` says so (one draw
    keeps the seeds of a single world)."""
    if draws < 1 or (model_error is None and draws != 1):
        raise ValueError(f'model_error_draws must be >= 1 (1 without a model error), got '
                         f'{draws}')
    counts = np.diff(np.round(np.linspace(0, n, draws + 1)).astype(int))
    for j, count in enumerate(counts):
        world, origin, drawn, tilt = room, np.zeros(3), scenario, (0.0, 0.0)
        if model_error is not None:
            error = replace(model_error, seed=model_error.seed + j)
            truth = error.draw_room(room)
            world, origin = truth.room, truth.origin_m
            if error.changes_array:
                hardware = error.draw_hardware(array)
                drawn = replace(scenario, hardware=hardware)
                tilt = (hardware.roll_rad, hardware.pitch_rad)
        simulator = EchoSimulator(world, array, chirp, fs_hz, max_order=max_order)
        frame_seed = seed if j == 0 else [seed, j]
        if calibration_frames > 0:
            calibration_seed = ([seed, j, CALIBRATION_SEED_OFFSET] if j
                                else seed + CALIBRATION_SEED_OFFSET)
            processor.set_calibration(self_calibrate(simulator, processor, drawn,
                                                     calibration_frames, calibration_seed))
        for shown, frame, position, *rest in random_frames(simulator, drawn, count, frame_seed,
                                                          *frame_args):
            yield (shown, frame, position + origin, *rest, tilt)


def calibrate_covariance(model_path: str | Path, room: Room, array: ArrayGeometry,
                         chirp: Chirp, scenario: Scenario, n: int, seed: int,
                         heading_noise_deg: float = 1.0, furniture_shift_m: float = 0.0,
                         write: bool = True) -> dict[str, float]:
    """Fit the scale of the physics covariance that the ``nn`` method reports for a right fix,
    on ``n`` frames of ``scenario``, and store it in the checkpoint as ``covariance_scale``.

    The physics covariance (Fisher information scaled by the residual) is a model's; on frames
    whose fix is right (within 10 cm) the squared Mahalanobis distances of the errors should
    follow chi2(3): the scale makes their 95th percentile chi2(3)'s. Wrong fixes are the
    ranker's mixture's business (:meth:`PhysicsLocalizer._region_covariance`), not this
    scale's.

    :return: ``covariance_scale``, the frames used and the coverage before and after.
    """
    import torch
    details: dict = {}
    evaluate_fixes(room, array, chirp, scenario, n, seed, method='nn', model_path=model_path,
                   heading_noise_deg=heading_noise_deg, furniture_shift_m=furniture_shift_m,
                   details=details)
    ckpt = torch.load(model_path, map_location='cpu', weights_only=True)
    old = float(ckpt.get('covariance_scale', 1.0))
    errors = details['estimate_m'] - details['truth_m']
    right = details['errors_m'] < 0.10
    if np.count_nonzero(right) < 20:
        raise ValueError(f'only {np.count_nonzero(right)} of {n} fixes are right; too few to '
                         'calibrate on')
    d2 = np.einsum('ni,nij,nj->n', errors, np.linalg.inv(details['covariance_m2']), errors)
    chi2_95 = stats.chi2.ppf(0.95, 3)
    # Distances were measured under the old scale; the fix's share dominates a right frame.
    scale = float(np.clip(old * np.percentile(d2[right], 95) / chi2_95, 0.05, 20.0))
    result = {'covariance_scale': scale, 'previous_scale': old, 'frames': n,
              'right_frames': int(np.count_nonzero(right)),
              'coverage_95_before': float(np.mean(d2 <= chi2_95)),
              'coverage_95_right_after': float(np.mean(d2[right] * old / scale <= chi2_95))}
    if write:
        ckpt['covariance_scale'] = scale
        ckpt['covariance_calibration'] = {**result, 'seed': seed, 'snr_db': scenario.snr_db,
                                          'heading_noise_deg': heading_noise_deg,
                                          'furniture_shift_m': furniture_shift_m}
        tmp = Path(str(model_path) + '.tmp')
        torch.save(ckpt, tmp)
        tmp.replace(model_path)
    return result


def evaluate_tracked(room: Room, array: ArrayGeometry, chirp: Chirp, scenario: Scenario,
                     n_frames: int | None, seed: int, fs_hz: float = 250e3,
                     frame_rate_hz: float = 25.0,
                     assumed_temperature_c: float | None = None,
                     optimization_level: str = 'balanced',
                     tracker: PoseTracker | None = None, heading_noise_deg: float = 0.0,
                     details: dict | None = None, method: str = 'physics',
                     model_path: str | Path | None = None,
                     furniture_shift_m: float = 0.0,
                     furniture_known: bool = False,
                     live_survey_s: float | None = None,
                     wide_search: bool = True) -> dict[str, float]:
    """Localize frames along a trajectory and track them: per-frame and tracked accuracy.

    The array follows :func:`tracked_path` (a figure-of-eight, heading along the path, given
    to the localizer), one frame every ``1 / frame_rate_hz`` from t = 0. Every fix goes to the
    :class:`PoseTracker`; the tracked position is its published track after the fix.

    :param room: the room (``W, L`` are its plan's extents).
    :param array: the array.
    :param chirp: the ping.
    :param scenario: SNR, true temperature, gain mismatch, dead channel, clutter.
    :param n_frames: number of frames; ``None``: one lap of the path.
    :param seed: seed of the noise.
    :param fs_hz: sampling rate, Hz.
    :param frame_rate_hz: frames per second.
    :param assumed_temperature_c: temperature given to the localizer; ``None`` is the room's.
    :param optimization_level: of the localizer.
    :param tracker: the filter (``None``: :class:`PoseTracker` for the room).
    :param heading_noise_deg: std of the error of the heading given to the localizer, deg.
    :param details: if a dict, receives per-frame arrays ``t_s``, ``truth_m``,
        ``estimate_m``, ``tracked_m``, ``tracked_covariance_m2``, ``errors_m``,
        ``tracked_errors_m`` (for plots).
    :param method: ``'physics'`` or ``'nn'``
        (:func:`~echoloc_ros.core.pipeline.make_localizer`).
    :param model_path: the ``nn`` method's checkpoint.
    :param furniture_shift_m: the furniture stands moved by up to this on each axis from
        where the room file has it (once, for the whole run), kept off the trajectory.
    :param furniture_known: the localizer is told where it stands (:func:`evaluate_fixes`).
    :param live_survey_s: if set, a :class:`~echoloc_ros.core.survey.LiveSurvey` keeps the
        localizer's room up to date from the tracked frames, placing the boxes every this many
        seconds (what the ``furniture_survey`` node does).
    :param wide_search: as :func:`evaluate_fixes`.
    :return: per-frame :func:`error_metrics`, the same for the track with a ``tracked_``
        prefix, ``tracked_max_cm``, ``rejected_rate`` (fixes the gate refused),
        ``latency_ms_p50``/``latency_ms_p95`` of the localizer and ``n`` (frames localized:
        a pose where moved boxes hide every wall gives none).
    """
    if n_frames is not None and n_frames < 1:
        raise ValueError(f'n_frames must be >= 1, got {n_frames}')
    if frame_rate_hz <= 0:
        raise ValueError(f'frame_rate_hz must be positive, got {frame_rate_hz}')
    rng = np.random.default_rng(seed)
    lo = room.vertices_m.min(axis=0)
    moving = furniture_shift_m > 0 and bool(room.furniture)
    path = tracked_path(room)
    if n_frames is None:
        # One lap: every stretch of the path, the hard ones included.
        n_frames = int(np.ceil(path.period_s * frame_rate_hz))
    if moving:
        scenario = replace(scenario, furniture=_moved_off_path(room, path, lo, rng,
                                                               furniture_shift_m))
    elif _on_path(scenario.furniture or room.furniture, path, lo):
        raise ValueError(f'room {room.name!r}: a box stands within 0.2 m of the tracked path')
    simulator = EchoSimulator(room, array, chirp, fs_hz)
    processor = EchoProcessor(chirp, fs_hz, array=array)
    told = room
    if furniture_known and scenario.furniture is not None:
        told = replace(room, furniture=scenario.furniture)
    tracker = PoseTracker(room_volume_m3=room.volume_m3) if tracker is None else tracker
    tracker.reset()
    pipeline = make_pipeline(method, told, array, chirp, fs_hz, processor, optimization_level,
                             model_path, wide_search, tracker=tracker)
    live = None
    if live_survey_s is not None:
        from echoloc_ros.core.survey import FurnitureSurvey, LiveSurvey
        live = LiveSurvey(FurnitureSurvey(told, array, chirp, fs_hz, processor=processor),
                          period_s=live_survey_s)
    errors, inside, tracked, tracked_inside, rejected, latency = ([] for _ in range(6))
    truths, estimates, tracks, track_covs = [], [], [], []
    heading_noise_rad = np.deg2rad(heading_noise_deg)
    # The localizer is told the heading's std, as an IMU reports it; none: its default prior.
    yaw_std_rad = heading_noise_rad if heading_noise_deg > 0 else None
    times = []
    for t_s, position, features, told_yaw in _drive(path, lo, simulator, processor, scenario,
                                                    rng, n_frames, frame_rate_hz,
                                                    heading_noise_rad):
        times.append(t_s)
        t0 = time.perf_counter()
        out = pipeline.step(t_s, features, told_yaw, yaw_std_rad, assumed_temperature_c)
        latency.append(1e3 * (time.perf_counter() - t0))
        estimate, track, track_cov = out.fix.estimate, out.position_m, out.covariance_m2
        error = estimate.position_m - position
        errors.append(float(np.linalg.norm(error)))
        inside.append(_inside_95(error, estimate.covariance_m2))
        rejected.append(not out.accepted)
        if live is not None:
            live.offer(t_s, features, track, track_cov, out.yaw_rad, out.yaw_variance_rad2,
                       assumed_temperature_c)
            if live.due(t_s):
                now = live.place(t_s)
                if now is not None:
                    pipeline.take_room(now)
        track_error = track - position
        tracked.append(float(np.linalg.norm(track_error)))
        tracked_inside.append(_inside_95(track_error, track_cov))
        truths.append(position)
        estimates.append(estimate.position_m)
        tracks.append(track)
        track_covs.append(track_cov)
    if details is not None:
        details.update(t_s=np.array(times), truth_m=np.array(truths),
                       estimate_m=np.array(estimates), tracked_m=np.array(tracks),
                       tracked_covariance_m2=np.array(track_covs),
                       errors_m=np.array(errors), tracked_errors_m=np.array(tracked))
    result = error_metrics(np.array(errors), np.array(inside))
    result.update({f'tracked_{key}': value for key, value in
                   error_metrics(np.array(tracked), np.array(tracked_inside)).items()})
    result.update({
        'tracked_max_cm': float(100.0 * np.max(tracked)),
        'rejected_rate': float(np.mean(rejected)),
        'latency_ms_p50': float(np.percentile(latency, 50)),
        'latency_ms_p95': float(np.percentile(latency, 95)),
        'n': len(errors),
    })
    if live is not None:
        result['live_survey_placements'] = live.placements
        standing = room.furniture if scenario.furniture is None else scenario.furniture
        result['live_survey_box_error_cm'] = {
            now.name: round(100.0 * float(np.linalg.norm(now.min_m[:2] - truth.min_m[:2])), 2)
            for now, truth in zip(live.room.furniture, standing)}
    return result


def _drive(path: LissajousTrajectory, origin_xy: np.ndarray, simulator: EchoSimulator,
           processor: EchoProcessor, scenario: Scenario, rng: np.random.Generator,
           n_frames: int, frame_rate_hz: float, heading_noise_rad: float
           ) -> Iterator[tuple[float, np.ndarray, EchoFeatures, float]]:
    """The frames of a drive along ``path`` (its origin at ``origin_xy`` in the room), one
    every ``1 / frame_rate_hz`` from t = 0: ``(t_s, position_m, features, heading given)``,
    the heading with an error of ``heading_noise_rad`` std. A pose where boxes hide every wall
    gives no frame (the simulator has no echo to set the SNR by)."""
    offset = np.append(origin_xy, 0.0)
    for k in range(n_frames):
        t_s = k / frame_rate_hz
        position, yaw = path.pose(t_s)
        position = position + offset
        try:
            features = processor.process(simulator.simulate(position, yaw, scenario, rng))
        except ValueError:
            continue
        yield t_s, position, features, yaw + heading_noise_rad * rng.standard_normal()


def tracked_path(room: Room) -> LissajousTrajectory:
    """The figure-of-eight of the tracked evaluations: 0.3 m high at 0.3 m/s, 0.6 m from the
    walls; 1.2 m in a room with furniture, where the boxes stand by the walls: from 0.6 m the
    path runs through the furnished room's sofa and grazes its cabinet (a pose no robot
    reaches, whose echoes are the inside of a box), and a box moved up to 1 m from its place
    by a wall can stand off the 1.2 m path (from 0.6 m, none of 20 layouts could)."""
    extent = tuple(room.vertices_m.max(axis=0) - room.vertices_m.min(axis=0))
    return LissajousTrajectory.inside(extent, margin_m=1.2 if room.furniture else 0.6,
                                      height_m=0.3, speed_mps=0.3)


def _path_points(path: LissajousTrajectory, origin_xy: np.ndarray) -> np.ndarray:
    """Points of ``path`` (its origin at ``origin_xy``) every 0.1 s for 200 s ``(2001, 3)``."""
    points = path.positions(np.linspace(0.0, 200.0, 2001))
    points[:, :2] += origin_xy
    return points


def _near(boxes: list, points: np.ndarray) -> bool:
    """Whether any of ``boxes`` stands within 0.2 m of one of ``points``."""
    return any(np.any(box.contains(points, 0.2)) for box in boxes)


def _on_path(boxes: list, path: LissajousTrajectory, origin_xy: np.ndarray) -> bool:
    """Whether any of ``boxes`` stands within 0.2 m of ``path`` (its origin at ``origin_xy``)."""
    return _near(boxes, _path_points(path, origin_xy))


def _moved_off_path(room: Room, path: LissajousTrajectory, origin_xy: np.ndarray,
                    rng: np.random.Generator, max_shift_m: float) -> list:
    """The room's furniture moved, redrawn until no box stands within 0.2 m of the path.

    :raises ValueError: no such layout in 200 draws.
    """
    points = _path_points(path, origin_xy)
    for _ in range(200):
        moved = room.rearranged(rng, max_shift_m)
        if not _near(moved, points):
            return moved
    raise ValueError(f'no layout of the furniture of room {room.name!r} moved by up to '
                     f'{max_shift_m} m keeps 0.2 m off the tracked path in 200 draws')


def evaluate_survey(room: Room, array: ArrayGeometry, chirp: Chirp, snr_db: float,
                    n_layouts: int, survey_s: float, n_test: int, seed: int,
                    furniture_shift_m: float = 1.0, heading_noise_deg: float = 1.0,
                    method: str = 'nn', model_path: str | Path | None = None,
                    survey_every: int = 5, max_pose_std_m: float = 0.02,
                    max_yaw_std_deg: float = 0.5,
                    fs_hz: float = 250e3, frame_rate_hz: float = 25.0,
                    live_survey_s: float | None = None) -> dict:
    """The furniture moved since the room file, then brought up to date by
    :class:`~echoloc_ros.core.survey.FurnitureSurvey` from the robot's own tracked poses.

    For each of ``n_layouts`` layouts (the room's furniture moved by up to
    ``furniture_shift_m``, kept off the path), the array drives the trajectory of
    :func:`evaluate_tracked` for ``survey_s`` seconds, localized with the stale room file and
    tracked; every ``survey_every``-th frame whose tracked position has a standard deviation
    below ``max_pose_std_m`` on every axis, and whose fix the tracker took with a heading
    standard deviation below ``max_yaw_std_deg``, goes to the survey, at the tracked position
    and the fix's heading (what ``echoloc survey`` keeps of a recording). Then ``n_test``
    random poses in all (spread over the layouts) are localized with the stale file, the
    surveyed one, and the true layout (the same frames for all three).

    With ``live_survey_s``, the drive's localizer keeps its room up to date as it goes
    (:class:`~echoloc_ros.core.survey.LiveSurvey`, placing the boxes every this many seconds,
    as the ``furniture_survey`` node does), and the test frames are also localized with
    the room it has at the end of the drive (``live_`` metrics).

    :return: ``stale_``, ``surveyed_`` and ``known_`` :func:`error_metrics` (each with its
        ``gross_rate_10cm_ci95``) over all test frames; ``box_error_cm_median`` and ``_p95``
        (plan error of each box the survey saw), ``box_error_cm_median_by_box``,
        ``boxes_seen`` and ``boxes`` (counts),
        ``survey_frames_mean`` (frames surveyed per layout), ``survey_ms_mean`` (the survey's
        own time, per layout), ``n`` (test frames).
    """
    from echoloc_ros.core.survey import FurnitureSurvey, LiveSurvey
    if min(n_layouts, n_test) < 1 or survey_s <= 0 or survey_every < 1:
        raise ValueError(f'n_layouts, n_test and survey_every must be >= 1 and survey_s > 0, '
                         f'got {n_layouts}, {n_test}, {survey_every} and {survey_s}')
    if not room.furniture or furniture_shift_m <= 0:
        raise ValueError(f'a survey is for moved furniture: room {room.name!r} has '
                         f'{len(room.furniture)} boxes, furniture_shift_m {furniture_shift_m}')
    lo = room.vertices_m.min(axis=0)
    path = tracked_path(room)
    simulator = EchoSimulator(room, array, chirp, fs_hz)
    processor = EchoProcessor(chirp, fs_hz, array=array)
    stale = make_pipeline(method, room, array, chirp, fs_hz, processor,
                          model_path=model_path).localizer
    survey = FurnitureSurvey(room, array, chirp, fs_hz, processor=processor,
                             max_shift_m=furniture_shift_m)
    heading_rad = np.deg2rad(heading_noise_deg)
    yaw_std = heading_rad if heading_noise_deg > 0 else None
    errors = {k: [] for k in ('stale', 'surveyed', 'known')
              + (('live',) if live_survey_s is not None else ())}
    inside = {k: [] for k in errors}
    box_errors, n_seen, n_boxes, n_survey, survey_ms = [], 0, 0, [], []
    live_box_errors: list[float] = []
    for layout in range(n_layouts):
        rng = np.random.default_rng([seed, layout])
        moved = _moved_off_path(room, path, lo, rng, furniture_shift_m)
        world = replace(room, furniture=moved)
        scenario = Scenario(snr_db=snr_db, furniture=moved)
        driving = Pipeline(stale, PoseTracker(room_volume_m3=room.volume_m3))
        frames = []
        drive = _drive(path, lo, simulator, processor, scenario, rng,
                       int(round(survey_s * frame_rate_hz)), frame_rate_hz, heading_rad)
        live = None if live_survey_s is None else LiveSurvey(survey, period_s=live_survey_s)
        for t_s, _, features, given in drive:
            out = driving.step(t_s, features, given, yaw_std)
            track, track_cov = out.position_m, out.covariance_m2
            heading, yaw_var = out.yaw_rad, out.yaw_variance_rad2
            if live is not None:
                live.offer(t_s, features, track, track_cov, heading, yaw_var)
                if live.due(t_s) and live.place(t_s) is not None:
                    driving.take_room(live.room)
            if (round(t_s * frame_rate_hz) % survey_every == 0
                    and np.all(np.diag(track_cov) <= max_pose_std_m ** 2)
                    and yaw_var <= np.deg2rad(max_yaw_std_deg) ** 2):
                frames.append((features, track, heading))
        t0 = time.perf_counter()
        result = survey.run(frames)
        survey_ms.append(1e3 * (time.perf_counter() - t0))
        n_survey.append(len(frames))
        for fix, box, truth in zip(result.boxes, room.furniture, moved):
            n_boxes += 1
            if fix.seen:
                n_seen += 1
                box_errors.append((box.name, float(np.linalg.norm(
                    fix.shift_m - (truth.min_m[:2] - box.min_m[:2])))))
        told = {'stale': stale, 'surveyed': stale.with_room(result.room),
                'known': stale.with_room(world)}
        if live is not None:
            if live.n_frames:
                live.place(survey_s)
            told['live'] = stale.with_room(live.room)
            if live.result is not None:
                live_box_errors += [float(np.linalg.norm(fix.shift_m - (
                    truth.min_m[:2] - box.min_m[:2]))) for fix, box, truth in zip(
                        live.result.boxes, room.furniture, moved) if fix.seen]
        test_rng = np.random.default_rng([seed, layout, 1])
        for _ in range(int(np.ceil(n_test / n_layouts))):
            frame, position, yaw = simulator.simulate_random_pose(world, scenario, test_rng)
            features = processor.process(frame)
            given = yaw + heading_rad * test_rng.standard_normal()
            for key, localizer in told.items():
                estimate = localizer.localize(features, given, yaw_std_rad=yaw_std)
                error = estimate.position_m - position
                errors[key].append(float(np.linalg.norm(error)))
                inside[key].append(_inside_95(error, estimate.covariance_m2))
    out: dict = {}
    for key in errors:
        metrics = error_metrics(np.array(errors[key]), np.array(inside[key]))
        gross = int(np.sum(np.array(errors[key]) > 0.1))
        metrics['gross_rate_10cm_ci95'] = rate_interval(gross, len(errors[key]))
        out.update({f'{key}_{name}': value for name, value in metrics.items()})
    box_cm = 100.0 * np.array([e for _, e in box_errors] or [np.nan])
    by_box = {box.name: round(float(np.median([100.0 * e for name, e in box_errors
                                               if name == box.name])), 2)
              for box in room.furniture if any(name == box.name for name, _ in box_errors)}
    out.update(box_error_cm_median=float(np.median(box_cm)),
               box_error_cm_p95=float(np.percentile(box_cm, 95)),
               box_error_cm_median_by_box=by_box, boxes_seen=n_seen,
               boxes=n_boxes, survey_frames_mean=float(np.mean(n_survey)),
               survey_ms_mean=float(np.mean(survey_ms)), n=len(errors['stale']))
    if live_survey_s is not None:
        live_cm = 100.0 * np.array(live_box_errors or [np.nan])
        out.update(live_box_error_cm_median=float(np.median(live_cm)),
                   live_box_error_cm_p95=float(np.percentile(live_cm, 95)),
                   live_boxes_seen=len(live_box_errors))
    return out
