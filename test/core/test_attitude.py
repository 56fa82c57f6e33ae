"""The array's roll and pitch: told to the localizer (as an IMU's orientation gives them), a
3 deg tilt localizes as well as a level array; untold, it does not; a bad tilt is named."""

import numpy as np
import pytest

from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.sim.model_error import Hardware
from echoloc_ros.sim.simulator import Scenario

TILT_RAD = (float(np.deg2rad(3.0)), float(np.deg2rad(-3.0)))


@pytest.fixture(scope='module')
def tilted_frames(room, array, simulator, processor):
    hardware = Hardware.nominal(array)
    hardware.roll_rad, hardware.pitch_rad = TILT_RAD
    scenario = Scenario(snr_db=20.0, hardware=hardware)
    rng = np.random.default_rng(7)
    frames = []
    for _ in range(4):
        position, yaw = room.random_pose(rng)
        frames.append((processor.process(simulator.simulate(position, yaw, scenario, rng)),
                       position, yaw))
    return frames


def test_a_tilt_the_imu_reports_localizes_as_level(room, array, chirp, processor,
                                                    tilted_frames):
    localizer = PhysicsLocalizer(room, array, chirp, processor=processor)
    told, untold = [], []
    for features, position, yaw in tilted_frames:
        told.append(np.linalg.norm(localizer.localize(features, yaw, tilt_rad=TILT_RAD)
                                   .position_m - position))
        untold.append(np.linalg.norm(localizer.localize(features, yaw).position_m - position))
    # Level arrays in this room: median 0.044 cm, p95 0.15 cm (docs/results.md).
    assert max(told) < 0.005
    # Untold, the receivers' heights are off by up to 3.7 mm: 2.7 rad of carrier phase.
    assert np.median(untold) > 5 * np.median(told)


def test_a_bad_tilt_is_named(room, array, chirp, processor, tilted_frames):
    localizer = PhysicsLocalizer(room, array, chirp, processor=processor)
    features, _, yaw = tilted_frames[0]
    for bad in ((0.0, float('nan')), (0.5, 0.0), (0.1,)):
        with pytest.raises(ValueError, match=r'tilt_rad must be \(roll, pitch\).*got'):
            localizer.localize(features, yaw, tilt_rad=bad)
