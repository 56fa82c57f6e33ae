import numpy as np

from echoloc_ros.core.room import load_room


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
