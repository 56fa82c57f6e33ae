"""The nn covariance scale pooled over generated dev rooms (``echoloc calibrate --rooms``):
the fit's rule on known distances, a tiny real run that writes the scale the localizer then
uses, and the held-out split and bad arguments refused by name."""

import shutil

import numpy as np
import pytest
import torch
from scipy import stats

from echoloc_ros.cli import main
from echoloc_ros.core.model import ANY_ROOM
from echoloc_ros.core.nn_localizer import NeuralLocalizer
from echoloc_ros.core.paths import GENERAL_MODEL, default_model_path
from echoloc_ros.offline.nn_calibration import calibrate_covariance_rooms, fit_scale
from echoloc_ros.sim.room_generator import generate_room, generate_rooms

torch.set_num_threads(1)


@pytest.fixture
def general_copy(tmp_path):
    shipped = default_model_path(GENERAL_MODEL)
    if not shipped.is_file():
        pytest.skip('no shipped room-independent model')
    model = tmp_path / 'general.pt'
    shutil.copy(shipped, model)
    return model


def test_the_scale_puts_the_right_fixes_95th_percentile_at_chi2():
    # Right fixes whose distances are chi2(3) times 2.5 under scale 0.8 need scale 2.0; wrong
    # fixes (however far) do not move it.
    rng = np.random.default_rng(4)
    d2 = np.concatenate([2.5 * rng.chisquare(3, 20000), np.full(500, 1e6)])
    right = np.arange(d2.size) < 20000
    result = fit_scale(d2, right, 0.8, d2.size)
    assert result['covariance_scale'] == pytest.approx(2.0, rel=0.03)
    assert result['coverage_95_right_after'] == pytest.approx(0.95, abs=0.005)
    # Before: P(2.5 chi2 <= chi2_95) over the right ones, none of the wrong ones.
    before = stats.chi2.cdf(stats.chi2.ppf(0.95, 3) / 2.5, 3) * 20000 / 20500
    assert result['coverage_95_before'] == pytest.approx(before, abs=0.01)
    with pytest.raises(ValueError, match='only 19 of 40 fixes are right; too few'):
        fit_scale(np.ones(40), np.arange(40) < 19, 1.0, 40)


def test_heldout_rooms_and_bad_arguments_are_refused_by_name(general_copy, array, chirp):
    before = general_copy.read_bytes()
    with pytest.raises(ValueError, match="dev split only, got split 'heldout'"):
        calibrate_covariance_rooms(general_copy, 'heldout', 2, 0, array, chirp, [20.0], 10)
    with pytest.raises(ValueError, match='n_rooms must be an integer >= 1, got 0'):
        calibrate_covariance_rooms(general_copy, 'dev', 0, 0, array, chirp, [20.0], 10)
    with pytest.raises(ValueError, match='snrs_db must name at least one SNR'):
        calibrate_covariance_rooms(general_copy, 'dev', 2, 0, array, chirp, [], 10)
    with pytest.raises(ValueError, match='n_total must be >= 1, got 0'):
        calibrate_covariance_rooms(general_copy, 'dev', 2, 0, array, chirp, [20.0], 0)
    args = ['calibrate', '--model', str(general_copy)]
    with pytest.raises(SystemExit, match="echoloc calibrate --rooms: .*got split 'heldout'"):
        main(args + ['--rooms', 'random:2', '--split', 'heldout'])
    with pytest.raises(SystemExit, match='--rooms must be random:N with N >= 1 generated '
                                         "rooms, got 'random:0'"):
        main(args + ['--rooms', 'random:0'])
    with pytest.raises(SystemExit, match='no --room and no --furniture-shift-m, got --room '
                                         'default_room'):
        main(args + ['--rooms', 'random:2', '--room', 'default_room'])
    with pytest.raises(SystemExit, match=r'one --snr-db, got \[10.0, 20.0\]'):
        main(args + ['--room', 'default_room', '--snr-db', '10', '20'])
    with pytest.raises(SystemExit, match='--split dev applies to --rooms random:N only'):
        main(args + ['--split', 'dev'])
    assert general_copy.read_bytes() == before


@pytest.mark.long
def test_two_dev_rooms_pooled_write_the_scale_the_localizer_uses(general_copy, array, chirp,
                                                                 capsys):
    assert main(['calibrate', '--model', str(general_copy), '--rooms', 'random:2',
                 '--split', 'dev', '--seed', '3', '--snr-db', '20', '--n', '28']) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    assert out['n_rooms'] == 2 and out['frames_per_room_snr'] == 14 and out['frames'] == 28
    assert out['right_frames'] >= 20
    assert 0.05 <= out['covariance_scale'] <= 20.0
    assert out['right_frames'] <= out['per_snr']['20.0']['fixes'] <= 28
    ckpt = torch.load(general_copy, map_location='cpu', weights_only=True)
    record = ckpt['covariance_calibration']
    assert record['split'] == 'dev' and record['seed'] == 3 and record['snr_db'] == [20.0]
    assert record['rooms'] == [r.name for r in generate_rooms('dev', 2, 3)]
    # The localizer reads it, in a room it never saw.
    room = generate_room('heldout', 0, 3)
    loc = NeuralLocalizer.from_checkpoint(general_copy, room, array, chirp)
    assert ckpt['room'] == ANY_ROOM
    assert loc.covariance_scale == pytest.approx(out['covariance_scale'], abs=1e-4)
