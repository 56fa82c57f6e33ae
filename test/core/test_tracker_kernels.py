"""core/tracker_kernels.py: the tracker's compiled frame gives the numpy form's numbers, on a real
lap and on scripted frames that reach every rule (rivals, doubted fixes, the gates)."""

import numpy as np
import pytest

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.core.tracker_kernels import checked_symmetric
from echoloc_ros.core.physics.config import WIDENED_VARIANCE_RATIO
from echoloc_ros.core.tracker_measurement import Measurement, snap_distance2, weak_axis_bias
from echoloc_ros.core.tracker_motion import STATE_SIZE
from echoloc_ros.offline.tracked_path import drive, tracked_path
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3
_HALF_LOG_2PI_3 = 1.5 * np.log(2.0 * np.pi)
_H = np.hstack([np.eye(3), np.zeros((3, STATE_SIZE - 3))])


def along_heading(state, covariance, heading_rad, heading_variance_rad2,
                  lateral_speed_std_mps, swing=(0.0, 0.0)):
    """The heading hold in numpy, as written before it was compiled: the reference for
    :func:`~echoloc_ros.core.tracker_kernels.hold_heading`."""
    h = np.zeros(STATE_SIZE)
    h[3], h[4] = -np.sin(heading_rad), np.cos(heading_rad)
    speed2 = float(state[3] ** 2 + state[4] ** 2)
    variance = lateral_speed_std_mps ** 2 + speed2 * heading_variance_rad2 + swing[1]
    ph = covariance @ h
    gain = ph / (float(h @ ph) + variance)
    state = state - gain * (float(h @ state) - swing[0])
    covariance = covariance - np.outer(gain, ph)
    return state, 0.5 * (covariance + covariance.T)


class NumpyTracker(PoseTracker):
    """The tracker with its prediction and association in numpy, as they were written before
    they were compiled: the reference."""

    def _predict(self, track, t_s, m=None):
        f, q = self.motion.step(t_s - track.t_s)
        state, p = f @ track.state, f @ track.covariance @ f.T + q
        if (m is None or m.heading_rad is None or self.lateral_speed_std_mps is None
                or self._swing is None):
            return state, p
        return along_heading(state, p, m.heading_rad - self.array_in_base_yaw_rad,
                             m.heading_variance_rad2, self.lateral_speed_std_mps, self._swing)

    def _associate(self, track, t_s, m, prediction=None):
        fade = float(np.exp(-(t_s - track.t_s) / self.memory_s))
        state, p = self._predict(track, t_s, m) if prediction is None else prediction
        s = p[:3, :3][None] + m.covariances_m2
        innovation = m.positions_m - state[:3]
        chol = np.linalg.cholesky(s)
        whitened = np.linalg.solve(chol, innovation[..., None])[..., 0]
        distance2 = np.sum(whitened ** 2, axis=-1)
        inside = (distance2 <= self.gate) & (m.probabilities > 0)
        if m.doubted:
            inside &= snap_distance2(p[:3, :3], s, innovation) <= self.snap
        log_det = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        likelihood = np.where(inside, m.probabilities * np.exp(
            -0.5 * (distance2 + log_det) - _HALF_LOG_2PI_3), 0.0)
        none = (max(1.0 - float(m.probabilities.sum()), 0.0)
                + float(m.probabilities[~inside].sum())) * self.density
        total = none + float(likelihood.sum())
        weights = likelihood / total if total > 0 else likelihood
        taken = float(weights.sum())
        gains = np.linalg.solve(s[inside], np.broadcast_to(p[:3, :], (int(inside.sum()), 3,
                                                                      STATE_SIZE)))
        gains = np.swapaxes(gains, -1, -2)
        velocity_gate = self.doubted_velocity_gate if m.doubted else self.velocity_gate
        gains[distance2[inside] > velocity_gate, 3:, :] = 0.0
        means = state + np.einsum('kij,kj->ki', gains, innovation[inside])
        joseph = np.eye(STATE_SIZE) - gains @ _H
        covs = (joseph @ p @ np.swapaxes(joseph, -1, -2)
                + gains @ m.covariances_m2[inside] @ np.swapaxes(gains, -1, -2))
        w = weights[inside]
        w0 = 1.0 - taken
        mean = w0 * state + w @ means
        d0 = state - mean
        d = means - mean
        covariance = (w0 * (p + np.outer(d0, d0))
                      + np.einsum('k,kij->ij', w, covs + d[:, :, None] * d[:, None, :]))
        track.state = mean
        track.covariance = 0.5 * (covariance + covariance.T)
        track.t_s = t_s
        track.hits += taken
        track.support = fade * track.support + taken
        track.trusted = fade * track.trusted + (0.0 if m.doubted else taken)
        if taken >= 0.5:
            track.last_hit_s = t_s
        return float(np.log(max(total, 1e-300) / self.density)), weights


def _same_frame(compiled, reference, out, expected):
    """Both trackers published the same pose (within 1e-12 of its scale), took the same
    decision, and hold the same tracks with the same states, covariances and scores."""
    assert out[2] == expected[2]
    np.testing.assert_allclose(out[0], expected[0], rtol=0, atol=1e-12)
    scale = np.abs(expected[1]).max()
    np.testing.assert_allclose(out[1], expected[1], rtol=0, atol=1e-12 * scale)
    assert compiled.n_tracks == reference.n_tracks
    assert (compiled.switches, compiled.losses) == (reference.switches, reference.losses)
    for a, b in zip(compiled._tracks, reference._tracks):
        np.testing.assert_allclose(a.state, b.state, rtol=1e-12,
                                   atol=1e-12 * np.abs(b.state).max())
        np.testing.assert_allclose(a.covariance, b.covariance, rtol=0,
                                   atol=1e-12 * np.abs(b.covariance).max())
        assert a.score == pytest.approx(b.score, rel=1e-12, abs=1e-12)
        assert (a.hits, a.support, a.trusted) == pytest.approx((b.hits, b.support, b.trusted),
                                                               rel=1e-12, abs=1e-12)


def test_the_compiled_tracker_follows_a_real_lap_as_the_numpy_one():
    """The furnished room at 10 dB with 1 deg of heading noise, 60 frames of the tracked
    evaluations' figure through the physics pipeline: every frame's tracked pose, decision and
    tracks as the numpy form's. (Its fixes are single places, none doubted: the scripted frames
    below reach the rivals and the doubts.)"""
    room = load_room('furnished_room')
    array, chirp = load_array('square_4sensor'), Chirp()
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    compiled = PoseTracker(room_volume_m3=room.volume_m3)
    reference = NumpyTracker(room_volume_m3=room.volume_m3)
    pipeline = make_pipeline('physics', room, array, chirp, FS_HZ, processor, tracker=None)
    heading_std = np.deg2rad(1.0)
    frames = 0
    for t_s, _, features, yaw in drive(tracked_path(room), room.vertices_m.min(axis=0),
                                       EchoSimulator(room, array, chirp, FS_HZ), processor,
                                       Scenario(snr_db=10.0), np.random.default_rng(3), 60,
                                       25.0, heading_std):
        estimate = pipeline.step(t_s, features, yaw, heading_std).fix.estimate
        frames += 1
        _same_frame(compiled, reference, compiled.update_estimate(t_s, estimate),
                    reference.update_estimate(t_s, estimate))
    assert frames >= 55 and compiled.initialised


def test_the_compiled_tracker_takes_scripted_frames_as_the_numpy_one():
    """A drive with rivals, a doubted snap, a jump past the velocity gate, a coast past
    max_coast_s and a heading: each rule of the association reached, the same numbers."""
    rng = np.random.default_rng(11)
    compiled = PoseTracker(room_volume_m3=40.0, array_in_base_xyz=(0.2, 0.0, 0.0))
    reference = NumpyTracker(room_volume_m3=40.0, array_in_base_xyz=(0.2, 0.0, 0.0))
    local = np.diag([4e-7, 2e-7, 1e-8])
    for k in range(90):
        t_s = 0.04 * k + (3.0 if k >= 70 else 0.0)  # a gap of 3 s at frame 70
        truth = np.array([1.0 + 0.3 * t_s, 2.0 + 0.1 * np.sin(t_s), 0.3])
        fix = truth + 0.0005 * rng.standard_normal(3)
        fix_m2 = local
        if k in (30, 31):
            # Frame 31: outside the velocity gate, inside the gate.
            fix = fix + [0.0025, 0.0, 0.0]
        m_doubted = k in (40, 41, 42, 50)
        if m_doubted:
            # Sharp doubted fixes; frame 50's is beyond the snap, inside the gate: a track of
            # its own.
            fix, fix_m2 = fix + [0.0004 * (k - 39), 0.0, 0.0], 1e-3 * local
        rival = fix + [1.2, -0.4, 0.0]  # starts a track of its own
        m = Measurement._checked(np.vstack([fix, rival]), np.stack([fix_m2, 2 * local]),
                                 np.array([0.4, 0.1 if k % 3 else 0.0]), 100 * local)
        m.doubted = m_doubted
        m.heading_rad, m.heading_variance_rad2 = np.arctan2(0.1 * np.cos(t_s), 0.3), 1e-4
        _same_frame(compiled, reference, compiled.update_with(t_s, m),
                    reference.update_with(t_s, m))
    assert compiled.losses == 1 and compiled.initialised


def test_the_checked_covariance_is_numpys_symmetric_part_and_refuses_as_it_did():
    """The symmetric part to the bit; a NaN or inf refused as not finite; a matrix that is not
    positive definite (a zero or negative pivot, an indefinite one) refused."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        a = rng.standard_normal((3, 3)) * 10.0 ** rng.uniform(-9, 1)
        cov = a @ a.T + np.triu(rng.standard_normal((3, 3))) * 1e-3 * np.abs(a).max() ** 2
        symmetric, finite, positive = checked_symmetric(cov)
        assert np.array_equal(symmetric, 0.5 * (cov + cov.T)) and finite
        try:
            np.linalg.cholesky(0.5 * (cov + cov.T))
            assert positive
        except np.linalg.LinAlgError:
            assert not positive
    for bad in (np.diag([1.0, 0.0, 1.0]), np.diag([1.0, -1.0, 1.0]),
                np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])):
        assert checked_symmetric(bad)[1:] == (True, False)
        with pytest.raises(ValueError, match='local_covariance_m2 is not positive definite'):
            Measurement.from_estimate(_estimate(bad))
    for value in (np.nan, np.inf):
        bad = np.eye(3)
        bad[1, 2] = value
        assert checked_symmetric(bad)[1] is False
        with pytest.raises(ValueError, match='local_covariance_m2 must be a finite 3x3'):
            Measurement.from_estimate(_estimate(bad))


def _estimate(local):
    return Estimate(position_m=np.array([1.0, 2.0, 0.3]), covariance_m2=1e-4 * np.eye(3),
                    speed_of_sound_mps=343.0, confidence=1.0, score=0.0, n_echoes=6,
                    local_covariance_m2=local)


def test_the_places_and_the_weak_axes_are_checked_and_scaled_as_numpy_did():
    """A place not finite, a probability negative or NaN, probabilities summing past 1: each
    refused with its words; the weak axes' bias the numpy form's to the bit."""
    covs, fix = np.stack([np.eye(3)] * 2), np.eye(3)
    good = np.array([[1.0, 2.0, 0.3], [2.0, 1.0, 0.3]])
    assert Measurement._checked(good, covs, np.array([0.5, 0.5]), fix).positions_m is good
    for positions, probabilities, words in (
            (np.array([[1.0, np.nan, 0.3], [2.0, 1.0, 0.3]]), [0.5, 0.5], 'positions must be'),
            (good[:, :2], [0.5, 0.5], 'positions must be'),
            (good, [0.5, -0.1], 'probabilities must be'),
            (good, [0.5, np.nan], 'probabilities must be'),
            (good, [0.6, 0.5], 'probabilities must be')):
        with pytest.raises(ValueError, match=words):
            Measurement._checked(positions, covs, np.array(probabilities), fix)
    rng = np.random.default_rng(2)
    for _ in range(100):
        local = np.diag(10.0 ** rng.uniform(-9, -5, 3))
        published = local * np.diag(10.0 ** rng.uniform(0, 4, 3))
        track = np.diag(10.0 ** rng.uniform(-9, -5, 3))
        m = Measurement._checked(good[:1], local[None], np.array([0.5]), published)
        diagonal = np.diag(local)
        weak = np.diag(published) >= WIDENED_VARIANCE_RATIO * diagonal
        expected = np.diag(np.where(weak, 2.0 * np.minimum(diagonal, np.diag(track)), 0.0))
        assert np.array_equal(weak_axis_bias(m, track, 2.0), expected)
    m.doubted = True
    assert np.array_equal(weak_axis_bias(m, track, 2.0), np.zeros((3, 3)))
