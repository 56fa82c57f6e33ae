"""The search's and finish's faster forms compute what the slower ones did, to the bit."""

import numpy as np

from echoloc_ros.core.physics.candidates import distinct
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.sim.simulator import Scenario

FS_HZ = 250e3
TOLERANCE = np.array([0.01, 0.01, 0.01, 0.002, 0.01])


def _distinct_pairwise(points: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """The rule :func:`distinct` keeps, pair by pair: a row is kept when it differs by more
    than the tolerance somewhere from every row kept before it."""
    kept: list[int] = []
    for i in range(len(points)):
        if all(np.any(np.abs(points[i] - points[j]) > tolerance) for j in kept):
            kept.append(i)
    return np.array(kept, dtype=int)


def test_distinct_keeps_the_rows_the_pairwise_rule_keeps():
    rng = np.random.default_rng(5)
    for n in (1, 2, 40, 120):
        # Clusters a few millimetres wide around a few centres: most rows have a near one.
        centres = rng.uniform(0.0, 4.0, (6, 5))
        points = centres[rng.integers(0, 6, n)] + rng.normal(0.0, 0.006, (n, 5))
        kept = distinct(points, TOLERANCE)
        assert np.array_equal(kept, _distinct_pairwise(points, TOLERANCE))
        if n > 10:
            # The clusters thin the rows out, and never below one per centre.
            assert 6 <= len(kept) < n
    assert distinct(np.zeros((0, 5)), TOLERANCE).size == 0


def test_a_candidate_finished_twice_is_refined_once_with_the_same_bits(
        room, array, chirp, simulator, processor):
    """The network's order (its candidate with probabilities, then physics' own without) on
    one proposal gives what a proposal finished once gives."""
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor,
                                 axis_rivals=False)
    rng = np.random.default_rng(33)
    position, yaw = room.random_pose(rng)
    features = processor.process(simulator.simulate(position, yaw, Scenario(snr_db=10), rng))
    shared = localizer.propose(features, yaw)
    fresh = localizer.propose(features, yaw)
    m = len(shared.thetas)
    p = np.full(m + 1, 0.5 / m)
    p[0] = 0.5
    with_p = localizer.finish(shared, 0, p)
    assert list(shared.refined) == [0]
    second = localizer.finish(shared, 0)
    alone = localizer.finish(fresh, 0)
    for name in ('position_m', 'covariance_m2', 'yaw_rad', 'score', 'residual_ratio',
                 'confidence', 'yaw_variance_rad2', 'candidates_m'):
        assert np.array_equal(getattr(second, name), getattr(alone, name)), name
    assert np.array_equal(with_p.position_m, alone.position_m)
    # Another candidate is refined anew, not read from the first's fit.
    other = localizer.finish(shared, 1)
    assert sorted(shared.refined) == [0, 1]
    assert np.array_equal(other.position_m, localizer.finish(fresh, 1).position_m)
    assert not np.array_equal(other.position_m, alone.position_m)
