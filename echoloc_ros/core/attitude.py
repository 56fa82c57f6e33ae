"""The array's roll and pitch from its floor and ceiling echoes, for a robot without an IMU
that reports them.

A tilt lifts the receivers on one side of the emitter and lowers those on the other: 1 deg
moves a receiver 7 cm out by 1.2 mm, which shifts its floor echo by about that much and its
ceiling echo by as much the other way, most of a radian of the carrier's phase. The floor and
ceiling paths depend on the emitter's height, the speed of sound and the tilt, never on x, y
or the heading, so the tilt is found before the frame is localized: a coarse grid of roll and
pitch, then a finer one, each scoring the receivers' coherent sum at the two echoes' delays,
with the height refined in between. The carrier repeats every 8.6 mm of path, so the search
is kept within +-``MAX_ESTIMATED_TILT_RAD``, far inside the 7 deg where a receiver's phase
would wrap.
"""

import numpy as np

from echoloc_ros.core.echo_processing import EchoFeatures
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.matched_filter import Frame, sample

MAX_ESTIMATED_TILT_RAD = float(np.deg2rad(3.0))
_COARSE_STEP_RAD = float(np.deg2rad(0.2))
_FINE_STEP_RAD = float(np.deg2rad(0.02))
_HEIGHT_STEP_M = 0.00025


def estimate_tilt(localizer: PhysicsLocalizer, features: EchoFeatures,
                  temperature_c: float | None = None) -> tuple[float, float]:
    """Roll and pitch (rad) of the array from one frame's floor and ceiling echoes.

    :param localizer: the physics localizer of the room (its height search and room height).
    :param temperature_c: the air's, degC; ``None``: the room file's.
    :raises ValueError: no floor or ceiling echo in the frame.
    """
    temperature = localizer.room.temperature_c if temperature_c is None else temperature_c
    fr = localizer.frame(features, 0.0, temperature)
    z, kappa, _, _ = localizer._height_candidates(fr)[0]
    offsets = localizer.array.receivers_m - localizer.array.emitter_m
    coarse = np.arange(-MAX_ESTIMATED_TILT_RAD, MAX_ESTIMATED_TILT_RAD + 1e-9, _COARSE_STEP_RAD)
    fine = np.arange(-10, 11) * _FINE_STEP_RAD
    best = np.zeros(2)
    for grid in (coarse, fine):
        roll, pitch = np.meshgrid(best[0] + grid, best[1] + grid, indexing='ij')
        tilts = np.column_stack([roll.ravel(), pitch.ravel()])
        score = _vertical_score(localizer, fr, offsets, tilts, np.array([z]), kappa)[:, 0]
        best = tilts[int(np.argmax(score))]
        heights = z + np.arange(-12, 13) * _HEIGHT_STEP_M
        score = _vertical_score(localizer, fr, offsets, best[None], heights, kappa)[0]
        z = float(heights[int(np.argmax(score))])
    return float(best[0]), float(best[1])


def _vertical_score(localizer: PhysicsLocalizer, fr: Frame, offsets: np.ndarray,
                    tilts: np.ndarray, heights: np.ndarray, kappa: float) -> np.ndarray:
    """Coherent power of the floor and ceiling echoes summed over the receivers, for each
    tilt ``(T, 2)`` and emitter height ``(Z,)``: ``(T, Z)``."""
    # tilt_matrix(roll, pitch) @ offsets for every tilt at once.
    cr, sr = np.cos(tilts[:, :1]), np.sin(tilts[:, :1])
    cp, sp = np.cos(tilts[:, 1:]), np.sin(tilts[:, 1:])
    x, y, z0 = offsets.T
    rolled_z = y * sr + z0 * cr                                              # (T, n)
    horizontal = ((x * cp + rolled_z * sp) ** 2 + (y * cr - z0 * sr) ** 2)[:, None, :]
    up = (rolled_z * cp - x * sp)[:, None, :]                                # (T, 1, n)
    z = heights[None, :, None]
    ceiling = 2.0 * localizer.room.height_m - z
    c = fr.c0 * kappa
    # Receiver above the emitter's floor image (at -z) and below its ceiling image.
    tau = np.stack([np.sqrt(horizontal + (2.0 * z + up) ** 2),
                    np.sqrt(horizontal + (ceiling - z - up) ** 2)], axis=2) / c   # (T,Z,2,n)
    power = np.abs(np.sum(fr.weights * sample(fr, tau), axis=-1)) ** 2
    return np.sum(power, axis=-1)
