"""Constant-velocity tracking with a chi-square gate."""

import numpy as np
import pytest

from scipy import stats

from echoloc_ros.core.tracker import Measurement, PoseTracker

# The 99.9 % and 99.9999 % ellipsoids of a 3-D Gaussian: squared Mahalanobis distance. An
# honest covariance has 1 pose in 1000 outside the first (a 4.7-sigma fix does it), none in a
# run of hundreds outside the second.
CHI2_999_3D = float(stats.chi2.ppf(0.999, 3))
CHI2_999999_3D = float(stats.chi2.ppf(0.999999, 3))


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


def test_a_wrong_lock_is_replaced_once_consistent_fixes_outweigh_it():
    tracker = PoseTracker()
    cov = 1e-4 * np.eye(3)
    for k in range(10):
        tracker.update(0.05 * k, [1.0, 1.0, 0.5], cov)
    results = [tracker.update(0.5 + 0.05 * k, [3.0, 1.0, 0.5], cov) for k in range(12)]
    switched = [np.allclose(r[0], [3.0, 1.0, 0.5], atol=0.01) for r in results]
    first = switched.index(True)
    # Not on the first contrary fix, and for good once it has switched.
    assert 2 <= first <= 8
    assert all(switched[first:])
    assert results[first][2]
    assert tracker.switches == 1
    assert tracker.coasting_s == 0.0


def test_scattered_wrong_fixes_never_take_the_track():
    rng = np.random.default_rng(3)
    tracker = PoseTracker(room_volume_m3=5.0 * 4.0 * 2.5)
    sigma = 0.003
    errors = []
    for k in range(400):
        t = 0.04 * k
        truth = np.array([1.0 + 0.2 * t, 2.0, 0.4])
        fix = truth + sigma * rng.standard_normal(3)
        if k > 5 and rng.random() < 0.3:
            fix = rng.uniform([0.0, 0.0, 0.1], [5.0, 4.0, 0.8])
        position, _, _ = tracker.update(t, fix, sigma ** 2 * np.eye(3))
        errors.append(np.linalg.norm(position - truth))
    # Runs of wrong fixes leave it coasting (a centimetre or two), never elsewhere.
    assert max(errors) < 0.03
    assert tracker.switches == 0
    # Better than one fix alone (the median 3-D error of one is 1.54 sigma).
    assert np.median(errors) < 1.5 * sigma
    assert tracker.n_tracks <= tracker.max_tracks


def _locked(tracker: PoseTracker, where, sigma: float = 0.01, n: int = 20) -> float:
    for k in range(n):
        tracker.update(0.04 * k, where, sigma ** 2 * np.eye(3))
    return 0.04 * n


def test_a_doubted_fix_where_the_track_expects_it_counts_in_full():
    tracker = PoseTracker()
    t = _locked(tracker, [1.0, 1.0, 0.5])
    near = Measurement(np.array([[1.004, 1.0, 0.5]]), 1e-6 * np.eye(3)[None], np.array([0.3]),
                       np.eye(3))
    position, cov, accepted = tracker.update_with(t, near)
    assert accepted
    assert abs(position[0] - 1.004) < 0.0005
    assert np.sqrt(cov[0, 0]) < 0.002
    # The same doubt a metre away barely moves it, and is not taken.
    far = Measurement(np.array([[2.0, 1.0, 0.5]]), 1e-6 * np.eye(3)[None], np.array([0.3]),
                      np.eye(3))
    before = position
    position, _, accepted = tracker.update_with(t + 0.04, far)
    assert not accepted
    assert np.linalg.norm(position - before) < 0.002
    assert abs(tracker.coasting_s - 0.04) < 1e-9


def test_a_rival_where_the_track_is_carries_it_when_the_fix_is_wrong():
    tracker = PoseTracker()
    t = _locked(tracker, [1.0, 1.0, 0.5])
    m = Measurement(np.array([[3.0, 2.0, 0.5], [1.003, 1.0, 0.5]]),
                    np.repeat(1e-6 * np.eye(3)[None], 2, axis=0), np.array([0.6, 0.3]),
                    np.eye(3))
    position, _, accepted = tracker.update_with(t, m)
    assert not accepted  # the fix (the first place) was not taken ...
    assert abs(position[0] - 1.003) < 0.0005  # ... its rival was


def test_a_fix_the_network_doubts_is_taken_as_published():
    sure = Measurement.from_estimate(_estimate([0.2], confidence=0.7))
    assert sure.probabilities.tolist() == [0.7, 0.2]
    assert np.allclose(sure.covariances_m2[0], 1e-4 * np.eye(3))
    # Below 0.5 the sharp component is not trusted: the fix with the covariance that spans its
    # rivals, as a plain fix.
    doubted = Measurement.from_estimate(_estimate([0.2], confidence=0.3), prior_right=0.9)
    assert doubted.probabilities.tolist() == [0.9]
    assert np.allclose(doubted.covariances_m2[0], np.eye(3))


def test_gate_passes_consistent_fixes():
    rng = np.random.default_rng(1)
    tracker = PoseTracker(accel_std_mps2=0.01, gate_probability=0.99)
    cov = np.diag([1e-4, 4e-4, 1e-5])
    accepted = [tracker.update(0.1 * k, rng.multivariate_normal([2.0, 1.0, 0.4], cov), cov)[2]
                for k in range(1000)]
    # 1 % expected outside a 99 % gate; the filter's own uncertainty only widens it.
    assert np.mean(accepted) > 0.97


@pytest.mark.parametrize('gap_s', [10.0, 30.0, 300.0])
@pytest.mark.parametrize('moved_m', [0.0, 1.5])
def test_after_a_gap_it_never_vouches_for_a_wrong_pose_and_reacquires(gap_s, moved_m):
    """The array drives at 0.3 m/s, fixes stop for ``gap_s`` (it stops, or goes on to a place
    ``moved_m`` away), then resume: no pose the tracker vouches for is outside its 99.9 %
    ellipsoid (beyond the 1 in 1000 an honest one has), and the error is under 1 cm within
    2 s of the first fix after the gap."""
    rng = np.random.default_rng(int(gap_s) + int(10 * moved_m))
    tracker = PoseTracker()
    sigma = 0.003
    cov = sigma ** 2 * np.eye(3)
    start, velocity = np.array([1.0, 1.0, 0.3]), np.array([0.3, 0.0, 0.0])
    times = list(np.arange(0.0, 4.0, 0.04))
    truths = [start + velocity * t for t in times]
    resume_s = times[-1] + gap_s
    after = start + velocity * times[-1] + np.array([0.0, moved_m, 0.0])
    times += list(resume_s + np.arange(0.0, 4.0, 0.04))
    truths += [after] * 100
    vouched_after, nees = [], []
    for t, truth in zip(times, truths):
        position, covariance, _ = tracker.update(t, truth + sigma * rng.standard_normal(3), cov)
        if t >= resume_s and t - resume_s < 0.04:
            # The first fix after the gap: the old track is gone, nothing confirmed yet.
            assert tracker.lost and not tracker.initialised
            assert tracker.losses == 1
        if not tracker.initialised:
            continue
        error = position - truth
        nees.append(float(error @ np.linalg.solve(covariance, error)))
        if t >= resume_s:
            vouched_after.append((t - resume_s, float(np.linalg.norm(error))))
    assert max(nees) <= CHI2_999999_3D
    assert np.mean(np.array(nees) > CHI2_999_3D) <= 0.01
    assert vouched_after and vouched_after[0][0] <= 0.2
    assert all(err < 0.01 for dt, err in vouched_after if dt >= 2.0)
    assert not tracker.lost


def test_coasting_within_max_coast_keeps_the_track():
    """A gap shorter than ``max_coast_s`` is bridged by the prediction, as before."""
    tracker = PoseTracker(max_coast_s=2.0)
    cov = 1e-5 * np.eye(3)
    for k in range(50):
        tracker.update(0.04 * k, [1.0, 1.0, 0.3], cov)
    tracker.update(0.04 * 49 + 1.5, [1.0, 1.0, 0.3], cov)
    assert tracker.initialised and tracker.losses == 0


def test_bad_input_raises():
    tracker = PoseTracker()
    with pytest.raises(ValueError, match='positive definite'):
        tracker.update(0.0, [1.0, 1.0, 1.0], -np.eye(3))
    with pytest.raises(ValueError, match='position_m'):
        tracker.update(0.0, [1.0, np.nan, 1.0], np.eye(3))
    tracker.update(1.0, [1.0, 1.0, 1.0], np.eye(3))
    with pytest.raises(ValueError, match='earlier'):
        tracker.update(0.5, [1.0, 1.0, 1.0], np.eye(3))
    with pytest.raises(ValueError, match=r'sum to at most 1, got \[0.7, 0.6\]'):
        Measurement.from_estimate(_estimate([0.6]))
    with pytest.raises(ValueError, match='component_covariance_m2 is not positive definite'):
        Measurement.from_estimate(_estimate([], component=-np.eye(3)))
    with pytest.raises(ValueError, match='confirm_hits'):
        PoseTracker(confirm_hits=0)
    with pytest.raises(ValueError, match='max_coast_s must be positive, got 0'):
        PoseTracker(max_coast_s=0)


def _estimate(rival_p, component=None, confidence=0.7):
    from echoloc_ros.core.physics.results import Estimate
    return Estimate(position_m=np.array([1.0, 1.0, 0.5]), covariance_m2=np.eye(3),
                    speed_of_sound_mps=343.0, confidence=confidence, score=0.0, n_echoes=6,
                    component_covariance_m2=1e-4 * np.eye(3) if component is None else component,
                    rivals_m=np.full((len(rival_p), 3), 2.0),
                    rival_probabilities=np.array(rival_p, dtype=float))
