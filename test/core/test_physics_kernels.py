"""The physics localizer's compiled loops against the numpy expressions of the same model:
delays and amplitudes from the image geometry, the delays' derivatives against central
differences, the Gram matrix against the point response's overlap, the scans against the
matched-filter outputs sampled one by one, the furniture test against the room's own slab
test, and the traced room paths of a plan that is not convex against the geometry's own trace."""

import numpy as np
import pytest
from scipy import stats

from echoloc_ros.core.array_geometry import yaw_matrix
from echoloc_ros.core.geometry import occluders, on_surfaces, plane_contains
from echoloc_ros.core.physics import kernels, newton, path_trace, scan_kernels
from echoloc_ros.core.physics.config import RESPONSE_HALF_S, STEP_LIMIT, STEP_TOLERANCE
from echoloc_ros.core.physics.covariance import chi2_3_quantile
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.matched_filter import lower_quartile, sample
from echoloc_ros.core.room import any_box_blocks, load_room
from echoloc_ros.sim.simulator import Scenario

FS_HZ = 250e3


@pytest.fixture(scope='module')
def localizer(room, array, chirp, processor):
    return PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)


@pytest.fixture(scope='module')
def frame_and_truth(room, array, simulator, processor, localizer):
    rng = np.random.default_rng(5)
    position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
    features = processor.process(simulator.simulate(position, yaw, Scenario(snr_db=20.0), rng))
    fr = localizer.frame(features, yaw, room.temperature_c)
    emitter = position + yaw_matrix(yaw) @ array.emitter_m
    # Candidates around the truth: a few mm to a few cm off, kappa and heading off too.
    offsets = rng.normal(0.0, [0.02, 0.02, 0.01, 0.002, 0.01], (6, 5))
    thetas = np.append(emitter, [1.0, 0.0])[None] + offsets
    return fr, thetas


def test_delays_and_amplitudes_are_the_image_model(localizer, frame_and_truth):
    fr, thetas = frame_and_truth
    paths = np.arange(len(localizer._sequences))
    tau, amp, keep = localizer._paths(fr, thetas, paths, keep=np.ones(paths.size, dtype=bool))
    # The same model in numpy: receiver minus image, turned by each candidate's heading.
    c, s = np.cos(thetas[:, 4]), np.sin(thetas[:, 4])
    x, y = fr.offsets[:, 0], fr.offsets[:, 1]
    offsets = np.stack([c[:, None] * x - s[:, None] * y, s[:, None] * x + c[:, None] * y,
                        np.broadcast_to(fr.offsets[:, 2], (len(thetas), x.size))], axis=-1)
    images = (np.einsum('pij,kj->kpi', localizer._img_m, thetas[:, :3]) + localizer._img_t)
    delta = (thetas[:, None, :3] + offsets)[:, None] - images[:, :, None]
    dist = np.linalg.norm(delta, axis=-1)
    expected_amp = localizer.amplitude(fr, delta, dist, localizer._img_refl[:, None])
    assert keep.all()
    np.testing.assert_allclose(tau, dist / (fr.c0 * thetas[:, 3, None, None]), rtol=1e-13)
    np.testing.assert_allclose(amp, expected_amp, rtol=1e-12)


def test_delay_derivatives_match_central_differences(localizer, frame_and_truth):
    fr, thetas = frame_and_truth
    paths = np.arange(len(localizer._sequences))
    keep = np.ones(paths.size, dtype=bool)
    free = np.arange(5)
    dtau = localizer._paths(fr, thetas, paths, keep=keep, free=free)[3]
    for f, step in zip(free, [1e-6, 1e-6, 1e-6, 1e-7, 1e-6]):
        d = np.zeros(5)
        d[f] = step
        up = localizer._paths(fr, thetas + d, paths, keep=keep)[0]
        down = localizer._paths(fr, thetas - d, paths, keep=keep)[0]
        # Central differences are exact to O(step^2) on these smooth distances, up to the
        # rounding of the delays (1e-17 s over 2e-6 m).
        np.testing.assert_allclose(dtau[..., f], (up - down) / (2 * step), rtol=1e-5,
                                   atol=1e-9 * np.max(np.abs(dtau)))


def test_the_kept_paths_are_heard_and_strong_enough(localizer, frame_and_truth):
    fr, thetas = frame_and_truth
    paths = np.arange(len(localizer._sequences))
    tau, amp, keep = localizer._paths(fr, thetas, paths)
    full_tau, full_amp, _ = localizer._paths(fr, thetas, paths,
                                             keep=np.ones(paths.size, dtype=bool))
    heard = np.all((full_tau > fr.t_min) & (full_tau < fr.t_max), axis=-1)
    peak = full_amp.max(axis=-1)
    walls = np.where(heard & ~localizer._vertical_only, peak, 0.0).max(axis=1, keepdims=True)
    expected = heard & (peak >= localizer.min_relative_amplitude * walls)
    np.testing.assert_array_equal(keep, expected)
    np.testing.assert_array_equal(amp, full_amp * expected[..., None])
    assert 0 < expected.sum() < expected.size


def test_gram_and_outputs_are_the_overlap_and_the_sampled_outputs(localizer, frame_and_truth):
    fr, thetas = frame_and_truth
    paths = np.arange(len(localizer._sequences))
    tau, amp, _ = localizer._paths(fr, thetas, paths)
    p, q = localizer._pairs(tau)
    features = fr.features
    gram, b = kernels.gram_terms(
        tau, amp, fr.weights, fr.table, features.start_s,
        fr.table.shape[1] / features.baseband.shape[1] / features.bin_width_s,
        features.carrier_hz, fr.t_min, fr.t_max, p, q, localizer.response.table,
        localizer.response.step_s, RESPONSE_HALF_S, localizer.response.zero)
    weighted = amp * fr.weights
    # The numpy reader forms its cubic's coefficients in single precision (the table's),
    # the kernel in double: they agree to a few parts in 1e7.
    np.testing.assert_allclose(b, np.sum(weighted * sample(fr, tau), axis=-1), rtol=2e-6,
                               atol=2e-6 * np.max(np.abs(b)))
    lag = tau[:, p] - tau[:, q]
    r = np.where(np.abs(lag) < RESPONSE_HALF_S,
                 localizer.response.overlap(lag, features.carrier_hz, 1)[0], 0.0)
    np.testing.assert_allclose(gram[:, p, q], np.sum(r * weighted[:, p] * amp[:, q], axis=-1),
                               rtol=1e-9, atol=1e-12 * np.max(np.abs(gram)))
    np.testing.assert_array_equal(gram[:, q, p], np.conj(gram[:, p, q]))
    diagonal = np.diagonal(gram, axis1=1, axis2=2)
    np.testing.assert_allclose(diagonal, localizer.response.zero[0]
                               * np.sum(weighted * amp, axis=-1), rtol=1e-12)


def test_scan_scores_are_the_sampled_coherent_powers(localizer, frame_and_truth):
    fr, thetas = frame_and_truth
    theta = thetas[0]
    table = fr.features.baseband
    coords, score = localizer._family_scan(fr, 0, theta, localizer._family[0], table)
    # The same score from the delays of each grid point, sampled by the numpy reader.
    scanned = np.repeat(theta[None], coords.size, axis=0)
    scanned[:, 0] = coords
    index = np.flatnonzero(localizer._family[0])
    tau = localizer._paths(fr, scanned, index, keep=np.ones(index.size, dtype=bool))[0]
    heard = (tau > fr.t_min) & (tau < fr.t_max)
    z = sample(fr, tau, table, smooth=False, inside=heard)
    power = np.abs(z @ (fr.weights / fr.weights.sum())) ** 2 * fr.weights.sum()
    expected = np.sum(np.where(heard.all(axis=-1), np.log1p(power), 0.0), axis=-1)
    # Single precision and the carrier from a 4096-entry table: a few parts in 1e5.
    np.testing.assert_allclose(score, expected, rtol=1e-4, atol=1e-4)
    assert np.ptp(score) > 1.0


def test_first_order_blocking_is_the_rooms_slab_test():
    room = load_room('furnished_room')
    rng = np.random.default_rng(3)
    lo = np.array([b.min_m for b in room.furniture])
    hi = np.array([b.max_m for b in room.furniture])
    extent = room.vertices_m.max(axis=0)
    emitters = rng.uniform([0, 0, 0], [*extent, room.height_m], (300, 3))
    receivers = emitters + rng.normal(0.0, 0.03, emitters.shape)
    normals = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]])
    offsets = np.array([0.0, -extent[1], 0.0])
    # Images in the planes: mirror the emitters; one degenerate path (image on the receiver)
    # gives an infinite or undefined reflection point, which blocks nothing in either.
    images = emitters[:, None] - 2 * ((emitters @ normals.T) - offsets)[..., None] * normals
    images[0, 0] = receivers[0]
    blocked = kernels.first_order_blocked(emitters, receivers, images, normals, offsets, lo, hi)
    toward = images - receivers[:, None]
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (offsets - receivers @ normals.T) / np.sum(toward * normals, axis=-1)
        hit = receivers[:, None] + t[..., None] * toward
    expected = (any_box_blocks(room.furniture, np.broadcast_to(emitters[:, None], hit.shape), hit)
                | any_box_blocks(room.furniture, hit,
                                 np.broadcast_to(receivers[:, None], hit.shape)))
    np.testing.assert_array_equal(blocked, expected)
    assert 0 < expected.sum() < expected.size


def test_traced_paths_are_the_geometrys_trace_in_an_l_shaped_plan(array, chirp, processor):
    room = load_room('l_shaped_room')
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
    rng = np.random.default_rng(4)
    emitters = np.array([room.random_pose(rng, 0.2, (0.2, 2.0))[0] for _ in range(60)])
    # Half the poses with the emitter at the receivers' centre, as the localizer's scans ask.
    receivers = emitters + rng.normal(0.0, 0.03, emitters.shape) * (np.arange(60) % 2)[:, None]
    paths = np.flatnonzero(localizer._room_image)
    images = (np.einsum('pij,kj->kpi', localizer._img_m[paths], emitters)
              + localizer._img_t[paths])
    traced = path_trace.traced_paths(images, receivers, localizer._traced_seqs[paths],
                                     localizer._img_order[paths], localizer._swappable[paths],
                                     localizer._normals, localizer._offsets, room.vertices_m,
                                     *localizer._hiding)
    hiding = occluders(room)

    def on(seq, image, receiver, hide):
        return on_surfaces(seq, image, receiver, localizer._normals, localizer._offsets,
                           lambda i, x: plane_contains(room, i, x, 1e-6, False), hide)

    def expected(seq, image, receiver, hide):
        normals = localizer._normals
        swap = len(seq) == 2 and abs(normals[seq[0]] @ normals[seq[1]]) < 1e-9
        return on(seq, image, receiver, hide) or (swap and on(seq[::-1], image, receiver, hide))

    sequences = [localizer._sequences[p] for p in paths]
    hidden = np.array([[expected(seq, images[k, q], receivers[k], hiding)
                        for q, seq in enumerate(sequences)] for k in range(len(emitters))])
    unhidden = np.array([[expected(seq, images[k, q], receivers[k], None)
                          for q, seq in enumerate(sequences)] for k in range(len(emitters))])
    np.testing.assert_array_equal(traced, hidden)
    # Both kinds of refusal occur: reflection points off their surfaces, and paths hidden.
    assert 0 < traced.sum() < traced.size
    assert np.any(unhidden & ~hidden)


def test_synthesis_is_the_point_response_at_each_delay(localizer, processor, frame_and_truth):
    fr, _ = frame_and_truth
    features = fr.features
    tau = np.array([[6.1e-3, 6.13e-3, 0.0, 9.0e-3], [8.15e-3, 20.2e-3, 11.0e-3, 7.0e-3]])
    amp = np.array([[1.0, 0.5, 0.0, 2.0], [0.7, 1.0, 1.0, 0.0]])
    coef = np.array([1.0 - 0.5j, 0.3 + 2.0j])
    model = localizer.synthesise(fr, tau, amp, coef)
    times = features.times_s
    expected = np.zeros_like(model)
    inner = np.zeros(model.shape, dtype=bool)
    window = np.zeros(model.shape, dtype=bool)
    half = int(RESPONSE_HALF_S / features.bin_width_s)
    for p in range(2):
        for i in range(4):
            if amp[p, i] > 0:
                u = times - tau[p, i]
                inner[i] |= np.abs(u) < RESPONSE_HALF_S
                centre = int(np.rint(tau[p, i] / features.bin_width_s))
                window[i, centre - half:centre + half + 1] = True
                expected[i] += coef[p] * amp[p, i] * np.exp(
                    -2j * np.pi * features.carrier_hz * tau[p, i]) * processor.point_response(u)
    # The localizer's table is a spline through the processor's response on 1 us knots; each
    # path is drawn over the bins within RESPONSE_HALF_S of its own (where the response is
    # below 0.2 % of its peak).
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(model[inner], expected[inner], rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(model, expected, rtol=0, atol=3e-3 * scale)
    assert np.all(model[~window] == 0)
    assert np.all(model[2, :int(10e-3 / features.bin_width_s)] == 0)


def test_small_solves_are_numpys():
    rng = np.random.default_rng(3)
    for n in range(1, 6):
        matrix = rng.normal(size=(n, n)) + n * np.eye(n)
        rhs = rng.normal(size=n)
        x, solved = newton.solve_small(matrix, rhs)
        assert solved
        np.testing.assert_allclose(x, np.linalg.solve(matrix, rhs), rtol=1e-12, atol=1e-14)
    x, solved = newton.solve_small(np.array([[1.0, 2.0], [2.0, 4.0]]), np.ones(2))
    assert not solved
    x, solved = newton.solve_small(np.array([[np.nan, 0.0], [0.0, 1.0]]), np.ones(2))
    assert not solved


def _numpy_newton(localizer, fr, theta0, valid, free, iterations):
    """The Levenberg-Marquardt loop as numpy ran it before it was compiled: every start at
    once, each evaluation one :meth:`_fit`, the batch's steps one ``np.linalg.solve``."""
    paths, keep, _, pairs = localizer._starting_paths(fr, theta0, valid, free, iterations, True)
    theta, best = theta0.copy(), theta0.copy()
    best_e = np.full(len(theta0), -np.inf)
    grad, info = np.zeros((len(theta0), free.size)), np.zeros((len(theta0),) + (free.size,) * 2)
    lam = np.full(len(theta0), 1e-3)
    active = np.ones(len(theta0), dtype=bool)
    yaw_info = np.where(free == 4, fr.yaw_info, 0.0)
    for iteration in range(iterations + 1):
        rows = np.flatnonzero(active)
        e, g, h, _, _ = localizer._fit(fr, theta[rows], paths, keep[rows], free, pairs)
        e = e + fr.yaw_prior(theta[rows, 4])
        better = e >= best_e[rows]
        won, lost = rows[better], rows[~better]
        best[won], best_e[won], grad[won], info[won] = theta[won], e[better], g[better], h[better]
        lam[won] = np.maximum(lam[won] / 3.0, 1e-6)
        lam[lost] *= 10.0
        active[lost[lam[lost] > 1e3]] = False
        rows = rows[active[rows]]
        if iteration == iterations or rows.size == 0:
            break
        damped = info[rows] + np.eye(free.size) * (lam[rows, None, None] * np.abs(
            np.diagonal(info[rows], axis1=1, axis2=2))[:, None] + 1e-300 + yaw_info)
        step = np.linalg.solve(damped, (grad[rows] - yaw_info * best[rows, 4, None])[..., None])
        step = np.clip(step[..., 0], -STEP_LIMIT[free], STEP_LIMIT[free])
        moving = ~np.all(np.abs(step) < STEP_TOLERANCE[free], axis=1)
        active[rows[~moving]] = False
        theta[rows[moving]] = best[rows[moving]]
        theta[rows[moving][:, None], free[None, :]] += step[moving]
    return best, best_e, info


def test_compiled_newton_is_the_numpy_loop(localizer, frame_and_truth):
    fr, thetas = frame_and_truth
    fr.yaw_info = 1.0 / np.deg2rad(2.0) ** 2
    valid = localizer._valid_batch(fr, thetas)
    free = np.arange(5)
    fit = localizer._newton(fr, thetas, valid, free, 4)
    best, best_e, info = _numpy_newton(localizer, fr, thetas, valid, free, 4)
    # The same steps from the same points: positions agree far below the 0.1 mm tolerance.
    np.testing.assert_allclose(fit.theta, best, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fit.info, info, rtol=1e-6, atol=1e-9 * np.max(np.abs(info)))
    assert np.max(np.abs(fit.theta - thetas)) > 1e-3
    # The evidence adds the amplitude prior to the likelihood at the best points.
    tau, amp = localizer._paths(fr, best, fit.paths, fit.keep)[:2]
    with_prior = localizer._evidence(fr, tau, amp) + fr.yaw_prior(best[:, 4])
    np.testing.assert_allclose(fit.evidence, with_prior, rtol=1e-9)
    assert np.all(fit.evidence < best_e)


def test_furniture_faces_reflect_where_the_numpy_test_says(array, chirp, processor):
    room = load_room('furnished_room')
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
    rng = np.random.default_rng(6)
    extent = room.vertices_m.max(axis=0)
    emitters = rng.uniform([0, 0, 0.1], [*extent, 1.5], (400, 3))
    receivers = emitters + rng.normal(0.0, 0.03, emitters.shape)
    index = localizer._face_index
    images = kernels.image_points(localizer._img_m[index], localizer._img_t[index], emitters)
    np.testing.assert_array_equal(images, np.einsum('pij,kj->kpi', localizer._img_m[index],
                                                    emitters) + localizer._img_t[index])
    axis, side, value, lo, hi = localizer._face_geometry
    valid = kernels.faces_valid(emitters, receivers, localizer._img_m[index],
                                localizer._img_t[index], axis, side, value, lo, hi)
    # The numpy expression it replaced: the reflection point on the line from the image to
    # the receiver, inside the face, and the emitter in front of it.
    across = np.take_along_axis(images, np.broadcast_to(axis[None, :, None],
                                                        images.shape[:2] + (1,)), -1)[..., 0]
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (value - across) / (receivers[:, axis] - across)
    hit = images + t[..., None] * (receivers[:, None] - images)
    on_face = np.all((hit >= lo) & (hit <= hi) | (np.arange(3) == axis[:, None]), axis=-1)
    np.testing.assert_array_equal(valid, (side * emitters[:, axis] > side * value) & on_face)
    assert 0 < valid.sum() < valid.size


def test_pairs_and_evidence_with_prior_are_numpys(localizer, frame_and_truth):
    fr, thetas = frame_and_truth
    paths = np.arange(len(localizer._sequences))
    tau, amp, _ = localizer._paths(fr, thetas, paths)
    p, q = newton.near_pairs(tau, 2 * RESPONSE_HALF_S)
    every_p, every_q = np.triu_indices(paths.size, 1)
    near = np.any(np.abs(tau[:, every_p] - tau[:, every_q]) < 2 * RESPONSE_HALF_S, axis=(0, 2))
    np.testing.assert_array_equal(p, every_p[near])
    np.testing.assert_array_equal(q, every_q[near])
    assert 0 < p.size < every_p.size
    gram, b = localizer._gram_terms(fr, tau, amp)
    v = 3.0 * np.max(np.abs(b)) ** 2 / np.max(np.abs(gram)) ** 2
    system = np.eye(paths.size) + v * gram
    a = np.linalg.solve(system, v * b[..., None])[..., 0]
    expected = np.real(np.sum(np.conj(b) * a, axis=-1)) - np.linalg.slogdet(system)[1]
    np.testing.assert_allclose(newton.evidence_batch(gram, b, v), expected, rtol=1e-10)


def test_residual_power_is_the_masked_numpy_sum(localizer, frame_and_truth):
    fr, thetas = frame_and_truth
    fit = localizer._newton(fr, thetas[:1], localizer._valid_batch(fr, thetas[:1]),
                            np.arange(4), 2, need_info=False)
    tau, amp, coef = fit.tau[0], fit.amp[0], fit.coef[0]
    features = fr.features
    model = localizer.synthesise(fr, tau, amp, coef)
    power, count = kernels.residual_power(features.baseband, model, tau, amp, fr.weights,
                                          features.start_s, features.bin_width_s, 7)
    # The numpy expression it replaced: every modelled path's bins +-7 on its receiver.
    p, ch = np.nonzero(amp > 0)
    bins = np.rint((tau[p, ch] - features.start_s) / features.bin_width_s).astype(int)
    mask = np.zeros(features.baseband.shape, dtype=bool)
    mask[ch[:, None], np.clip(bins[:, None] + np.arange(-7, 8), 0, mask.shape[1] - 1)] = True
    weighted = np.abs(features.baseband - model) ** 2 * fr.weights[:, None]
    assert count == mask.sum() > 15 * np.unique(p).size
    np.testing.assert_allclose(power, np.sum(weighted[mask]), rtol=1e-12)


def test_lower_quartile_is_numpys_to_the_bit(frame_and_truth):
    fr, _ = frame_and_truth
    rng = np.random.default_rng(8)
    rows = [np.abs(fr.features.baseband) ** 2]
    rows += [rng.exponential(size=(3, n)).astype(dtype) for n in (1, 2, 3, 4, 5, 6, 2113)
             for dtype in (np.float32, np.float64)]
    rows[-1][1, 7] = np.nan
    for values in rows:
        expected = np.quantile(values, 0.25, axis=1)
        quartile = lower_quartile(values)
        assert quartile.dtype == expected.dtype
        np.testing.assert_array_equal(quartile, expected)


def test_surface_scores_are_the_sampled_coherent_powers(localizer, frame_and_truth):
    fr, _ = frame_and_truth
    grid = np.arange(0.01, 3.0, 0.003)
    normals = localizer._normals[-2:]
    score = localizer._surface_scores(fr, normals, grid, fr.table)
    # The numpy expression it replaced: each receiver's delay off the surface, sampled.
    dn, d2, d = normals @ fr.offsets.T, np.sum(fr.offsets ** 2, axis=1), grid[None, :, None]
    tau = np.sqrt(d2 + 4.0 * d * dn[:, None, :] + 4.0 * d ** 2) / fr.c0
    power = np.abs(np.sum(sample(fr, tau, smooth=False), axis=-1)) ** 2
    expected = np.log1p(power * np.mean(fr.weights) / fr.offsets.shape[0])
    # Single precision and the carrier from a 4096-entry table, summed over 4 receivers
    # that partly cancel: a few parts in 1e5 of the largest score.
    np.testing.assert_allclose(score, expected, rtol=1e-4, atol=1e-4 * np.max(expected))
    assert np.ptp(score) > 5.0


def test_cholesky_solves_are_numpys():
    rng = np.random.default_rng(9)
    basis = rng.normal(size=(12, 30)) + 1j * rng.normal(size=(12, 30))
    gram = basis @ basis.conj().T
    rhs = rng.normal(size=(12, 3)) + 1j * rng.normal(size=(12, 3))
    lower, factored = kernels.cholesky(gram)
    assert factored
    np.testing.assert_allclose(lower, np.linalg.cholesky(gram), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kernels.hermitian_solve(gram, lower, factored, rhs),
                               np.linalg.solve(gram, rhs), rtol=1e-10)
    # Not positive definite: solved by LU instead.
    indefinite = gram - 2 * np.max(np.linalg.eigvalsh(gram)) * np.eye(12) * (np.arange(12) == 5)
    lower, factored = kernels.cholesky(indefinite)
    assert not factored
    np.testing.assert_allclose(kernels.hermitian_solve(indefinite, lower, factored, rhs),
                               np.linalg.solve(indefinite, rhs), rtol=1e-10)


def test_separated_peaks_are_the_python_loops():
    rng = np.random.default_rng(10)
    grid = np.sort(rng.uniform(0.0, 6.0, 400))
    order = rng.permutation(400)
    for k, separation in ((1, 0.02), (5, 0.02), (10, 0.5), (400, 0.0), (30, 1.5)):
        chosen, taken = [], []
        for i in order:
            if len(chosen) < k and all(abs(grid[i] - t) >= separation for t in taken):
                chosen.append(i)
                taken.append(grid[i])
        np.testing.assert_array_equal(scan_kernels.separated(order, grid, k, separation),
                                      chosen)
    assert scan_kernels.separated(order[:0], grid, 3, 0.02).size == 0


def test_chi2_quantile_is_scipys_to_the_bit():
    levels = np.concatenate([np.linspace(1e-6, 0.999, 2001), [0.5, 0.95, 0.999]])
    assert [chi2_3_quantile(q) for q in levels] == [float(stats.chi2.ppf(q, 3))
                                                    for q in levels]
    # The 95 % quantile of chi-square(3), as tabulated.
    assert chi2_3_quantile(0.95) == pytest.approx(7.8147, abs=1e-4)
