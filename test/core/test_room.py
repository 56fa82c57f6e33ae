import numpy as np

from echoloc_ros.core.room import load_room


def test_reflection_points_are_perpendicular_feet_on_each_surface():
    room = load_room('default_room')
    points = room.reflection_points_m(np.array([2.0, 1.5, 0.3]))
    expected = {(2.0, 0.0, 0.3), (6.0, 1.5, 0.3), (2.0, 4.5, 0.3), (0.0, 1.5, 0.3),
                (2.0, 1.5, 0.0), (2.0, 1.5, 2.8)}
    assert {tuple(np.round(p, 9)) for p in points} == expected
