"""The plan's own symmetries: the mirrors and translations that map a share of its walls onto
its walls (issue 19, the 2-D wing and mirror offsets of non-rectangular plans).

``scripts/ambiguity-study.py --sym-share S`` refines each fix mapped by them and records its
evidence gap. Measured on the dev split (branch r31-53) and not made a rival of the
covariance: right fixes in non-rectangular plans have such rivals 12-200 log units behind as
often as wrong ones, and the fixes outside their 99.9 % ellipsoid there were not at a mapped
pose (docs/results.md)."""

import numpy as np

# Points sampled along each wall to measure how much of it a map lays on the plan's walls.
N_WALL_SAMPLES = 24
# A mapped point within this of a wall lies on it, m.
ON_WALL_M = 0.01


def _on_walls(vertices_m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether each of ``points (n, 2)`` lies within :data:`ON_WALL_M` of a wall of the plan
    ``vertices_m (k, 2)`` ``(n,)``."""
    a = vertices_m
    b = np.roll(vertices_m, -1, axis=0)
    ab = b - a
    t = np.einsum('nkd,kd->nk', points[:, None, :] - a[None], ab) / np.sum(ab * ab, axis=1)
    nearest = a[None] + np.clip(t, 0.0, 1.0)[..., None] * ab[None]
    return np.min(np.linalg.norm(points[:, None, :] - nearest, axis=-1), axis=1) <= ON_WALL_M


def plan_symmetries(vertices_m: np.ndarray, min_share: float) -> list[tuple]:
    """The maps ``p -> signs * p + shift`` (``signs`` each +-1: a mirror across a line
    parallel to an axis, or a translation along it) other than the identity that lay at least
    ``min_share`` of the plan's wall length on its walls, best first.

    The mirror lines and shifts tried are those that map one vertex' coordinate onto
    another's: a wing's walls onto another wing's.

    :param vertices_m: the plan ``(k, 2)``, m.
    :param min_share: the least share of wall length a map keeps on the walls, in (0, 1].
    :return: ``(share, signs (2,), shift (2,))`` of each.
    :raises ValueError: ``min_share`` outside (0, 1].
    """
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f'min_share must be in (0, 1], got {min_share}')
    vertices_m = np.asarray(vertices_m, dtype=float)
    ends = np.roll(vertices_m, -1, axis=0)
    fractions = (np.arange(N_WALL_SAMPLES) + 0.5) / N_WALL_SAMPLES
    points = (vertices_m[:, None] + fractions[None, :, None] * (ends - vertices_m)[:, None])
    points = points.reshape(-1, 2)
    lengths = np.repeat(np.linalg.norm(ends - vertices_m, axis=1), N_WALL_SAMPLES)
    options = []
    for axis in range(2):
        values = np.unique(np.round(vertices_m[:, axis], 4))
        sums = np.unique(np.round(values[:, None] + values[None], 4))
        shifts = np.unique(np.round(values[:, None] - values[None], 4))
        options.append([(-1.0, s) for s in sums] + [(1.0, s) for s in shifts])
    found = []
    for sx, bx in options[0]:
        for sy, by in options[1]:
            if sx > 0 and sy > 0 and bx == 0.0 and by == 0.0:
                continue
            signs, shift = np.array([sx, sy]), np.array([bx, by])
            kept = _on_walls(vertices_m, points * signs + shift)
            share = float(np.sum(lengths[kept]) / np.sum(lengths))
            if share >= min_share:
                found.append((share, signs, shift))
    found.sort(key=lambda f: -f[0])
    return found
