"""The local fix's chain in fewer compiled calls (issue 20): :func:`newton_from` (the paths'
start and the iterations), :func:`model_evidence` (a model's evidence at one pose) and
:func:`final_fit` (the final model's choice and its fit) give the bits of the Python steps
they replace, on real frames: the default room simulated to order 2 (the search's model
taken) and with every order (the model with the higher orders taken), and the furnished
room (its faces: not every path exists)."""

import numpy as np
import pytest

from echoloc_ros.core.physics.config import (N_THETA, PRIOR_SCALE, STEP_LIMIT, STEP_TOLERANCE,
                                             YAW)
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.newton import model_evidence, newton
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

FS_HZ = 250e3
# (room, simulated orders, seed, array origin, heading): dev poses. At the first the frame's
# evidence keeps the search's model, at the second it takes the higher orders.
CASES = [('default_room', 2, 7, np.array([2.2, 1.6, 0.3]), 0.4),
         ('default_room', 'all', 133, np.array([5.091, 2.285, 0.3]), -0.874),
         ('furnished_room', 2, 11, np.array([1.2, 2.9, 0.25]), 2.1)]


def _frame(array, chirp, processor, case):
    """The localizer, the frame and the true ``theta (5,)`` of ``case``."""
    name, order, seed, position, yaw = case
    room = load_room(name)
    simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=order)
    localizer = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
    features = processor.process(simulator.simulate(position, yaw,
                                                    Scenario(snr_db=20.0, seed=seed)))
    fr = localizer.propose(features, yaw, None, np.deg2rad(1.0)).frame
    return localizer, fr, np.array([*array.to_world(position, yaw)[0], 1.0, 0.0])


def _unfused(model, fr, theta0, valid, free, iterations, need_info):
    """:meth:`Refinement._newton` as the Python steps computed it before: the paths' start
    (:meth:`Refinement._starting_paths`) and :func:`newton` on them."""
    paths, keep, modelled, pairs = model._starting_paths(fr, theta0, valid, free, iterations,
                                                         need_info or iterations > 0)
    dtau0 = modelled[2] if len(modelled) > 2 else np.zeros(modelled[0].shape + (0,))
    out = newton(np.array(theta0, dtype=float), keep, modelled[0], modelled[1], dtau0,
                 model._geometry(fr, paths), model._signal(fr, pairs), free, iterations,
                 need_info, fr.yaw_info, STEP_LIMIT[free], STEP_TOLERANCE[free],
                 PRIOR_SCALE * fr.gain ** 2)
    return out + (paths, keep)


def _same(fit, reference, need_info=True):
    """``fit`` (a :class:`Fit`) holds ``reference``'s bits (:func:`_unfused`'s tuple)."""
    theta, evidence, info, coef, tau, amp, paths, keep = reference
    assert np.array_equal(fit.paths, paths) and np.array_equal(fit.keep, keep)
    for got, want in ((fit.theta, theta), (fit.evidence, evidence), (fit.coef, coef),
                      (fit.tau, tau), (fit.amp, amp)):
        assert got.shape == want.shape and np.array_equal(got, want)
    if need_info:
        free = np.flatnonzero(np.any(fit.info[0] != 0.0, axis=0))
        assert np.array_equal(fit.info[:, free[:, None], free[None, :]], info)


@pytest.mark.parametrize('case', CASES, ids=['order2', 'every-order', 'furnished'])
def test_newton_from_gives_the_unfused_bits(array, chirp, processor, case):
    localizer, fr, theta = _frame(array, chirp, processor, case)
    # Three starts a few millimetres apart (a polish's batch), all parameters, 3 iterations.
    starts = theta + np.array([[0.0] * N_THETA, [0.004, -0.003, 0.001, 0.0, 0.0],
                               [-0.006, 0.002, 0.0, 0.001, 0.002]])
    valid = localizer._valid_batch(fr, starts)
    free = np.arange(N_THETA)
    fit = localizer._newton(fr, starts, valid, free, 3)
    _same(fit, _unfused(localizer, fr, starts, valid, free, 3, True))
    # The floor and ceiling alone, height and speed, without the information
    # (track_fix.frame_gain's fit).
    vertical = localizer._vertical_only[None]
    free = np.array([2, 3])
    fit = localizer._newton(fr, theta[None], vertical, free, 1, need_info=False)
    assert fit.info is None
    _same(fit, _unfused(localizer, fr, theta[None], vertical, free, 1, False), False)


@pytest.mark.parametrize('case', CASES, ids=['order2', 'every-order', 'furnished'])
def test_final_fit_gives_the_unfused_bits(array, chirp, processor, case):
    localizer, fr, theta = _frame(array, chirp, processor, case)
    free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
    model, valid, fit = localizer._final_fit(fr, theta, free, localizer.max_iterations)
    # The model the Python steps choose (each model's evidence from _paths and _evidence).
    want_model, want_valid = localizer._final_model(fr, theta[None])
    assert model is want_model and np.array_equal(valid, want_valid)
    _same(fit, _unfused(model, fr, theta[None], valid, free, localizer.max_iterations, True))
    # The evidence each model is judged by, as _paths and _evidence had it.
    signal = localizer._signal(fr, (None, None))
    base, final, richer = localizer._final_models(fr, theta[None])
    for each, paths in ((localizer, base), (final, richer)):
        tau, amp, _ = each._paths(fr, theta[None], np.arange(paths.shape[1]), valid=paths)
        assert model_evidence(theta[None], np.ascontiguousarray(paths),
                              each._geometry(fr, slice(None)), signal[:7] + signal[9:],
                              PRIOR_SCALE * fr.gain ** 2) == each._evidence(fr, tau, amp)[0]
    assert (model is final) == (case[1] == 'all')


@pytest.mark.parametrize('case', CASES, ids=['order2', 'every-order', 'furnished'])
def test_the_fits_residual_and_axis_shares_give_the_unfused_bits(array, chirp, processor,
                                                                 case):
    localizer, fr, theta = _frame(array, chirp, processor, case)
    free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
    model, _, fit = localizer._final_fit(fr, theta, free, localizer.max_iterations)
    tau, amp, coef = fit.tau[0], fit.amp[0], fit.coef[0]
    measured = model._fit_residual(fr, tau, amp, coef)
    # As the three calls had them: the synthesis, and the ratio and the information's ratio
    # from it.
    fitted = model.synthesise(fr, tau, amp, coef)
    assert np.array_equal(measured[0], fitted)
    for at_least in (None, 1.0):
        assert (model._residual_ratio(fr, tau, amp, coef, measured, fit.theta[0], at_least)
                == model._residual_ratio(fr, tau, amp, coef, fitted, fit.theta[0], at_least))
    assert (model._information_ratio(fr, tau, amp, coef, measured)
            == model._information_ratio(fr, tau, amp, coef, fitted))
    # The shares along x and y as _scan_paths and _grouped gave them, the pose repeated.
    at = fit.theta[0]
    paths_tau, paths_amp = localizer._scan_paths(fr, at[None],
                                                 localizer._valid_batch(fr, at[None]))
    amps = np.repeat(paths_amp, 3, axis=0)
    for axis in range(2):
        amps[axis + 1][localizer._moving(axis)] = 0.0
    evidence = localizer._grouped(fr, np.repeat(paths_tau, 3, axis=0), amps)
    shares = localizer._axis_shares(fr, at)
    assert shares.shape == (2,) and np.array_equal(shares, evidence[0] - evidence[1:])
