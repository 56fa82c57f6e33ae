"""Constant-velocity tracking with a chi-square gate."""

import numpy as np
import pytest

from echoloc_ros.core.tracker import PoseTracker


def test_tracks_constant_velocity_below_measurement_noise():
    rng = np.random.default_rng(0)
    tracker = PoseTracker(accel_std_mps2=0.05)
    velocity = np.array([0.3, -0.1, 0.0])
    sigma = 0.01
    errors = []
    for k in range(200):
        t = 0.05 * k
        truth = np.array([1.0, 2.0, 0.5]) + velocity * t
        fix = truth + sigma * rng.standard_normal(3)
        position, cov, accepted = tracker.update(t, fix, sigma ** 2 * np.eye(3))
        assert accepted
        if k > 100:
            errors.append(position - truth)
    errors = np.array(errors)
    assert np.sqrt(np.mean(errors ** 2)) < 0.5 * sigma
    assert np.allclose(tracker.state[3:], velocity, atol=0.02)


def test_single_outlier_is_rejected_and_track_kept():
    tracker = PoseTracker()
    cov = 1e-4 * np.eye(3)
    for k in range(10):
        tracker.update(0.05 * k, [1.0, 1.0, 0.5], cov)
    before = tracker.state[:3].copy()
    position, _, accepted = tracker.update(0.5, [2.0, 1.0, 0.5], cov)
    assert not accepted
    assert np.allclose(position, before, atol=1e-3)
    _, _, accepted = tracker.update(0.55, [1.0, 1.0, 0.5], cov)
    assert accepted


def test_restarts_after_consecutive_rejections():
    tracker = PoseTracker(max_rejections=3)
    cov = 1e-4 * np.eye(3)
    for k in range(10):
        tracker.update(0.05 * k, [1.0, 1.0, 0.5], cov)
    results = [tracker.update(0.5 + 0.05 * k, [3.0, 1.0, 0.5], cov) for k in range(3)]
    assert [r[2] for r in results] == [False, False, True]
    assert np.allclose(results[-1][0], [3.0, 1.0, 0.5])


def test_gate_passes_consistent_fixes():
    rng = np.random.default_rng(1)
    tracker = PoseTracker(accel_std_mps2=0.01, gate_probability=0.99)
    cov = np.diag([1e-4, 4e-4, 1e-5])
    accepted = [tracker.update(0.1 * k, rng.multivariate_normal([2.0, 1.0, 0.4], cov), cov)[2]
                for k in range(1000)]
    # 1 % expected outside a 99 % gate; the filter's own uncertainty only widens it.
    assert np.mean(accepted) > 0.97


def test_bad_input_raises():
    tracker = PoseTracker()
    with pytest.raises(ValueError, match='positive definite'):
        tracker.update(0.0, [1.0, 1.0, 1.0], -np.eye(3))
    with pytest.raises(ValueError, match='position_m'):
        tracker.update(0.0, [1.0, np.nan, 1.0], np.eye(3))
    tracker.update(1.0, [1.0, 1.0, 1.0], np.eye(3))
    with pytest.raises(ValueError, match='earlier'):
        tracker.update(0.5, [1.0, 1.0, 1.0], np.eye(3))
