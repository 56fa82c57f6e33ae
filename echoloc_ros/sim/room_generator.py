"""Rooms never seen: seeded random room files in two disjoint splits, ``dev`` (to tune on) and
``heldout`` (to report on).

A room is drawn as the dict of a room file and built through :func:`room_from_dict`, the path
every room file takes, so a generated room is valid as a file and can be written as one
(:func:`room_yaml`). Plans: shoeboxes from 3 x 3 to 10 x 8 m and half of the rooms
non-rectangular (L, T, a chamfered corner, an alcove); heights 2.4-4 m; surfaces from hard
(glass, concrete, plaster) to soft (carpet, curtains, acoustic ceiling tiles) with the
absorption of :data:`~echoloc_ros.core.room.MATERIALS`, every third room with a soft floor
or ceiling or both; 0-8 furniture boxes.

Room ``i`` of a split is drawn from ``SeedSequence([seed, split key, i])``: the split's key is
part of every room's seed, so no seed and index of one split draw a room of the other."""

import numpy as np
import yaml

from echoloc_ros.core.room import Room, room_from_dict

#: split name -> the key mixed into each of its rooms' seeds.
SPLITS = {'dev': 1, 'heldout': 2}
#: plan kinds other than the shoebox; odd-numbered rooms take one of these.
NON_RECTANGULAR = ('l_shape', 't_shape', 'chamfer', 'alcove')
HARD_WALLS = ('painted_plaster', 'painted_concrete', 'brick', 'glass', 'wood')
HARD_FLOORS = ('vinyl', 'laminate', 'wood', 'painted_concrete')
HARD_CEILINGS = ('painted_plaster', 'painted_concrete')
SOFT_FLOOR, SOFT_CEILING, CURTAINS = 'carpet', 'acoustic_tile', 'fabric'
FURNITURE_MATERIALS = ('wood', 'laminate', 'metal', 'fabric', 'glass')
# Shoebox extents, m: width (x) and length (y) and height.
WIDTH_M, LENGTH_M, HEIGHT_M = (3.0, 10.0), (3.0, 8.0), (2.4, 4.0)
# Furniture covers at most this share of the plan: the array must find poses 0.4 m from every
# wall and box (Room.random_pose).
MAX_FURNITURE_SHARE = 0.3
MAX_FURNITURE = 8


def _rng(split: str, index: int, seed: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f'split must be one of {sorted(SPLITS)}, got {split!r}')
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f'room index must be an integer >= 0, got {index!r}')
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f'seed must be an integer >= 0, got {seed!r}')
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS[split],
                                                         int(index)]))


def _rotated(vertices: np.ndarray, quarter_turns: int) -> np.ndarray:
    """The plan turned by ``quarter_turns`` x 90 deg (still counter-clockwise), moved so that
    its bounding box starts at the origin."""
    turn = np.array([[0.0, -1.0], [1.0, 0.0]])
    out = vertices @ np.linalg.matrix_power(turn, quarter_turns).T
    return np.round(out - out.min(axis=0), 3)


def _plan(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Counter-clockwise plan vertices ``(k, 2)`` of one kind, m."""
    if kind == 'alcove':
        # The alcove opens off the south wall: the main room is shorter by its depth.
        depth = rng.uniform(0.6, 1.5)
        w = rng.uniform(*WIDTH_M)
        main = rng.uniform(LENGTH_M[0], LENGTH_M[1] - depth)
        span = rng.uniform(1.0, 0.5 * w)
        x0 = rng.uniform(0.3, w - span - 0.3)
        plan = np.array([[0, depth], [x0, depth], [x0, 0], [x0 + span, 0],
                         [x0 + span, depth], [w, depth], [w, depth + main], [0, depth + main]])
        return _rotated(plan, int(rng.integers(4)))
    w, l_ = rng.uniform(*WIDTH_M), rng.uniform(*LENGTH_M)
    if kind == 'shoebox':
        return np.round(np.array([[0, 0], [w, 0], [w, l_], [0, l_]]), 3)
    if kind == 'l_shape':
        # The north-east corner cut away, leaving wings at least 1.5 m wide.
        cx = rng.uniform(0.3, 0.6) * w
        cy = rng.uniform(0.3, 0.6) * l_
        cx, cy = min(cx, w - 1.5), min(cy, l_ - 1.5)
        plan = np.array([[0, 0], [w, 0], [w, l_ - cy], [w - cx, l_ - cy], [w - cx, l_],
                         [0, l_]])
        return _rotated(plan, int(rng.integers(4)))
    if kind == 't_shape':
        # A bar along the north wall over a stem at least 1.5 m wide.
        bar = rng.uniform(0.35, 0.6) * l_
        stem = max(rng.uniform(0.35, 0.6) * w, 1.5)
        x0 = rng.uniform(0.15 * w, max(w - stem - 0.15 * w, 0.15 * w))
        x1 = min(x0 + stem, w - 0.3)
        plan = np.array([[x0, 0], [x1, 0], [x1, l_ - bar], [w, l_ - bar], [w, l_], [0, l_],
                         [0, l_ - bar], [x0, l_ - bar]])
        return _rotated(plan, int(rng.integers(4)))
    if kind == 'chamfer':
        # One corner cut by a wall at an angle set by the two cuts (not always 45 deg).
        cx = rng.uniform(0.6, 0.45 * w)
        cy = rng.uniform(0.6, 0.45 * l_)
        plan = np.array([[0, 0], [w, 0], [w, l_ - cy], [w - cx, l_], [0, l_]])
        return _rotated(plan, int(rng.integers(4)))
    raise ValueError(f'unknown plan kind {kind!r}; known: shoebox, {", ".join(NON_RECTANGULAR)}')


def _materials(k: int, soft: bool, rng: np.random.Generator) -> dict:
    """Materials of a plan with ``k`` walls; ``soft``: a soft floor, ceiling or both."""
    materials = {'walls': str(rng.choice(HARD_WALLS)),
                 'floor': str(rng.choice(HARD_FLOORS)),
                 'ceiling': str(rng.choice(HARD_CEILINGS))}
    if soft:
        which = int(rng.integers(3))
        if which in (0, 2):
            materials['floor'] = SOFT_FLOOR
        if which in (1, 2):
            materials['ceiling'] = SOFT_CEILING
    # Some walls differ from the rest: a window, a curtain, a brick or wood panel wall.
    for wall in rng.choice(k, size=int(rng.integers(0, 3)), replace=False):
        materials[f'wall_{wall}'] = str(rng.choice(HARD_WALLS + (CURTAINS,)))
    return materials


def _furniture(plan: np.ndarray, height_m: float, rng: np.random.Generator) -> list[dict]:
    """0-8 axis-aligned boxes standing on the floor inside the plan, apart from each other,
    covering at most ``MAX_FURNITURE_SHARE`` of it (a box that finds no place in 50 draws is
    left out)."""
    probe = Room('probe', plan, height_m, 0.1, 0.1, 0.1)
    area = abs(0.5 * float(np.sum(plan[:, 0] * np.roll(plan[:, 1], -1)
                                  - np.roll(plan[:, 0], -1) * plan[:, 1])))
    lo, hi = plan.min(axis=0), plan.max(axis=0)
    boxes: list[dict] = []
    used_m2 = 0.0
    # A fifth of the rooms empty: an empty room is the hardest (nothing breaks its symmetry).
    n_boxes = 0 if rng.random() < 0.2 else int(rng.integers(1, MAX_FURNITURE + 1))
    for i in range(n_boxes):
        for _ in range(50):
            size = np.array([rng.uniform(0.3, 2.0), rng.uniform(0.3, 1.0)])
            if rng.random() < 0.5:
                size = size[::-1]
            corner = rng.uniform(lo + 0.05, np.maximum(hi - size - 0.05, lo + 0.05))
            xy = np.array([corner, corner + size * [1, 0], corner + size, corner + size * [0, 1]])
            inside = np.all(probe.contains_xy(xy)) and not np.any(
                np.all((plan > corner) & (plan < corner + size), axis=1))
            apart = all(np.any(corner + size + 0.1 <= b[0][:2]) or np.any(b[1][:2] + 0.1 <= corner)
                        for b in [(np.array(o['min_m']), np.array(o['max_m'])) for o in boxes])
            if inside and apart and used_m2 + size.prod() <= MAX_FURNITURE_SHARE * area:
                top = rng.uniform(0.4, min(2.0, height_m - 0.3))
                boxes.append({'name': f'box_{i}', 'min_m': [*np.round(corner, 3).tolist(), 0.0],
                              'max_m': [*np.round(corner + size, 3).tolist(), round(top, 3)],
                              'material': str(rng.choice(FURNITURE_MATERIALS))})
                used_m2 += float(size.prod())
                break
    return boxes


def room_kind(index: int) -> str:
    """``'shoebox'`` for even-numbered rooms, ``'non_rectangular'`` for odd ones."""
    return 'shoebox' if index % 2 == 0 else 'non_rectangular'


def has_soft_floor_or_ceiling(index: int) -> bool:
    """Whether room ``index`` is one of the rooms drawn with a soft floor or ceiling (every
    third; others may still draw a curtain wall)."""
    return index % 3 == 0


def generated_room_dict(split: str, index: int, seed: int = 0) -> dict:
    """The room file (as a dict) of room ``index`` of ``split`` for ``seed``.

    Even-numbered rooms are shoeboxes, odd ones one of :data:`NON_RECTANGULAR`; rooms whose
    index is a multiple of 3 have a soft floor, ceiling or both. The file states
    ``tolerance_m: 0`` (it is the simulated room's own).

    :raises ValueError: an unknown split, a negative index or seed.
    """
    rng = _rng(split, index, seed)
    kind = 'shoebox' if room_kind(index) == 'shoebox' else str(rng.choice(NON_RECTANGULAR))
    plan = _plan(kind, rng)
    height = round(float(rng.uniform(*HEIGHT_M)), 3)
    data = {'name': f'{split}_{seed}_{index:03d}_{kind}',
            'description': f'generated: {kind}, split {split}, seed {seed}, room {index}',
            'plan': {'polygon': plan.tolist()},
            'height_m': height,
            'materials': _materials(len(plan), has_soft_floor_or_ceiling(index), rng),
            'furniture': _furniture(plan, height, rng),
            'temperature_c': round(float(rng.uniform(15.0, 28.0)), 1),
            'humidity_pct': round(float(rng.uniform(30.0, 70.0)), 0),
            # The simulator builds the room from this very file: it is exact, as the shipped
            # rooms state. Left out, a file gets the 2 cm of a tape-measured room, and every
            # fix's covariance the spread that tolerance adds (dev split, 20 dB, 300 frames:
            # coverage_95 0.993 with it, 0.973 without).
            'tolerance_m': 0.0}
    if kind == 'shoebox':
        # As a room file writes a shoebox: the localizer takes its fast path.
        w, l_ = plan.max(axis=0).tolist()
        data['plan'] = {'shoebox': {'width_m': w, 'length_m': l_}}
        names = ('south', 'east', 'north', 'west')
        data['materials'] = {names[int(k[5:])] if k.startswith('wall_') else k: v
                             for k, v in data['materials'].items()}
    return data


def generate_room(split: str, index: int, seed: int = 0) -> Room:
    """Room ``index`` of ``split`` (:func:`generated_room_dict`), built as a room file is."""
    return room_from_dict(generated_room_dict(split, index, seed))


def generate_rooms(split: str, n: int, seed: int = 0) -> list[Room]:
    """Rooms ``0 .. n - 1`` of ``split`` for ``seed``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f'the number of rooms must be an integer >= 1, got {n!r}')
    return [generate_room(split, i, seed) for i in range(n)]


def room_yaml(split: str, index: int, seed: int = 0) -> str:
    """The room file's text of room ``index`` of ``split`` (``load_room`` reads it back as
    :func:`generate_room` builds it)."""
    return yaml.safe_dump(generated_room_dict(split, index, seed), sort_keys=False)
