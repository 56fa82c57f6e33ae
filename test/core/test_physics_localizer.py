"""The physics localizer on simulated frames: accuracy, speed of sound, honest covariance."""

import numpy as np
import pytest

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.evaluation import error_metrics
from echoloc_ros.core.physics_localizer import PhysicsLocalizer
from echoloc_ros.core.simulator import Scenario

FS_HZ = 250e3


@pytest.fixture(scope='module')
def localizer(room, array, chirp, processor):
    return PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)


def run(room, simulator, processor, localizer, scenario, n, seed):
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(n):
        position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
        features = processor.process(simulator.simulate(position, yaw, scenario, rng))
        results.append((position, localizer.localize(features, yaw, 20.0)))
    return results


def test_accuracy_at_20db(room, simulator, processor, localizer):
    results = run(room, simulator, processor, localizer, Scenario(snr_db=20.0), 30, seed=1)
    errors = np.array([np.linalg.norm(est.position_m - pos) for pos, est in results])
    metrics = error_metrics(errors, np.ones(errors.size, dtype=bool))
    assert metrics['median_cm'] <= 1.0
    assert metrics['p95_cm'] <= 3.0
    assert metrics['gross_rate_10cm'] <= 0.05
    for _, est in results:
        cov = est.covariance_m2
        assert cov.shape == (3, 3)
        assert np.allclose(cov, cov.T)
        assert np.all(np.linalg.eigvalsh(cov) > 0)
        assert 0.0 <= est.confidence <= 1.0
        assert est.n_echoes >= 4
    # The 95 % ellipsoid holds the truth for the frames that are not gross errors.
    inside = [(e := est.position_m - pos) @ np.linalg.solve(est.covariance_m2, e) < 7.815
              for pos, est in results]
    assert np.mean(inside) >= 0.85


def test_speed_of_sound_is_estimated_not_assumed(room, simulator, processor, localizer):
    # 30 degC air, localizer told 20 degC: ranges would be 1.7 % off without the estimate.
    results = run(room, simulator, processor, localizer,
                  Scenario(snr_db=20.0, temperature_c=30.0), 8, seed=2)
    speeds = np.array([est.speed_of_sound_mps for _, est in results])
    errors = np.array([np.linalg.norm(est.position_m - pos) for pos, est in results])
    assert np.median(np.abs(speeds - speed_of_sound_mps(30.0))) < 0.3
    assert np.median(errors) < 0.01


def test_rejects_mismatched_features(room, array, chirp, simulator, processor, localizer):
    features = processor.process(simulator.simulate([2.0, 2.0, 0.5], 0.0)[:3])
    with pytest.raises(ValueError, match='3 channels'):
        localizer.localize(features, 0.0)
    features = processor.process(simulator.simulate([2.0, 2.0, 0.5], 0.0))
    with pytest.raises(ValueError, match='nan'):
        localizer.localize(features, float('nan'))
    with pytest.raises(ValueError, match='z_range_m'):
        PhysicsLocalizer(room, array, chirp, z_range_m=(1.0, 5.0))
