"""The axis scans' evidence, each pose's Gram matrix factored by the groups of paths that
overlap there (:func:`~echoloc_ros.core.physics.axis_kernels.grouped_evidence`), is the full
model's (:meth:`Evidence._score`) on the scan's grid (issue 19/20)."""
import numpy as np
import pytest

from echoloc_ros.core.physics.config import AXIS_STEP_M
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.sim.room_generator import generate_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario


def _scans(room, array, chirp, processor, snr_db: float, seed: int):
    """The grids along x and y through the first fix of a frame of ``room``, and the
    localizer's two evidences on them."""
    localizer = PhysicsLocalizer(room, array, chirp, processor=processor)
    simulator = EchoSimulator(room, array, chirp, 250e3, max_order=2)
    _, frame, _, yaw, _, _ = next(random_frames(simulator, Scenario(snr_db=snr_db, seed=seed),
                                                1, seed))
    proposal = localizer.propose(processor.process(frame), yaw)
    fr = proposal.frame
    theta = localizer._fix_theta(proposal, localizer.finish(proposal))
    for axis in range(2):
        coords, thetas, grouped = localizer._evidence_along(fr, theta, axis, AXIS_STEP_M)
        full = localizer._score(fr, thetas, localizer._valid_batch(fr, thetas))
        yield coords, full, grouped


@pytest.mark.parametrize('name, snr_db', [('default_room', 10.0), ('furnished_room', 20.0),
                                          ('dev 25', 10.0)])
def test_the_grouped_evidence_is_the_full_models_on_the_scan_grid(name, snr_db, array, chirp,
                                                                  processor):
    room = generate_room('dev', 25, 7) if name == 'dev 25' else load_room(name)
    for coords, full, grouped in _scans(room, array, chirp, processor, snr_db, 3):
        assert coords.size > 50
        # Equal to rounding: the evidence spans hundreds to tens of thousands of log units
        # along the grid, a peak's sides differ by tens.
        assert np.allclose(grouped, full, rtol=1e-10, atol=1e-6)
        assert np.argmax(grouped) == np.argmax(full)
