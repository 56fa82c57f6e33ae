"""The path the tracked evaluations drive: a figure-of-eight kept off the furniture, and the
frames of a drive along it."""

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor
from echoloc_ros.core.room import Room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.sim.trajectory import LissajousTrajectory


def drive(path: LissajousTrajectory, origin_xy: np.ndarray, simulator: EchoSimulator,
          processor: EchoProcessor, scenario: Scenario, rng: np.random.Generator,
          n_frames: int, frame_rate_hz: float, heading_noise_rad: float
          ) -> Iterator[tuple[float, np.ndarray, EchoFeatures, float]]:
    """The frames of a drive along ``path`` (its origin at ``origin_xy`` in the room), one
    every ``1 / frame_rate_hz`` from t = 0: ``(t_s, position_m, features, heading given)``,
    the heading with an error of ``heading_noise_rad`` std. A pose where boxes hide every wall
    gives no frame (the simulator has no echo to set the SNR by)."""
    offset = np.append(origin_xy, 0.0)
    for k in range(n_frames):
        t_s = k / frame_rate_hz
        position, yaw = path.pose(t_s)
        position = position + offset
        try:
            features = processor.process(simulator.simulate(position, yaw, scenario, rng))
        except ValueError:
            continue
        yield t_s, position, features, yaw + heading_noise_rad * rng.standard_normal()


def tracked_path(room: Room) -> LissajousTrajectory:
    """The figure-of-eight of the tracked evaluations: 0.3 m high at 0.3 m/s, 0.6 m from the
    walls; 1.2 m in a room with furniture, where the boxes stand by the walls: from 0.6 m the
    path runs through the furnished room's sofa and grazes its cabinet (a pose no robot
    reaches, whose echoes are the inside of a box), and a box moved up to 1 m from its place
    by a wall can stand off the 1.2 m path (from 0.6 m, none of 20 layouts could).

    The figure spans the plan's bounding box. Where the plan is not a rectangle and that
    figure leaves it, or comes within half its margin of a wall (an L's missing corner), it is
    :func:`fitted_path`'s largest figure inside the plan instead: over the bounding box, a
    quarter of ``l_shaped_room``'s lap lay outside the room, where the simulator gives no
    frame, and the lap resumed at the notch's wall after a 16 s gap (issue 19, r37-05).

    :raises ValueError: no figure fits inside the plan.
    """
    lo = room.vertices_m.min(axis=0)
    extent = tuple(room.vertices_m.max(axis=0) - lo)
    margin_m = 1.2 if room.furniture else 0.6
    path = LissajousTrajectory.inside(extent, margin_m=margin_m, height_m=0.3, speed_mps=0.3)
    lap = path.positions(np.linspace(0.0, path.period_s, 400))[:, :2] + lo
    if np.all(room.contains_xy(lap)) and np.min(room.wall_distance_m(lap)) >= 0.5 * margin_m:
        return path
    fitted = fitted_path(room, np.inf)
    if fitted is None:
        raise ValueError(f'room {room.name!r}: no figure-of-eight of half-extents 0.25 m or '
                         'more fits inside its plan 0.6 m from the walls')
    return fitted


def fitted_path(room: Room, lap_s: float, wall_margin_m: float = 0.6,
                box_margin_m: float = 0.2) -> LissajousTrajectory | None:
    """The largest figure-of-eight of :func:`tracked_path`'s kind (its half-extents capped in
    16 steps down to 0.25 m, moved on a 0.1 m grid) that laps in at most ``lap_s`` at
    0.3 m/s, stays inside the plan ``wall_margin_m`` from every wall (a non-rectangular plan's
    corners included) and ``box_margin_m`` off every box; among equal sizes, the one nearest
    the plan's middle. Its origin is the plan's lower corner, as :func:`tracked_path`'s.

    :return: the path, or None where no figure with half-extents of at least 0.25 m fits.
    """
    if lap_s <= 0:
        raise ValueError(f'lap_s must be positive, got {lap_s}')
    lo = room.vertices_m.min(axis=0)
    extent = room.vertices_m.max(axis=0) - lo
    full = np.maximum(extent / 2 - wall_margin_m, 0.25)
    grid = np.stack(np.meshgrid(*(np.arange(0.0, e + 1e-9, 0.1) for e in extent)), axis=-1)
    centers = grid.reshape(-1, 2)
    centers = centers[np.argsort(np.linalg.norm(centers - extent / 2, axis=1))]
    for half_m in np.linspace(full.max(), 0.25, 16):
        ax, ay = np.minimum(full, half_m)
        # Built in a box 1 m wider than the figure on each side, then moved onto the grid.
        path = LissajousTrajectory.inside((2 * ax + 2, 2 * ay + 2), 1.0, 0.3, 0.3)
        if path.period_s > lap_s:
            continue
        shape = path.positions(np.linspace(0.0, path.period_s, 400))
        shape[:, :2] -= (ax + 1, ay + 1)
        fits = _inside_plan(room, centers + lo, shape[:, :2], wall_margin_m)
        points = centers[:, None, :] + lo + shape[None, :, :2]
        placed = np.concatenate([points[fits], np.broadcast_to(
            shape[None, :, 2:], (np.count_nonzero(fits), len(shape), 1))], axis=-1)
        clear = np.ones(len(placed), dtype=bool)
        for box in room.furniture:
            clear &= ~np.any(box.contains(placed, box_margin_m), axis=1)
        if np.any(clear):
            center = centers[fits][np.argmax(clear)]
            return replace(path, center_m=(float(center[0]), float(center[1])))
    return None


def _inside_plan(room: Room, centers_xy: np.ndarray, shape_xy: np.ndarray,
                 margin_m: float) -> np.ndarray:
    """Which of the figures ``shape_xy (n, 2)`` placed at ``centers_xy (k, 2)`` stay inside
    the plan and ``margin_m`` from every wall ``(k,)``: every eighth point of each figure
    first, then every point of those that passed (the same answer as every point at once, for
    a fraction of the work)."""
    kept = np.arange(len(centers_xy))
    for points in (shape_xy[::8], shape_xy):
        placed = centers_xy[kept, None, :] + points[None, :, :]
        kept = kept[np.all(room.contains_xy(placed), axis=1)
                    & np.all(room.wall_distance_m(placed) >= margin_m, axis=1)]
    fits = np.zeros(len(centers_xy), dtype=bool)
    fits[kept] = True
    return fits


def _path_points(path: LissajousTrajectory, origin_xy: np.ndarray) -> np.ndarray:
    """Points of ``path`` (its origin at ``origin_xy``) every 0.1 s for 200 s ``(2001, 3)``."""
    points = path.positions(np.linspace(0.0, 200.0, 2001))
    points[:, :2] += origin_xy
    return points


def _near(boxes: list, points: np.ndarray) -> bool:
    """Whether any of ``boxes`` stands within 0.2 m of one of ``points``."""
    return any(np.any(box.contains(points, 0.2)) for box in boxes)


def on_path(boxes: list, path: LissajousTrajectory, origin_xy: np.ndarray) -> bool:
    """Whether any of ``boxes`` stands within 0.2 m of ``path`` (its origin at ``origin_xy``)."""
    return _near(boxes, _path_points(path, origin_xy))


def moved_off_path(room: Room, path: LissajousTrajectory, origin_xy: np.ndarray,
                   rng: np.random.Generator, max_shift_m: float) -> list:
    """The room's furniture moved, redrawn until no box stands within 0.2 m of the path.

    :raises ValueError: no such layout in 200 draws.
    """
    points = _path_points(path, origin_xy)
    for _ in range(200):
        moved = room.rearranged(rng, max_shift_m)
        if not _near(moved, points):
            return moved
    raise ValueError(f'no layout of the furniture of room {room.name!r} moved by up to '
                     f'{max_shift_m} m keeps 0.2 m off the tracked path in 200 draws')
