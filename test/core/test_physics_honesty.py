"""A physics fix that cannot be trusted says so: its covariance holds the whole room."""

import numpy as np

from echoloc_ros.core.physics.config import UNEXPLAINED_RATIO, UNSEPARATED_GAP
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.results import Proposal
from echoloc_ros.core.room import room_from_dict
from echoloc_ros.sim.simulator import Scenario

CHI2_95_3DOF = 7.815


def test_a_fix_the_echoes_do_not_explain_holds_the_whole_room(room, simulator, processor, array,
                                                              chirp):
    # The room file has a box the room does not: where the localizer takes the box's echo
    # for a wall, its fit leaves a strong echo unexplained.
    told = room_from_dict({'name': 'stale', 'plan': {'shoebox': {'width_m': 6.0,
                                                                 'length_m': 4.5}},
                           'height_m': 2.8, 'materials': {'walls': 'painted_plaster',
                                                          'floor': 'vinyl',
                                                          'ceiling': 'painted_plaster'},
                           'furniture': [{'min_m': [2.0, 1.5, 0.0], 'max_m': [3.0, 3.0, 1.0]}]})
    localizer = PhysicsLocalizer(told, array, chirp, processor=processor)
    rng = np.random.default_rng(3)
    wrong = 0
    for _ in range(10):
        position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
        estimate = localizer.localize(processor.process(
            simulator.simulate(position, yaw, Scenario(snr_db=20.0), rng)), yaw, 20.0)
        error = estimate.position_m - position
        if np.linalg.norm(error) > 0.05:
            wrong += 1
            assert estimate.residual_ratio > UNEXPLAINED_RATIO and estimate.confidence == 0.0
            assert np.all(np.sqrt(np.diag(estimate.covariance_m2))[:2] > 1.0)
            assert error @ np.linalg.solve(estimate.covariance_m2, error) < CHI2_95_3DOF
    assert wrong >= 1


def test_a_rival_within_the_gap_is_not_separated():
    thetas = np.array([[1.0, 1.0, 0.3, 1.0, 0.0], [1.0, 1.01, 0.3, 1.0, 0.0],
                       [3.0, 1.0, 0.3, 1.0, 0.0], [1.0, 3.0, 0.3, 1.0, 0.0]])

    def proposal(scores, n_polished=3):
        return Proposal(localizer=None, frame=None, yaw_given_rad=0.0, thetas=thetas,
                        scores=np.array(scores, dtype=float), n_polished=n_polished,
                        working=np.ones(4, dtype=bool))

    near, far = 100 - 0.5 * UNSEPARATED_GAP, 100 - 2 * UNSEPARATED_GAP
    # A candidate 1 cm away is the same pose; one 2 m away within the gap is a rival.
    assert not PhysicsLocalizer._unseparated(proposal([100, 99.9, far, 99]), 0)
    assert PhysicsLocalizer._unseparated(proposal([100, 99.9, near, 0]), 0)
    # An unpolished candidate's evidence does not compare with a polished one's.
    assert not PhysicsLocalizer._unseparated(proposal([100, 99.9, far, 99.5], 3), 0)
