"""The residual a room file's tolerance leaves after the fit (issue 18): the allowance's
formula against brute force, the images' and delays' sensitivities against moved surfaces and
refitted echoes, and a fix in a room off by its stated tolerance kept, not doubted; a fix on
a phantom box no longer doubted held by its tolerated rivals."""

from dataclasses import replace

import numpy as np
import pytest

from echoloc_ros.core.physics.images import shoebox_image_maps
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room, room_from_dict
from echoloc_ros.core.room_tolerance import (delay_metric, residual_allowance, surface_shifts,
                                             with_room_tolerance)
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

CHI2_999_3DOF = 16.266
FS_HZ = 250e3


def test_the_allowance_is_the_mean_residual_a_least_squares_fit_leaves():
    # Paths of 4 receivers, 3 fitted parameters, 6 surfaces: offsets drawn uniform within the
    # tolerance, the parameters fitted by weighted least squares, the energy left averaged.
    rng = np.random.default_rng(5)
    n_paths, n_ch, n_free, n_surf, tol = 7, 4, 3, 6, 0.03
    roots = rng.normal(size=(n_paths, n_ch, n_ch))
    metric = np.einsum('pij,pkj->pik', roots, roots)
    d_theta = rng.normal(size=(n_paths, n_ch, n_free))
    d_offset = rng.normal(size=(n_paths, n_ch, n_surf))
    q = np.zeros((n_paths * n_ch,) * 2)
    for p in range(n_paths):
        q[p * n_ch:(p + 1) * n_ch, p * n_ch:(p + 1) * n_ch] = metric[p]
    j, s = d_theta.reshape(-1, n_free), d_offset.reshape(-1, n_surf)
    offsets = tol * rng.uniform(-1, 1, (20000, n_surf))
    delays = offsets @ s.T
    fitted = np.linalg.solve(j.T @ q @ j, j.T @ q @ delays.T).T
    left = delays - fitted @ j.T
    energy = np.einsum('ki,ij,kj->k', left, q, left)
    expected = residual_allowance(tol, metric, d_theta, d_offset)
    assert expected == pytest.approx(energy.mean(), rel=4 * energy.std() / energy.mean()
                                     / np.sqrt(len(energy)))
    # Nothing fitted: all of it is left; as many parameters as delays: none.
    everything = tol ** 2 / 3 * np.trace(s.T @ q @ s)
    assert residual_allowance(tol, metric, d_theta[..., :0], d_offset) == pytest.approx(
        everything)
    assert expected < everything


def test_images_move_with_the_surfaces_as_the_moved_rooms_images():
    # room_planes' order: south, east, north, west, floor, ceiling, normals into the room.
    size = np.array([6.0, 4.5, 2.8])
    normals = np.array([[0, 1, 0], [-1, 0, 0], [0, -1, 0], [1, 0, 0], [0, 0, 1], [0, 0, -1]],
                       dtype=float)
    offsets = np.array([0.0, -size[0], -size[1], 0.0, 0.0, -size[2]])
    refl = np.full((3, 2), 0.9)
    maps = shoebox_image_maps(size, refl, range(1, 4))
    img_m = np.array([np.diag(m) for m, _, _ in maps])
    img_t = np.array([t for _, t, _ in maps])
    late = surface_shifts(img_m, img_t, [], normals, offsets)
    # The first orders named by their surfaces (each one's first-order image, then pairs).
    first = [((s,), np.eye(3) - 2 * np.outer(n, n), 2 * o * n)
             for s, (n, o) in enumerate(zip(normals, offsets))]
    pairs = [((a, b), hb @ ha, hb @ ta + tb) for (a,), ha, ta in first
             for (b,), hb, tb in first if a != b]
    named = first + pairs
    by_sequence = surface_shifts(np.array([m for _, m, _ in named]),
                                 np.array([t for _, _, t in named]),
                                 [seq for seq, _, _ in named], normals, offsets)
    emitter = np.array([1.3, 2.9, 0.7])
    step = 1e-4
    for surface, (axis, moved_low) in enumerate([(1, True), (0, False), (1, False),
                                                 (0, True), (2, True), (2, False)]):
        # The surface moved by step into the room: a room step smaller, shifted if its low
        # surface moved.
        smaller = size - step * np.eye(3)[axis]
        shift = step * np.eye(3)[axis] if moved_low else np.zeros(3)
        moved = shoebox_image_maps(smaller, refl, range(1, 4))
        for p, (m, t, _) in enumerate(moved):
            image = m * (emitter - shift) + t + shift
            before = img_m[p] @ emitter + img_t[p]
            np.testing.assert_allclose((image - before) / step, late[p, surface], atol=1e-6)
        for p, (seq, m, t) in enumerate(named):
            n, o = normals[surface], offsets[surface] + step
            moved_first = {s: (f[1], f[2] if s != surface else 2 * o * n)
                           for s, f in enumerate(first)}
            t_moved = moved_first[seq[0]][1]
            for s in seq[1:]:
                t_moved = moved_first[s][0] @ t_moved + moved_first[s][1]
            np.testing.assert_allclose((t_moved - t) / step, by_sequence[p, surface],
                                       atol=1e-9)


def test_the_delay_metric_is_the_energy_a_refitted_echo_leaves():
    # One echo on four receivers, a Gaussian envelope on a 40 kHz carrier, sampled finely:
    # small delays, its complex amplitude refitted, the energy left against d^T Q d.
    dt, sigma, carrier_hz = 1e-6, 30e-6, 40e3
    t = np.arange(-300e-6, 300e-6, dt)
    amp = np.array([[1.0, 0.7, 0.5, 0.9]])
    coef = np.array([0.8 - 0.3j])
    weights = np.array([1.0, 2.0, 0.5, 1.5])

    def echo(delays):
        g = np.exp(-0.5 * ((t[None] - delays[:, None]) / sigma) ** 2)
        return amp[0, :, None] * np.exp(-2j * np.pi * carrier_hz * delays[:, None]) * g

    g = np.exp(-0.5 * (t / sigma) ** 2)
    h = -2j * np.pi * carrier_hz * g + t / sigma ** 2 * g
    carrier = abs(np.sum(h * g)) ** 2 / np.sum(g ** 2)
    shape = np.sum(np.abs(h) ** 2) - carrier
    metric = delay_metric(amp, coef, weights, shape, carrier)[0]
    base = echo(np.zeros(4))
    rng = np.random.default_rng(2)
    for _ in range(5):
        delays = 2e-8 * rng.normal(size=4) + 1e-7 * rng.normal()
        truth = coef[0] * echo(delays)
        fitted = np.sum(weights[:, None] * np.conj(base) * truth) / np.sum(
            weights[:, None] * np.abs(base) ** 2)
        left = np.sum(weights[:, None] * np.abs(truth - fitted * base) ** 2)
        assert left == pytest.approx(delays @ metric @ delays, rel=0.02)


@pytest.fixture(scope='module')
def off_by_tolerance(array, chirp, processor):
    """Fixes in the default room whose every surface lies off its file by up to the stated
    3 cm (three drawn rooms, four poses each, 20 dB), with the room's term added as the
    pipeline adds it: (error, covariance, confidence, ratio)."""
    told = replace(load_room('default_room'), tolerance_m=0.03)
    localizer = PhysicsLocalizer(told, array, chirp, processor=processor)
    rows = []
    for seed in range(3):
        truth = ModelError(surface_offset_m=0.03, seed=seed).draw_room(told)
        simulator = EchoSimulator(truth.room, array, chirp, FS_HZ)
        rng = np.random.default_rng(seed)
        for _ in range(4):
            position, yaw = told.random_pose(rng, 0.4, (0.2, 1.2))
            frame = simulator.simulate(position - truth.origin_m, yaw, Scenario(snr_db=20.0),
                                       rng)
            estimate = with_room_tolerance(
                localizer.localize(processor.process(frame), yaw, 20.0), told)
            rows.append((estimate.position_m - position, estimate.covariance_m2,
                         estimate.confidence, estimate.residual_ratio))
    return rows


def test_a_room_off_by_its_tolerance_keeps_its_fixes_and_covers_them(off_by_tolerance):
    confident = [r for r in off_by_tolerance if r[2] > 0]
    # Judged against the noise alone, half of these were doubted (ratios 1.1-19, median 2.0);
    # against the noise and NONLINEAR_SHARE of the residual the tolerance is expected to leave,
    # the four fixes of the world drawn nearest the tolerance's corners (ratios 2.2-6.3) still
    # were, 2-5 cm off and each inside its 95 % ellipsoid; against the whole (DOUBT_SHARE) two
    # of them are (2.1, 3.0).
    assert len(confident) >= 10
    for error, covariance, _, _ in confident:
        assert np.linalg.norm(error) < 0.1
        assert error @ np.linalg.solve(covariance, error) < CHI2_999_3DOF


def test_a_room_that_states_no_tolerance_never_computes_the_allowance(room, simulator, array,
                                                                      chirp, processor,
                                                                      monkeypatch):
    # The shipped and generated rooms state 0: their fixes stay bit-identical.
    def refused(*args):
        raise AssertionError('allowance computed in a room stated exact')

    monkeypatch.setattr(PhysicsLocalizer, '_tolerance_allowance', refused)
    localizer = PhysicsLocalizer(room, array, chirp, processor=processor)
    rng = np.random.default_rng(4)
    position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
    estimate = localizer.localize(processor.process(
        simulator.simulate(position, yaw, Scenario(snr_db=20.0), rng)), yaw, 20.0)
    assert np.linalg.norm(estimate.position_m - position) < 0.01


def test_a_phantom_box_no_longer_doubted_is_held_by_its_tolerated_rivals(room, simulator, array,
                                                                         chirp, processor):
    # The file has a box the room does not (test_physics_honesty's stale room) and states
    # +-2 cm: the fix that takes the box's echo for a wall, 1.8 m off, leaves a residual a room
    # off by its tolerance is expected to leave (3.35 against the noise and NONLINEAR_SHARE of
    # it, 1.15 against the whole): it is not doubted, and the rivals the tolerance cannot rule
    # out span it (squared distance 0.24).
    told = replace(room_from_dict({
        'name': 'stale', 'plan': {'shoebox': {'width_m': 6.0, 'length_m': 4.5}},
        'height_m': 2.8, 'materials': {'walls': 'painted_plaster', 'floor': 'vinyl',
                                       'ceiling': 'painted_plaster'},
        'furniture': [{'min_m': [2.0, 1.5, 0.0], 'max_m': [3.0, 3.0, 1.0]}]}), tolerance_m=0.02)
    localizer = PhysicsLocalizer(told, array, chirp, processor=processor)
    rng = np.random.default_rng(3)
    wrong = 0
    for _ in range(5):
        position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
        estimate = with_room_tolerance(localizer.localize(processor.process(
            simulator.simulate(position, yaw, Scenario(snr_db=20.0), rng)), yaw, 20.0), told)
        error = estimate.position_m - position
        if np.linalg.norm(error) > 0.05:
            wrong += 1
            assert estimate.confidence == 1.0
            assert error @ np.linalg.solve(estimate.covariance_m2, error) < CHI2_999_3DOF
    assert wrong == 1
