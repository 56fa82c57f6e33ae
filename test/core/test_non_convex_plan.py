"""Echo paths in a plan that is not convex: the simulator and the localizer agree on which
walls a pose hears, and no path turns round a corner that juts into the room."""
import numpy as np

from echoloc_ros.core.array_geometry import load_array, yaw_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import room_from_dict
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

# An L: a 2.5 m wide wing along y (x < 2.5) and a second wing (2.5 < x < 4, y > 4.4); the
# corner (2.5, 4.4) juts into the room.
L_ROOM = room_from_dict({
    'name': 'ell', 'plan': {'polygon': [[0, 7.6], [0, 0], [2.5, 0], [2.5, 4.4], [4.0, 4.4],
                                        [4.0, 7.6]]},
    'height_m': 3.0, 'materials': {'walls': 'painted_plaster', 'floor': 'vinyl',
                                   'ceiling': 'painted_plaster'}})


def _first_order_walls(simulator, position):
    return sorted(p.surfaces[0] for p in simulator.paths(position, 0.0)
                  if p.order == 1 and np.any(p.amplitude > 0) and p.surfaces[0].startswith('w'))


def test_the_simulator_hears_the_walls_in_front_of_each_pose():
    simulator = EchoSimulator(L_ROOM, load_array('square_4sensor'), Chirp())
    # In the wing's lower part the east wall is wall_2 (x = 2.5); above y = 4.4 it is wall_4
    # (x = 4.0), and the notch's wall_3 faces the other way. Asked one after the other (the
    # simulator once kept the walls heard from the first pose).
    low, high = np.array([0.7, 2.0, 0.5]), np.array([0.7, 5.0, 0.5])
    assert _first_order_walls(simulator, low) == ['wall_0', 'wall_1', 'wall_2', 'wall_5']
    assert _first_order_walls(simulator, high) == ['wall_0', 'wall_1', 'wall_4', 'wall_5']
    assert _first_order_walls(simulator, low) == ['wall_0', 'wall_1', 'wall_2', 'wall_5']


def test_the_localizer_models_the_paths_the_simulator_makes():
    array, chirp = load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(L_ROOM, array, chirp)
    localizer = PhysicsLocalizer(L_ROOM, array, chirp)
    for position in ([0.7, 5.0, 0.5], [1.9, 2.0, 0.7], [1.5, 3.5, 1.0], [3.2, 6.0, 0.4]):
        position = np.array(position)
        emitter = position + yaw_matrix(0.0) @ array.emitter_m
        centre = position + array.receivers_m.mean(axis=0)
        valid = localizer._valid_images(emitter[None], centre[None])[0]
        modelled = {tuple(np.round(localizer._img_m[p] @ emitter + localizer._img_t[p], 3))
                    for p in np.flatnonzero(valid & localizer._room_image)}
        simulated = {tuple(np.round(p.image_m, 3)) for p in simulator.paths(position, 0.0)
                     if p.kind == 'room' and np.any(p.amplitude > 0)}
        assert simulated == modelled, position


def _frame_and_truth(localizer, simulator, processor, position, yaw_rad, heading_error_rad):
    """The localizer's frame of a simulated pose (heading given off by
    ``heading_error_rad``, its std 1 deg) and the true (x, y, z, kappa, psi) of the emitter."""
    features = processor.process(simulator.simulate(position, yaw_rad,
                                                    Scenario(snr_db=20.0, seed=5)))
    fr = localizer.frame(features, yaw_rad - heading_error_rad, L_ROOM.temperature_c)
    fr.yaw_info = 1.0 / np.deg2rad(1.0) ** 2
    fr.yaw_grid = np.deg2rad(np.arange(-3.0, 3.01, 0.75))
    emitter = position + yaw_matrix(yaw_rad) @ localizer.array.emitter_m
    return fr, np.array([*emitter, 1.0, heading_error_rad])


def test_general_plan_candidates_take_the_heading_their_echoes_agree_on(processor):
    array, chirp = load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(L_ROOM, array, chirp)
    localizer = PhysicsLocalizer(L_ROOM, array, chirp, processor=processor)
    # The heading given is 1.5 deg off: a candidate at the right place must get the heading
    # back, to within the grid's step, or its echoes do not add up.
    fr, truth = _frame_and_truth(localizer, simulator, processor, np.array([1.1, 2.3, 0.6]),
                                 0.4, np.deg2rad(1.5))
    psi = localizer._candidate_headings(fr, truth[None, :2], truth[2], 1.0, fr.table)
    assert abs(psi[0] - truth[4]) <= np.deg2rad(0.75)


def test_a_second_look_along_each_axis_finds_the_pose_the_first_scans_missed(processor):
    array, chirp = load_array('square_4sensor'), Chirp()
    simulator = EchoSimulator(L_ROOM, array, chirp)
    localizer = PhysicsLocalizer(L_ROOM, array, chirp, processor=processor)
    fr, truth = _frame_and_truth(localizer, simulator, processor, np.array([1.3, 5.9, 0.5]),
                                 -0.8, np.deg2rad(-0.7))
    # The only polished candidate is right in x and 2.2 m off in y, in the other part of the
    # wing: the second look must bring a candidate at the truth, polished, and none where
    # the array would not fit (the inner wall at x = 2.5 is 1.2 m away across the scan).
    wrong = truth.copy()
    wrong[1] -= 2.2
    free = np.array([0, 1, 4])
    fit = localizer._newton(fr, wrong[None], localizer._valid_batch(fr, wrong[None]), free, 1,
                            need_info=False)
    thetas, scores = localizer._second_look(fr, fit.theta, fit.evidence, free)
    assert len(thetas) == len(scores) > 1
    assert np.min(np.linalg.norm(thetas[:, :2] - truth[:2], axis=1)) < 0.005
    assert np.all(L_ROOM.wall_distance_m(thetas[1:, :2]) > 0.06)
