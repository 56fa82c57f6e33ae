"""The heading offset from the walls' first-order echoes, before the wall scans (issue 19).

The wall scans run at one heading, and a few degrees off they lose the walls' carrier phase:
the true coordinate falls out of the scans' peaks. The direction a wall's first-order echo
arrives from does not depend on where the array is: the echo comes from the emitter's image
behind the wall, along the wall's normal, so the differences of its delays across the
receivers are ``(offset_i . n) / c`` whatever the distance. Each wall's coherent score
(:func:`~echoloc_ros.core.physics.scan_kernels.surface_scores`) at its best distance therefore
measures the heading alone (:func:`wall_heading_scores`). Summed over the walls, with the
given heading's prior, the best offset is where the wall scans start (:func:`wall_heading`).
"""
import numpy as np

from echoloc_ros.core.physics import config
from echoloc_ros.core.physics.config import (WALL_HEADING_GRID_M, WALL_HEADING_SIGMAS,
                                             WALL_HEADING_STEP_RAD, YAW_SPAN_MAX_RAD)
from echoloc_ros.core.physics.heading_kernels import wall_heading_power
from echoloc_ros.core.physics.matched_filter import Frame


def wall_heading_scores(fr: Frame, normals: np.ndarray, psi_rad: np.ndarray,
                        distance_m: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per wall and heading offset, the wall's best first-order score over distance: the log of
    its receivers' coherent power over the noise, as
    :func:`~echoloc_ros.core.physics.scan_kernels.surface_scores` scores it.

    The receivers are read once, at the delays of the given heading: turning the array by a few
    degrees moves a receiver's delay by microseconds, which shifts the compressed echo
    (100 us wide) by little but its carrier phase by ``2 pi f_c dt``. So each heading offset
    is a phase per receiver, and the scores of every offset and distance are one product of
    the reads with those phases.

    :param normals: the walls' inward unit normals ``(S, 3)``.
    :param psi_rad: heading offsets from the given heading ``(J,)``, rad.
    :param distance_m: emitter-wall distances ``(G,)``, m.
    :param table: the baseband the scores read (floor and ceiling echoes removed).
    :return: ``(S, J)``.
    """
    psi = np.asarray(psi_rad, dtype=float)
    dn = normals @ fr.offsets.T
    turned = np.einsum('sk,jnk->sjn', normals, fr.rotated_offsets(psi)) - dn[:, None, :]
    features = fr.features
    power = wall_heading_power(
        np.ascontiguousarray(dn), np.sum(fr.offsets ** 2, axis=1), np.ascontiguousarray(turned),
        np.asarray(distance_m, dtype=float), fr.c0, 2 * np.pi * features.carrier_hz / fr.c0,
        table, features.start_s,
        table.shape[1] // features.baseband.shape[1] / features.bin_width_s,
        features.carrier_hz, fr.t_min, fr.t_max)
    return np.log1p(power * (np.mean(fr.weights) / dn.shape[1]))


def wall_heading(fr: Frame, normals: np.ndarray, psi_rad: np.ndarray, distance_m: np.ndarray,
                 table: np.ndarray) -> float:
    """The heading offset (rad) of ``psi_rad`` whose walls' first-order echoes score highest
    with the given heading's prior (:func:`wall_heading_scores`), refined by the parabola
    through it and its neighbours.

    :raises ValueError: ``psi_rad`` empty or not increasing.
    """
    psi = np.asarray(psi_rad, dtype=float)
    if psi.size == 0 or np.any(np.diff(psi) <= 0):
        raise ValueError(f'psi_rad must be a non-empty increasing grid, got {psi_rad!r}')
    total = wall_heading_scores(fr, normals, psi, distance_m, table).sum(axis=0)
    total = total + config.WALL_HEADING_PRIOR_WEIGHT * fr.yaw_prior(psi)
    best = int(np.argmax(total))
    if best == 0 or best == psi.size - 1:
        return float(psi[best])
    lo, mid, hi = total[best - 1:best + 2]
    curve = lo - 2.0 * mid + hi
    shift = 0.5 * (lo - hi) / curve if curve < 0 else 0.0
    return float(psi[best] + shift * (psi[best + 1] - psi[best]))


def step_threshold_rad(fr: Frame) -> float:
    """How far (rad) the step's offset must be from the given heading to start the scans:
    :data:`WALL_HEADING_MIN_SIGMAS` of the given heading's standard deviation where set, else
    :data:`WALL_HEADING_MIN_RAD`."""
    if config.WALL_HEADING_MIN_SIGMAS is None:
        return config.WALL_HEADING_MIN_RAD
    return config.WALL_HEADING_MIN_SIGMAS / float(np.sqrt(fr.yaw_info))


def scan_heading(fr: Frame, directions: np.ndarray, reach_m: float, table: np.ndarray) -> float:
    """The heading offset (rad) the wall scans start from: :func:`wall_heading` over
    :data:`WALL_HEADING_SIGMAS` standard deviations of the given heading where it is at least
    :func:`step_threshold_rad` from the given heading, with ``fr.yaw_grid`` widened by its
    own steps to cover its span around that offset too; else 0 (the grid unchanged).

    :param directions: the walls' distinct inward unit normals ``(S, 3)``.
    :param reach_m: the farthest emitter-wall distance searched, m.
    """
    span = min(WALL_HEADING_SIGMAS / np.sqrt(fr.yaw_info), YAW_SPAN_MAX_RAD)
    n_side = int(np.floor(span / WALL_HEADING_STEP_RAD))
    psi = WALL_HEADING_STEP_RAD * np.arange(-n_side, n_side + 1)
    distance = np.arange(0.02, reach_m, WALL_HEADING_GRID_M)
    found = wall_heading(fr, directions, psi, distance, table)
    grid = fr.yaw_grid
    if abs(found) < step_threshold_rad(fr) or grid.size < 2:
        return 0.0
    step = grid[1] - grid[0]
    lo = min(grid[0], found + grid[0])
    hi = max(grid[-1], found + grid[-1])
    fr.yaw_grid = grid[0] + step * np.arange(np.floor((lo - grid[0]) / step + 1e-9),
                                             np.ceil((hi - grid[0]) / step - 1e-9) + 1)
    return found
