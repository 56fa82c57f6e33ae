"""The full search's candidates in stages (issue 20): run to the end they are ``propose``'s, to
the bit; the best of them is a standing fix's own place, and a place 30 cm to 2 m off it is a
rival (the periodic check's rule, :func:`rival_first`)."""
import numpy as np
import pytest

from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.staged_search import proposal_stages, run_stages
from echoloc_ros.core.physics.track_fix import SAME_PLACE_M, rival_first
from echoloc_ros.sim.simulator import Scenario


@pytest.fixture(scope='module')
def physics(room, array, chirp, processor):
    return PhysicsLocalizer(room, array, chirp, processor=processor)


@pytest.fixture(scope='module')
def frame(room, simulator, processor):
    """A frame at 20 dB at a pose in the default room: ``(truth, yaw, features)``."""
    truth, yaw = np.array([1.7, 2.2, 0.3]), 0.4
    samples = simulator.simulate(truth, yaw, Scenario(snr_db=20.0),
                                 np.random.default_rng(4))
    return truth, yaw, processor.process(samples)


def test_the_stages_run_to_the_end_are_propose_to_the_bit(physics, frame):
    _, yaw, features = frame
    stages = proposal_stages(physics, features, yaw)
    paused = 0
    with pytest.raises(StopIteration) as done:
        while True:
            next(stages)
            paused += 1
    # The heights and the floor-and-ceiling fit, the wall scans; then the scoring ends it.
    assert paused == 2 * physics.n_heights
    staged, plain = done.value.value, physics.propose(features, yaw)
    assert np.array_equal(staged.thetas, plain.thetas)
    assert np.array_equal(staged.scores, plain.scores)
    assert staged.n_polished == plain.n_polished
    again = run_stages(proposal_stages(physics, features, yaw))
    assert np.array_equal(physics.settled(again).position_m,
                          physics.localize(features, yaw).position_m)


@pytest.mark.parametrize('offset_m', [(0.3, 0.0, 0.0), (0.0, -1.0, 0.0), (1.4, 1.4, 0.0)])
def test_a_fix_30_cm_to_2_m_off_has_a_rival_first_and_the_truth_has_none(
        physics, frame, offset_m):
    truth, yaw, features = frame
    proposal = run_stages(proposal_stages(physics, features, yaw))
    fix = physics.localize(features, yaw).position_m
    assert np.linalg.norm(fix - truth) < 0.001
    assert not rival_first(proposal, fix)
    assert rival_first(proposal, fix + np.array(offset_m))
    # A fix is its own place within SAME_PLACE_M of the best candidate, not beyond.
    best = proposal.positions_m()[0]
    assert not rival_first(proposal, best + [0.9 * SAME_PLACE_M, 0.0, 0.0])
    assert rival_first(proposal, best + [1.1 * SAME_PLACE_M, 0.0, 0.0])


def test_stages_refuse_bad_values_by_name(physics, frame):
    _, _, features = frame
    with pytest.raises(ValueError, match='yaw_rad must be finite, got nan'):
        next(proposal_stages(physics, features, float('nan')))
