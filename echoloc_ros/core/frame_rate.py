"""The highest chirp rate a room supports with one chirp in flight.

The echo window is the round trip of the farthest first-order echo any pose in the room can
hear: for each wall, the farthest point of the plan whose perpendicular foot falls on that
wall (a co-located emitter and receiver hear a plane's echo from that foot), and the height
for the floor and ceiling; at the speed of sound 10 degC below the room's temperature, plus
the chirp. First-order echoes are what fix the position (orders 2 add what falls inside the
window). Whatever arrives later has travelled more than twice that distance: when the next
chirp leaves, the previous chirp's remaining echoes lie at least that much farther than the
new chirp's echoes arriving with them (12 m in a 6 m room: 16 dB of air absorption at 40 kHz,
ISO 9613-1, besides the spreading and at least two reflections more). The room's diameter both
ways (the full diagonal) would count a third-order path (two walls and the ceiling) the
localizer never uses, and cap a 6 x 4.5 x 2.8 m room at 20 Hz instead of 26.
"""

import numpy as np

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import Room


def _clipped(polygon: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """The part of ``polygon (k, 2)`` where ``normal . x >= offset`` (Sutherland-Hodgman:
    one half-plane, any polygon)."""
    out = []
    side = polygon @ normal - offset
    for i in range(len(polygon)):
        j = (i + 1) % len(polygon)
        if side[i] >= 0:
            out.append(polygon[i])
        if side[i] * side[j] < 0:
            t = side[i] / (side[i] - side[j])
            out.append(polygon[i] + t * (polygon[j] - polygon[i]))
    return np.array(out).reshape(-1, 2)


def longest_echo_m(room: Room) -> float:
    """Farthest distance from any point of the room to a surface whose first-order echo it
    hears: per wall, the farthest point of the plan in the strip over the wall (its
    perpendicular foot on the wall); the height for the floor and ceiling."""
    a = room.vertices_m
    b = np.roll(a, -1, axis=0)
    farthest = room.height_m
    for start, end in zip(a, b):
        along = (end - start) / np.linalg.norm(end - start)
        strip = _clipped(_clipped(a, along, float(along @ start)), -along, float(-along @ end))
        if strip.size:
            inward = np.array([-along[1], along[0]])
            farthest = max(farthest, float(np.max((strip - start) @ inward)))
    return farthest


def echo_window_s(room: Room, chirp: Chirp) -> float:
    """Receive window: the round trip of the room's longest first-order echo
    (:func:`longest_echo_m`) at 10 degC below the room's temperature (the slowest sound it
    plausibly meets), plus the chirp."""
    c_min_mps = speed_of_sound_mps(room.temperature_c - 10.0)
    return 2.0 * longest_echo_m(room) / c_min_mps + chirp.duration_s


def max_frame_rate_hz(room: Room, chirp: Chirp) -> float:
    """Highest chirp rate whose first-order echoes all return before the next chirp
    leaves."""
    return 1.0 / echo_window_s(room, chirp)
