"""Summary metrics and the tracked evaluation along a trajectory."""

import numpy as np
import pytest

from echoloc_ros.core.evaluation import error_metrics, evaluate_fixes, evaluate_tracked
from echoloc_ros.core.simulator import Scenario


def test_error_metrics_numbers():
    errors = np.array([0.001, 0.002, 0.03, 0.2])
    metrics = error_metrics(errors, np.array([True, True, True, False]))
    assert metrics['median_cm'] == pytest.approx(1.6)
    assert metrics['mean_cm'] == pytest.approx(5.825)
    assert metrics['success_rate_5cm'] == 0.75
    assert metrics['gross_rate_10cm'] == 0.25
    assert metrics['coverage_95'] == 0.75


def test_evaluate_fixes_small_run(room, array, chirp):
    result = evaluate_fixes(room, array, chirp, Scenario(snr_db=20.0), n=4, seed=11)
    assert result['n'] == 4
    assert result['median_cm'] < 1.0
    assert result['latency_ms_p50'] > 0.0
    assert abs(result['speed_error_mps_median']) < 0.5


def test_tracked_along_the_trajectory(room, array, chirp):
    # 1 s at 25 Hz along the figure-of-eight at 20 dB: the track stays within 2 cm (p95).
    result = evaluate_tracked(room, array, chirp, Scenario(snr_db=20.0), n_frames=25, seed=4)
    assert result['n'] == 25
    assert result['tracked_p95_cm'] <= 2.0
    assert result['tracked_max_cm'] <= 5.0
    assert result['rejected_rate'] <= 0.1
    assert 0.0 <= result['tracked_coverage_95'] <= 1.0
    with pytest.raises(ValueError, match='n_frames'):
        evaluate_tracked(room, array, chirp, Scenario(), n_frames=0, seed=0)


def test_unknown_method_and_missing_model_are_named(room, array, chirp, tmp_path):
    with pytest.raises(ValueError, match="method must be 'physics' or 'nn', got 'magic'"):
        evaluate_fixes(room, array, chirp, Scenario(), n=1, seed=0, method='magic')
    with pytest.raises(ValueError, match='missing.pt does not exist'):
        evaluate_fixes(room, array, chirp, Scenario(), n=1, seed=0, method='nn',
                       model_path=tmp_path / 'missing.pt')



def test_furniture_moved_and_known(array, chirp):
    """Furniture moved in every frame: a localizer told where it stands (the room file brought
    up to date) errs less than one with the stale file; the nn keeps the model trained
    before (it was trained with the furniture moved about)."""
    from echoloc_ros.core.room import load_room
    furnished = load_room('furnished_room')
    common = dict(n=20, seed=5, furniture_shift_m=1.0)
    stale = evaluate_fixes(furnished, array, chirp, Scenario(snr_db=20.0), **common)
    known = evaluate_fixes(furnished, array, chirp, Scenario(snr_db=20.0),
                           furniture_known=True, **common)
    assert known['gross_rate_10cm'] < stale['gross_rate_10cm']
    nn = evaluate_fixes(furnished, array, chirp, Scenario(snr_db=20.0), method='nn',
                        furniture_known=True, **{**common, 'n': 6})
    assert nn['n'] == 6 and nn['median_cm'] < 1.0


def test_furniture_known_without_moved_furniture_is_a_clear_error(capsys):
    from echoloc_ros.cli import main
    with pytest.raises(SystemExit, match="--furniture-known needs --furniture-shift-m > 0 and "
                                         "a room with furniture; got --furniture-shift-m 0.0 "
                                         "in room 'furnished_room'"):
        main(['evaluate', '--room', 'furnished_room', '--furniture-known', '--n', '1'])
