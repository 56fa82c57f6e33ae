from pathlib import Path

import numpy as np
import pytest
import yaml

from echoloc_ros.core.room import load_room, room_from_yaml


def test_reflection_points_are_perpendicular_feet_on_each_surface():
    room = load_room('default_room')
    points = room.reflection_points_m(np.array([2.0, 1.5, 0.3]))
    expected = {(2.0, 0.0, 0.3), (6.0, 1.5, 0.3), (2.0, 4.5, 0.3), (0.0, 1.5, 0.3),
                (2.0, 1.5, 0.0), (2.0, 1.5, 2.8)}
    assert {tuple(np.round(p, 9)) for p in points} == expected


def test_rearranged_furniture_moves_within_the_shift_and_does_not_overlap():
    room = load_room('furnished_room')
    rng = np.random.default_rng(0)
    lo, hi = room.vertices_m.min(axis=0), room.vertices_m.max(axis=0)
    moved_any = False
    for _ in range(20):
        moved = room.rearranged(rng, 1.0)
        assert [b.name for b in moved] == [b.name for b in room.furniture]
        for new, old in zip(moved, room.furniture):
            assert np.allclose(new.max_m - new.min_m, old.max_m - old.min_m)
            assert np.all(new.min_m[:2] >= lo - 1e-9) and np.all(new.max_m[:2] <= hi + 1e-9)
            assert new.min_m[2] == old.min_m[2]
            moved_any |= not np.allclose(new.min_m, old.min_m)
        for i, a in enumerate(moved):
            for b in moved[i + 1:]:
                apart = np.any(a.max_m[:2] <= b.min_m[:2]) or np.any(b.max_m[:2] <= a.min_m[:2])
                assert apart, (a, b)
    assert moved_any


def test_any_box_blocks_is_each_box_blocks_combined():
    from echoloc_ros.core.room import any_box_blocks
    room = load_room('furnished_room')
    rng = np.random.default_rng(1)
    start = rng.uniform([0, 0, 0], [6.0, 4.5, 2.8], (500, 3))
    end = rng.uniform([0, 0, 0], [6.0, 4.5, 2.8], (500, 3))
    each = np.any([box.blocks(start, end) for box in room.furniture], axis=0)
    assert 0.1 < each.mean() < 0.9
    assert np.array_equal(any_box_blocks(room.furniture, start, end), each)
    assert not any_box_blocks([], start, end).any()


FURNISHED = (Path(__file__).resolve().parents[2] / 'config' / 'rooms'
             / 'furnished_room.yaml').read_text()


def _mutated(**fields) -> str:
    data = yaml.safe_load(FURNISHED)
    data.update(fields)
    return yaml.safe_dump(data)


@pytest.mark.parametrize('text, match', [
    (_mutated(furniture=5), r"furniture must be a list of boxes, got 5"),
    (_mutated(height_m=[2.8]), r"height_m must be a finite number, got \[2.8\]"),
    (_mutated(height_m='.inf'), r"height_m must be a finite number"),
    (_mutated(name=['x']), r"room name must be a string of 1 to 64 characters"),
    (_mutated(temperature_c={'a': 1}), r"temperature_c must be a finite number"),
    (_mutated(furniture=[{'min_m': 'abc', 'max_m': [1, 1, 1]}]), r"min_m must be \[x, y, z\]"),
    (_mutated(furniture=[{'min_m': [0, 0, float('nan')], 'max_m': [1, 1, 1]}]),
     r"furniture\[0\].min_m must be a finite number, got nan"),
    (_mutated(plan={'polygon': [[0, i] for i in range(1000)]}), r"at most 64 \[x, y\]"),
    (_mutated(plan={'shoebox': {'width_m': True, 'length_m': 3}}), r"needs numbers width_m"),
    (_mutated(materials={'walls': [1], 'floor': 'vinyl', 'ceiling': 'vinyl'}),
     r"absorption must be a material name"),
    (_mutated(**{'1': 2, 'x': 3}), r"unknown room fields \['1', 'x'\]"),
    (_mutated(furniture=[{'min_m': [0, 0, 0], 'max_m': [1, 1, 1 + i]}
                         for i in range(65)]),
     r"65 furniture boxes, more than the 64 allowed"),
    ('[' * 5000, r"nested too deeply|not YAML"),
    ('x: ' + 'a' * 70000, r"70003 bytes, more than the 65536 allowed"),
    (b'name: x', r"room YAML must be text, got bytes"),
    ('- 1\n- 2', r"must be a mapping, got list"),
])
def test_a_hostile_room_is_refused_with_a_named_reason(text, match):
    with pytest.raises(ValueError, match=match):
        room_from_yaml(text)


def test_a_yaml_alias_bomb_is_refused_before_it_expands():
    """Nine levels of nine aliases: 9^9 strings if expanded, in 640 bytes."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip('abcdefgh', 'bcdefghi'):
        lines.append(f'{name}: &{name} [' + ','.join([f'*{prev}'] * 9) + ']')
    bomb = '\n'.join(lines) + '\nname: *i\n'
    assert len(bomb) < 700
    with pytest.raises(ValueError, match='more than 32 aliases'):
        room_from_yaml(bomb)


def test_the_shipped_rooms_still_load_from_text():
    room = room_from_yaml(FURNISHED)
    assert len(room.furniture) == 4 and room.height_m == 2.8
