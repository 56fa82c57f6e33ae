"""The room's geometry, one fact for the simulator and the physics localizer: its planes, where
a point on a plane lies within its surface, whether a reflection path's points lie on its
surfaces, and the highest reflection order a shoebox's window can hold. Each keeps its own
physics (amplitudes, directivity), so that a mistake in one is not copied into the other; the
room's geometry is a fact, not a model."""

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
        # On the plan's edge counts: a wall-floor path from an emitter at the receivers'
        # centre meets the floor exactly where it meets the wall, where the even-odd test
        # decides by rounding.
        xy = points[..., :2]
        inside = room.contains_xy(xy)
        if not np.all(inside):
            inside = inside | (room.wall_distance_m(xy) <= tolerance_m)
        return inside
    a = room.vertices_m[index]
    b = room.vertices_m[(index + 1) % n_walls]
    u = (points[..., :2] - a) @ (b - a) / np.sum((b - a) ** 2)
    inside = (u >= -tolerance_m) & (u <= 1 + tolerance_m)
    if within_height:
        inside = inside & (points[..., 2] >= -tolerance_m) & (
            points[..., 2] <= room.height_m + tolerance_m)
    return inside


def is_convex(room: Room) -> bool:
    """Whether the room's plan is convex (no wall can hide another part of the room)."""
    a = room.vertices_m
    edge = np.roll(a, -1, axis=0) - a
    turn = edge[:, 0] * np.roll(edge[:, 1], -1) - edge[:, 1] * np.roll(edge[:, 0], -1)
    return bool(np.all(turn >= -1e-9))


@dataclass(frozen=True)
class Occluders:
    """What hides paths in a plan that is not convex.

    :ivar walls: the plan's walls ``(k, 2, 2)``: each one's two ends.
    :ivar reflex: the corners that jut into the room ``(r, 2)``.
    """

    walls: np.ndarray
    reflex: np.ndarray


def occluders(room: Room) -> Occluders | None:
    """The room's :class:`Occluders`; ``None`` for a convex plan, where nothing hides."""
    if is_convex(room):
        return None
    a = room.vertices_m
    edge = np.roll(a, -1, axis=0) - a
    turn = np.roll(edge[:, 0], 1) * edge[:, 1] - np.roll(edge[:, 1], 1) * edge[:, 0]
    return Occluders(np.stack([a, np.roll(a, -1, axis=0)], axis=1), a[turn < -1e-9])


def crosses_walls(start_xy: np.ndarray, end_xy: np.ndarray, walls: np.ndarray) -> np.ndarray:
    """Whether segments ``start -> end`` ``(L, 2)`` each (in plan) cross the inside of a wall
    ``(L,)``: a vertical wall hides what lies behind it at every height. A segment that ends
    on a wall (a reflection point) does not cross it.

    :param walls: the plan's walls ``(k, 2, 2)``: each one's two ends.
    """
    a, b = walls[None, :, 0], walls[None, :, 1]
    p, q = start_xy[:, None], end_xy[:, None]
    d, e = q - p, b - a

    def cross(u, v):
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    # 1e-9 m^2: ends on a wall (or a leg along one) are not crossings.
    sides_of_leg = cross(d, a - p) * cross(d, b - p)
    sides_of_wall = cross(e, p - a) * cross(e, q - a)
    return np.any((sides_of_leg < -1e-9) & (sides_of_wall < -1e-9), axis=1)


def on_surfaces(seq: tuple[int, ...], image: np.ndarray, receiver: np.ndarray,
                normals: np.ndarray, offsets: np.ndarray,
                contains: Callable[[int, np.ndarray], np.ndarray],
                hiding: Occluders | None = None) -> bool:
    """Whether every reflection point of the path from ``image`` (an image of the source by
    the planes ``seq``, in travel order) to ``receiver`` lies on its surface.

    :param normals: the planes' unit normals ``(S, 3)``; ``offsets`` theirs ``(S,)``.
    :param contains: ``contains(index, point)``: whether a point of plane ``index`` lies on
        its surface (:func:`plane_contains`).
    :param hiding: in a plan that is not convex, its :class:`Occluders`: then each
        reflection must have the points before and after it in front of its plane, none may
        be at a corner that juts into the room (from one wall the sound turns away from the
        other), and no leg of the path may cross a wall. In a convex plan all of this holds
        whenever the reflection points lie on their surfaces.
    """
    start, target = receiver, image
    points = [receiver]
    for s in reversed(seq):
        denom = normals[s] @ (target - start)
        if abs(denom) < 1e-12:
            return False
        t = (offsets[s] - normals[s] @ start) / denom
        hit = start + t * (target - start)
        if not (0.0 <= t <= 1.0 and contains(s, hit)):
            return False
        points.append(hit)
        start = hit
        target = target - 2.0 * (normals[s] @ target - offsets[s]) * normals[s]
    if hiding is None:
        return True
    hits = np.array(points[1:])[:, :2]
    if hiding.reflex.size and np.any(np.hypot(*(hits[:, None] - hiding.reflex[None]).T)
                                     < 1e-6):
        return False
    points.append(target)
    for j, s in enumerate(reversed(seq), start=1):
        # A wall reflects on its room side only (1e-9 m: a neighbour on a meeting wall).
        if min(normals[s] @ points[j - 1], normals[s] @ points[j + 1]) < offsets[s] - 1e-9:
            return False
    legs = np.array(points)[:, :2]
    return not np.any(crosses_walls(legs[:-1], legs[1:], hiding.walls))


def orders_in_window(size_m: tuple[float, float, float], path_m: float) -> int:
    """The highest reflection order of a shoebox room with a path shorter than ``path_m``,
    wherever the emitter and the receiver are in it.

    Unfolded, a path with ``k`` reflections between two parallel surfaces ``D`` apart spans at
    least ``(k - 1) D`` along their normal (both ends at the far surfaces); a path of order
    ``n`` is at least the shortest such span over the ways of sharing ``n`` among the three
    axes. Every order above the one returned arrives after ``path_m``.

    :param size_m: the room's width, length and height, m.
    :param path_m: the longest path that arrives in the window, m.
    :return: the order, >= 1.
    """
    size = np.asarray(size_m, dtype=float)
    if size.shape != (3,) or not np.all(size > 0) or not path_m > 0:
        raise ValueError(f'need three positive room dimensions and a positive path, got '
                         f'{size_m} and {path_m} m')

    def shortest_m(order: int) -> float:
        kx, ky = np.meshgrid(np.arange(order + 1), np.arange(order + 1), indexing='ij')
        split = np.stack([kx, ky, order - kx - ky], axis=-1)[kx + ky <= order]
        return float(np.min(np.linalg.norm(np.maximum(split - 1, 0) * size, axis=1)))

    order = 1
    while shortest_m(order + 1) < path_m:
        order += 1
    return order
