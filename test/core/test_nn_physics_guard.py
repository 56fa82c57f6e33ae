"""The network overrides physics only where physics cannot tell the two fixes apart (issue 19):
physics' own fix stands where the echoes prefer it clearly, on a real frame; and the shipped
general network records how it was made."""

import numpy as np
import pytest
import torch

from echoloc_ros.core.model import ANY_ROOM, load_checkpoint
from echoloc_ros.core.nn_localizer import PHYSICS_KEPT_GAP, SAME_PLACE_M, NeuralLocalizer
from echoloc_ros.core.paths import GENERAL_MODEL, default_model_path
from echoloc_ros.core.physics.config import UNEXPLAINED_RATIO
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.offline.general_training import PROJECT_ROOMS
from echoloc_ros.sim.simulator import Scenario

torch.set_num_threads(1)


def _estimate(x_m: float, score: float, ratio: float = 1.0) -> Estimate:
    return Estimate(position_m=np.array([x_m, 1.0, 1.0]), covariance_m2=1e-6 * np.eye(3),
                    speed_of_sound_mps=343.0, confidence=1.0, score=score, n_echoes=20,
                    residual_ratio=ratio)


def test_physics_stands_only_apart_and_clearly_better_explained():
    physics = _estimate(1.0, 500.0)
    # Elsewhere, and worse explained by more than the gap: physics stands.
    assert NeuralLocalizer.physics_stands(physics, _estimate(2.0, 500.0 - PHYSICS_KEPT_GAP - 1))
    # Elsewhere but within the gap (physics cannot tell them apart): the network's.
    assert not NeuralLocalizer.physics_stands(physics,
                                              _estimate(2.0, 500.0 - PHYSICS_KEPT_GAP + 1))
    # A physics fix that leaves its echoes unexplained: its evidence does not hold.
    assert not NeuralLocalizer.physics_stands(_estimate(1.0, 500.0, UNEXPLAINED_RATIO + 0.1),
                                              _estimate(2.0, 100.0))
    # The same place, however scored: the network's (its covariance, its probabilities).
    assert not NeuralLocalizer.physics_stands(physics,
                                              _estimate(1.0 + 0.5 * SAME_PLACE_M, 100.0))


class _Chooses(NeuralLocalizer):
    """The shipped network's localizer with its ranking replaced: all but 5 % of the
    probability on candidate ``choose`` (a network sure of a wrong candidate)."""

    choose = 0

    def rank(self, proposal):
        p = np.zeros(len(proposal.thetas) + 1)
        p[self.choose] = 0.95
        p[-1] = 0.05
        return p, 0.0


@pytest.fixture(scope='module')
def frame(room, array, chirp, simulator, processor):
    """A 20 dB frame in the default room whose physics fix is right, and the candidate of its
    proposal farthest from physics' best."""
    rng = np.random.default_rng(11)
    position, yaw = room.random_pose(rng)
    features = processor.process(simulator.simulate(position, yaw, Scenario(snr_db=20), rng))
    loc = _Chooses.from_checkpoint(default_model_path(GENERAL_MODEL), room, array, chirp,
                                   processor=processor)
    proposal = loc.physics.propose(features, yaw, yaw_std_rad=np.deg2rad(1))
    far = int(np.argmax(np.linalg.norm(proposal.positions_m() - proposal.positions_m()[0],
                                       axis=1)))
    return loc, features, yaw, position, far


def test_a_network_sure_of_a_far_candidate_does_not_override_a_clear_physics_fix(frame):
    loc, features, yaw, position, far = frame
    physics = loc.physics.localize(features, yaw, yaw_std_rad=np.deg2rad(1))
    assert np.linalg.norm(physics.position_m - position) < 0.01
    loc.choose = far
    loc.wide_search = False
    unguarded = loc.fix(features, yaw, yaw_std_rad=np.deg2rad(1))
    loc.physics_guard = False
    chosen = loc.fix(features, yaw, yaw_std_rad=np.deg2rad(1)).estimate
    loc.physics_guard = True
    # Without the guard the network's choice is fixed: elsewhere, and far worse explained.
    assert np.linalg.norm(chosen.position_m - position) > SAME_PLACE_M
    assert chosen.score < physics.score - PHYSICS_KEPT_GAP
    # With it, physics' own fix stands, as physics gives it.
    guarded = unguarded.estimate
    assert np.allclose(guarded.position_m, physics.position_m)
    assert guarded.score == pytest.approx(physics.score)
    assert np.allclose(guarded.covariance_m2, physics.covariance_m2)


def test_the_guard_leaves_the_network_s_choice_where_it_is_physics_own(frame):
    loc, features, yaw, position, _ = frame
    loc.choose = 0
    fix = loc.fix(features, yaw, yaw_std_rad=np.deg2rad(1)).estimate
    # The network's estimate (its probabilities in the confidence), not physics'.
    assert fix.confidence == pytest.approx(0.95, abs=0.05)
    assert np.linalg.norm(fix.position_m - position) < 0.01


def test_fixes_gives_both_fixes_and_publishes_the_one_the_guard_chose(frame):
    loc, features, yaw, position, far = frame
    loc.choose = far
    loc.wide_search = False
    fix, network, physics = loc.fixes(features, yaw, yaw_std_rad=np.deg2rad(1))
    loc.wide_search = True
    # The network's own choice, elsewhere, and physics' own, right: physics' stands.
    assert np.linalg.norm(network.position_m - position) > SAME_PLACE_M
    assert np.linalg.norm(physics.position_m - position) < 0.01
    assert NeuralLocalizer.physics_stands(physics, network)
    assert fix.estimate is physics
    loc.physics_guard = False
    fix, network, physics = loc.fixes(features, yaw, yaw_std_rad=np.deg2rad(1))
    loc.physics_guard = True
    assert physics is None and fix.estimate is network


def test_the_shipped_general_model_says_how_it_was_made():
    _, ckpt = load_checkpoint(default_model_path(GENERAL_MODEL))
    assert ckpt['room'] == ANY_ROOM and ckpt['config']['room_independent']
    data = ckpt['training_data']
    # Trained on generated rooms of the dev split (and the project's own), never held-out ones.
    assert data['rooms'] and all(r.startswith('dev_') or r in PROJECT_ROOMS
                                 for r in data['rooms'])
    assert sum(r.startswith('dev_') for r in data['rooms']) == 80
    assert data['train_frames'] + data['val_frames'] == data['n_frames']
    # Proposed by the physics it serves by default, and its scale fitted on dev rooms.
    assert ckpt['input_spec']['optimization_level'] == data['optimization_level'] == 'balanced'
    calibration = ckpt['covariance_calibration']
    assert calibration['split'] == 'dev' and ckpt['covariance_scale'] > 0
    assert 0.0 < ckpt['temperature'] < 10.0
