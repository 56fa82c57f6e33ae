"""The heading from the echoes alone: acquired over the full turn, the half-turn mirror of a
symmetric room kept as a doubt the covariance covers."""
import numpy as np
import pytest

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_heading import (CARRY_MAX_S, Acquisition, EchoHeading, LOST_AFTER_S,
                                           PAIR_MAX_S, acquire, wrap)
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator


@pytest.fixture(scope='module')
def shoebox():
    room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
    return (EchoSimulator(room, array, chirp, fs_hz=250e3),
            EchoProcessor(chirp, 250e3, decimation=4, array=array),
            PhysicsLocalizer(room, array, chirp))


def test_acquired_heading_is_the_truth_or_its_mirror_and_says_so(shoebox):
    sim, processor, localizer = shoebox
    rng = np.random.default_rng(3)
    position, yaw = np.array([1.7, 3.1, 0.3]), 2.2
    found = acquire(localizer, processor.process(sim.simulate(position, yaw, rng=rng)), 20.0)
    # An empty shoebox cannot tell the pose from its mirror through its centre.
    off = wrap(found.yaw_rad - yaw)
    assert min(abs(off), abs(wrap(off - np.pi))) < np.deg2rad(0.5)
    mirrored = abs(off) > np.pi / 2
    truth_xy = np.array([6.0, 4.5]) - position[:2] if mirrored else position[:2]
    assert np.linalg.norm(found.position_m[:2] - truth_xy) < 0.02
    assert found.mirror_probability == pytest.approx(0.5, abs=0.1)
    assert np.allclose(found.centre_m[:2], [3.0, 2.25], atol=0.02)

    heading = EchoHeading()
    heading.offer(found, 0.0)
    assert heading.offer(found, 0.04) and heading.locked
    # Whichever of the two the fix is, the other lies inside the widened covariance.
    cov, yaw_var = heading.widen(found.position_m, 1e-6 * np.eye(3), 1e-4)
    d = (2 * found.centre_m - found.position_m - found.position_m)[:2]
    assert d @ np.linalg.solve(cov[:2, :2], d) < 4.0 + 1e-6
    assert yaw_var > 0.2 * np.pi ** 2


def _acquisition(yaw_deg: float, mirror: float = 0.0) -> Acquisition:
    return Acquisition(float(np.deg2rad(yaw_deg)), np.zeros(3), mirror, np.zeros(3))


def test_two_acquisitions_must_agree_and_a_lost_track_is_acquired_again():
    heading = EchoHeading()
    assert not heading.offer(_acquisition(10.0), 0.0)
    # 0.1 s later the robot may have turned 3 deg: 3 + 3 deg of agreement, not 20.
    assert not heading.offer(_acquisition(30.0), 0.1)
    assert heading.prior(0.15) is None
    # An acquisition too old confirms nothing.
    assert not heading.offer(_acquisition(30.0), 0.2 + PAIR_MAX_S)
    # In a symmetric room, agreeing half a turn apart is agreeing; the turn between the two
    # carries on.
    t_s = 0.3 + PAIR_MAX_S
    assert heading.offer(_acquisition(31.0 + 180.0, 0.5), t_s)
    yaw, _ = heading.prior(t_s + 0.04)
    assert np.rad2deg(heading.rate_rad_s) == pytest.approx(10.0)
    assert abs(wrap(yaw - np.deg2rad(211.4))) < 1e-9
    assert heading.follow(t_s + 0.04, yaw + 0.001, from_echoes=True)
    assert not heading.follow(t_s + 0.08, yaw + np.deg2rad(10.0), from_echoes=True)
    assert heading.prior(t_s + 0.04 + LOST_AFTER_S - 0.01) is not None
    assert heading.prior(t_s + 0.04 + LOST_AFTER_S + 0.5) is None and not heading.locked
    assert (heading.reacquisitions, heading.not_followed) == (1, 1)
    # Locked again in the symmetric room: on the lost track's side of the mirror.
    t_s += LOST_AFTER_S + 0.6
    heading.offer(_acquisition(np.rad2deg(yaw) + 180.0, 0.5), t_s)
    assert heading.offer(_acquisition(np.rad2deg(yaw) + 180.0, 0.5), t_s + 0.1)
    assert abs(wrap(heading.yaw_rad - yaw)) < np.deg2rad(1.0)


def test_a_trusted_heading_settles_the_mirror():
    heading = EchoHeading()
    heading.offer(_acquisition(0.0, 0.5), 0.0)
    heading.offer(_acquisition(0.0, 0.5), 0.1)
    cov, _ = heading.widen(np.array([1.0, 1.0, 0.3]), np.eye(3) * 1e-6, 0.0)
    assert cov[0, 0] > 0.1
    heading.follow(0.2, 0.0, from_echoes=False)
    cov, yaw_var = heading.widen(np.array([1.0, 1.0, 0.3]), np.eye(3) * 1e-6, 1e-4)
    assert np.array_equal(cov, np.eye(3) * 1e-6) and yaw_var == 1e-4


def test_a_fix_that_does_not_explain_its_frame_is_not_followed():
    heading = EchoHeading()
    heading.offer(_acquisition(10.0), 0.0)
    assert heading.offer(_acquisition(10.0), 0.1)
    assert not heading.follow(0.14, np.deg2rad(10.0), True, residual_ratio=20.0)
    assert heading.follow(0.14, np.deg2rad(10.0), False, residual_ratio=20.0)


def test_the_frames_an_acquisition_held_up_do_not_lose_the_track():
    # An acquisition holds the CPU for 0.3-0.5 s here and several times that on a small board;
    # the frames that came meanwhile are overtaken, so the first frame after the lock is that
    # much later. The track is lost only after LOST_AFTER_S of frames given to it.
    heading = EchoHeading()
    heading.offer(_acquisition(10.0), 0.0)
    assert heading.offer(_acquisition(10.0), 1.2)
    t_s = 1.2 + LOST_AFTER_S + 0.3
    assert heading.prior(t_s) is not None
    assert not heading.follow(t_s, np.deg2rad(40.0), from_echoes=True)
    assert heading.prior(t_s + LOST_AFTER_S - 0.01) is not None
    assert heading.prior(t_s + LOST_AFTER_S + 0.01) is None and heading.reacquisitions == 1
    # A fix taken starts the count again.
    heading.offer(_acquisition(10.0), 10.0)
    assert heading.offer(_acquisition(10.0), 10.1)
    assert heading.follow(11.5, np.deg2rad(10.0), from_echoes=True)
    assert heading.prior(11.5 + LOST_AFTER_S - 0.01) is not None
    assert heading.follow(11.5 + LOST_AFTER_S - 0.01, np.deg2rad(10.0), from_echoes=True)
    assert heading.prior(11.5 + 2 * LOST_AFTER_S - 0.05) is not None
    # However few frames came, a heading is not carried past CARRY_MAX_S from its last fix.
    heading.offer(_acquisition(10.0), 20.0)
    assert heading.offer(_acquisition(10.0), 20.1)
    assert heading.prior(20.1 + CARRY_MAX_S + 0.01) is None


def test_on_a_slow_board_the_acquisitions_still_pair_and_the_track_carries():
    # Each acquisition holds the frames up for 2.5 s: the next acquisition's frame is that much
    # later, and so is the first frame after the lock.
    heading = EchoHeading()
    assert not heading.offer(_acquisition(10.0), 0.0, took_s=2.5)
    assert not heading.offer(_acquisition(10.0), 0.1 + PAIR_MAX_S + 2.5, took_s=2.5)
    assert heading.offer(_acquisition(10.0), 2.6 + PAIR_MAX_S + 2.5, took_s=2.5)
    lock_s = 2.6 + PAIR_MAX_S + 2.5
    assert heading.prior(lock_s + CARRY_MAX_S + 2.4) is not None
    assert heading.follow(lock_s + CARRY_MAX_S + 2.4, np.deg2rad(10.0), from_echoes=True)
    # From a fix on, the frames are not held up: CARRY_MAX_S alone.
    assert heading.prior(lock_s + 2 * CARRY_MAX_S + 2.5) is None
