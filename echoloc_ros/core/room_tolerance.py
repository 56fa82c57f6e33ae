"""What the room file's tolerance can do to a fix: the covariance it adds.

A surface of the real room lies up to ``tolerance_m`` from where the file puts it (a
tape-measured room: 1-3 cm). The localizer fits position and the speed of sound to the echoes
of the file's room, so an offset moves the fix in two ways (measured on the default room with
each surface drawn within +-3 cm): each axis follows the nearer of its two surfaces, and the
floor-to-ceiling height the echoes measure scales the speed of sound, so every range scales by
``(d_floor - d_ceiling) / H``. With each offset uniform in +-tolerance, the error is linear in
the six offsets and its covariance follows.
"""

from dataclasses import replace

import numpy as np

from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.room import Room


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


def with_room_tolerance(estimate: Estimate, room: Room) -> Estimate:
    """The estimate with :func:`tolerance_covariance` added to its covariance."""
    if room.tolerance_m <= 0:
        return estimate
    return replace(estimate, covariance_m2=estimate.covariance_m2
                   + tolerance_covariance(room, estimate.position_m))
