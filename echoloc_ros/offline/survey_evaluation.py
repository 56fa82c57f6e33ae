"""The furniture survey measured: the furniture moved since the room file, then brought up to
date from the robot's own tracked poses (``echoloc evaluate --survey-s``)."""

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.pipeline import Pipeline, make_pipeline
from echoloc_ros.core.room import Room
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.offline.evaluation import error_metrics, holds_truth_95, rate_interval
from echoloc_ros.offline.tracked_path import drive, moved_off_path, tracked_path
from echoloc_ros.sim.simulator import EchoSimulator, Scenario


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
    _check(room, n_layouts, survey_s, n_test, furniture_shift_m, survey_every)
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
    keys = ('stale', 'surveyed', 'known') + (() if live_survey_s is None else ('live',))
    errors, inside = {k: [] for k in keys}, {k: [] for k in keys}
    box_errors, n_boxes, n_survey, survey_ms = [], 0, [], []
    live_box_errors = None if live_survey_s is None else []
    for layout in range(n_layouts):
        rng = np.random.default_rng([seed, layout])
        moved = moved_off_path(room, path, lo, rng, furniture_shift_m)
        world = replace(room, furniture=moved)
        scenario = Scenario(snr_db=snr_db, furniture=moved)
        frames = drive(path, lo, simulator, processor, scenario, rng,
                       int(round(survey_s * frame_rate_hz)), frame_rate_hz, heading_rad)
        live = None if live_survey_s is None else LiveSurvey(survey, period_s=live_survey_s)
        kept = _survey_frames(Pipeline(stale, PoseTracker(room_volume_m3=room.volume_m3)),
                              frames, live, frame_rate_hz, survey_every, max_pose_std_m,
                              max_yaw_std_deg, yaw_std)
        t0 = time.perf_counter()
        result = survey.run(kept)
        survey_ms.append(1e3 * (time.perf_counter() - t0))
        n_survey.append(len(kept))
        n_boxes += len(room.furniture)
        box_errors += [(box.name, _box_error_m(fix, box, truth)) for fix, box, truth
                       in zip(result.boxes, room.furniture, moved) if fix.seen]
        told = {'stale': stale, 'surveyed': stale.with_room(result.room),
                'known': stale.with_room(world)}
        if live is not None:
            told['live'] = stale.with_room(_live_room_at_end(live, survey_s))
            if live.result is not None:
                live_box_errors += [_box_error_m(fix, box, truth) for fix, box, truth
                                    in zip(live.result.boxes, room.furniture, moved)
                                    if fix.seen]
        _localize_tests(told, simulator, processor, world, scenario,
                        np.random.default_rng([seed, layout, 1]),
                        int(np.ceil(n_test / n_layouts)), heading_rad, yaw_std, errors, inside)
    return _survey_result(room, errors, inside, box_errors, n_boxes, n_survey, survey_ms,
                          live_box_errors)


def _check(room: Room, n_layouts: int, survey_s: float, n_test: int,
           furniture_shift_m: float, survey_every: int) -> None:
    if min(n_layouts, n_test) < 1 or survey_s <= 0 or survey_every < 1:
        raise ValueError(f'n_layouts, n_test and survey_every must be >= 1 and survey_s > 0, '
                         f'got {n_layouts}, {n_test}, {survey_every} and {survey_s}')
    if not room.furniture or furniture_shift_m <= 0:
        raise ValueError(f'a survey is for moved furniture: room {room.name!r} has '
                         f'{len(room.furniture)} boxes, furniture_shift_m {furniture_shift_m}')


def _live_room_at_end(live, survey_s: float) -> Room:
    """The live survey's room at the end of the drive: placed once more from every frame it
    kept, if it kept any."""
    if live.n_frames:
        live.place(survey_s)
    return live.room


def _survey_frames(driving: Pipeline, frames, live, frame_rate_hz: float, survey_every: int,
                   max_pose_std_m: float, max_yaw_std_deg: float, yaw_std) -> list:
    """Drive with the stale room file, tracked; return the frames the survey keeps: every
    ``survey_every``-th whose track and heading are sure, at the tracked position and the
    fix's heading (what ``echoloc survey`` keeps of a recording). A live survey, if any,
    keeps the driving localizer's room up to date on the way."""
    kept = []
    for t_s, _, features, given in frames:
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
            kept.append((features, track, heading))
    return kept


def _box_error_m(fix, box, truth) -> float:
    """Plan error of a placed box: its shift against the one from the file to where it stands."""
    return float(np.linalg.norm(fix.shift_m - (truth.min_m[:2] - box.min_m[:2])))


def _localize_tests(told: dict, simulator: EchoSimulator, processor: EchoProcessor,
                    world: Room, scenario: Scenario, rng: np.random.Generator, n: int,
                    heading_rad: float, yaw_std, errors: dict, inside: dict) -> None:
    """Localize ``n`` random poses of ``world`` with each of ``told``'s localizers (the same
    frames for all); add each one's errors and honesty to ``errors`` and ``inside``."""
    for _ in range(n):
        frame, position, yaw = simulator.simulate_random_pose(world, scenario, rng)
        features = processor.process(frame)
        given = yaw + heading_rad * rng.standard_normal()
        for key, localizer in told.items():
            estimate = localizer.localize(features, given, yaw_std_rad=yaw_std)
            error = estimate.position_m - position
            errors[key].append(float(np.linalg.norm(error)))
            inside[key].append(holds_truth_95(error, estimate.covariance_m2))


def _survey_result(room: Room, errors: dict, inside: dict, box_errors: list, n_boxes: int,
                   n_survey: list, survey_ms: list,
                   live_box_errors: list[float] | None) -> dict:
    """What :func:`evaluate_survey` returns."""
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
               box_error_cm_median_by_box=by_box, boxes_seen=len(box_errors),
               boxes=n_boxes, survey_frames_mean=float(np.mean(n_survey)),
               survey_ms_mean=float(np.mean(survey_ms)), n=len(errors['stale']))
    if live_box_errors is not None:
        live_cm = 100.0 * np.array(live_box_errors or [np.nan])
        out.update(live_box_error_cm_median=float(np.median(live_cm)),
                   live_box_error_cm_p95=float(np.percentile(live_cm, 95)),
                   live_boxes_seen=len(live_box_errors))
    return out
