"""The fix's covariance counts the noise where its echoes lie: about the frame's floor in white
noise, below it where reverberation raised the frame's floor (issue 18/19, coverage_95)."""

import numpy as np

from echoloc_ros.core.physics.config import UNEXPLAINED_RATIO
from echoloc_ros.core.physics.covariance import MIN_INFORMATION_RATIO
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3
# Median of chi-square with 3 degrees of freedom: half the right fixes of an honest covariance
# lie within this squared Mahalanobis distance.
CHI2_50_3DOF = 2.366
POSES = [([2.2, 1.6, 0.5], 0.3), ([4.1, 3.0, 0.9], -1.2), ([1.2, 2.9, 0.7], 2.0),
         ([3.3, 1.1, 0.4], -0.4)]


def _fit_at_truth(localizer, processor, simulator, position, yaw, seed):
    """The frame and the final fit at the true pose of one simulated frame, 20 dB."""
    position = np.array(position)
    features = processor.process(simulator.simulate(position, yaw,
                                                    Scenario(snr_db=20.0, seed=seed)))
    fr = localizer.propose(features, yaw, None, 0.0).frame
    theta = np.array([[*localizer.array.to_world(position, yaw)[0], 1.0, 0.0]])
    model, valid = localizer._final_model(fr, theta)
    fit = model._newton(fr, theta, valid, np.arange(4), 3, need_info=False)
    return model, fr, (fit.tau[0], fit.amp[0], fit.coef[0])


def test_the_noise_the_fit_leaves_is_below_the_frames_floor_among_dense_echoes(
        room, array, chirp, processor):
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
    floors, misfits, information, pooled = {}, {}, {}, {}
    for order in (2, 'all'):
        simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=order)
        for seed, (position, yaw) in enumerate(POSES):
            model, fr, fit = _fit_at_truth(localizer, processor, simulator, position, yaw, seed)
            floor, misfit = model._residual_floor(fr, *fit)
            floors.setdefault(order, []).append(floor)
            misfits.setdefault(order, []).append(misfit)
            information.setdefault(order, []).append(model._information_ratio(fr, *fit))
            pooled.setdefault(order, []).append(model._residual_ratio(fr, *fit))
    # The echoes the fit explains were counted in the frame's floor; with every order in the
    # window they fill more of it.
    assert np.all(np.array(floors[2]) < 1.0)
    assert np.mean(floors['all']) < 0.9 * np.mean(floors[2])
    assert min(min(m) for m in misfits.values()) >= 1.0
    assert min(min(r) for r in information.values()) >= MIN_INFORMATION_RATIO
    # Among every order, what divides the information is below the pooled residual ratio
    # (which the doubt is still judged by).
    assert np.all(np.array(information['all']) < np.array(pooled['all']))


def test_fixes_among_every_order_are_neither_too_wide_nor_too_narrow(room, array, chirp,
                                                                     processor):
    # The right fixes' squared Mahalanobis distances under their own covariance: an honest one
    # puts half of them within the chi-square median. Scaled by the residual over a floor
    # the reverberation raised, and a 0.1 mm floor on every axis, the covariance was about
    # twice too wide and the median about 1.1 (dev, 164 fixes).
    simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order='all')
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
    rng = np.random.default_rng(11)
    d2 = []
    for _ in range(60):
        position, yaw = room.random_pose(rng, 0.4, (0.2, 1.2))
        frame = simulator.simulate(position, yaw, Scenario(snr_db=20.0), rng)
        estimate = localizer.localize(processor.process(frame), yaw, None, 0.0)
        error = estimate.position_m - position
        if estimate.residual_ratio <= UNEXPLAINED_RATIO and np.linalg.norm(error) < 0.05:
            d2.append(float(error @ np.linalg.solve(estimate.covariance_m2, error)))
    assert len(d2) >= 40
    # The sample median of n >= 40 draws of chi-square(3) lies within 0.65 and 1.5 times its
    # median with probability above 0.99.
    assert 0.65 * CHI2_50_3DOF < np.median(d2) < 1.5 * CHI2_50_3DOF
