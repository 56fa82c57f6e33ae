"""scripts/tracker-replay.py: a recorded lap replayed through a tracker is that tracker's run."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.room import load_room
from echoloc_ros.core.room_tolerance import tolerance_covariance
from echoloc_ros.core.tracker import PoseTracker

_SCRIPT = Path(__file__).resolve().parents[2] / 'scripts' / 'tracker-replay.py'


def _script():
    spec = importlib.util.spec_from_file_location('tracker_replay', _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lap(room, n: int = 60) -> dict:
    """A straight drive at 0.3 m/s with 0.5 mm fixes, one 1 m off (doubted) at frame 30."""
    rng = np.random.default_rng(4)
    inputs, truth = [], []
    for k in range(n):
        t = 0.04 * k
        where = np.array([1.5 + 0.3 * t, 2.0, 0.3])
        off = [1.0, 0.0, 0.0] if k == 30 else 0.0005 * rng.standard_normal(3)
        local = 0.0005 ** 2 * np.eye(3)
        inputs.append((t, Estimate(position_m=where + off, covariance_m2=local,
                                   speed_of_sound_mps=343.0, confidence=float(k != 30),
                                   score=0.0, n_echoes=6, local_covariance_m2=local)))
        truth.append(where)
    return {'room': room, 'inputs': inputs, 'truth_m': np.array(truth)}


def test_a_replayed_lap_is_the_trackers_run_and_is_scored_against_its_truth():
    script = _script()
    room = load_room('default_room')
    lap = _lap(room)
    run = script.replay_lap(lap, {'snap_probability': 1.0})
    tracker = PoseTracker(room_volume_m3=room.volume_m3, snap_probability=1.0)
    for k, (t, estimate) in enumerate(lap['inputs']):
        position, covariance, _ = tracker.update_estimate(t, estimate)
        assert np.array_equal(run['position_m'][k], position)
        assert np.allclose(run['covariance_m2'][k],
                           covariance + tolerance_covariance(room, position))
    errors, inside_95, outside_999, right_wide = script.scored(lap, run)
    assert errors.size == int(run['vouched'].sum()) >= 55
    assert np.all(errors < 0.005) and not outside_999.any() and not right_wide.any()


def test_options_are_name_value():
    script = _script()
    assert script._option('snap_probability=0.9') == ('snap_probability', 0.9)
    assert script._option('confirm_hits=4') == ('confirm_hits', 4)
    with pytest.raises(SystemExit, match='name=value'):
        script._option('snap_probability')


def _fix(x_m: float, score: float, residual_ratio: float = 1.0) -> Estimate:
    return Estimate(position_m=np.array([x_m, 2.0, 0.3]), covariance_m2=1e-6 * np.eye(3),
                    speed_of_sound_mps=343.0, confidence=0.0, score=score, n_echoes=6,
                    residual_ratio=residual_ratio)


def test_a_recorded_wider_look_is_chosen_again_by_the_localizers_rule():
    """``--wider-margin``: the recorded first, wider-look and kept fixes re-chosen by
    WiderLook._choice; without a margin the fix as recorded; a lap recorded without them is
    refused by name."""
    from echoloc_ros.offline.wider_record import wider_choice
    first, other, kept = _fix(1.0, 100.0), _fix(1.3, 105.0), _fix(1.0, 100.0)
    wider = {'first': first, 'other': other, 'kept': kept}
    recorded = _fix(1.3, 105.0)
    assert wider_choice(recorded, wider, None, True) is recorded
    assert wider_choice(recorded, None, 10.0, True) is recorded
    assert wider_choice(recorded, wider, 10.0, True) is kept
    assert wider_choice(recorded, wider, 10.0, False) is first
    assert wider_choice(recorded, wider, 1.0, True) is other
    assert wider_choice(recorded, wider, float('-inf'), True) is other
    ghost = {'first': first, 'other': _fix(1.3, 900.0, residual_ratio=30.0), 'kept': kept}
    assert wider_choice(recorded, ghost, 10.0, True) is first
    script = _script()
    with pytest.raises(SystemExit, match='without the wider look'):
        script.replay_lap(_lap(load_room('default_room')), {}, margin=10.0)
