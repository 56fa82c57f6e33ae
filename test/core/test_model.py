"""The network, its loss and its checkpoint (tiny sizes, fixed seeds)."""

import numpy as np
import pytest
import torch
from scipy import stats

from echoloc_ros.core.model import (EchoTransformer, ModelConfig, TrainedFor, gaussian_nll,
                                    load_checkpoint, save_checkpoint)
from echoloc_ros.core.nn_localizer import NeuralLocalizer, quantize

torch.set_num_threads(1)


def _config(**kw):
    return ModelConfig.tiny(n_bins=128, position_centre_m=(3.0, 2.25, 0.7),
                            position_scale_m=3.0, **kw)


def _batch(n=6, n_bins=128, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, 2, n_bins, generator=gen) * 3
    yaw = torch.rand(n, generator=gen) * 6.28
    return x, torch.stack([torch.cos(yaw), torch.sin(yaw)], 1)


def _trained_for(room, array, chirp):
    return TrainedFor(room=room.name, array=array.to_dict(), chirp=chirp.to_dict(),
                      input_spec={'kind': 'test', 'n_bins': 128})


def test_sizes_and_shapes():
    torch.manual_seed(0)
    for name in ('tiny', 'base'):
        config = ModelConfig.named(name, n_bins=128)
        mean, chol = EchoTransformer(config)(*_batch())
        assert mean.shape == (6, 3) and chol.shape == (6, 3, 3)
    assert sum(p.numel() for p in EchoTransformer(ModelConfig.base()).parameters()) > \
        2 * sum(p.numel() for p in EchoTransformer(ModelConfig.tiny()).parameters())
    with pytest.raises(ValueError, match='huge'):
        ModelConfig.named('huge')


def test_covariance_is_symmetric_positive_definite_in_metres():
    torch.manual_seed(0)
    model = EchoTransformer(_config()).eval()
    with torch.inference_mode():
        position, cov = model.position_covariance(*_batch(n=16))
    assert torch.allclose(cov, cov.transpose(1, 2))
    assert torch.linalg.eigvalsh(cov).min() > 0
    # Means come out around the room centre, in metres.
    assert torch.all((position - torch.tensor([3.0, 2.25, 0.7])).abs() < 10)


def test_gaussian_nll_matches_the_multivariate_normal_density():
    gen = torch.Generator().manual_seed(1)
    mean = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    chol = torch.tril(torch.randn(5, 3, 3, generator=gen, dtype=torch.float64))
    chol = chol + torch.diag_embed(torch.rand(5, 3, generator=gen, dtype=torch.float64) + 0.5
                                   - torch.diagonal(chol, dim1=1, dim2=2))
    target = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    expected = -np.mean([stats.multivariate_normal(m, (c @ c.T)).logpdf(t)
                         for m, c, t in zip(mean.numpy(), chol.numpy(), target.numpy())])
    assert float(gaussian_nll(mean, chol, target)) == pytest.approx(
        expected - 1.5 * np.log(2 * np.pi), rel=1e-9)


def test_nll_falls_when_overfitting_a_tiny_batch():
    torch.manual_seed(0)
    model = EchoTransformer(_config())
    x, heading = _batch(n=8)
    target = torch.randn(8, 3, generator=torch.Generator().manual_seed(2)) * 0.3
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = gaussian_nll(*model(x, heading), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 2.0


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, room, array, chirp):
    torch.manual_seed(0)
    model = EchoTransformer(_config()).eval()
    path = tmp_path / 'm.pt'
    save_checkpoint(path, model, _trained_for(room, array, chirp))
    loaded, ckpt = load_checkpoint(path, _trained_for(room, array, chirp))
    assert not loaded.training and ckpt['room'] == room.name
    assert ckpt['input_spec']['n_bins'] == 128
    x, heading = _batch()
    with torch.inference_mode():
        for a, b in zip(model(x, heading), loaded(x, heading)):
            assert torch.equal(a, b)


def test_wrong_room_array_or_file_is_a_clear_error(tmp_path, room, array, chirp):
    from echoloc_ros.core.array_geometry import array_from_dict
    from echoloc_ros.core.room import load_room
    path = tmp_path / 'm.pt'
    save_checkpoint(path, EchoTransformer(_config()), _trained_for(room, array, chirp))
    furnished = load_room('furnished_room')
    with pytest.raises(ValueError, match="room 'default_room', not 'furnished_room'"):
        NeuralLocalizer.from_checkpoint(path, furnished, array, chirp)
    moved = array.to_dict()
    moved['receivers_m'][0][0] += 0.01
    with pytest.raises(ValueError, match='array'):
        NeuralLocalizer.from_checkpoint(path, room, array_from_dict(moved), chirp)
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='cannot load'):
        NeuralLocalizer.from_checkpoint(tmp_path / 'junk.pt', room, array, chirp)
    with pytest.raises(ValueError, match='does not exist'):
        NeuralLocalizer.from_checkpoint(tmp_path / 'none.pt', room, array, chirp)


def test_int8_model_stays_close_to_float():
    torch.manual_seed(0)
    model = EchoTransformer(_config()).eval()
    fast = quantize(model)
    x, heading = _batch(n=16)
    with torch.inference_mode():
        m_float, c_float = model(x, heading)
        m_int8, c_int8 = fast(x, heading)
    # int8 weights (~0.4 % steps) move the outputs by a small fraction of their size.
    assert float((m_int8 - m_float).abs().max()) < 0.2 * float(m_float.abs().max())
    assert torch.allclose(c_int8, c_float, rtol=0.1, atol=1e-3)
