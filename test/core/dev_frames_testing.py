"""A frame of the dev split as ``echoloc evaluate --rooms`` draws it, for the tests that pin a
dev frame's fix (issue 19's scans: ``test_height_peaks``, ``test_cross_scans``)."""
import numpy as np

from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.offline.room_evaluation import frames_seed
from echoloc_ros.sim.room_generator import generate_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

#: the heading noise the frames are drawn with (``--heading-noise-deg 1``), rad.
HEADING_STD_RAD = float(np.deg2rad(1.0))


def drawn_frame(index: int, seed: int, k: int, array, chirp, snr_db: float = 10.0):
    """Frame ``k`` of dev room ``index`` as ``echoloc evaluate --rooms random:30 --split dev
    --seed SEED --snr-db SNR_DB --heading-noise-deg 1`` draws it: ``(room, samples, position,
    heading given)``."""
    room = generate_room('dev', index, seed)
    simulator = EchoSimulator(room, array, chirp, 250e3, max_order=2)
    drawn = list(random_frames(simulator, Scenario(snr_db=snr_db, seed=seed), k + 1,
                               frames_seed(seed, index)))
    _, frame, position, yaw, draw, _ = drawn[k]
    return room, frame, position, yaw + HEADING_STD_RAD * draw


def dev_frame(index: int, seed: int, k: int, array, chirp, processor, snr_db: float = 10.0):
    """:func:`drawn_frame` and a localizer for its room: ``(localizer, (features, position,
    heading given))``."""
    room, frame, position, heading = drawn_frame(index, seed, k, array, chirp, snr_db)
    loc = PhysicsLocalizer(room, array, chirp, processor=processor)
    return loc, (processor.process(frame), position, heading)


def localized(loc: PhysicsLocalizer, frame, patch_target, name: str, value: bool,
              monkeypatch):
    """``loc``'s fix of ``frame`` (as :func:`dev_frame` gives it) with ``patch_target.name``
    set to ``value``: ``(estimate, error_m, d2)``, ``d2`` the error's squared Mahalanobis
    distance under the published covariance."""
    with monkeypatch.context() as patch:
        patch.setattr(patch_target, name, value)
        return shipped(loc, frame)


def shipped(loc: PhysicsLocalizer, frame):
    """``loc``'s fix of ``frame`` (as :func:`dev_frame` gives it) as the code ships:
    ``(estimate, error_m, d2)``, as :func:`localized`."""
    features, position, heading = frame
    estimate = loc.localize(features, heading, yaw_std_rad=HEADING_STD_RAD)
    error = estimate.position_m - position
    return estimate, error, float(error @ np.linalg.solve(estimate.covariance_m2, error))


def assert_right_fix_kept(room, array, chirp, simulator, processor, localize) -> None:
    """A right fix in ``room`` (a 10 dB frame drawn from seed 3) keeps its place and sigma to
    the bit whether a step is on or off: ``localize(loc, frame, on)`` gives ``(estimate,
    error_m, d2)`` with the step ``on`` or not."""
    rng = np.random.default_rng(3)
    position, yaw = room.random_pose(rng)
    features = processor.process(simulator.simulate(position, yaw, Scenario(snr_db=10), rng))
    loc = PhysicsLocalizer(room, array, chirp, processor=processor)
    frame = (features, position, yaw)
    before, old_error, _ = localize(loc, frame, False)
    after, error, _ = localize(loc, frame, True)
    assert np.linalg.norm(old_error) < 0.01
    np.testing.assert_array_equal(after.position_m, before.position_m)
    np.testing.assert_array_equal(after.covariance_m2, before.covariance_m2)


def posed_frames(room, simulator, n: int, snr_db: float, seed: int) -> list[tuple]:
    """``n`` frames at random poses: ``(samples, yaw)`` each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        position, yaw = room.random_pose(rng)
        out.append((simulator.simulate(position, yaw, Scenario(snr_db=snr_db), rng), yaw))
    return out
