"""The room file's tolerance: parsed and checked, and the covariance it adds follows the nearer
wall on each axis and the speed-of-sound scale the floor and ceiling set."""

from dataclasses import replace

import numpy as np
import pytest
import yaml

from echoloc_ros.core.paths import config_dir
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.room import DEFAULT_TOLERANCE_M, load_room, room_from_dict
from echoloc_ros.core.room_tolerance import (BOUNDED_95_SHARE, Z_VARIANCE_SHARE,
                                             side_variances, tolerance_covariance,
                                             with_room_tolerance)


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
    # x: the west wall, plus 0.5 m of range scaled by (floor - ceiling) / 2.8 m; uniform within
    # the bound, published as the Gaussian holding 95 % of it in its 95 % ellipsoid.
    assert near_west[0, 0] == pytest.approx(BOUNDED_95_SHARE * var * (1 + 2 * (0.5 / 2.8) ** 2))
    # Half-way up, floor and ceiling count alike in z (the weighing's variance, at the share
    # the localizer's z was measured to follow).
    assert near_west[2, 2] == pytest.approx(Z_VARIANCE_SHARE * var * 0.5)
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


def test_each_surface_keeps_its_own_doubt():
    """A calibrated room states each surface's own standard deviation: the covariance reads
    it, not the worst surface's for every one (issue 18, branch r33-76)."""
    names = load_room('default_room').surface_names
    stds = dict.fromkeys(names, 0.001)
    stds['east'] = 0.006
    room = room_from_dict({**default_room_dict(), 'tolerance_m': 0.006 * np.sqrt(3.0),
                           'surface_std_m': stds})
    np.testing.assert_allclose(room.surface_std_m, [stds[n] for n in names])
    near_west = tolerance_covariance(room, np.array([0.5, 2.25, 1.4]))
    # x: the west wall's own 1 mm, plus 0.5 m of range scaled by (floor - ceiling) / 2.8 m.
    assert near_west[0, 0] == pytest.approx(0.001 ** 2 * (1 + 2 * (0.5 / 2.8) ** 2))
    near_east = tolerance_covariance(room, np.array([5.5, 2.25, 1.4]))
    assert near_east[0, 0] == pytest.approx(0.006 ** 2 + 0.001 ** 2 * 2 * (0.5 / 2.8) ** 2)
    # The worst surface's for all, as the calibrated room stated it before: 36 times more (a
    # bound, uniform within it: the share of its variance whose 95 % ellipsoid holds 95 %).
    worst = tolerance_covariance(replace(room, surface_std_m=None), np.array([0.5, 2.25, 1.4]))
    assert worst[0, 0] == pytest.approx(36 * BOUNDED_95_SHARE * near_west[0, 0])


def test_a_bad_surface_doubt_is_named():
    stds = dict.fromkeys(load_room('default_room').surface_names, 0.001)
    with pytest.raises(ValueError, match=r"surface_std_m must map every surface .*'ceiling'"):
        room_from_dict({**default_room_dict(), 'surface_std_m': {'floor': 0.001}})
    with pytest.raises(ValueError, match=r'surface_std_m.north must be a finite number, got '
                                         r"'big'"):
        room_from_dict({**default_room_dict(), 'surface_std_m': {**stds, 'north': 'big'}})
    with pytest.raises(ValueError, match=r'surface_std_m must be 6 numbers in \[0, 0.5\]'):
        room_from_dict({**default_room_dict(), 'surface_std_m': {**stds, 'north': -0.001}})


def test_a_general_plans_side_takes_the_walls_facing_along_it():
    """An L-shaped plan: each side of its bounding box has the largest doubt of the walls
    whose inward normal points along it."""
    room = load_room('l_shaped_room')
    k = len(room.wall_names)
    stds = np.full(k + 2, 0.001)
    edges = np.roll(room.vertices_m, -1, axis=0) - room.vertices_m
    facing_east = np.flatnonzero(edges[:, 1] < 0)        # inward normal +x: low x side
    stds[facing_east[0]] = 0.004
    variances = side_variances(replace(room, surface_std_m=stds))
    np.testing.assert_allclose(variances, [0.004 ** 2] + [0.001 ** 2] * 5)
