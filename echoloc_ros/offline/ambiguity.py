"""How well any localizer can do when the furniture has moved since the room file: each
frame's distance from its twins (the array and every box moved together), in noise standard
deviations, and the lower bound that sets on the gross-error rate (``echoloc ambiguity``)."""

from dataclasses import replace

import numpy as np
from scipy import stats

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.core.room import Room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario


def twin_separations(room: Room, world: Room, array: ArrayGeometry, chirp: Chirp,
                     position_m: np.ndarray, yaw_rad: float, snr_db: float,
                     shifts_m: tuple[float, ...] = (0.2, 0.3, 0.5),
                     max_shift_m: float = 1.0, margin_m: float = 0.4,
                     fs_hz: float = 250e3) -> dict[str, float]:
    """How far a frame's echoes lie from those of its twins, in noise standard deviations.

    A twin is the same scene with the array and every furniture box moved together by ``s``
    along x or y: the furniture's echoes stay as they were, and only the room's own (and what
    the boxes hide of them) tell the two apart. When the room file gives the furniture only to
    within ``max_shift_m`` (it was moved since), a pose and its twin are equally likely
    beforehand; no localizer tells them apart better than the best test between two known
    signals in white Gaussian noise, which errs with probability Q(d / 2) averaged over the
    pair (Le Cam's two-point bound), d = |s_a - s_b| / sigma.

    A twin counts only where the prior gives it the same weight: every box strictly inside
    the plan and within ``max_shift_m`` of the room file on the shifted axis in both scenes
    (:meth:`Room.rearranged` piles the boxes it clips on the boundary), the array
    ``margin_m`` from the walls, and a wall echo heard.

    :param room: the room file (where the furniture was).
    :param world: the same room with the furniture where it stands.
    :param position_m: array position ``(3,)``; ``yaw_rad`` its heading.
    :param snr_db: as :attr:`Scenario.snr_db` (the noise of ``world`` at this pose).
    :param shifts_m: shift sizes tried, each with both signs on both axes, m.
    :return: ``{'x+0.20': d, ...}``, one entry per valid twin.
    """
    if len(world.furniture) != len(room.furniture):
        raise ValueError(f'world has {len(world.furniture)} boxes, the room file '
                         f'{len(room.furniture)}: the furniture must be the same')
    lo, hi = room.vertices_m.min(axis=0), room.vertices_m.max(axis=0)
    simulator = EchoSimulator(world, array, chirp, fs_hz)
    reference = simulator.clean_signals(position_m, yaw_rad)
    sigma = simulator.noise_std_counts(position_m, yaw_rad, snr_db)
    eps = 1e-9

    def free(boxes: list, axis: int) -> bool:
        return all(lo[axis] + eps < b.min_m[axis] and b.max_m[axis] < hi[axis] - eps
                   and abs(b.min_m[axis] - f.min_m[axis]) < max_shift_m - eps
                   for b, f in zip(boxes, room.furniture))

    out = {}
    for axis in (0, 1):
        if not free(world.furniture, axis):
            continue
        for s in [v * sign for v in shifts_m for sign in (1.0, -1.0)]:
            step = np.zeros(3)
            step[axis] = s
            boxes = [b.shifted(step) for b in world.furniture]
            position = np.asarray(position_m, dtype=float) + step
            if not free(boxes, axis) or world.wall_distance_m(position[:2]) < margin_m:
                continue
            twin = EchoSimulator(replace(world, furniture=boxes), array, chirp, fs_hz)
            try:
                twin.noise_std_counts(position, yaw_rad, snr_db)
                signals = twin.clean_signals(position, yaw_rad)
            except ValueError:
                continue
            out[f'{"xy"[axis]}{s:+.2f}'] = float(np.linalg.norm(signals - reference) / sigma)
    return out


def ambiguity_bound(room: Room, array: ArrayGeometry, chirp: Chirp, snr_db: float,
                    n: int, seed: int, furniture_shift_m: float,
                    shifts_m: tuple[float, ...] = (0.2, 0.3, 0.5), margin_m: float = 0.4,
                    z_range_m: tuple[float, float] = (0.2, 1.2),
                    fs_hz: float = 250e3) -> dict[str, float]:
    """A lower bound on any localizer's gross-error rate (> 10 cm) when the furniture stands
    moved from where the room file has it: :func:`twin_separations` on the frames of
    :func:`~echoloc_ros.offline.evaluation.evaluate_fixes` (same ``seed`` and SNR, no other
    scenario option: same frames).

    Each fixed twin (one shift on one axis, all at least 0.2 m) maps the prior onto itself
    where it is valid, so for each the mean over frames of Q(d / 2) (0 where not valid) bounds
    the gross-error rate from below; ``gross_rate_bound`` is the largest of them.

    :return: ``gross_rate_bound``, ``bound_twin``, ``frames_with_twin``,
        ``separation_sigma_median`` and ``_p5`` (over frames, of the closest twin),
        ``frames_within_2_sigma`` and ``_4_sigma``, ``n``.
    """
    if n < 1:
        raise ValueError(f'n must be >= 1, got {n}')
    if not room.furniture or furniture_shift_m <= 0:
        raise ValueError(f'the bound is for moved furniture: room {room.name!r} has '
                         f'{len(room.furniture)} boxes, furniture_shift_m {furniture_shift_m}')
    if min(shifts_m, default=0.0) < 0.2:
        raise ValueError(f'shifts_m must all be >= 0.2 m (twins 2 x 10 cm apart), '
                         f'got {shifts_m}')
    simulator = EchoSimulator(room, array, chirp, fs_hz)
    per_frame = []
    frames = random_frames(simulator, Scenario(snr_db=snr_db), n, seed, margin_m, z_range_m,
                           furniture_shift_m)
    for world, _, position, yaw, _, _ in frames:
        per_frame.append(twin_separations(room, world, array, chirp, position, yaw, snr_db,
                                          shifts_m, furniture_shift_m, margin_m, fs_hz))
    keys = sorted({k for twins in per_frame for k in twins})
    bounds = {k: float(np.mean([stats.norm.sf(t[k] / 2) if k in t else 0.0
                                for t in per_frame])) for k in keys}
    closest = np.array([min(t.values()) for t in per_frame if t])
    best = max(bounds, key=bounds.get) if bounds else None
    return {
        'gross_rate_bound': bounds.get(best, 0.0),
        'bound_twin': best,
        'frames_with_twin': int(closest.size),
        'separation_sigma_median': float(np.median(closest)) if closest.size else None,
        'separation_sigma_p5': float(np.percentile(closest, 5)) if closest.size else None,
        'frames_within_2_sigma': int(np.sum(closest < 2.0)),
        'frames_within_4_sigma': int(np.sum(closest < 4.0)),
        'n': n,
    }
