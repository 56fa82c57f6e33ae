"""Every reflection order in the window: the simulator's image labels (the unfolded ray traced
back), the highest order that can arrive, and the physics localizer's final fit with the
room's order-3 images (issue 18)."""

import numpy as np
import pytest

from echoloc_ros.core.geometry import on_surfaces, orders_in_window, reflect, room_planes
from echoloc_ros.core.physics.images import shoebox_image_maps
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import ALL_ORDERS_MAX_TEMPERATURE_C, EchoSimulator, Scenario
from echoloc_ros.sim.unfolding import traced_sequences

FS_HZ = 250e3


def pra_images(simulator, emitter, receivers):
    """The image sources of pyroomacoustics and their orders for one placement of the array."""
    pra_room = simulator._pra_room
    pra_room.sources[0].position = emitter.copy()
    pra_room.mic_array.R = receivers.T.copy()
    pra_room.image_source_model()
    source = pra_room.sources[0]
    keep = source.orders > 0
    return source.images.T[keep].astype(float), source.orders[keep]


def test_traced_sequences_rebuild_every_image_on_its_surfaces(room, array, chirp):
    # Order 5 in the shoebox: 230 images, each with one path whose reflection points lie on
    # the surfaces (perpendicular surfaces make the same image in either order; only one
    # order has its points on them).
    simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=5)
    planes = room_planes(room)
    normals = np.array([p.normal for p in planes])
    offsets = np.array([p.offset for p in planes])
    rng = np.random.default_rng(3)
    for _ in range(3):
        position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
        emitter, receivers = array.to_world(position, yaw)
        images, orders = pra_images(simulator, emitter, receivers)
        centre = receivers.mean(axis=0)
        sequences, ok = traced_sequences(normals, offsets, None, emitter, centre, images,
                                         orders)
        assert ok.all() and len(images) == 230
        for image, order, seq in zip(images, orders, sequences):
            assert np.all(seq[order:] == -1)
            rebuilt = emitter
            for s in seq[:order]:
                rebuilt = reflect(rebuilt, normals[s], offsets[s])
            # pyroomacoustics gives its images in float32: micrometres at 20 m.
            assert np.linalg.norm(rebuilt - image) < 1e-4
            assert on_surfaces(tuple(seq[:order]), image, centre, normals, offsets,
                               simulator._plane_contains)


def test_a_hidden_image_is_not_traced(room):
    planes = room_planes(room)
    normals = np.array([p.normal for p in planes])
    offsets = np.array([p.offset for p in planes])
    emitter = np.array([1.0, 1.0, 1.0])
    # The west wall's image of another point: no path from this emitter makes it.
    _, ok = traced_sequences(normals, offsets, None, emitter, emitter,
                             np.array([[-1.5, 1.0, 1.0]]), np.array([1]))
    assert not ok[0]


def test_orders_in_window_bound_every_image_order_above(room, array, chirp):
    simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order='all')
    path_m = simulator._window_path_m(ALL_ORDERS_MAX_TEMPERATURE_C)
    size = (room.width_m, room.length_m, room.height_m)
    assert simulator.max_order == orders_in_window(size, path_m)
    # The next order, wherever the array is, arrives after the window (the bound is the
    # room's corners: a sharper one would use where the array can be).
    beyond = EchoSimulator(room, array, chirp, FS_HZ, max_order=simulator.max_order + 1)
    rng = np.random.default_rng(4)
    for _ in range(5):
        position, yaw = room.random_pose(rng, 0.05, (0.05, 2.75))
        emitter, receivers = array.to_world(position, yaw)
        images, orders = pra_images(beyond, emitter, receivers)
        last = images[orders == simulator.max_order + 1]
        assert np.min(np.linalg.norm(last[:, None] - receivers[None], axis=-1)) >= path_m
    # A window shorter than twice the smallest dimension: corner paths alone (order 3).
    assert orders_in_window(size, 1.0) == 3


def test_every_order_in_the_window_is_rendered(room, array, chirp):
    every = EchoSimulator(room, array, chirp, FS_HZ, max_order='all')
    more = EchoSimulator(room, array, chirp, FS_HZ, max_order=every.max_order + 1)
    fewer = EchoSimulator(room, array, chirp, FS_HZ, max_order=4)
    position, yaw = np.array([2.2, 1.6, 0.5]), 0.3
    signals = every.clean_signals(position, yaw)
    # Nothing of the next order reaches the window; orders 5 on add echoes to it, above the
    # noise of a 20 dB frame (its standard deviation per sample).
    assert np.array_equal(signals, more.clean_signals(position, yaw))
    late = np.abs(signals - fewer.clean_signals(position, yaw))
    assert np.max(late) > every.noise_std_counts(position, yaw, 20.0)
    frame = every.simulate(position, yaw, Scenario(seed=1))
    assert frame.shape == (array.n_receivers, every.n_samples) and frame.dtype == np.int16


def test_every_order_needs_a_shoebox_and_a_valid_order(array, chirp):
    with pytest.raises(ValueError, match='shoebox'):
        EchoSimulator(load_room('l_shaped_room'), array, chirp, FS_HZ, max_order='all')
    for bad in (0, 'every', 2.5):
        with pytest.raises(ValueError, match='max_order'):
            EchoSimulator(load_room('default_room'), array, chirp, FS_HZ, max_order=bad)


def test_all_orders_refuse_air_warmer_than_counted(room, array, chirp):
    every = EchoSimulator(room, array, chirp, FS_HZ, max_order='all')
    with pytest.raises(ValueError, match='degC'):
        every.clean_signals(np.array([2.2, 1.6, 0.5]), 0.3,
                            temperature_c=ALL_ORDERS_MAX_TEMPERATURE_C + 5.0)


def test_shoebox_image_maps_are_the_localizer_and_simulator_images(room, array, chirp):
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ)
    refl = np.array([s.reflection for s in localizer._surfaces])[[[3, 1], [0, 2], [4, 5]]]
    size = np.array([room.width_m, room.length_m, room.height_m])
    emitter = np.array([1.3, 2.1, 0.7])
    ours = [(m * emitter + t, r) for m, t, r in shoebox_image_maps(size, refl, range(1, 3))]
    theirs = [(m @ emitter + t, r) for m, t, r in zip(localizer._img_m, localizer._img_t,
                                                      localizer._img_refl)
              if np.all(np.abs(np.diag(m)) == 1)][:len(ours)]
    assert len(ours) == len(theirs) == 24
    for image, r in ours:
        match = [r2 for image2, r2 in theirs if np.linalg.norm(image - image2) < 1e-9]
        assert len(match) == 1 and np.isclose(match[0], r)
    simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=5)
    images, orders = pra_images(simulator, emitter, np.tile(emitter, (4, 1)))
    for order in (3, 4, 5):
        maps = shoebox_image_maps(size, refl, range(order, order + 1))
        ours = np.array([m * emitter + t for m, t, _ in maps])
        distance = np.linalg.norm(ours[:, None] - images[orders == order][None], axis=-1)
        assert len(ours) == np.count_nonzero(orders == order) == 4 * order ** 2 + 2
        assert np.all(distance.min(axis=1) < 1e-4) and np.all(distance.min(axis=0) < 1e-4)


def test_final_fit_with_order_three_explains_more_of_an_all_orders_frame(room, array, chirp,
                                                                         processor):
    # At the true pose, the fit that models the room's order-3 images leaves less of the
    # frame unexplained than orders 1-2 alone, in a frame with every order in the window.
    simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order='all')
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
    position, yaw = np.array([2.2, 1.6, 0.5]), 0.3
    features = processor.process(simulator.simulate(position, yaw, Scenario(seed=2)))
    fr = localizer.propose(features, yaw, None, 0.0).frame
    emitter = array.to_world(position, yaw)[0]
    theta = np.array([[*emitter, 1.0, 0.0]])
    model, valid = localizer._final_model(fr, theta)
    assert model is not localizer and valid.shape[1] == len(localizer._sequences) + 38
    ratios = []
    for fitted, paths in ((localizer, localizer._valid_batch(fr, theta)), (model, valid)):
        fit = fitted._newton(fr, theta, paths, np.arange(4), 3, need_info=False)
        ratios.append(fitted._residual_ratio(fr, fit.tau[0], fit.amp[0], fit.coef[0]))
    assert ratios[1] < 0.8 * ratios[0]
    # Not in a plan that is not a shoebox: there the paths are traced, and order 2 is kept.
    l_room = load_room('l_shaped_room')
    l_localizer = PhysicsLocalizer(l_room, array, chirp, FS_HZ, processor=processor)
    l_theta = np.array([[1.0, 1.0, 0.5, 1.0, 0.0]])
    assert l_localizer._final_model(fr, l_theta)[0] is l_localizer


def test_max_order_option_takes_an_order_or_all():
    import argparse

    from echoloc_ros.cli.evaluate import _max_order
    assert _max_order('all') == 'all' and _max_order('4') == 4
    for bad in ('0', 'every', '2.5'):
        with pytest.raises(argparse.ArgumentTypeError, match='order >= 1 or all'):
            _max_order(bad)


def test_an_order_two_frame_keeps_the_smaller_model(room, array, chirp, processor):
    # Where the frame holds no echo of order 3, the paths added only fit noise, and the
    # evidence (each path pays its prior's log det) keeps orders 1-2.
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
    kept = []
    for order in (2, 'all'):
        simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=order)
        for seed, position, yaw in ((5, [2.2, 1.6, 0.5], 0.3), (6, [4.1, 3.0, 0.9], -1.2)):
            position = np.array(position)
            frame = simulator.simulate(position, yaw, Scenario(snr_db=10.0, seed=seed))
            # The frame as the search leaves it: its amplitude scale sets the paths' prior.
            fr = localizer.propose(processor.process(frame), yaw, None, 0.0).frame
            theta = np.array([[*array.to_world(position, yaw)[0], 1.0, 0.0]])
            kept.append(localizer._final_model(fr, theta)[0] is localizer)
    assert kept == [True, True, False, False]
