"""Accuracy and honesty pooled over many rooms (``echoloc evaluate --rooms random:N``): per
room and pooled, each figure with its 95 % interval."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.offline.evaluation import (CHI2_95_3DOF, CHI2_999_3DOF, evaluate_fixes,
                                            evaluate_tracked, rate_interval)
from echoloc_ros.offline.tracked_path import fitted_path
from echoloc_ros.core.frame_rate import max_frame_rate_hz
from echoloc_ros.core.room import Room
from echoloc_ros.sim.simulator import Scenario

# A floor or ceiling absorbing more than this is soft (carpet 0.55, acoustic tiles 0.70;
# hard surfaces are 0.03-0.12).
SOFT_ABSORPTION = 0.5


def frames_seed(seed: int, index: int) -> int:
    """The seed of room ``index``'s frames in ``echoloc evaluate --rooms random:N --seed
    seed`` (:func:`evaluate_rooms`, :func:`evaluate_tracked_rooms`): studies and tests that
    draw one room's frames again draw them from it."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def parse_rooms(spec: str) -> int:
    """The number of rooms of ``random:N``.

    :raises ValueError: anything else, naming it.
    """
    kind, _, count = str(spec).partition(':')
    if kind != 'random' or not count.isdigit() or int(count) < 1:
        raise ValueError(f'--rooms must be random:N with N >= 1 generated rooms, got {spec!r}')
    return int(count)


def quantile_interval(values: np.ndarray, q: float, level: float = 0.95) -> list[float]:
    """Distribution-free interval of the ``q`` quantile of ``values`` ``(n,)``: the order
    statistics whose ranks bound a binomial(n, q) count with probability ``level``."""
    x = np.sort(np.asarray(values, dtype=float))
    n = x.size
    lo = int(stats.binom.ppf(0.5 * (1 - level), n, q))
    hi = int(stats.binom.ppf(0.5 * (1 + level), n, q))
    return [float(x[max(lo - 1, 0)]), float(x[min(hi, n - 1)])]


def summary(errors_m: np.ndarray, inside_95: np.ndarray, outside_999: np.ndarray,
            n_frames: int) -> dict:
    """Gross rate, median, p95, ``coverage_95`` and ``outside_999`` of published fixes, each
    with its 95 % interval (Wilson for the rates, order statistics for the quantiles).

    :param errors_m: position error of each published fix ``(n,)``, m.
    :param inside_95: whether its truth lay in its 95 % ellipsoid ``(n,)``.
    :param outside_999: whether its truth lay outside its 99.9 % ellipsoid ``(n,)``.
    :param n_frames: frames localized, published or withheld (``withheld_rate``).
    """
    errors_cm = 100.0 * np.asarray(errors_m, dtype=float)
    n = errors_cm.size
    if n == 0:
        return {'n': 0, 'withheld_rate': 1.0}
    gross = int(np.count_nonzero(errors_cm > 10.0))
    covered = int(np.count_nonzero(inside_95))
    outside = int(np.count_nonzero(outside_999))
    return {
        'n': n, 'withheld_rate': 1.0 - n / n_frames,
        'gross_rate_10cm': gross / n, 'gross_rate_10cm_ci95': rate_interval(gross, n),
        'median_cm': float(np.median(errors_cm)),
        'median_cm_ci95': quantile_interval(errors_cm, 0.5),
        'p95_cm': float(np.percentile(errors_cm, 95)),
        'p95_cm_ci95': quantile_interval(errors_cm, 0.95),
        'coverage_95': covered / n, 'coverage_95_ci95': rate_interval(covered, n),
        'outside_999': outside / n, 'outside_999_ci95': rate_interval(outside, n),
    }


def _rounded(value, digits: int = 4):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    return value


def is_soft(room: Room) -> bool:
    """Whether the room's floor or ceiling is soft (absorbs more than half)."""
    return max(room.floor_absorption, room.ceiling_absorption) > SOFT_ABSORPTION


def evaluate_rooms(rooms: list[Room], array: ArrayGeometry, chirp: Chirp, scenario: Scenario,
                   n_total: int, seed: int, heading_noise_deg: float = 0.0,
                   optimization_level: str = 'balanced', method: str = 'physics',
                   model_path: str | Path | None = None,
                   progress: Callable[[int, Room, dict], None] | None = None,
                   **fixes_kwargs) -> dict:
    """:func:`~echoloc_ros.offline.evaluation.evaluate_fixes` in every room, ``ceil(n_total /
    len(rooms))`` frames each (room ``i``'s frames from seed ``[seed, i]``), and the frames
    pooled.

    :param progress: called after each room with its index, the room and its summary.
    :param fixes_kwargs: more arguments of ``evaluate_fixes`` (``max_order``,
        ``model_error``, ...).
    :return: ``pooled``, ``shoebox``, ``non_rectangular``, ``soft`` (floor or ceiling
        absorbing more than :data:`SOFT_ABSORPTION`) and ``furnished``: :func:`summary` of the
        frames of those rooms pooled (``rooms``: how many); ``per_room``: each room's name,
        plan vertices, boxes, whether soft, the highest chirp rate it supports
        (:func:`~echoloc_ros.core.frame_rate.max_frame_rate_hz`) and :func:`summary`.
    """
    if not rooms:
        raise ValueError('no rooms to evaluate')
    if n_total < 1:
        raise ValueError(f'n_total must be >= 1, got {n_total}')
    n_room = int(np.ceil(n_total / len(rooms)))
    frames = []
    per_room = []
    for i, room in enumerate(rooms):
        details: dict = {}
        room_seed = frames_seed(seed, i)
        evaluate_fixes(room, array, chirp, scenario, n_room, room_seed, details=details,
                       heading_noise_deg=heading_noise_deg,
                       optimization_level=optimization_level, method=method,
                       model_path=model_path, **fixes_kwargs)
        frames.append(room_frames(details))
        one = published_summary(frames[-1], n_room)
        per_room.append({'room': room.name, 'plan_vertices': int(room.vertices_m.shape[0]),
                         'boxes': len(room.furniture), 'soft': is_soft(room),
                         'max_frame_rate_hz': max_frame_rate_hz(room, chirp), **one})
        if progress is not None:
            progress(i, room, one)
    out = _grouped(rooms, frames, [n_room] * len(rooms))
    out['frames_per_room'] = n_room
    out['per_room'] = per_room
    return _rounded(out)


def room_frames(details: dict) -> tuple[np.ndarray, ...]:
    """One room's fixes from :func:`~echoloc_ros.offline.evaluation.evaluate_fixes`'s
    ``details``: ``(errors_m, inside_95, outside_999, published)``, each ``(n,)`` (details
    without ``published``, as older shard files hold them, were all published)."""
    errors = np.asarray(details.get('errors_m', np.zeros(0)), dtype=float)
    if errors.size:
        outside = _mahalanobis2(details['estimate_m'] - details['truth_m'],
                                details['covariance_m2']) > CHI2_999_3DOF
    else:
        outside = np.zeros(0, dtype=bool)
    published = np.asarray(details.get('published', np.ones(errors.size)), dtype=bool)
    inside = np.asarray(details.get('inside_95', np.zeros(0)), dtype=bool)
    return errors, inside, outside, published


def published_summary(frames: tuple[np.ndarray, ...], n_frames: int) -> dict:
    """:func:`summary` of the published fixes of ``frames`` (:func:`room_frames`), and in
    ``all_fixes`` the same of every fix, withheld or not (what withholding changed)."""
    *scored, published = frames
    out = summary(*[f[published] for f in scored], n_frames)
    everything = summary(*scored, n_frames)
    everything.pop('withheld_rate', None)
    return {**out, 'all_fixes': everything}


def _grouped(rooms: list[Room], frames: list[tuple], n_frames: list[int],
             summarise: Callable[[tuple, int], dict] = published_summary) -> dict:
    """``summarise`` (:func:`published_summary` of :func:`room_frames`) of the ``frames`` of
    all rooms, shoebox, non-rectangular, soft and furnished ones, each pooled (``rooms``: how
    many); ``n_frames``: each room's frames localized."""
    groups = {'pooled': [True] * len(rooms),
              'shoebox': [r.is_shoebox for r in rooms],
              'non_rectangular': [not r.is_shoebox for r in rooms],
              'soft': [is_soft(r) for r in rooms],
              'furnished': [bool(r.furniture) for r in rooms]}
    out = {}
    for name, members in groups.items():
        chosen = [(f, n) for f, n, m in zip(frames, n_frames, members) if m]
        if chosen:
            pooled = tuple(np.concatenate([f[k] for f, _ in chosen])
                           for k in range(len(chosen[0][0])))
            out[name] = {'rooms': len(chosen), **summarise(pooled, sum(n for _, n in chosen))}
    return out


def _mahalanobis2(error_m: np.ndarray, covariance_m2: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances of errors ``(n, 3)`` under covariances ``(n, 3, 3)``."""
    solved = np.linalg.solve(covariance_m2, error_m[..., None])[..., 0]
    return np.einsum('ni,ni->n', error_m, solved)


def vouched_poses(details: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tracked poses a confirmed track vouched for in one drive (``evaluate_tracked``'s
    ``details``), the ones the localizer node publishes: each one's error (m), and whether the
    truth lay inside its own 95 % ellipsoid and outside its 99.9 % one."""
    vouched = details['vouched']
    d2 = _mahalanobis2(details['tracked_m'][vouched] - details['truth_m'][vouched],
                       details['tracked_covariance_m2'][vouched])
    return details['tracked_errors_m'][vouched], d2 <= CHI2_95_3DOF, d2 > CHI2_999_3DOF


def brief_summary(errors_m: np.ndarray, inside_95: np.ndarray, outside_999: np.ndarray,
                  n_frames: int) -> dict:
    """:func:`summary` rounded and without its intervals: the study scripts' one JSON line."""
    return {k: v for k, v in _rounded(summary(errors_m, inside_95, outside_999,
                                              n_frames)).items() if not k.endswith('_ci95')}


def vouched_summary(details: dict) -> dict:
    """:func:`brief_summary` of one drive's vouched tracked poses (:func:`vouched_poses`)."""
    return brief_summary(*vouched_poses(details), len(details['vouched']))


def evaluate_rooms_tracked(rooms: list[Room], array: ArrayGeometry, chirp: Chirp,
                           scenario: Scenario, lap_s: float, seed: int,
                           progress: Callable[[int, Room, dict], None] | None = None,
                           **tracked_kwargs) -> dict:
    """One tracked lap per room: :func:`~echoloc_ros.offline.evaluation.evaluate_tracked`
    along the room's :func:`~echoloc_ros.offline.tracked_path.fitted_path` (at most ``lap_s``
    a lap; room ``i``'s noise from seed ``[seed, i]``), scoring the published track.

    :param tracked_kwargs: more arguments of ``evaluate_tracked`` (``heading_noise_deg``,
        ``optimization_level``, ``method``, ``model_path``).
    :return: as :func:`evaluate_rooms`, of the tracked poses a confirmed track vouches for
        (those the localizer node publishes; ``withheld_rate``: the frames with none, at the
        start of a lap or after a lost track), ``outside_999``: the truth outside the track's
        own 99.9 % ellipsoid; rooms where no path fits are left out and
        listed in ``rooms_without_path``; ``per_room`` adds each lap's ``lap_s`` and
        ``path_half_extents_m``. The intervals treat the frames as independent; a track's
        frames are not, so they are too narrow.
    """
    if not rooms:
        raise ValueError('no rooms to evaluate')
    driven, frames, counts, per_room, without = [], [], [], [], []
    for i, room in enumerate(rooms):
        path = fitted_path(room, lap_s)
        if path is None:
            without.append(room.name)
            continue
        details: dict = {}
        room_seed = frames_seed(seed, i)
        evaluate_tracked(room, array, chirp, scenario, None, room_seed, details=details,
                         path=path, **tracked_kwargs)
        frames.append(vouched_poses(details))
        counts.append(len(details['vouched']))
        driven.append(room)
        one = summary(*frames[-1], counts[-1])
        per_room.append({'room': room.name, 'plan_vertices': int(room.vertices_m.shape[0]),
                         'boxes': len(room.furniture), 'soft': is_soft(room),
                         'lap_s': path.period_s, 'path_half_extents_m': list(path.amplitude_m),
                         **one})
        if progress is not None:
            progress(i, room, one)
    out = _grouped(driven, frames, counts, lambda f, n: summary(*f, n)) if driven else {}
    out['rooms_without_path'] = without
    out['per_room'] = per_room
    return _rounded(out)
