"""What the room file's tolerance can do to a fix: the covariance it adds.

A surface of the real room lies up to ``tolerance_m`` from where the file puts it (a
tape-measured room: 1-3 cm). The localizer fits position and the speed of sound to the echoes
of the file's room, so an offset moves the fix in two ways (measured on the default room with
each surface drawn within +-3 cm): each axis follows the nearer of its two surfaces, and the
floor-to-ceiling height the echoes measure scales the speed of sound, so every range scales by
``(d_floor - d_ceiling) / H``. With each offset uniform in +-tolerance, the error is linear in
the six offsets and its covariance follows.

A calibrated room's scale is one more doubt, shared by every surface (``scale_std``: the speed
of sound it was measured with, the ruler): a scale ``s`` about the room's centre moves each
surface by ``s`` times its distance from the centre, all together. Were the speed of sound
free, the echoes of the scaled room would be those of the file's with the array ``s`` times
its offset from the centre closer in (and the speed ``1 + s`` times slower); were it fixed,
each axis would follow its nearer surface, moved ``s`` times that surface's distance from the
centre. The localizer fits the speed each frame but the array's phases fix directions in
metres, so a fix moves between the two, a quarter of the way to the second (measured:
``test/core/test_room_scale.py``): one correlated term (:func:`scale_covariance`), not a
tolerance per surface.
"""

from dataclasses import replace

import numpy as np

from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.room import Room

# How far a fix moves, under a scale of the room, from the speed-of-sound-free response (its
# offset from the centre) toward the fixed-speed one (its nearer surfaces'): measured 0.2-0.3
# on the default room, a room 0.5 % larger than its file, four poses.
FIXED_SPEED_SHARE = 0.25


def tolerance_covariance(room: Room, position_m: np.ndarray) -> np.ndarray:
    """Covariance ``(3, 3)`` of the fix's error from surfaces off the file by up to
    ``room.tolerance_m`` (uniform, independent); zeros for a zero tolerance. A shoebox's walls
    and every room's floor and ceiling; a general plan's walls are treated as the bounding
    box's (the nearest wall along each axis).

    :param position_m: the fix ``(3,)``, room frame, m.
    """
    if room.tolerance_m <= 0:
        return np.zeros((3, 3))
    x, y, z = np.asarray(position_m, dtype=float)
    lo = room.vertices_m.min(axis=0)
    hi = room.vertices_m.max(axis=0)
    height = room.height_m
    # Offsets along +axis: low x, high x, low y, high y, floor, ceiling.
    sensitivity = np.zeros((3, 6))
    # The speed-of-sound scale: (floor - ceiling) / H per metre of range to the nearer surface.
    for axis, value in enumerate((x, y)):
        near_low = value - lo[axis] <= hi[axis] - value
        distance = value - lo[axis] if near_low else hi[axis] - value
        sign = 1.0 if near_low else -1.0
        sensitivity[axis, 2 * axis + (0 if near_low else 1)] = 1.0
        sensitivity[axis, 4] += sign * distance / height
        sensitivity[axis, 5] -= sign * distance / height
    sensitivity[2, 4] = 1.0 - z / height
    sensitivity[2, 5] = z / height
    return room.tolerance_m ** 2 / 3.0 * sensitivity @ sensitivity.T


def scale_covariance(room: Room, position_m: np.ndarray) -> np.ndarray:
    """Covariance ``(3, 3)`` of the fix's error from the room's scale doubt
    ``room.scale_std`` (one standard deviation, a fraction); zeros for a zero doubt.

    A scale ``s`` moves the fix by ``-s m``, ``m = d + w (n - d)``: ``d`` its offset from the
    room's centre (the plan's bounding box's, half the height), ``n`` per axis the nearer
    surface's offset from the centre, that surface counted in proportion as the fix is off the
    middle (a fix half-way between two walls hears both alike), and ``w`` =
    :data:`FIXED_SPEED_SHARE`. The covariance is ``scale_std**2 (m m^T + w**2 (n - d)
    (n - d)^T)``: the second term for the share ``w``, which varies with the pose.

    :param position_m: the fix ``(3,)``, room frame, m.
    """
    if room.scale_std <= 0:
        return np.zeros((3, 3))
    lo = np.append(room.vertices_m.min(axis=0), 0.0)
    hi = np.append(room.vertices_m.max(axis=0), room.height_m)
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    d = np.asarray(position_m, dtype=float) - centre
    nearer = np.sign(d) * half * np.minimum(1.0, 2.0 * np.abs(d) / half)
    gap = nearer - d
    m = d + FIXED_SPEED_SHARE * gap
    return room.scale_std ** 2 * (np.outer(m, m) + FIXED_SPEED_SHARE ** 2 * np.outer(gap, gap))


def room_covariance(room: Room, position_m: np.ndarray) -> np.ndarray:
    """What the room file cannot tell a fix at ``position_m`` ``(3,)``: each surface's own
    tolerance (:func:`tolerance_covariance`) and the scale's (:func:`scale_covariance`), m^2."""
    return tolerance_covariance(room, position_m) + scale_covariance(room, position_m)


def with_room_tolerance(estimate: Estimate, room: Room) -> Estimate:
    """The estimate with :func:`room_covariance` added to its covariance."""
    if room.tolerance_m <= 0 and room.scale_std <= 0:
        return estimate
    return replace(estimate, covariance_m2=estimate.covariance_m2
                   + room_covariance(room, estimate.position_m))
