"""Candidate data, labels, calibration, a short training run with resume, and the neural
localizer end to end (real simulated frames, real files, a real tiny network)."""

import json
import math

import numpy as np
import pytest
import torch

from echoloc_ros.offline import dataset
from echoloc_ros.core.nn_localizer import NeuralLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import Scenario
from echoloc_ros.offline.training import (CandidateSpec, evaluate_choices, fit_temperature, labels,
                                          load_examples, train)

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def candidates(tmp_path_factory, array, chirp):
    """24 frames of the furnished room, furniture moved in most (chunks of 8)."""
    out = tmp_path_factory.mktemp('candidates')
    spec = CandidateSpec(load_room('furnished_room'), array, chirp, 24, seed=3, chunk_size=8)
    dataset.generate(spec, out, workers=2, progress=False)
    return spec, out


def test_examples_hold_the_truth_among_candidates_and_do_not_depend_on_chunking(
        candidates, tmp_path):
    spec, out = candidates
    meta, data = load_examples(out)
    assert meta['kind'] == 'candidates' and meta['room'] == 'furnished_room'
    m = spec.n_candidates
    assert data['echo'].shape == (24, m, 24, 4, 5, 2) and data['echo'].dtype == torch.float16
    assert data['present'][:, 0].all()
    # Physics proposes the true pose for most frames (recall is what the ranker needs).
    target = labels(data['position_m'], data['truth_m'].float(), data['present'])
    assert (target < m).float().mean() >= 0.75
    # Frame i depends only on [seed, i]: other chunk sizes give the same examples.
    spec2 = CandidateSpec(spec.room, spec.array, spec.chirp, 12, seed=3, chunk_size=5)
    dataset.generate(spec2, tmp_path, workers=1, progress=False)
    _, again = load_examples(tmp_path)
    for key in ('echo', 'position_m', 'truth_m', 'keep'):
        assert torch.equal(again[key], data[key][:12])
    with pytest.raises(ValueError, match='holds another dataset'):
        dataset.generate(CandidateSpec(spec.room, spec.array, spec.chirp, 12, seed=4),
                         tmp_path, workers=1, progress=False)


def test_labels_pick_the_nearest_candidate_within_the_radius():
    positions = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.05, 0.0, 0.0]]] * 3)
    truth = torch.tensor([[1.04, 0.0, 0.0], [5.0, 0.0, 0.0], [1.04, 0.0, 0.0]])
    present = torch.tensor([[True, True, True], [True, True, True], [True, True, False]])
    assert labels(positions, truth, present).tolist() == [2, 3, 1]


def test_temperature_fit_recovers_the_temperature_of_the_labels():
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4000, 6, generator=gen)
    # Labels drawn from softmax(logits / 2): the best temperature is 2.
    target = torch.multinomial(torch.softmax(logits / 2.0, dim=1), 1, generator=gen)[:, 0]
    assert fit_temperature(logits, target) == pytest.approx(2.0, rel=0.1)


def test_training_writes_a_calibrated_checkpoint_and_resumes(candidates, tmp_path):
    spec, out = candidates
    ckpt = tmp_path / 'ranker.pt'
    first = train(out, ckpt, spec.room, epochs=2, batch_size=8, progress=False,
                  val_fraction=0.25)
    assert ckpt.is_file() and (tmp_path / 'ranker.pt.state').is_file()
    assert first['epochs'] == 2 and first['train_frames'] == 18
    assert 0.1 < first['temperature'] < 10 and math.isfinite(first['val_nll'])
    # Resuming continues from epoch 3 rather than starting over.
    again = train(out, ckpt, spec.room, epochs=3, batch_size=8, progress=False,
                  val_fraction=0.25)
    assert again['epochs'] == 3
    state = torch.load(tmp_path / 'ranker.pt.state', weights_only=True)
    assert [row['epoch'] for row in state['history']] == [1, 2, 3]
    json.dumps(again)
    with pytest.raises(ValueError, match="is for room 'furnished_room', not 'default_room'"):
        train(out, tmp_path / 'other.pt', load_room('default_room'), epochs=1,
              progress=False)


def test_neural_localizer_end_to_end(candidates, tmp_path, array, chirp, processor):
    spec, out = candidates
    ckpt = tmp_path / 'ranker.pt'
    train(out, ckpt, spec.room, epochs=1, batch_size=8, progress=False, val_fraction=0.25)
    from echoloc_ros.sim.simulator import EchoSimulator
    room = spec.room
    loc = NeuralLocalizer.from_checkpoint(ckpt, room, array, chirp, processor=processor)
    rng = np.random.default_rng(1)
    position, yaw = room.random_pose(rng)
    frame = EchoSimulator(room, array, chirp).simulate(position, yaw, Scenario(snr_db=25), rng)
    fix = loc.fix(processor.process(frame), yaw, yaw_std_rad=np.deg2rad(1))
    estimate = fix.estimate
    assert estimate.covariance_m2.shape == (3, 3)
    assert np.all(np.linalg.eigvalsh(estimate.covariance_m2) > 0)
    assert 0.0 <= estimate.confidence <= 1.0
    assert fix.inference_s > 0
    # A wide search happens only on a frame the network doubted.
    assert fix.doubted or not fix.wide
    _, data = load_examples(out)
    p = loc.probabilities({k: v[:4].numpy() for k, v in data.items()})
    assert p.shape == (4, spec.n_candidates + 1)
    assert np.allclose(p.sum(axis=1), 1.0)
    # int8 ranks like float on these frames.
    fast = NeuralLocalizer.from_checkpoint(ckpt, room, array, chirp, processor=processor,
                                           optimization_level='fast')
    choices = evaluate_choices(fast.model, data)['logits'][:, :-1].argmax(1)
    assert torch.mean((choices == evaluate_choices(loc.model, data)['logits'][:, :-1]
                       .argmax(1)).float()) >= 0.9
    with pytest.raises(ValueError, match="trained for room 'furnished_room', not "
                                         "'default_room'"):
        NeuralLocalizer.from_checkpoint(ckpt, load_room('default_room'), array, chirp)
    with pytest.raises(ValueError, match='optimization_level'):
        NeuralLocalizer.from_checkpoint(ckpt, room, array, chirp, optimization_level='turbo')
    # Furniture moved in the room file keeps the model (it was trained with it moved about).
    from dataclasses import replace
    moved = loc.with_room(replace(room, furniture=room.rearranged(rng, 1.0)))
    assert moved.model is loc.model
    assert not np.array_equal(moved.physics.room.furniture[0].min_m, room.furniture[0].min_m)
    assert moved.localize(processor.process(frame), yaw).position_m.shape == (3,)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='device cuda requested but torch sees no CUDA'):
            NeuralLocalizer.from_checkpoint(ckpt, room, array, chirp, device='cuda')


def test_covariance_calibration_is_stored_and_used(tmp_path, room, array, chirp):
    import shutil
    from echoloc_ros.offline.nn_calibration import calibrate_covariance
    from echoloc_ros.core.paths import default_model_path
    shipped = default_model_path('default_room')
    if not shipped.is_file():
        pytest.skip('no shipped model for the default room')
    model = tmp_path / 'model.pt'
    shutil.copy(shipped, model)
    result = calibrate_covariance(model, room, array, chirp, Scenario(snr_db=20.0), 30, seed=5)
    assert result['right_frames'] >= 25
    assert 0.05 <= result['covariance_scale'] <= 20.0
    loc = NeuralLocalizer.from_checkpoint(model, room, array, chirp)
    assert loc.covariance_scale == pytest.approx(result['covariance_scale'])
    with pytest.raises(ValueError, match='too few to calibrate'):
        calibrate_covariance(model, room, array, chirp, Scenario(snr_db=-30.0), 3, seed=5,
                             write=False)


def test_candidate_slots_below_one_are_named_before_any_data_is_made(array, chirp, tmp_path):
    with pytest.raises(ValueError, match='n_candidates and n_rescan must be >= 1, got 0 and 10'):
        CandidateSpec(load_room('default_room'), array, chirp, 4, seed=0, n_candidates=0)
    from echoloc_ros.cli import main
    with pytest.raises(SystemExit, match='echoloc fit --candidates 0: n_candidates and '
                                         'n_rescan must be >= 1'):
        main(['fit', '--n', '4', '--candidates', '0', '--out', str(tmp_path / 'm.pt'),
              '--work', str(tmp_path / 'work')])
    assert not (tmp_path / 'work').exists()
