"""A room file's tolerance is a bound (issue 18, branch r35-96): surfaces drawn uniformly within
it move a fix along x and y by a bounded error, and the covariance published for it there is
the Gaussian whose 95 % ellipsoid holds 95 % of that error, not the one of its variance, which
held 99 % of it (coverage_95 above the issue's [0.90, 0.98] in rooms off their file by +-3 cm);
a right fix in such a room is still inside its 99.9 % ellipsoid; a calibrated room's doubts
(measured standard deviations) are published as they are."""

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import chi2

from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.core.room_tolerance import (BOUNDED_95_SHARE, Z_VARIANCE_SHARE,
                                             side_variances, tolerance_covariance,
                                             with_room_tolerance)
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

CHI2_95_3DOF = float(chi2.ppf(0.95, 3))
CHI2_999_3DOF = float(chi2.ppf(0.999, 3))
HEADING_NOISE_RAD = float(np.deg2rad(1.0))


def _d2(error, covariance):
    return np.einsum('ni,ni->n', error, np.linalg.solve(covariance, error[..., None])[..., 0])


def test_the_share_puts_95_percent_of_a_bound_along_x_and_y_in_the_95_percent_ellipsoid():
    """An error uniform along x and y and Gaussian along z, each of unit variance: with the x-y
    block at the share, the 95 % ellipsoid holds 95 % of it; with the variance, 97.9 %."""
    rng = np.random.default_rng(3)
    n = 1_000_000
    across = np.sum(rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), (n, 2)) ** 2, axis=1)
    d2 = across / BOUNDED_95_SHARE + rng.standard_normal(n) ** 2
    assert np.mean(d2 <= CHI2_95_3DOF) == pytest.approx(0.95, abs=0.001)
    assert np.mean(across + rng.standard_normal(n) ** 2 <= CHI2_95_3DOF) > 0.975


def test_surfaces_drawn_within_the_tolerance_leave_the_95_percent_ellipsoid_5_percent():
    """The default room stated +-3 cm, each surface drawn uniformly within it, and the fix moved
    as the localizer moves it there (dev, model-error seeds 1, 11, 20: along x and y by the
    nearer wall's offset), in z by the floor's and ceiling's in proportion to the height (1.07
    and 0.81 times that: dev seeds 1, 11, 20, 21, 31, 41, r38-06), at poses across the room:
    coverage_95 in the issue's band, none outside 99.9 %. The variance's covariance held 99.3
    %: above the band."""
    room = replace(load_room('default_room'), tolerance_m=0.03)
    rng = np.random.default_rng(5)
    n = 4000
    # Offsets along +x, +y, +z: west, east, south, north, floor, ceiling.
    offsets = rng.uniform(-0.03, 0.03, (n, 6))
    poses = np.column_stack([rng.uniform(0.4, room.width_m - 0.4, n),
                             rng.uniform(0.4, room.length_m - 0.4, n), rng.uniform(0.2, 1.2, n)])
    error = np.empty((n, 3))
    for axis, size in enumerate((room.width_m, room.length_m)):
        near_low = poses[:, axis] <= 0.5 * size
        error[:, axis] = np.where(near_low, offsets[:, 2 * axis], offsets[:, 2 * axis + 1])
    share = poses[:, 2] / room.height_m
    error[:, 2] = 1.07 * (1.0 - share) * offsets[:, 4] + 0.81 * share * offsets[:, 5]
    covariance = np.array([tolerance_covariance(room, p) for p in poses])
    d2 = _d2(error, covariance)
    assert 0.90 <= np.mean(d2 <= CHI2_95_3DOF) <= 0.98
    assert np.mean(d2 > CHI2_999_3DOF) == 0.0
    shares = np.sqrt([BOUNDED_95_SHARE, BOUNDED_95_SHARE, Z_VARIANCE_SHARE])
    variance = covariance / shares[:, None] / shares[None, :]
    assert np.mean(_d2(error, variance) <= CHI2_95_3DOF) > 0.98


def test_a_calibrated_rooms_doubts_are_published_as_they_are():
    room = load_room('default_room')
    # south, east, north, west, floor, ceiling
    stds = np.array([0.001, 0.003, 0.002, 0.0015, 0.0005, 0.0005])
    calibrated = replace(room, tolerance_m=0.003 * np.sqrt(3.0), surface_std_m=stds)
    np.testing.assert_allclose(side_variances(calibrated),
                               np.array([0.0015, 0.003, 0.001, 0.002, 0.0005, 0.0005]) ** 2)
    at = np.array([0.5, 0.6, 1.0])
    # Near the south-west corner: x the west wall's own 1.5 mm, y the south's 1 mm, each with
    # the height's scale over its range; nothing taken off.
    scale = (0.0005 ** 2) * 2 * (np.array([0.5, 0.6]) / room.height_m) ** 2
    np.testing.assert_allclose(np.diag(tolerance_covariance(calibrated, at))[:2],
                               np.array([0.0015, 0.001]) ** 2 + scale)


@pytest.mark.long
def test_right_fixes_in_a_room_off_its_file_stay_inside_their_99_9_percent_ellipsoid(
        array, chirp, processor):
    """Dev world 1 of model-error seed 1 (surfaces within +-3 cm, air drawn), four frames: each
    right fix's error is inside the 99.9 % ellipsoid of the covariance published, whose room
    term is the share of the variance's."""
    told = replace(load_room('default_room'), tolerance_m=0.03)
    error = ModelError(surface_offset_m=0.03, seed=1, air_std_c=1.0)
    truth = error.draw_room(told)
    scenario = Scenario(snr_db=20.0, temperature_c=error.draw_air_c(told.temperature_c))
    localizer = PhysicsLocalizer(told, array, chirp, processor=processor)
    simulator = EchoSimulator(truth.room, array, chirp, 250e3)
    right = 0
    for _, frame, position, yaw, draw, _ in random_frames(simulator, scenario, 4, [0, 1]):
        own = localizer.localize(processor.process(frame), yaw + HEADING_NOISE_RAD * draw,
                                 None, HEADING_NOISE_RAD)
        published = with_room_tolerance(own, told)
        off = published.position_m - position - truth.origin_m
        term = published.covariance_m2 - own.covariance_m2
        np.testing.assert_allclose(term, tolerance_covariance(told, own.position_m))
        if np.linalg.norm(off) < 0.1:
            right += 1
            assert _d2(off[None], published.covariance_m2[None])[0] < CHI2_999_3DOF
    assert right >= 3
