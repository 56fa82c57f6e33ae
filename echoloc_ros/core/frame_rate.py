"""The highest chirp rate a room supports with one chirp in flight."""

import numpy as np

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import Room


def room_diameter_m(room: Room) -> float:
    """Farthest distance between two points of the room: its plan's farthest vertex pair
    (a polygon's diameter lies between vertices) with the height across."""
    v = room.vertices_m
    plan_m = float(np.max(np.linalg.norm(v[:, None, :] - v[None, :, :], axis=-1)))
    return float(np.hypot(plan_m, room.height_m))


def echo_window_s(room: Room, chirp: Chirp) -> float:
    """Receive window: the round trip across the room's diameter at 10 degC below the room's
    temperature (the slowest sound it plausibly meets), plus the chirp."""
    c_min_mps = speed_of_sound_mps(room.temperature_c - 10.0)
    return 2.0 * room_diameter_m(room) / c_min_mps + chirp.duration_s


def max_frame_rate_hz(room: Room, chirp: Chirp) -> float:
    """Highest chirp rate whose echoes all return before the next chirp leaves."""
    return 1.0 / echo_window_s(room, chirp)
