"""The room's geometry, one fact for the simulator and the physics localizer: its planes, where
a point on a plane lies within its surface, and whether a reflection path's points lie on its
surfaces. Each keeps its own physics (amplitudes, directivity), so that a mistake in one is
not copied into the other; the room's geometry is a fact, not a model."""

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from echoloc_ros.core.room import Room


@dataclass(frozen=True)
class Plane:
    """A room surface: points x with ``normal . x == offset``.

    :ivar name: the wall's name, ``'floor'`` or ``'ceiling'``.
    :ivar normal: unit normal into the room ``(3,)``.
    :ivar offset: ``normal . x`` on the plane, m.
    :ivar index: position in :func:`room_planes` (walls in plan order, floor, ceiling).
    """

    name: str
    normal: np.ndarray
    offset: float
    index: int


def room_planes(room: Room) -> list[Plane]:
    """The room's planes: one per wall (the plan's edges, in order), then floor and ceiling."""
    planes = []
    a = room.vertices_m
    b = np.roll(a, -1, axis=0)
    for i in range(a.shape[0]):
        d = b[i] - a[i]
        normal = np.array([-d[1], d[0], 0.0]) / np.hypot(*d)
        planes.append(Plane(room.wall_names[i], normal, float(normal[:2] @ a[i]), i))
    k = a.shape[0]
    planes.append(Plane('floor', np.array([0.0, 0.0, 1.0]), 0.0, k))
    planes.append(Plane('ceiling', np.array([0.0, 0.0, -1.0]), -room.height_m, k + 1))
    return planes


def moved_shell(room: Room, offsets_m: np.ndarray) -> tuple[Room, np.ndarray]:
    """``room`` with each surface moved out along its normal by ``offsets_m`` (walls in plan
    order, floor, ceiling; m), in a frame with the floor at z = 0 and a shoebox's south-west
    corner at the origin (so that it stays a shoebox); its furniture keeps its place in the
    old frame.

    :return: the room and the shift: a point ``p`` of ``room``'s frame is ``p - shift`` in
        the new one.
    """
    planes = room_planes(room)
    n_walls = len(planes) - 2
    normals = np.array([p.normal[:2] for p in planes[:n_walls]])
    moved = np.array([p.offset for p in planes[:n_walls]]) - offsets_m[:n_walls]
    # Vertex i is where wall i - 1 meets wall i.
    vertices = np.array([np.linalg.solve(normals[[i - 1, i]], moved[[i - 1, i]])
                         for i in range(n_walls)])
    shift = np.array([0.0, 0.0, -offsets_m[n_walls]])
    if room.is_shoebox:
        shift[:2] = vertices[0]
    return replace(room, vertices_m=vertices - shift[:2],
                   height_m=room.height_m + offsets_m[n_walls] + offsets_m[n_walls + 1],
                   furniture=[box.shifted(-shift) for box in room.furniture]), shift


def reflect(points: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """``points (..., 3)`` mirrored in the plane ``normal . x == offset``."""
    return points - 2.0 * (points @ normal - offset)[..., None] * normal


def plane_contains(room: Room, index: int, points: np.ndarray, tolerance_m: float,
                   within_height: bool) -> np.ndarray:
    """Whether points lying on plane ``index`` of :func:`room_planes` are inside its surface:
    between the wall's ends (and, with ``within_height``, between floor and ceiling), or
    inside the plan for the floor and ceiling.

    :param points: ``(..., 3)`` on the plane, m.
    :param tolerance_m: how far outside an edge still counts as on the surface (along the
        wall, as a fraction of its length; in height, m).
    """
    n_walls = room.vertices_m.shape[0]
    if index >= n_walls:
        return room.contains_xy(points[..., :2])
    a = room.vertices_m[index]
    b = room.vertices_m[(index + 1) % n_walls]
    u = (points[..., :2] - a) @ (b - a) / np.sum((b - a) ** 2)
    inside = (u >= -tolerance_m) & (u <= 1 + tolerance_m)
    if within_height:
        inside = inside & (points[..., 2] >= -tolerance_m) & (
            points[..., 2] <= room.height_m + tolerance_m)
    return inside


def on_surfaces(seq: tuple[int, ...], image: np.ndarray, receiver: np.ndarray,
                normals: np.ndarray, offsets: np.ndarray,
                contains: Callable[[int, np.ndarray], np.ndarray]) -> bool:
    """Whether every reflection point of the path from ``image`` (an image of the source by
    the planes ``seq``, in travel order) to ``receiver`` lies on its surface.

    :param normals: the planes' unit normals ``(S, 3)``; ``offsets`` theirs ``(S,)``.
    :param contains: ``contains(index, point)``: whether a point of plane ``index`` lies on
        its surface (:func:`plane_contains`).
    """
    start, target = receiver, image
    for s in reversed(seq):
        denom = normals[s] @ (target - start)
        if abs(denom) < 1e-12:
            return False
        t = (offsets[s] - normals[s] @ start) / denom
        hit = start + t * (target - start)
        if not (0.0 <= t <= 1.0 and contains(s, hit)):
            return False
        start = hit
        target = target - 2.0 * (normals[s] @ target - offsets[s]) * normals[s]
    return True
