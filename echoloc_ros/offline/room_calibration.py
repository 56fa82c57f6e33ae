"""How well :class:`~echoloc_ros.core.room_calibration.RoomCalibration` finds a room whose
surfaces are off the file: a drive with the stale file, the shell solved from it, then the same
random frames localized with the stale file, the calibrated room and the true room."""

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import (EchoFeatures, EchoProcessor,
                                              direct_explained)
from echoloc_ros.core.geometry import room_planes
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import Room
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.receiver_calibration import (calibrated_from_fixes, calibrated_localizer,
                                                   equalised_with)
from echoloc_ros.core.room_calibration import (CALIBRATED_ARRAY_STD_M,
                                               CALIBRATED_WALL_ARRAY_STD_M, TEMPERATURE_STD_C,
                                               RoomCalibration, RoomCalibrationResult)
from echoloc_ros.core.thermometer import thermometer_draw_c
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.offline.evaluation import (CALIBRATION_SEED_OFFSET, CHI2_999_3DOF,
                                            error_metrics, holds_truth_95, random_frames,
                                            rate_interval, self_calibrate)
from echoloc_ros.offline.tracked_path import drive, tracked_path
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

# Seed stride between the worlds of one evaluation (drive, calibration and scored frames).
WORLD_SEED_STRIDE = 7919


def aligned_surface_errors(estimated: Room, truth: Room) -> tuple[np.ndarray, np.ndarray]:
    """Each surface of ``estimated`` against ``truth`` (same plan topology) after the
    translation that aligns them best: echoes tell a room's shape, not where its frame lies.

    :return: signed errors along each surface's normal ``(S,)`` (walls, floor, ceiling), m,
        and the translation: a point ``p`` of ``truth``'s frame is ``p + t`` in
        ``estimated``'s.
    """
    ours, theirs = room_planes(estimated), room_planes(truth)
    normals = np.array([p.normal for p in theirs])
    gap = np.array([a.offset - b.offset for a, b in zip(ours, theirs)])
    t = np.linalg.lstsq(normals, gap, rcond=None)[0]
    return gap - normals @ t, t


def _drive_frames(room: Room, origin_m: np.ndarray, simulator: EchoSimulator,
                  processor: EchoProcessor, scenario: Scenario, n: int, frame_rate_hz: float,
                  heading_rad: float, seed: int) -> Iterator[tuple[float, EchoFeatures, float]]:
    """The frames of a calibration drive: ``(t_s, features, heading given)``. In a shoebox
    along :func:`~echoloc_ros.offline.tracked_path.tracked_path`; the figure-of-eight does not
    fit inside other plans, whose frames are taken at random poses instead."""
    rng = np.random.default_rng([seed, 1])
    if room.is_shoebox:
        start = room.vertices_m.min(axis=0) - origin_m[:2]
        for t_s, _, features, given in drive(tracked_path(room), start, simulator, processor,
                                             scenario, rng, n, frame_rate_hz, heading_rad):
            yield t_s, features, given
        return
    for k, (_, frame, _, yaw, draw, _) in enumerate(random_frames(simulator, scenario, n,
                                                                  [seed, 1])):
        yield k / frame_rate_hz, processor.process(frame), yaw + heading_rad * draw


def evaluate_room_calibration(room: Room, array: ArrayGeometry, chirp: Chirp, snr_db: float,
                              model_error: ModelError, drive_s: float, n: int, seed: int,
                              heading_noise_deg: float = 1.0, fs_hz: float = 250e3,
                              frame_rate_hz: float = 25.0, temperature_c: float | None = None,
                              calibration_frames: int = 0, estimate_tilt: bool = False,
                              receiver_frames: int = 0,
                              temperature_std_c: float = TEMPERATURE_STD_C,
                              receiver_passes: int = 0, told_temperature_c: float | None = None,
                              thermometer_std_c: float | None = None,
                              ruler: str = 'auto', also_rulers: tuple[str, ...] = ()
                              ) -> dict:
    """Drive :func:`~echoloc_ros.offline.tracked_path.tracked_path` for ``drive_s`` in the room
    drawn from ``model_error`` (its surfaces off the file; a plan other than a shoebox:
    random poses), localized and tracked with the file; every frame the tracker takes goes to
    a :class:`RoomCalibration` at its fix. Then ``n`` random frames of that room are localized
    with the file (errors in the file's frame), the calibrated room (errors in its frame,
    aligned with the truth's by :func:`aligned_surface_errors`) and the true room.

    The array is the one ``model_error`` draws (transducers, receivers, tilt), in air at
    ``temperature_c`` (``None``: the file's; with ``model_error.air_std_c``, drawn about it
    per world, :meth:`ModelError.draw_air_c`); the localizer and the calibration are told
    ``told_temperature_c``, a thermometer's reading (with ``thermometer_std_c``, drawn per
    world about the air, :func:`~echoloc_ros.core.thermometer.thermometer_draw_c`), or the
    file's. A frame whose direct arrival the processor's model does not explain is withheld,
    as the node withholds it.

    With ``model_error.draws`` > 1 each world (seeds ``model_error.seed`` on) has its own
    drive and calibration, the ``n`` frames are spread over the worlds and the figures are
    over all of them: a doubt shared by a whole world (the air's, the calibrated room's
    scale) is judged where it is realized, not in one world.

    :param calibration_frames: frames at other poses the processor calibrates the array on
        before the drive (:func:`~echoloc_ros.offline.evaluation.self_calibrate`; 0: none).
    :param receiver_frames: frames the receivers' phase centres are calibrated on (every
        localizer then reads them): with ``receiver_passes`` 0 at known poses in the room file
        before the drive (a room off its file biases them), else :func:`receivers_then_room`
        in ``receiver_passes`` passes (after the room).
    :param temperature_std_c, ruler: the room calibration's doubt of the air's temperature
        (degC) and its ruler (:data:`~echoloc_ros.core.room_calibration.RULERS`).
    :param estimate_tilt: every localizer estimates the array's roll and pitch from the floor
        and ceiling echoes (no IMU reports them).
    :param also_rulers: rulers solved from the same drive besides ``ruler`` (its frames and
        scans do not depend on the ruler: only the scale the solution keeps does), each
        scored on the same frames as ``calibrated_{ruler}_``, with
        ``surface_error_mm_max_{ruler}``; the receivers calibrated after the room
        (``receiver_passes`` > 0) depend on the room solved, so these exclude them.
    :return: ``stale_``, ``calibrated_`` and ``perfect_`` :func:`error_metrics` (with
        ``gross_rate_10cm_ci95`` and ``outside_999``), ``surface_error_mm_max`` (largest
        over the worlds), ``drive_frames`` and ``withheld_rate`` of the scored frames; of one
        world also ``surface_error_mm`` per surface, the calibration
        (:meth:`RoomCalibrationResult.to_dict`), ``calibration_frames``, with
        ``receiver_passes`` ``receivers`` (:func:`receivers_then_room`) and the drawn
        ``air_c`` / ``thermometer_c`` where drawn; of several, ``worlds``: each one's
        summary (:func:`_world_summary`).
    """
    _refuse_exclusive(also_rulers, receiver_passes, told_temperature_c, thermometer_std_c)
    counts = np.diff(np.round(np.linspace(0, n, model_error.draws + 1)).astype(int))
    settings = {'heading_noise_deg': heading_noise_deg, 'fs_hz': fs_hz, 'ruler': ruler,
                'frame_rate_hz': frame_rate_hz, 'calibration_frames': calibration_frames,
                'estimate_tilt': estimate_tilt, 'receiver_frames': receiver_frames,
                'temperature_std_c': temperature_std_c, 'receiver_passes': receiver_passes,
                'also_rulers': tuple(also_rulers)}
    worlds = []
    for j, count in enumerate(counts):
        error = replace(model_error, seed=model_error.seed + j)
        air_c = temperature_c
        if error.air_std_c > 0:
            air_c = error.draw_air_c(room.temperature_c if air_c is None else air_c)
        told_c = told_temperature_c
        if thermometer_std_c is not None:
            told_c = thermometer_draw_c(room.temperature_c if air_c is None else air_c,
                                        thermometer_std_c, error.seed)
        # One draw keeps the seeds of a single world.
        worlds.append(_world(room, array, chirp, snr_db, error, drive_s, int(count),
                             seed + WORLD_SEED_STRIDE * j, air_c, told_c, settings))
    return _pooled(worlds, n)


def _refuse_exclusive(also_rulers: tuple[str, ...], receiver_passes: int,
                      told_temperature_c: float | None,
                      thermometer_std_c: float | None) -> None:
    """A ``ValueError`` naming the options of :func:`evaluate_room_calibration` that exclude
    each other."""
    if also_rulers and receiver_passes > 0:
        raise ValueError(f'also_rulers {also_rulers} need receiver_passes 0 (the receivers '
                         f'calibrated in the room solved depend on its ruler); got '
                         f'{receiver_passes}')
    if told_temperature_c is not None and thermometer_std_c is not None:
        raise ValueError(f'a temperature told ({told_temperature_c} degC) and a thermometer '
                         f'drawn ({thermometer_std_c} degC) exclude each other')


def _pooled(worlds: list[tuple[dict, dict]], n: int) -> dict:
    """What :func:`evaluate_room_calibration` returns from its worlds (:func:`_world`): one
    world's figures as they are; of several, the scored frames pooled, the largest surface
    errors, the drives' frames and each world's summary."""
    if len(worlds) == 1:
        columns, out = worlds[0]
        return {**_compared_metrics(columns, n), **out}
    columns = {key: [np.concatenate([w[0][key][i] for w in worlds]) for i in range(3)]
               for key in worlds[0][0] if key != 'withheld'}
    columns['withheld'] = sum(w[0]['withheld'] for w in worlds)
    return {**_compared_metrics(columns, n),
            **{key: max(w[1][key] for w in worlds) for key in worlds[0][1]
               if key.startswith('surface_error_mm_max')},
            'drive_frames': sum(w[1]['drive_frames'] for w in worlds), 'n': n,
            'worlds': [_world_summary(w[1], w[0]) for w in worlds]}


def _world(room: Room, array: ArrayGeometry, chirp: Chirp, snr_db: float,
           model_error: ModelError, drive_s: float, n: int, seed: int,
           air_c: float | None, told_c: float | None, settings: dict) -> tuple[dict, dict]:
    """One world of :func:`evaluate_room_calibration`: its drive, calibration and ``n``
    scored frames in air at ``air_c`` (``None``: the file's), told ``told_c``.

    :param settings: the keyword options of :func:`evaluate_room_calibration` from
        ``heading_noise_deg`` to ``also_rulers``.
    :return: the scored frames' columns (:func:`_compared_columns`) and the world's own
        figures (surfaces, calibration, drive, receivers, drawn air and thermometer).
    """
    s = settings
    truth = model_error.draw_room(room)
    world = truth.room
    simulator = EchoSimulator(world, array, chirp, s['fs_hz'])
    processor = EchoProcessor(chirp, s['fs_hz'], array=array)
    hardware = model_error.draw_hardware(array) if model_error.changes_array else None
    scenario = Scenario(snr_db=snr_db, temperature_c=air_c, hardware=hardware)
    if s['calibration_frames'] > 0:
        processor.set_calibration(self_calibrate(simulator, processor, scenario,
                                                 s['calibration_frames'],
                                                 seed + CALIBRATION_SEED_OFFSET))
    receiver_frames, receiver_passes = s['receiver_frames'], s['receiver_passes']
    if receiver_frames > 0 and receiver_passes == 0:
        known = ((processor.process(frame), position + truth.origin_m, yaw)
                 for _, frame, position, yaw, _, _ in random_frames(
                     simulator, scenario, receiver_frames, [seed + CALIBRATION_SEED_OFFSET, 1]))
        array = calibrated_localizer(
            PhysicsLocalizer(room, array, chirp, s['fs_hz'], processor=processor),
            known)[0].array
        equalised_with(processor, array)
    heading_rad = np.deg2rad(s['heading_noise_deg'])
    after = receiver_frames > 0 and receiver_passes > 0
    driven = _Drive(room, array, processor, s['estimate_tilt'], s['temperature_std_c'], after,
                    told_c, s['ruler'])
    rate = s['frame_rate_hz']
    driven.run(_drive_frames(room, truth.origin_m, simulator, driven, scenario,
                             int(round(drive_s * rate)), rate, heading_rad, seed), heading_rad)
    result = driven.calibration.solve()
    extra = {} if air_c is None or model_error.air_std_c <= 0 else {'air_c': round(air_c, 3)}
    if told_c is not None:
        extra['thermometer_c'] = round(told_c, 3)
    if after:
        array, result, extra['receivers'] = receivers_then_room(
            driven, result, receiver_frames, receiver_passes, heading_rad)
    surface_errors, align = aligned_surface_errors(result.room, world)
    told = {'stale': (room, truth.origin_m), 'calibrated': (result.room, align),
            'perfect': (world, np.zeros(3))}
    others = _other_rulers(driven.calibration, s['also_rulers'], world)
    told.update({f'calibrated_{r}': (other.room, shift) for r, (other, _, shift) in
                 others.items()})
    columns = _compared_columns(told, simulator, array, processor, scenario, (n, seed, rate),
                                heading_rad, s['estimate_tilt'], told_c)
    out = {'surface_error_mm': {name: round(1e3 * float(e), 2)
                                for name, e in zip(world.surface_names, surface_errors)},
           'surface_error_mm_max': float(1e3 * np.max(np.abs(surface_errors))),
           **{f'surface_error_mm_max_{r}': float(1e3 * np.max(np.abs(errors)))
              for r, (_, errors, _) in others.items()},
           **{f'calibration_{r}': other.to_dict() for r, (other, _, _) in others.items()},
           'true_offset_mm': {name: round(1e3 * float(u), 2)
                              for name, u in zip(world.surface_names, truth.offsets_m)},
           'calibration': result.to_dict(), 'drive_frames': driven.calibration.n_frames,
           'calibration_frames': int(np.max(result.frames)), 'n': n, **extra}
    return columns, out


def _other_rulers(calibration: RoomCalibration, rulers: tuple[str, ...], world: Room) -> dict:
    """The drive's calibration solved again with each of ``rulers``: per ruler the result,
    its surfaces' errors against ``world`` and the translation that aligns them
    (:func:`aligned_surface_errors`)."""
    kept, others = calibration.ruler, {}
    try:
        for ruler in rulers:
            calibration.ruler = ruler
            other = calibration.solve()
            others[ruler] = (other, *aligned_surface_errors(other.room, world))
    finally:
        calibration.ruler = kept
    return others


def _world_summary(out: dict, columns: dict) -> dict:
    """One world's line in :func:`evaluate_room_calibration`'s ``worlds``: its seed's figures
    that a doubt shared by the world shows in (the air, the scale the calibration found and
    stated, its largest surface error, the calibrated room's coverage there)."""
    errors, inside, _ = columns['calibrated']
    calibration = out['calibration']
    summary = {key: out[key] for key in ('air_c', 'thermometer_c') if key in out}
    summary.update(surface_error_mm_max=round(out['surface_error_mm_max'], 3),
                   ruler=calibration['ruler'], scale_pct=calibration['scale_pct'],
                   scale_std_pct=calibration.get('scale_std_pct'),
                   implied_c=calibration['temperature_c'],
                   tolerance_mm=round(1e3 * calibration['tolerance_m'], 3),
                   frames=int(len(errors)), drive_frames=out['drive_frames'])
    if len(errors):
        summary.update(calibrated_median_cm=round(100.0 * float(np.median(errors)), 4),
                       calibrated_coverage_95=round(float(np.mean(inside)), 3))
    for key in columns:
        ruler = key.removeprefix('calibrated_')
        if ruler == key or not len(columns[key][0]):
            continue
        other = out[f'calibration_{ruler}']
        summary.update({f'{ruler}_surface_error_mm_max': round(
                            out[f'surface_error_mm_max_{ruler}'], 3),
                        f'{ruler}_kept': other['ruler'], f'{ruler}_scale_pct': other['scale_pct'],
                        f'{ruler}_scale_std_pct': other.get('scale_std_pct'),
                        f'{ruler}_median_cm': round(100.0 * float(np.median(columns[key][0])), 4),
                        f'{ruler}_coverage_95': round(float(np.mean(columns[key][1])), 3)})
    return summary


class _Drive:
    """The calibration drive: each frame localized and tracked with the room file, the frames
    the tracker takes added to a :class:`RoomCalibration` at their fix and kept (raw samples,
    pose) for a second solve with another array (:func:`receivers_then_room`) if ``keep``. It
    processes the frames (``process``) as the processor it wraps. The localizer and the
    calibration are told ``told_temperature_c`` (``None``: the room file's)."""

    def __init__(self, room: Room, array: ArrayGeometry, processor: EchoProcessor,
                 estimate_tilt: bool, temperature_std_c: float, keep: bool = False,
                 told_temperature_c: float | None = None, ruler: str = 'auto') -> None:
        self.room, self.processor = room, processor
        self.ruler = ruler
        self.told_temperature_c = told_temperature_c
        self.temperature_std_c = temperature_std_c
        # The drive's fixes from the full search on every frame, as the calibration was
        # measured (r32-65's audit); the track search (r32-60) is not measured here yet.
        self.pipeline = make_pipeline('physics', room, array, processor.chirp, processor.fs_hz,
                                      processor,
                                      tracker=PoseTracker(room_volume_m3=room.volume_m3)
                                      if room.is_shoebox else None, track_search=False)
        self.pipeline.estimate_tilt = estimate_tilt
        self.calibration = RoomCalibration(self.pipeline.localizer,
                                           temperature_std_c=temperature_std_c, ruler=ruler)
        self.keep = keep
        self.kept: list[tuple[np.ndarray, EchoFeatures, np.ndarray, float]] = []
        self._samples = None

    def process(self, samples: np.ndarray) -> EchoFeatures:
        """The processor's features of one frame (its samples kept until the next)."""
        if self.keep:
            self._samples = np.asarray(samples, dtype=np.float32)
        return self.processor.process(samples)

    def run(self, frames: Iterator[tuple[float, EchoFeatures, float]],
            heading_rad: float) -> None:
        """Localize and track ``frames`` ``(t_s, features, heading given)``."""
        yaw_std = heading_rad if heading_rad > 0 else None
        for t_s, features, given in frames:
            if not direct_explained(features):
                continue
            out = self.pipeline.step(t_s, features, given, yaw_std, self.told_temperature_c)
            if out.accepted:
                position = out.fix.estimate.position_m
                self.calibration.add(features, position, out.yaw_rad, self.told_temperature_c)
                if self.keep:
                    self.kept.append((self._samples, features, position, out.yaw_rad))


def receivers_then_room(driven: _Drive, first: RoomCalibrationResult, n_frames: int,
                        passes: int, heading_rad: float
                        ) -> tuple[ArrayGeometry, RoomCalibrationResult, dict]:
    """The receivers' phase centres from the drive's own frames, then the room again.

    A room centimetres off its file moves every echo's direction a little, and phases measured
    in it take that for the receivers' offsets (on dev, 0.2 mm of error in x and y against
    0.03 mm in the true room); the room solved with the file's receivers is within a few mm,
    close enough. So: ``n_frames`` of the drive (evenly spread) at their fixes, in the room
    of ``first``, :func:`calibrated_from_fixes` in ``passes``; the processor reads the
    calibrated array (:func:`equalised_with`), the drive's frames are processed again and the
    room is solved from them with the calibrated array (their poses as driven: each frame's
    pose error is fitted out).

    :return: the calibrated array, the room solved with it, and the receivers' report
        (offsets, echoes, passes).
    """
    kept = driven.kept
    if len(kept) < 2:
        raise ValueError(f'{len(kept)} frames of the drive were tracked; the receivers need '
                         'more')
    chosen = np.unique(np.linspace(0, len(kept) - 1, min(n_frames, len(kept))).astype(int))
    file_localizer = driven.pipeline.localizer
    in_room = file_localizer.with_room(first.room)
    frames = [(kept[k][1], kept[k][2] - first.shift_m, kept[k][3]) for k in chosen]
    calibrated, result, history = calibrated_from_fixes(
        in_room, frames, passes, heading_rad if heading_rad > 0 else None)
    array = calibrated.array
    equalised_with(driven.processor, array)
    again = RoomCalibration(file_localizer.with_array(array),
                            temperature_std_c=driven.temperature_std_c,
                            array_std_m=CALIBRATED_ARRAY_STD_M, ruler=driven.ruler,
                            wall_array_std_m=CALIBRATED_WALL_ARRAY_STD_M)
    for samples, _, position, yaw in kept:
        again.add(driven.processor.process(samples), position, yaw, driven.told_temperature_c)
    return array, again.solve(), {**result.to_dict(), 'passes': history}


def _compared_columns(told: dict, simulator: EchoSimulator, array: ArrayGeometry,
                      processor: EchoProcessor, scenario: Scenario,
                      frames: tuple[int, int, float], heading_rad: float,
                      estimate_tilt: bool, told_temperature_c: float | None = None) -> dict:
    """The same random frames localized with each room of ``told`` (``{key: (room, the
    translation from the truth's frame to the room's)}``; ``'perfect'`` is the true room),
    read with ``array``.

    :param frames: ``(n, seed, frame_rate_hz)``.
    :param told_temperature_c: the air's temperature the localizers are told, degC (``None``:
        each room file's).
    :return: per key ``(errors_m, inside_95, outside_999)`` arrays over the frames not
        withheld, and ``'withheld'``: the count of frames withheld.
    """
    n, seed, frame_rate_hz = frames
    yaw_std = heading_rad if heading_rad > 0 else None
    chirp, fs_hz = simulator.chirp, simulator.fs_hz
    pipelines = {key: make_pipeline('physics', r, array, chirp, fs_hz, processor)
                 for key, (r, _) in told.items()}
    pipelines['perfect'].take_room(told['perfect'][0])
    for pipeline in pipelines.values():
        pipeline.estimate_tilt = estimate_tilt
    columns = {key: ([], [], []) for key in told}
    withheld = 0
    for k, (_, frame, position, yaw, draw, _) in enumerate(
            random_frames(simulator, scenario, n, seed)):
        features = processor.process(frame)
        if not direct_explained(features):
            withheld += 1
            continue
        for key, pipeline in pipelines.items():
            estimate = pipeline.step(k / frame_rate_hz, features, yaw + heading_rad * draw,
                                     yaw_std, told_temperature_c).fix.estimate
            error = estimate.position_m - (position + told[key][1])
            errors, inside, outside = columns[key]
            errors.append(float(np.linalg.norm(error)))
            inside.append(holds_truth_95(error, estimate.covariance_m2))
            outside.append(float(error @ np.linalg.solve(estimate.covariance_m2, error))
                           > CHI2_999_3DOF)
    out: dict = {key: tuple(np.array(c, dtype=float if i == 0 else bool)
                            for i, c in enumerate(cols)) for key, cols in columns.items()}
    out['withheld'] = withheld
    return out


def _compared_metrics(columns: dict, n: int) -> dict:
    """Per key of :func:`_compared_columns`' columns ``{key}_`` :func:`error_metrics` with
    ``gross_rate_10cm_ci95`` and ``outside_999`` (none where every frame was withheld), and
    ``withheld_rate`` over ``n`` frames."""
    out: dict = {'withheld_rate': columns['withheld'] / n}
    for key, value in columns.items():
        if key == 'withheld' or not len(value[0]):
            continue
        errors, inside, outside = value
        metrics = error_metrics(errors, inside)
        metrics['gross_rate_10cm_ci95'] = rate_interval(np.count_nonzero(errors > 0.1),
                                                        errors.size)
        metrics['outside_999'] = float(np.mean(outside))
        out.update({f'{key}_{name}': value for name, value in metrics.items()})
    return out
