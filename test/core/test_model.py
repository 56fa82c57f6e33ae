"""The candidate ranker and its checkpoint (tiny sizes, fixed seeds)."""

import copy

import pytest
import torch

from echoloc_ros.core.model import (CandidateRanker, ModelConfig, TrainedFor, load_checkpoint,
                                    save_checkpoint)

torch.set_num_threads(1)


def _batch(b=3, m=5, p=24, r=4, w=5, seed=0, n_present=(5, 3, 1)):
    gen = torch.Generator().manual_seed(seed)
    echo = torch.randn(b, m, p, r, w, 2, generator=gen) * 5
    expected = torch.rand(b, m, p, r, generator=gen) * 20
    keep = torch.rand(b, m, p, generator=gen) > 0.2
    candidate = torch.randn(b, m, 8, generator=gen)
    present = torch.arange(m)[None] < torch.tensor(n_present)[:, None]
    return echo, expected, keep, candidate, present


def _trained_for(room, array, chirp):
    return TrainedFor(room=room.name, array=array.to_dict(), chirp=chirp.to_dict(),
                      input_spec={'lags_s': [0.0]})


def test_sizes_and_absent_candidates():
    torch.manual_seed(0)
    for name in ('tiny', 'base'):
        model = CandidateRanker(ModelConfig.named(name, n_candidates=5)).eval()
        logits = model(*_batch())
        assert logits.shape == (3, 6)
        # Empty slots can never be chosen; "none" always has a finite logit.
        assert torch.isinf(logits[1, 3:5]).all() and torch.isfinite(logits[1, :3]).all()
        assert torch.isinf(logits[2, 1:5]).all() and torch.isfinite(logits[:, 5]).all()
    assert sum(p.numel() for p in CandidateRanker(ModelConfig.base()).parameters()) > \
        2 * sum(p.numel() for p in CandidateRanker(ModelConfig.tiny()).parameters())
    with pytest.raises(ValueError, match='huge'):
        ModelConfig.named('huge')


def test_ranking_does_not_depend_on_the_order_of_the_candidates():
    torch.manual_seed(0)
    model = CandidateRanker(ModelConfig.tiny(n_candidates=5)).eval()
    echo, expected, keep, candidate, present = _batch(n_present=(5, 5, 5))
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.inference_mode():
        logits = model(echo, expected, keep, candidate, present)
        shuffled = model(echo[:, perm], expected[:, perm], keep[:, perm], candidate[:, perm],
                         present[:, perm])
    assert torch.allclose(shuffled[:, :5], logits[:, perm], atol=1e-5)
    assert torch.allclose(shuffled[:, 5], logits[:, 5], atol=1e-5)


def test_checkpoint_round_trip_and_mismatches(tmp_path, room, array, chirp):
    torch.manual_seed(0)
    model = CandidateRanker(ModelConfig.tiny(n_candidates=5)).eval()
    path = tmp_path / 'ranker.pt'
    save_checkpoint(path, model, _trained_for(room, array, chirp), {'temperature': 1.3})
    loaded, ckpt = load_checkpoint(path, _trained_for(room, array, chirp))
    assert ckpt['temperature'] == 1.3
    with torch.inference_mode():
        assert torch.equal(loaded(*_batch()), model(*_batch()))
    other = TrainedFor(room='kitchen', array=array.to_dict(), chirp=chirp.to_dict())
    with pytest.raises(ValueError, match="room 'default_room', not 'kitchen'"):
        load_checkpoint(path, other)
    moved = array.to_dict()
    moved['receivers_m'][0][0] += 0.01
    with pytest.raises(ValueError, match='another geometry'):
        load_checkpoint(path, TrainedFor(room=room.name, array=moved, chirp=chirp.to_dict()))
    with pytest.raises(ValueError, match='does not exist'):
        load_checkpoint(tmp_path / 'missing.pt')
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='cannot load'):
        load_checkpoint(tmp_path / 'junk.pt')


def test_a_checkpoint_that_is_not_one_is_a_named_error(tmp_path, room, array, chirp):
    """An int, a bare tensor, or a state_dict that does not fit: ValueError naming why, so the
    localizer falls back to physics instead of crashing."""
    torch.manual_seed(0)
    model = CandidateRanker(ModelConfig.tiny(n_candidates=5)).eval()
    good = tmp_path / 'ranker.pt'
    save_checkpoint(good, model, _trained_for(room, array, chirp), {})
    wrong_weights = torch.load(good, weights_only=True)
    wrong_weights['state_dict'] = {'no_such.weight': torch.zeros(3)}
    wrong_config = torch.load(good, weights_only=True)
    wrong_config['config'] = {'no_such_setting': 1}
    cases = {'int.pt': (5, 'holds a int, not a dict'),
             'tensor.pt': (torch.zeros(3, 3), 'holds a Tensor, not a dict'),
             'weights.pt': (wrong_weights, 'do not make a candidate ranker'),
             'config.pt': (wrong_config, 'do not make a candidate ranker'),
             'spec.pt': ({**wrong_weights, 'input_spec': 7}, r"\['input_spec'\] must be dicts")}
    for name, (content, match) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(ValueError, match=match):
            load_checkpoint(tmp_path / name, _trained_for(room, array, chirp))


def test_inference_keeps_the_banded_lag_weights_only_while_the_parameters_stand():
    torch.manual_seed(0)
    model = CandidateRanker(ModelConfig.named('tiny', n_candidates=5)).eval()
    batch = _batch()
    with torch.inference_mode():
        # Built at the first call, then the same tensors: the same logits to the bit.
        first = model(*batch)
        assert model.cnn[0].banded()[0] is model.cnn[0].banded()[0]
        assert torch.equal(model(*batch), first)
    # A step of training: its gradients reach the lag kernels, and inference follows the new
    # weights (a kept band would give the old logits), as a copy that builds its own does.
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    model(*batch)[:, -1].sum().backward()
    assert model.cnn[0].weight.grad.abs().sum() > 0
    optimiser.step()
    twin = copy.deepcopy(model)
    with torch.inference_mode():
        stepped = model(*batch)
        assert not torch.equal(stepped, first)
        assert torch.equal(stepped, twin(*batch))
        # A model built in inference mode (no versions to check) builds the band every call.
        built_here = CandidateRanker(ModelConfig.named('tiny', n_candidates=5)).eval()
        built_here.load_state_dict(model.state_dict())
        assert torch.equal(built_here(*batch), stepped)
