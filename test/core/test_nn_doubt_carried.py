"""Where the general network and physics disagree, the fix its localizer publishes is given
confidence 0 (issue 19): on dev frames at 10 dB it published a sure network choice 87 cm off
where physics' own fix, right, was 3.7 log units behind, and physics' own fix 106 cm off with
confidence 1 where the network doubted and chose elsewhere; both are now withheld, as physics
withholds its doubted fixes."""

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from echoloc_ros.core.nn_localizer import (SAME_PLACE_M, WIDE_BEST_PROBABILITY,
                                           NeuralLocalizer)
from echoloc_ros.core.paths import GENERAL_MODEL, default_model_path
from echoloc_ros.core.physics.config import UNEXPLAINED_RATIO, UNSEPARATED_GAP
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.withhold import doubted
from dev_frames_testing import HEADING_STD_RAD, drawn_frame

torch.set_num_threads(1)
#: ``echoloc evaluate --rooms random:30 --split dev --seed S --n 300 --snr-db 10
#: --heading-noise-deg 1`` (10 frames a room): (seed, room, frame).
NETWORK_WRONG, PHYSICS_WRONG = (8, 18, 6), (9, 9, 9)
CHI2_99_3DOF = float(chi2.ppf(0.99, 3))
SURE = np.array([0.9, 0.05, 0.05])
DOUBTING = np.array([WIDE_BEST_PROBABILITY - 0.1, 0.2, 0.2])


@pytest.fixture(scope='module')
def dev_frames(array, chirp, processor):
    """Each frame's network localizer, features, heading told and true position."""
    out = {}
    for seed, index, wanted in (NETWORK_WRONG, PHYSICS_WRONG):
        room, frame, position, heading = drawn_frame(index, seed, wanted, array, chirp)
        nn = NeuralLocalizer.from_checkpoint(default_model_path(GENERAL_MODEL), room, array,
                                             chirp, processor=processor)
        out[seed, index, wanted] = (nn, processor.process(frame), heading,
                                    np.asarray(position))
    return out


def _estimate(x_m: float, score: float, ratio: float = 1.0,
              confidence: float = 1.0) -> Estimate:
    return Estimate(position_m=np.array([x_m, 1.0, 1.0]), covariance_m2=1e-6 * np.eye(3),
                    speed_of_sound_mps=343.0, confidence=confidence, score=score,
                    n_echoes=20, residual_ratio=ratio)


def _holds(estimate: Estimate, other: Estimate) -> bool:
    """Whether ``other``'s place is inside ``estimate``'s 99 % ellipsoid."""
    d = other.position_m - estimate.position_m
    return float(d @ np.linalg.solve(estimate.covariance_m2, d)) <= CHI2_99_3DOF


def test_a_disputed_fix_is_withheld_and_holds_the_other():
    network, physics = _estimate(2.0, 500.0), _estimate(1.0, 400.0)
    disputed = NeuralLocalizer.disputed(network, physics)
    assert disputed.confidence == 0.0 and doubted(disputed) and network.confidence == 1.0
    assert _holds(disputed, physics) and not _holds(network, physics)
    assert np.array_equal(disputed.position_m, network.position_m)


def test_the_fix_published_is_doubted_where_the_two_disagree():
    network = _estimate(2.0, 500.0)
    far = 2.0 - 2 * SAME_PLACE_M
    doubted_choice = NeuralLocalizer.choice_doubted
    # Physics' own fix elsewhere, well behind, and the network sure: the network's stands.
    assert not doubted_choice(network, _estimate(far, 400.0), SURE)
    # Physics' fix elsewhere: where the network doubts, or within physics' rival gap.
    assert doubted_choice(network, _estimate(far, 400.0), DOUBTING)
    assert doubted_choice(network, _estimate(far, 500.0 - UNSEPARATED_GAP + 1.0), SURE)
    # At the same place the two agree, doubted or not, and physics' doubt alone, or the
    # network's fit unexplained, is not a disagreement.
    assert not doubted_choice(network, _estimate(2.01, 499.0), DOUBTING)
    assert not doubted_choice(network, _estimate(2.01, 500.0, confidence=0.0), SURE)
    assert not doubted_choice(_estimate(2.0, 500.0, UNEXPLAINED_RATIO + 1.0),
                              _estimate(far, 400.0), SURE)
    # Physics' fix published: doubted where the network doubts and chose elsewhere only.
    ahead = _estimate(far, 600.0)
    assert doubted_choice(network, ahead, DOUBTING, physics_published=True)
    assert not doubted_choice(network, _estimate(far, 505.0), SURE, physics_published=True)
    assert not doubted_choice(network, _estimate(2.01, 600.0), DOUBTING,
                              physics_published=True)


def test_a_sure_network_s_wrong_fix_the_echoes_do_not_separate_is_withheld(dev_frames):
    nn, features, yaw, truth = dev_frames[NETWORK_WRONG]
    fix, network, physics = nn.fixes(features, yaw, None, HEADING_STD_RAD)
    # The network sure of a fix 87 cm off; physics' own fix right, elsewhere and within
    # physics' rival gap of it (so physics doubted its own, and withholds it).
    assert not fix.doubted and network.confidence >= WIDE_BEST_PROBABILITY
    assert np.linalg.norm(network.position_m - truth) > 0.5
    assert np.linalg.norm(physics.position_m - truth) < 0.01 and physics.confidence == 0.0
    assert network.score - UNSEPARATED_GAP < physics.score <= network.score + UNSEPARATED_GAP
    # Published: the network's fix with confidence 0, which a node without a tracker
    # withholds, its covariance holding physics' fix.
    assert np.array_equal(fix.estimate.position_m, network.position_m)
    assert fix.estimate.confidence == 0.0 and doubted(fix.estimate)
    assert _holds(fix.estimate, physics)


def test_physics_confident_wrong_fix_against_a_doubting_network_is_withheld(dev_frames):
    nn, features, yaw, truth = dev_frames[PHYSICS_WRONG]
    fix, network, physics = nn.fixes(features, yaw, None, HEADING_STD_RAD)
    # Physics' own fix stands, confident and a metre off; the network doubted, elsewhere.
    assert fix.doubted and network.confidence < WIDE_BEST_PROBABILITY
    assert physics.confidence > 0.0 and np.linalg.norm(physics.position_m - truth) > 0.5
    assert np.linalg.norm(network.position_m - physics.position_m) >= SAME_PLACE_M
    assert np.array_equal(fix.estimate.position_m, physics.position_m)
    assert fix.estimate.confidence == 0.0 and doubted(fix.estimate)
    assert _holds(fix.estimate, network)


def test_without_carrying_the_doubt_both_wrong_fixes_are_vouched_for(dev_frames):
    for key in (NETWORK_WRONG, PHYSICS_WRONG):
        nn, features, yaw, truth = dev_frames[key]
        nn.carry_doubt = False
        try:
            fix, network, physics = nn.fixes(features, yaw, None, HEADING_STD_RAD)
        finally:
            nn.carry_doubt = True
        assert (fix.estimate is network or fix.estimate is physics) and not doubted(fix.estimate)
        assert np.linalg.norm(fix.estimate.position_m - truth) > 0.5
        assert nn.general and nn.with_room(nn.room).carry_doubt


def test_a_room_s_own_network_is_left_as_it_was(room, array, chirp, processor):
    own = NeuralLocalizer.from_checkpoint(default_model_path(room.name), room, array, chirp,
                                          processor=processor)
    assert not own.general and not own.carry_doubt
    assert own.with_room(room).carry_doubt is False
