import numpy as np
import pytest

from echoloc_ros.core.room import MATERIALS, room_from_yaml
from echoloc_ros.sim.room_generator import (generate_room, generate_rooms, generated_room_dict,
                                            room_yaml)

SOFT = 0.5


def test_same_seed_same_room_and_the_splits_are_disjoint():
    assert generated_room_dict('heldout', 7, 3) == generated_room_dict('heldout', 7, 3)
    dev = [generate_room('dev', i) for i in range(40)]
    heldout = [generate_room('heldout', i) for i in range(40)]
    # No room of one split is drawn in the other (plans compared to the millimetre).
    dev_plans = {tuple(np.round(r.vertices_m, 3).ravel()) for r in dev}
    assert not dev_plans & {tuple(np.round(r.vertices_m, 3).ravel()) for r in heldout}
    assert len(dev_plans) == 40
    assert generated_room_dict('dev', 0, 1) != generated_room_dict('dev', 0, 0)


def test_a_held_out_split_of_30_rooms_covers_what_the_issue_asks():
    rooms = generate_rooms('heldout', 30)
    non_rect = [r for r in rooms if not r.is_shoebox]
    soft = [r for r in rooms if max(r.floor_absorption, r.ceiling_absorption) > SOFT]
    assert len(non_rect) >= 10 and len(soft) >= 10
    kinds = {r.name.split('_', 3)[3] for r in non_rect}
    assert kinds == {'l_shape', 't_shape', 'chamfer', 'alcove'}
    edges = [np.diff(r.vertices_m, axis=0, append=r.vertices_m[:1]) for r in non_rect]
    assert any(np.any(np.all(np.abs(e) > 1e-9, axis=1)) for e in edges), 'no diagonal wall'
    counts = [len(r.furniture) for r in rooms]
    assert min(counts) == 0 and max(counts) <= 8 and len(set(counts)) >= 4
    hard = {MATERIALS[m] for m in ('glass', 'painted_concrete', 'painted_plaster')}
    surfaces = set(np.concatenate([r.surface_absorption() for r in rooms]).round(3))
    assert hard <= surfaces and {0.55, 0.6, 0.7} <= surfaces
    for room in rooms:
        assert 2.4 <= room.height_m <= 4.0
        extent = sorted((room.width_m, room.length_m))
        assert 3.0 <= extent[0] and extent[1] <= 10.5
        for box in room.furniture:
            corners = np.array([[x, y] for x in (box.min_m[0], box.max_m[0])
                                for y in (box.min_m[1], box.max_m[1])])
            assert np.all(room.contains_xy(corners)), (room.name, box.name)
            assert box.max_m[2] < room.height_m
        # The evaluation finds poses 0.4 m from every wall and box.
        room.random_pose(np.random.default_rng(0))


def test_a_generated_room_is_a_room_file():
    for index in (0, 1, 3, 5):
        room = generate_room('dev', index, 2)
        again = room_from_yaml(room_yaml('dev', index, 2))
        assert again.name == room.name
        np.testing.assert_array_equal(again.vertices_m, room.vertices_m)
        np.testing.assert_array_equal(again.surface_absorption(), room.surface_absorption())
        assert [b.name for b in again.furniture] == [b.name for b in room.furniture]
        # The simulator builds the room from this file: it states itself exact, so no
        # tape-measure tolerance widens the fixes of a perfect-model evaluation.
        assert room.tolerance_m == again.tolerance_m == 0.0
    assert generate_room('dev', 0).is_shoebox


@pytest.mark.parametrize('args, message', [
    (('test', 0), "split must be one of ['dev', 'heldout'], got 'test'"),
    (('dev', -1), 'room index must be an integer >= 0, got -1'),
    (('dev', 0, 1.5), 'seed must be an integer >= 0, got 1.5'),
])
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
        generated_room_dict(*args)
