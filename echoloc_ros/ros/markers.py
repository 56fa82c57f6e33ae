"""rviz markers for the known room and for an estimate: the array, its 95 % ellipsoid, echo paths.

Every marker has a fixed namespace and id, so a new estimate replaces the last one in rviz
instead of piling up. Positions are in the map frame [m].
"""
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from echoloc_ros.core.room import Room

# 95 % quantile of the chi-square distribution with 3 degrees of freedom.
CHI2_3DOF_95 = 7.815

NS_WALLS = 'room/walls'
NS_FURNITURE = 'room/furniture'
NS_ARRAY = 'estimate/array'
NS_RECEIVERS = 'estimate/receivers'
NS_COVARIANCE = 'estimate/covariance_95'
NS_ECHOES = 'estimate/echo_paths'

WALL_COLOR = (0.75, 0.75, 0.8, 0.9)
FURNITURE_COLOR = (0.6, 0.45, 0.3, 0.45)
ARRAY_COLOR = (0.1, 0.4, 0.95, 1.0)
RECEIVER_COLOR = (0.95, 0.6, 0.1, 1.0)
COVARIANCE_COLOR = (0.2, 0.8, 0.3, 0.35)
ECHO_COLOR = (0.9, 0.2, 0.2, 0.6)


def _marker(ns: str, marker_id: int, kind: int, frame_id: str, stamp: Time,
            color: tuple[float, float, float, float]) -> Marker:
    marker = Marker(ns=ns, id=marker_id, type=kind, action=Marker.ADD)
    marker.header.frame_id = frame_id
    marker.header.stamp = stamp
    marker.pose.orientation.w = 1.0
    marker.color = ColorRGBA(r=color[0], g=color[1], b=color[2], a=color[3])
    return marker


def _point(p) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def rotation_to_quaternion(rotation: np.ndarray) -> Quaternion:
    """The unit quaternion of a proper rotation matrix ``(3, 3)`` (Shepperd's method)."""
    r = np.asarray(rotation, dtype=float)
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = (0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s)
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        xyz = [0.0, 0.0, 0.0]
        xyz[i] = 0.25 * s
        xyz[j] = (r[j, i] + r[i, j]) / s
        xyz[k] = (r[k, i] + r[i, k]) / s
        q = ((r[k, j] - r[j, k]) / s, *xyz)
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    return Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))


def covariance_ellipsoid(covariance_m2: np.ndarray,
                         chi2: float = CHI2_3DOF_95) -> tuple[np.ndarray, np.ndarray]:
    """Axes and orientation of the confidence ellipsoid of a 3-D Gaussian.

    :param covariance_m2: position covariance ``(3, 3)``, m^2.
    :param chi2: chi-square quantile (7.815: 95 % for 3 degrees of freedom).
    :return: ``(diameters_m (3,), rotation (3, 3))``: full axis lengths ``2 sqrt(chi2 lambda_i)``
        along the columns of the proper rotation ``rotation`` (the eigenvectors).
    :raises ValueError: when the covariance is not a finite symmetric ``(3, 3)`` matrix.
    """
    cov = np.asarray(covariance_m2, dtype=float)
    if cov.shape != (3, 3) or not np.all(np.isfinite(cov)) or not np.allclose(cov, cov.T):
        raise ValueError(f'covariance must be a finite symmetric 3x3 matrix, got {cov.tolist()}')
    eigenvalues, vectors = np.linalg.eigh(cov)
    if np.linalg.det(vectors) < 0:
        vectors[:, 2] = -vectors[:, 2]
    return 2.0 * np.sqrt(chi2 * np.clip(eigenvalues, 0.0, None)), vectors


def room_markers(room: Room, frame_id: str, stamp: Time) -> list[Marker]:
    """The room's walls as one LINE_LIST and each furniture box as a semi-transparent CUBE.

    The outline has the floor and ceiling polygons and the vertical edges: 6 points per wall.
    """
    walls = _marker(NS_WALLS, 0, Marker.LINE_LIST, frame_id, stamp, WALL_COLOR)
    walls.scale.x = 0.02
    plan = room.vertices_m
    for a, b in zip(plan, np.roll(plan, -1, axis=0)):
        for z in (0.0, room.height_m):
            walls.points += [_point((a[0], a[1], z)), _point((b[0], b[1], z))]
    for a in plan:
        walls.points += [_point((a[0], a[1], 0.0)), _point((a[0], a[1], room.height_m))]
    markers = [walls]
    for i, box in enumerate(room.furniture):
        cube = _marker(NS_FURNITURE, i, Marker.CUBE, frame_id, stamp, FURNITURE_COLOR)
        cube.pose.position = _point((box.min_m + box.max_m) / 2)
        size = box.max_m - box.min_m
        cube.scale = Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2]))
        cube.text = box.name
        markers.append(cube)
    return markers


def estimate_markers(position_m: np.ndarray, yaw_rad: float, covariance_m2: np.ndarray,
                     receivers_world_m: np.ndarray, echo_points_m: np.ndarray, frame_id: str,
                     stamp: Time) -> list[Marker]:
    """The array at its estimated pose, its 95 % ellipsoid and its echo paths.

    :param position_m: estimated array position ``(3,)``.
    :param yaw_rad: heading of the array.
    :param covariance_m2: position covariance ``(3, 3)``.
    :param receivers_world_m: receiver positions in the map frame ``(n_receivers, 3)``.
    :param echo_points_m: reflection points of the echoes ``(n_echoes, 3)``, may be empty.
    :return: an ARROW (heading), one SPHERE per receiver, the ellipsoid SPHERE and a LINE_LIST
        from the array to every reflection point (a DELETE of it when there are none).
    """
    position = np.asarray(position_m, dtype=float).reshape(3)
    arrow = _marker(NS_ARRAY, 0, Marker.ARROW, frame_id, stamp, ARRAY_COLOR)
    arrow.pose = Pose(position=_point(position),
                      orientation=Quaternion(z=float(np.sin(yaw_rad / 2)),
                                             w=float(np.cos(yaw_rad / 2))))
    arrow.scale = Vector3(x=0.25, y=0.025, z=0.025)
    markers = [arrow]
    for i, receiver in enumerate(np.asarray(receivers_world_m, dtype=float).reshape(-1, 3)):
        sphere = _marker(NS_RECEIVERS, i, Marker.SPHERE, frame_id, stamp, RECEIVER_COLOR)
        sphere.pose.position = _point(receiver)
        sphere.scale = Vector3(x=0.03, y=0.03, z=0.03)
        markers.append(sphere)
    diameters, rotation = covariance_ellipsoid(covariance_m2)
    ellipsoid = _marker(NS_COVARIANCE, 0, Marker.SPHERE, frame_id, stamp, COVARIANCE_COLOR)
    ellipsoid.pose = Pose(position=_point(position), orientation=rotation_to_quaternion(rotation))
    ellipsoid.scale = Vector3(x=float(diameters[0]), y=float(diameters[1]),
                              z=float(diameters[2]))
    markers.append(ellipsoid)
    echoes = _marker(NS_ECHOES, 0, Marker.LINE_LIST, frame_id, stamp, ECHO_COLOR)
    echoes.scale.x = 0.005
    for point in np.asarray(echo_points_m, dtype=float).reshape(-1, 3):
        echoes.points += [_point(position), _point(point)]
    if not echoes.points:
        echoes.action = Marker.DELETE
    markers.append(echoes)
    return markers


def marker_array(*marker_lists: Sequence[Marker]) -> MarkerArray:
    """One MarkerArray of several marker lists (room, estimate, ...)."""
    return MarkerArray(markers=[m for markers in marker_lists for m in markers])
