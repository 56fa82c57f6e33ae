"""The room file's tolerance: parsed and checked, and the covariance it adds follows the nearer
wall on each axis and the speed-of-sound scale the floor and ceiling set."""

from dataclasses import replace

import numpy as np
import pytest
import yaml

from echoloc_ros.core.paths import config_dir
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.room import DEFAULT_TOLERANCE_M, load_room, room_from_dict
from echoloc_ros.core.room_tolerance import tolerance_covariance, with_room_tolerance


def default_room_dict():
    return yaml.safe_load((config_dir() / 'rooms' / 'default_room.yaml').read_text())


def test_tolerance_is_read_and_a_bad_one_named():
    assert load_room('default_room').tolerance_m == 0.0
    measured = {k: v for k, v in default_room_dict().items() if k != 'tolerance_m'}
    assert room_from_dict(measured).tolerance_m == DEFAULT_TOLERANCE_M == 0.02
    assert room_from_dict({**default_room_dict(), 'tolerance_m': 0.02}).tolerance_m == 0.02
    with pytest.raises(ValueError, match=r'tolerance_m must be in \[0, 0.5\], got -0.01'):
        room_from_dict({**default_room_dict(), 'tolerance_m': -0.01})


def test_covariance_follows_the_nearer_wall_and_the_height_scale():
    room = replace(load_room('default_room'), tolerance_m=0.03)
    var = (0.03 ** 2) / 3
    near_west = tolerance_covariance(room, np.array([0.5, 2.25, 1.4]))
    # x: the west wall, plus 0.5 m of range scaled by (floor - ceiling) / 2.8 m.
    assert near_west[0, 0] == pytest.approx(var * (1 + 2 * (0.5 / 2.8) ** 2))
    # Half-way up, floor and ceiling count alike in z.
    assert near_west[2, 2] == pytest.approx(var * 0.5)
    farther = tolerance_covariance(room, np.array([2.5, 2.25, 1.4]))
    assert farther[0, 0] > near_west[0, 0]
    mirrored = tolerance_covariance(room, np.array([5.5, 2.25, 1.4]))
    assert mirrored[0, 0] == pytest.approx(near_west[0, 0])
    assert np.all(np.linalg.eigvalsh(farther) >= -1e-15)
    exact = load_room('default_room')
    estimate = Estimate(position_m=np.array([1.0, 1.0, 1.0]), covariance_m2=1e-6 * np.eye(3),
                        speed_of_sound_mps=343.0, confidence=1.0, score=0.0, n_echoes=6)
    assert with_room_tolerance(estimate, exact) is estimate
    widened = with_room_tolerance(estimate, room).covariance_m2
    np.testing.assert_allclose(widened - estimate.covariance_m2,
                               tolerance_covariance(room, estimate.position_m))
