"""Draw rviz markers as a PNG (top and side views) with matplotlib, for docs and headless checks.

Orthographic views of what rviz shows for the same MarkerArray: LINE_LISTs as segments, CUBEs as
the outline of their footprint, SPHEREs (ellipsoids) as their exact outline in the view, ARROWs
along the marker's x axis.
"""
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Polygon
from visualization_msgs.msg import Marker

# (axis indices, axis names) of each view.
VIEWS = {'top': ((0, 1), ('x [m]', 'y [m]')), 'side': ((0, 2), ('x [m]', 'z [m]'))}


def quaternion_to_rotation(q) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of a geometry_msgs Quaternion (normalised first)."""
    w, x, y, z = np.array([q.w, q.x, q.y, q.z]) / np.linalg.norm([q.w, q.x, q.y, q.z])
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _pose(marker: Marker) -> tuple[np.ndarray, np.ndarray]:
    p = marker.pose.position
    return np.array([p.x, p.y, p.z]), quaternion_to_rotation(marker.pose.orientation)


def _color(marker: Marker) -> tuple[float, float, float, float]:
    c = marker.color
    return (c.r, c.g, c.b, c.a)


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull ``(k, 2)`` of 2-D points, counter-clockwise (monotone chain)."""
    pts = sorted(map(tuple, np.round(points, 12)))

    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and np.cross(np.subtract(out[-1], out[-2]),
                                              np.subtract(p, out[-2])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]
    return np.array(half(pts) + half(pts[::-1]))


def _draw(ax, marker: Marker, axes: tuple[int, int]) -> None:
    position, rotation = _pose(marker)
    color = _color(marker)
    a, b = axes
    if marker.type == Marker.LINE_LIST:
        points = np.array([[p.x, p.y, p.z] for p in marker.points]) @ rotation.T + position
        segments = points.reshape(-1, 2, 3)[:, :, [a, b]]
        ax.add_collection(LineCollection(segments, colors=[color], linewidths=1.0))
    elif marker.type == Marker.CUBE:
        half_size = np.array([marker.scale.x, marker.scale.y, marker.scale.z]) / 2
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        corners = (corners * half_size) @ rotation.T + position
        ax.add_patch(Polygon(_hull(corners[:, [a, b]]), closed=True, facecolor=color,
                             edgecolor=color[:3]))
    elif marker.type == Marker.SPHERE:
        # The outline of an ellipsoid x^T M^-1 x = 1 seen along an axis is the ellipse of M's
        # 2x2 block for the two other axes.
        radii = np.array([marker.scale.x, marker.scale.y, marker.scale.z]) / 2
        shape = rotation @ np.diag(radii ** 2) @ rotation.T
        block = shape[np.ix_([a, b], [a, b])]
        values, vectors = np.linalg.eigh(block)
        angle_deg = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
        width, height = 2 * np.sqrt(np.clip(values[::-1], 0, None))
        ax.add_patch(Ellipse((position[a], position[b]), width, height, angle=angle_deg,
                             facecolor=color, edgecolor=color[:3]))
    elif marker.type == Marker.ARROW:
        direction = rotation[:, 0] * marker.scale.x
        ax.annotate('', xy=(position[a] + direction[a], position[b] + direction[b]),
                    xytext=(position[a], position[b]),
                    arrowprops=dict(arrowstyle='-|>', color=color, lw=1.5))
    elif marker.type in (Marker.SPHERE_LIST, Marker.POINTS, Marker.CUBE_LIST):
        points = np.array([[p.x, p.y, p.z] for p in marker.points]) @ rotation.T + position
        ax.scatter(points[:, a], points[:, b], s=8, color=[color])


def render_markers_png(markers: Sequence[Marker], path: Path, title: str = '') -> Path:
    """Draw markers (ADD actions) in a top and a side view; write a PNG and return its path."""
    figure = Figure(figsize=(11, 5.5), layout='constrained')
    FigureCanvasAgg(figure)
    shown = [m for m in markers if m.action == Marker.ADD]
    for ax, (view, (axes, labels)) in zip(figure.subplots(1, 2, width_ratios=(3, 2)),
                                          VIEWS.items()):
        for marker in shown:
            _draw(ax, marker, axes)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        ax.set_title(f'{view} view')
        ax.set_aspect('equal')
        ax.autoscale_view()
        ax.grid(True, alpha=0.3)
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
