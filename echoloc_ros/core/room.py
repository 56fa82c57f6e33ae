"""A known room: floor plan, height, surface materials at 40 kHz, furniture boxes and air."""

import reprlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from echoloc_ros.core.paths import load_config

# Energy absorption coefficients near 40 kHz. No standard tabulates 40 kHz; these extrapolate the
# 4 kHz octave of common tables (hard surfaces stay reflective, porous ones absorb more).
MATERIALS = {
    'painted_plaster': 0.08,
    'painted_concrete': 0.05,
    'brick': 0.07,
    'glass': 0.04,
    'metal': 0.03,
    'vinyl': 0.10,
    'laminate': 0.10,
    'wood': 0.12,
    'carpet': 0.55,
    'fabric': 0.60,
    'acoustic_tile': 0.70,
}


# Limits on a room read from text that may come from a peer on the network (echoloc/room): the
# shipped rooms are 1-3 KiB with up to 4 boxes and no YAML aliases. Each box costs every frame
# a ray test per echo path (1,000 boxes took poses from 25/s to 0.2/s), and aliases let a few
# hundred bytes expand to gigabytes ("billion laughs").
MAX_ROOM_YAML_BYTES = 64 * 1024
MAX_YAML_ALIASES = 32
MAX_FURNITURE = 64
MAX_PLAN_VERTICES = 64
# How far a room file's surfaces may be off when the file does not say (``tolerance_m``): a
# room measured with a tape along 4-6 m walls, whose plaster is not flat either, is good to
# 1-3 cm. The shipped rooms are the simulator's and state 0 (exact).
DEFAULT_TOLERANCE_M = 0.02
# The largest doubt of a room's scale a file may state (``scale_std``): 5 % is 27 degC of air.
MAX_SCALE_STD = 0.05
# Values quoted in error messages are cut short (80 characters, 6 items, 3 levels).
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxdict = 6
_SHORT.maxlevel = 3


def _short(value: Any) -> str:
    """``repr(value)``, cut short: a hostile value must not make a huge error message."""
    return _SHORT.repr(value)


def _number(value: Any, where: str) -> float:
    """A finite number (not a bool, list or string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f'{where} must be a finite number, got {_short(value)}')
    return float(value)


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses more than ``MAX_YAML_ALIASES`` aliases."""

    def __init__(self, stream):
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise ValueError(f'room YAML has more than {MAX_YAML_ALIASES} aliases')
        return super().compose_node(parent, index)


def _absorption(value: Any, where: str) -> float:
    """An energy absorption coefficient from a material name or a number in [0, 1)."""
    if isinstance(value, str):
        if value not in MATERIALS:
            raise ValueError(f'{where}: unknown material {value!r}; known: {sorted(MATERIALS)} '
                             'or a number in [0, 1)')
        return MATERIALS[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f'{where}: absorption must be a material name or a number in [0, 1), '
                         f'got {_short(value)}')
    return float(value)


def segments_blocked(start_m: np.ndarray, end_m: np.ndarray, box_min_m: np.ndarray,
                     box_max_m: np.ndarray) -> np.ndarray:
    """Whether segments ``start -> end`` pass through axis-aligned boxes (slab test).

    :param start_m: ``(..., 3)``. :param end_m: ``(..., 3)``.
    :param box_min_m: lower corners ``(..., 3)``, broadcast against the segments (``(B, 3)``
        against segments ``(K, 1, 3)`` tests every box at once).
    :param box_max_m: upper corners, likewise.
    :return: bool array of the broadcast leading shape.
    """
    start = np.asarray(start_m, dtype=float)
    d = np.asarray(end_m, dtype=float) - start
    inside = (start > box_min_m) & (start < box_max_m)
    with np.errstate(divide='ignore', invalid='ignore'):
        t0 = (box_min_m - start) / d
        t1 = (box_max_m - start) / d
    lo = np.where(d == 0, np.where(inside, -np.inf, np.inf), np.minimum(t0, t1))
    hi = np.where(d == 0, np.where(inside, np.inf, -np.inf), np.maximum(t0, t1))
    enter = np.max(lo, axis=-1)
    leave = np.min(hi, axis=-1)
    return (enter < leave) & (leave > 1e-9) & (enter < 1.0 - 1e-9)


def any_box_blocks(boxes: list['Box'], start_m: np.ndarray, end_m: np.ndarray) -> np.ndarray:
    """Whether segments ``start -> end`` (``(K, 3)`` each) pass through any of ``boxes``:
    ``(K,)``, all boxes in one vectorised slab test."""
    if not boxes:
        return np.zeros(np.shape(start_m)[:-1], dtype=bool)
    lo = np.array([b.min_m for b in boxes])
    hi = np.array([b.max_m for b in boxes])
    start = np.asarray(start_m, dtype=float)[..., None, :]
    end = np.asarray(end_m, dtype=float)[..., None, :]
    return np.any(segments_blocked(start, end, lo, hi), axis=-1)


@dataclass
class Box:
    """An axis-aligned furniture box in the room frame.

    :ivar min_m: lower corner ``(3,)``, m.
    :ivar max_m: upper corner ``(3,)``, m.
    :ivar absorption: energy absorption coefficient of its faces at 40 kHz.
    """

    name: str
    min_m: np.ndarray
    max_m: np.ndarray
    absorption: float = 0.1

    def __post_init__(self) -> None:
        self.min_m = np.asarray(self.min_m, dtype=float)
        self.max_m = np.asarray(self.max_m, dtype=float)
        if (self.min_m.shape != (3,) or self.max_m.shape != (3,)
                or not np.all(np.isfinite(self.min_m)) or not np.all(np.isfinite(self.max_m))):
            raise ValueError(f'box {self.name!r}: min_m and max_m must be [x, y, z], finite')
        if np.any(self.max_m <= self.min_m):
            raise ValueError(f'box {self.name!r}: max_m {self.max_m.tolist()} must exceed '
                             f'min_m {self.min_m.tolist()} on every axis')

    def blocks(self, start_m: np.ndarray, end_m: np.ndarray) -> np.ndarray:
        """Whether segments ``start -> end`` (``(..., 3)`` each) pass through the box (slab test).

        :return: bool array of the broadcast leading shape.
        """
        return segments_blocked(start_m, end_m, self.min_m, self.max_m)

    def shifted(self, offset_m: np.ndarray) -> 'Box':
        """The same box moved by ``offset_m``: ``(3,)``, or ``(2,)`` in plan."""
        step = np.zeros(3)
        step[:len(offset_m)] = offset_m
        return replace(self, min_m=self.min_m + step, max_m=self.max_m + step)

    def contains(self, points_m: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
        """Whether points ``(..., 3)`` lie inside the box grown by ``margin_m``."""
        points = np.asarray(points_m)
        return np.all((points >= self.min_m - margin_m) & (points <= self.max_m + margin_m),
                      axis=-1)


@dataclass
class Room:
    """A room with vertical walls, a flat floor at z = 0 and a flat ceiling at ``height_m``.

    :ivar vertices_m: floor plan ``(k, 2)``, counter-clockwise; wall i runs from vertex i to i+1.
    :ivar wall_absorption: energy absorption per wall ``(k,)`` at 40 kHz.
    :ivar wall_names: one name per wall (``south``, ``east``, ``north``, ``west`` for a shoebox).
    :ivar tolerance_m: how far each real surface may lie from where the file puts it (a
        tape-measured room: 0.01-0.03 m); the published covariance covers it
        (:mod:`~echoloc_ros.core.room_tolerance`). 0: the file is exact; a file that does not
        say gets :data:`DEFAULT_TOLERANCE_M`.
    :ivar scale_std: the room's scale's own doubt, one standard deviation as a fraction of
        the room's size (a calibrated room's ruler: the speed of sound of the temperature
        told): one error shared by every surface, which moves each by the scale times its
        distance from the room's centre, apart from ``tolerance_m`` (each surface's own).
        0: none (a tape-measured file, whose doubt is its surfaces' own).
    :ivar surface_std_m: each surface's own doubt, one standard deviation, walls in plan order
        then floor and ceiling ``(k + 2,)``, m: a calibrated room's, each surface's estimate's
        from the drive. The published covariance reads it in place of ``tolerance_m``
        (:func:`~echoloc_ros.core.room_tolerance.tolerance_covariance`); ``tolerance_m`` stays
        the bound the residual is judged against. ``None``: every surface uniform within
        ``tolerance_m``.
    """

    name: str
    vertices_m: np.ndarray
    height_m: float
    wall_absorption: np.ndarray
    floor_absorption: float
    ceiling_absorption: float
    furniture: list[Box] = field(default_factory=list)
    temperature_c: float = 20.0
    humidity_pct: float = 50.0
    wall_names: list[str] = field(default_factory=list)
    description: str = ''
    tolerance_m: float = 0.0
    scale_std: float = 0.0
    surface_std_m: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vertices_m = np.asarray(self.vertices_m, dtype=float)
        k = self.vertices_m.shape[0] if self.vertices_m.ndim == 2 else 0
        if self.vertices_m.ndim != 2 or self.vertices_m.shape[1] != 2 or k < 3:
            raise ValueError(f'room {self.name!r}: plan must have at least 3 [x, y] vertices, '
                             f'got shape {self.vertices_m.shape}')
        if not np.all(np.isfinite(self.vertices_m)):
            raise ValueError(f'room {self.name!r}: plan vertices must be finite')
        if _signed_area(self.vertices_m) <= 0:
            raise ValueError(f'room {self.name!r}: plan vertices must be counter-clockwise '
                             f'(positive area), got {self.vertices_m.tolist()}')
        if not 0 < self.height_m < np.inf:
            raise ValueError(f'room {self.name!r}: height_m must be positive and finite, got '
                             f'{self.height_m}')
        self.wall_absorption = np.broadcast_to(
            np.asarray(self.wall_absorption, dtype=float), (k,)).copy()
        if not self.wall_names:
            self.wall_names = [f'wall_{i}' for i in range(k)]
        if len(self.wall_names) != k:
            raise ValueError(f'room {self.name!r}: {len(self.wall_names)} wall names for {k} '
                             'walls')
        if not -30 <= self.temperature_c <= 50:
            raise ValueError(f'room {self.name!r}: temperature_c must be in [-30, 50], got '
                             f'{self.temperature_c}')
        if not (np.isfinite(self.tolerance_m) and 0 <= self.tolerance_m <= 0.5):
            raise ValueError(f'room {self.name!r}: tolerance_m must be in [0, 0.5], got '
                             f'{self.tolerance_m}')
        if not (np.isfinite(self.scale_std) and 0 <= self.scale_std <= MAX_SCALE_STD):
            raise ValueError(f'room {self.name!r}: scale_std must be a fraction in [0, '
                             f'{MAX_SCALE_STD}], got {self.scale_std}')
        if self.surface_std_m is not None:
            self.surface_std_m = np.asarray(self.surface_std_m, dtype=float)
            if (self.surface_std_m.shape != (k + 2,) or not np.all(np.isfinite(self.surface_std_m))
                    or np.any(self.surface_std_m < 0) or np.any(self.surface_std_m > 0.5)):
                raise ValueError(f'room {self.name!r}: surface_std_m must be {k + 2} numbers in '
                                 f'[0, 0.5] (walls, floor, ceiling), got '
                                 f'{_short(np.asarray(self.surface_std_m).tolist())}')
        if not 0 <= self.humidity_pct <= 100:
            raise ValueError(f'room {self.name!r}: humidity_pct must be in [0, 100], got '
                             f'{self.humidity_pct}')

    @property
    def is_shoebox(self) -> bool:
        """True for an axis-aligned rectangle with a corner at the origin (the fast path)."""
        v = self.vertices_m
        if v.shape[0] != 4:
            return False
        w, l_ = self.width_m, self.length_m
        return np.allclose(v, [[0, 0], [w, 0], [w, l_], [0, l_]])

    @property
    def width_m(self) -> float:
        """Extent of the floor plan along x."""
        return float(np.ptp(self.vertices_m[:, 0]))

    @property
    def length_m(self) -> float:
        """Extent of the floor plan along y."""
        return float(np.ptp(self.vertices_m[:, 1]))

    @property
    def volume_m3(self) -> float:
        """Volume enclosed by the walls, floor and ceiling."""
        return abs(_signed_area(self.vertices_m)) * self.height_m

    @property
    def max_extent_m(self) -> float:
        """Largest of width, length and height: the farthest a wall can be from the array."""
        return max(self.width_m, self.length_m, self.height_m)

    def surface_absorption(self) -> np.ndarray:
        """Absorption of every surface, walls then floor then ceiling ``(k + 2,)``."""
        return np.concatenate([self.wall_absorption,
                               [self.floor_absorption, self.ceiling_absorption]])

    @property
    def surface_names(self) -> list[str]:
        """Names of walls, then ``floor`` and ``ceiling``."""
        return list(self.wall_names) + ['floor', 'ceiling']

    def wall_distance_m(self, points_xy: np.ndarray) -> np.ndarray:
        """Distance in plan from points ``(..., 2)`` to the nearest wall."""
        p = np.asarray(points_xy, dtype=float)[..., None, :]
        a = self.vertices_m
        b = np.roll(a, -1, axis=0)
        ab = b - a
        u = np.clip(np.sum((p - a) * ab, axis=-1) / np.sum(ab * ab, axis=-1), 0.0, 1.0)
        closest = a + u[..., None] * ab
        return np.min(np.linalg.norm(p - closest, axis=-1), axis=-1)

    def contains_xy(self, points_xy: np.ndarray) -> np.ndarray:
        """Whether points ``(..., 2)`` lie inside the floor plan (even-odd rule)."""
        p = np.asarray(points_xy, dtype=float)
        x, y = p[..., 0, None], p[..., 1, None]
        a = self.vertices_m
        b = np.roll(a, -1, axis=0)
        crosses = (a[:, 1] > y) != (b[:, 1] > y)
        with np.errstate(divide='ignore', invalid='ignore'):
            x_cross = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
        return np.sum(crosses & (x < x_cross), axis=-1) % 2 == 1

    def axis_spans(self, axis: int, cuts_m: np.ndarray | None = None) -> np.ndarray:
        """The plan cut into strips across ``axis`` at every vertex (and at ``cuts_m`` along
        the other axis), and each strip's middle line along ``axis`` cut into the intervals
        that lie inside the plan.

        A point anywhere in a span has the same two walls across ``axis`` in front of it, the
        span's ends: where they run across ``axis``, within a span the plan is a shoebox
        along that axis (a narrow wing is a span of its own; a wall at an angle, such as a
        chamfer, may end a span).

        :param axis: 0 (spans along x) or 1 (along y).
        :param cuts_m: more cuts along the other axis (a box's sides), m.
        :return: ``(n, 4)``: each span's ends along ``axis`` and its strip's bounds along the
            other, m.
        """
        if axis not in (0, 1):
            raise ValueError(f'axis must be 0 (x) or 1 (y), got {axis!r}')
        other = 1 - axis
        a = self.vertices_m
        b = np.roll(a, -1, axis=0)
        extra = np.zeros(0) if cuts_m is None else np.asarray(cuts_m, dtype=float).ravel()
        lo, hi = a[:, other].min(), a[:, other].max()
        cuts = np.unique(np.concatenate([a[:, other], extra[(extra > lo) & (extra < hi)]]))
        spans = []
        for s0, s1 in zip(cuts[:-1], cuts[1:]):
            mid = 0.5 * (s0 + s1)
            crosses = (a[:, other] > mid) != (b[:, other] > mid)
            t = (mid - a[crosses, other]) / (b[crosses, other] - a[crosses, other])
            at = np.sort(a[crosses, axis] + t * (b[crosses, axis] - a[crosses, axis]))
            # Even-odd: the crossings pair up into the intervals inside the plan.
            spans += [(e0, e1, s0, s1) for e0, e1 in zip(at[0::2], at[1::2])]
        return np.array(spans, dtype=float).reshape(-1, 4)

    def reflection_points_m(self, position_m: np.ndarray) -> np.ndarray:
        """Where the first-order echoes of a point source at ``position_m`` reflect ``(n, 3)``.

        For a co-located emitter and receiver the specular point on a plane is the foot of the
        perpendicular: one per wall whose segment it falls on, one on the floor, one on the
        ceiling.
        """
        p = np.asarray(position_m, dtype=float)
        a = self.vertices_m
        ab = np.roll(a, -1, axis=0) - a
        u = np.sum((p[:2] - a) * ab, axis=1) / np.sum(ab * ab, axis=1)
        on_wall = (u >= 0) & (u <= 1)
        feet = a[on_wall] + u[on_wall, None] * ab[on_wall]
        walls = np.column_stack([feet, np.full(len(feet), p[2])])
        return np.vstack([walls, [p[0], p[1], 0.0], [p[0], p[1], self.height_m]])

    def rearranged(self, rng: np.random.Generator, max_shift_m: float) -> list[Box]:
        """The furniture moved: each box shifted in plan by up to ``max_shift_m`` on each axis,
        kept inside the plan's bounding box and off the boxes already placed (a box that finds
        no such place in 100 tries stays where it was).

        :return: new boxes, same names, sizes and materials.
        """
        lo, hi = self.vertices_m.min(axis=0), self.vertices_m.max(axis=0)
        placed: list[Box] = []
        for box in self.furniture:
            size = box.max_m[:2] - box.min_m[:2]
            moved = box
            for _ in range(100):
                corner = np.clip(box.min_m[:2] + rng.uniform(-max_shift_m, max_shift_m, 2),
                                 lo, np.maximum(hi - size, lo))
                trial = Box(box.name, np.append(corner, box.min_m[2]),
                            np.append(corner + size, box.max_m[2]), box.absorption)
                if all(np.any(trial.max_m[:2] <= o.min_m[:2])
                       or np.any(o.max_m[:2] <= trial.min_m[:2]) for o in placed):
                    moved = trial
                    break
            placed.append(moved)
        return placed

    def random_pose(self, rng: np.random.Generator, margin_m: float = 0.4,
                    z_range_m: tuple[float, float] = (0.2, 1.2)) -> tuple[np.ndarray, float]:
        """A pose drawn uniformly: ``margin_m`` from every wall and outside furniture.

        :param rng: random generator (the seed makes it reproducible).
        :param margin_m: minimum distance in plan to any wall and to any furniture box.
        :param z_range_m: interval for the array height, m.
        :return: ``(position_m (3,), yaw_rad)``, yaw uniform in [-pi, pi).
        """
        lo = self.vertices_m.min(axis=0)
        hi = self.vertices_m.max(axis=0)
        for _ in range(10000):
            xy = rng.uniform(lo, hi)
            z = rng.uniform(*z_range_m)
            position = np.array([xy[0], xy[1], z])
            if (self.contains_xy(xy) and self.wall_distance_m(xy) >= margin_m
                    and not any(box.contains(position, margin_m) for box in self.furniture)):
                return position, float(rng.uniform(-np.pi, np.pi))
        raise ValueError(f'room {self.name!r}: no pose {margin_m} m from the walls and furniture')


def _signed_area(vertices: np.ndarray) -> float:
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _plan(plan: Any, name: str) -> tuple[Any, list[str]]:
    """The plan's vertices [m] and its walls' names, from the room's ``plan`` field."""
    if isinstance(plan, dict) and 'shoebox' in plan:
        box = plan['shoebox']
        try:
            w = _number(box['width_m'], 'width_m')
            l_ = _number(box['length_m'], 'length_m')
        except (KeyError, TypeError, ValueError):
            raise ValueError(f'room {name!r}: plan.shoebox needs numbers width_m and length_m, '
                             f'got {_short(box)}') from None
        if w <= 0 or l_ <= 0:
            raise ValueError(f'room {name!r}: shoebox width_m and length_m must be positive, '
                             f'got {w}, {l_}')
        vertices = [[0, 0], [w, 0], [w, l_], [0, l_]]
        wall_names = ['south', 'east', 'north', 'west']
    elif isinstance(plan, dict) and 'polygon' in plan:
        vertices = plan['polygon']
        if not isinstance(vertices, list) or len(vertices) > MAX_PLAN_VERTICES:
            raise ValueError(f'room {name!r}: plan.polygon must be a list of at most '
                             f'{MAX_PLAN_VERTICES} [x, y], got {_short(vertices)}')
        try:
            vertices = np.asarray(vertices, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f'room {name!r}: plan.polygon must be a list of [x, y], got '
                             f'{_short(vertices)}') from None
        wall_names = [f'wall_{i}' for i in range(len(vertices))]
    else:
        raise ValueError(f'room {name!r}: plan must be {{shoebox: {{width_m, length_m}}}} or '
                         f'{{polygon: [[x, y], ...]}}, got {_short(plan)}')
    return vertices, wall_names


def _wall_absorption(materials: Any, wall_names: list[str], name: str) -> list[float]:
    """Each wall's absorption, from the room's ``materials`` (checked for every surface)."""
    if not isinstance(materials, dict):
        raise ValueError(f'room {name!r}: materials must be a mapping, got {_short(materials)}')
    allowed_surfaces = {'walls', 'floor', 'ceiling'} | set(wall_names)
    unknown = set(materials) - allowed_surfaces
    if unknown:
        raise ValueError(f'room {name!r}: unknown surfaces {_short(sorted(map(str, unknown)))} '
                         'in materials; '
                         f'expected {sorted(allowed_surfaces)}')
    for key in ('walls', 'floor', 'ceiling'):
        if key not in materials:
            raise ValueError(f'room {name!r}: materials lacks {key!r}')
    default_wall = _absorption(materials['walls'], f'room {name!r} materials.walls')
    return [_absorption(materials[w], f'room {name!r} materials.{w}')
            if w in materials else default_wall for w in wall_names]


def _furniture(items: Any, name: str) -> list[Box]:
    """The furniture boxes, from the room's ``furniture`` list."""
    if not isinstance(items, list):
        raise ValueError(f'room {name!r}: furniture must be a list of boxes, got '
                         f'{_short(items)}')
    if len(items) > MAX_FURNITURE:
        raise ValueError(f'room {name!r}: {len(items)} furniture boxes, more than the '
                         f'{MAX_FURNITURE} allowed')
    furniture = []
    for i, item in enumerate(items):
        where = f'room {name!r} furniture[{i}]'
        if not isinstance(item, dict) or not {'min_m', 'max_m'} <= set(item):
            raise ValueError(f'{where}: needs min_m and max_m, got {_short(item)}')
        corners = []
        for key in ('min_m', 'max_m'):
            corner = item[key]
            if not isinstance(corner, list) or len(corner) != 3:
                raise ValueError(f'{where}: {key} must be [x, y, z], got {_short(corner)}')
            corners.append([_number(v, f'{where}.{key}') for v in corner])
        furniture.append(Box(name=str(item.get('name', f'box_{i}'))[:80], min_m=corners[0],
                             max_m=corners[1],
                             absorption=_absorption(item.get('material', 'wood'), where)))
    return furniture


def room_from_dict(data: dict[str, Any]) -> Room:
    """Build a :class:`Room` from its YAML/dict form, naming any bad field."""
    if not isinstance(data, dict):
        raise ValueError(f'room description must be a mapping, got {type(data).__name__}')
    allowed = {'name', 'description', 'plan', 'height_m', 'materials', 'furniture',
               'temperature_c', 'humidity_pct', 'tolerance_m', 'scale_std', 'surface_std_m'}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f'unknown room fields {_short(sorted(map(str, unknown)))}; expected '
                         f'{sorted(allowed)}')
    for key in ('name', 'plan', 'height_m', 'materials'):
        if key not in data:
            raise ValueError(f'room description lacks {key!r}')
    if not isinstance(data['name'], str) or not 0 < len(data['name']) <= 64:
        raise ValueError(f'room name must be a string of 1 to 64 characters, got '
                         f'{_short(data["name"])}')
    name = data['name']
    vertices, wall_names = _plan(data['plan'], name)
    materials = data['materials']
    wall_absorption = _wall_absorption(materials, wall_names, name)
    furniture = _furniture(data.get('furniture') or [], name)
    return Room(
        name=name, description=str(data.get('description', '')), vertices_m=vertices,
        height_m=_number(data['height_m'], f'room {name!r}: height_m'),
        wall_absorption=wall_absorption,
        floor_absorption=_absorption(materials['floor'], f'room {name!r} materials.floor'),
        ceiling_absorption=_absorption(materials['ceiling'], f'room {name!r} materials.ceiling'),
        furniture=furniture,
        temperature_c=_number(data.get('temperature_c', 20.0), f'room {name!r}: temperature_c'),
        humidity_pct=_number(data.get('humidity_pct', 50.0), f'room {name!r}: humidity_pct'),
        wall_names=wall_names,
        tolerance_m=_number(data.get('tolerance_m', DEFAULT_TOLERANCE_M),
                            f'room {name!r}: tolerance_m'),
        scale_std=_number(data.get('scale_std', 0.0), f'room {name!r}: scale_std'),
        surface_std_m=_surface_std(data.get('surface_std_m'), wall_names, name))


def _surface_std(data: Any, wall_names: list[str], name: str) -> np.ndarray | None:
    """A file's ``surface_std_m``: a mapping of every surface's name (the walls', ``floor``,
    ``ceiling``) to its standard deviation, m; ``None`` when the file does not state it."""
    if data is None:
        return None
    names = list(wall_names) + ['floor', 'ceiling']
    if not isinstance(data, dict) or set(map(str, data)) != set(names):
        raise ValueError(f'room {name!r}: surface_std_m must map every surface {names} to a '
                         f'standard deviation in m, got {_short(data)}')
    return np.array([_number(data[s], f'room {name!r}: surface_std_m.{s}') for s in names])


def room_from_yaml(text: str) -> Room:
    """A room from the text of its YAML file (as the furniture survey publishes it).

    :raises ValueError: not a string, larger than ``MAX_ROOM_YAML_BYTES``, not YAML, more
        than ``MAX_YAML_ALIASES`` aliases, or not a room (naming the bad field).
    """
    if not isinstance(text, str):
        raise ValueError(f'room YAML must be text, got {type(text).__name__}')
    size = len(text.encode('utf-8', errors='replace'))
    if size > MAX_ROOM_YAML_BYTES:
        raise ValueError(f'room YAML is {size} bytes, more than the {MAX_ROOM_YAML_BYTES} '
                         'allowed')
    try:
        data = yaml.load(text, Loader=_LimitedLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f'room is not YAML: {_short(str(exc))}') from None
    except RecursionError:
        raise ValueError('room YAML is nested too deeply') from None
    return room_from_dict(data)


def load_room(name_or_path: str | Path = 'default_room') -> Room:
    """Load ``config/rooms/<name>.yaml`` or a YAML file by path.

    :param name_or_path: room name or path to a YAML file.
    :return: the room.
    """
    return load_config('rooms', name_or_path, room_from_dict)
