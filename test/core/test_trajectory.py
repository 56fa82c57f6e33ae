import numpy as np
import pytest

from echoloc_ros.sim.trajectory import LissajousTrajectory


def test_stays_inside_margin_and_heading_follows_motion():
    traj = LissajousTrajectory.inside((6.0, 4.5), margin_m=0.6, height_m=0.3, speed_mps=0.3)
    t = np.linspace(0, traj.period_s, 2000)
    poses = [traj.pose(ti) for ti in t]
    xy = np.array([p[0][:2] for p in poses])
    assert xy[:, 0].min() >= 0.6 - 1e-9 and xy[:, 0].max() <= 5.4 + 1e-9
    assert xy[:, 1].min() >= 0.6 - 1e-9 and xy[:, 1].max() <= 3.9 + 1e-9
    assert all(p[0][2] == 0.3 for p in poses)
    # Heading equals the direction of the finite-difference velocity.
    step = np.diff(xy, axis=0)
    direction = np.arctan2(step[:, 1], step[:, 0])
    yaw = np.array([p[1] for p in poses])[:-1]
    assert np.max(np.abs(np.angle(np.exp(1j * (direction - yaw))))) < 0.05
    # Mean speed as asked.
    speed = np.sum(np.linalg.norm(step, axis=1)) / (t[-1] - t[0])
    assert speed == pytest.approx(0.3, rel=0.01)


def test_room_too_small_is_a_clear_error():
    with pytest.raises(ValueError, match='too small'):
        LissajousTrajectory.inside((1.0, 1.0), margin_m=0.6, height_m=0.3, speed_mps=0.3)


def test_positions_are_the_poses_positions():
    path = LissajousTrajectory.inside((6.0, 4.5), margin_m=1.2, height_m=0.3, speed_mps=0.3)
    times = np.linspace(0.0, 2 * path.period_s, 77)
    expected = np.array([path.pose(t)[0] for t in times])
    assert np.allclose(path.positions(times), expected, rtol=0, atol=1e-12)
