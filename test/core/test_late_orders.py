"""The doubt's allowance for the reflection orders a fix's final fit leaves out (issue 19,
``core/physics/late_orders.py``): a right fix in a frame with every order is not doubted for
their echoes; a fix on the wrong echoes of the same frame still is; an order-2 frame is judged
as before."""

import numpy as np
import pytest

from echoloc_ros.core.physics.config import UNEXPLAINED_RATIO
from echoloc_ros.core.physics.late_orders import late_allowance
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.offline.evaluation import CHI2_999_3DOF
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3
# A pose of the default room whose fix, 0.1 mm off, main's localizer (stop 35) doubted for its
# residual alone (ratio 3.5 over the noise, confidence 0) with every order simulated at 20 dB.
POSITION, YAW, SEED = np.array([2.67, 2.54, 0.89]), 2.87, 103


@pytest.fixture(scope='module')
def every_order(room, array, chirp, processor):
    """The pose's frame with every order in the window, its proposal and the localizer."""
    simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order='all')
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
    features = processor.process(simulator.simulate(POSITION, YAW, Scenario(snr_db=20.0,
                                                                            seed=SEED)))
    return localizer, localizer.propose(features, YAW, None, np.deg2rad(1.0))


def _ratios(localizer, fr, theta):
    """A final fit from ``theta (5,)``: its model, and its residual ratio judged with the
    late orders' allowance and against the noise alone."""
    model, valid = localizer._final_model(fr, theta[None])
    fit = model._newton(fr, theta[None], valid, np.arange(5), localizer.max_iterations,
                        need_info=False)
    args = (fr, fit.tau[0], fit.amp[0], fit.coef[0])
    return model, model._residual_ratio(*args, None, fit.theta[0]), model._residual_ratio(*args)


def test_a_right_fix_is_not_doubted_for_the_late_orders(every_order, array):
    localizer, proposal = every_order
    estimate = localizer.settled(proposal)
    error = estimate.position_m - POSITION
    assert np.linalg.norm(error) < 0.002
    # Main doubted it (confidence 0, ratio 3.5); judged against what orders 4 and up leave,
    # its residual is explained.
    assert estimate.residual_ratio <= UNEXPLAINED_RATIO
    assert estimate.confidence > 0.0
    assert error @ np.linalg.solve(estimate.covariance_m2, error) < CHI2_999_3DOF
    emitter = array.to_world(POSITION, YAW)[0]
    model, judged, raw = _ratios(localizer, proposal.frame, np.array([*emitter, 1.0, 0.0]))
    assert model is not localizer and raw > UNEXPLAINED_RATIO >= judged


def test_a_wrong_fix_of_the_same_frame_stays_doubted(every_order, array):
    localizer, proposal = every_order
    emitter = array.to_world(POSITION, YAW)[0]
    fr = proposal.frame
    # The proposed candidate farthest from the truth, refined as a fix is.
    far = int(np.argmax(np.linalg.norm(proposal.thetas[:, :3] - emitter, axis=1)))
    assert np.linalg.norm(proposal.thetas[far, :3] - emitter) > 0.5
    model, judged, raw = _ratios(localizer, fr, proposal.thetas[far])
    # The allowance is taken there too (the frame's evidence wants the higher orders), and
    # it is what the room's late orders leave at that pose, not the echoes left unexplained.
    assert model is not localizer and judged < raw
    assert judged > UNEXPLAINED_RATIO
    estimate = localizer.finish(proposal, far)
    assert np.linalg.norm(estimate.position_m - POSITION) > 0.3
    assert estimate.confidence == 0.0


def test_an_order_two_frame_takes_no_allowance(room, array, chirp, processor):
    simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=2)
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
    features = processor.process(simulator.simulate(POSITION, YAW, Scenario(snr_db=20.0,
                                                                            seed=SEED)))
    fr = localizer.propose(features, YAW, None, np.deg2rad(1.0)).frame
    theta = np.array([*array.to_world(POSITION, YAW)[0], 1.0, 0.0])
    model, judged, raw = _ratios(localizer, fr, theta)
    assert model is localizer and judged == raw
    tau, amp, _ = localizer._paths(fr, theta[None], np.arange(len(localizer._sequences)))
    assert late_allowance(localizer, fr, theta, tau[0], amp[0], np.ones(tau.shape[1]), 3) == 0.0
