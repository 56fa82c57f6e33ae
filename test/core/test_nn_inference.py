"""The ranker's forward without module calls gives the module's logits, to the bit."""

import pytest
import torch

from echoloc_ros.core.model import CandidateRanker, ModelConfig, load_checkpoint
from echoloc_ros.core.nn_inference import RankerForward
from echoloc_ros.core.nn_localizer import _inference_forward, quantize
from echoloc_ros.core.paths import default_model_path

torch.set_num_threads(1)


def _inputs(config: ModelConfig, b: int = 3, seed: int = 0, n_present=(12, 5, 1)):
    gen = torch.Generator().manual_seed(seed)
    m, p, r, w = config.n_candidates, config.n_paths, config.n_receivers, config.n_lags
    echo = torch.randn(b, m, p, r, w, 2, generator=gen) * 5
    expected = torch.rand(b, m, p, r, generator=gen) * 20
    keep = torch.rand(b, m, p, generator=gen) > 0.2
    candidate = torch.randn(b, m, 8, generator=gen)
    present = torch.arange(m)[None] < torch.tensor(n_present)[:, None]
    path = torch.rand(b, m, p, 3, generator=gen)
    return echo, expected, keep, candidate, present, path


def _same(model: CandidateRanker, inputs: tuple) -> None:
    with torch.inference_mode():
        expected, got = model(*inputs), RankerForward(model)(*inputs)
    assert torch.isfinite(expected[:, -1]).all()
    # Bitwise equal, the absent slots' -inf included.
    assert torch.equal(expected, got)


@pytest.mark.parametrize('name', ['tiny', 'base'])
@pytest.mark.parametrize('general', [False, True])
def test_equals_the_module_on_random_inputs(name, general):
    torch.manual_seed(1)
    config = ModelConfig.named(name, room_independent=general)
    model = CandidateRanker(config).eval()
    for seed in range(3):
        _same(model, _inputs(config, seed=seed))


@pytest.mark.parametrize('room', ['default_room', 'furnished_room', 'general'])
def test_equals_the_module_with_the_shipped_models(room):
    path = default_model_path(room)
    if not path.is_file():
        pytest.skip(f'{path} not shipped')
    model, _ = load_checkpoint(path)
    _same(model, _inputs(model.config, seed=7, n_present=(12, 12, 3)))


def test_a_room_independent_model_without_paths_is_refused_by_name():
    config = ModelConfig.tiny(room_independent=True)
    inputs = _inputs(config)[:5]
    with torch.inference_mode(), pytest.raises(ValueError, match='needs path'):
        RankerForward(CandidateRanker(config).eval())(*inputs)


def test_models_it_cannot_run_are_run_by_their_own_forward():
    model = CandidateRanker(ModelConfig.tiny())
    with pytest.raises(ValueError, match='eval mode'):
        RankerForward(model.train())
    assert isinstance(_inference_forward(model.eval()), RankerForward)
    try:
        quantized = quantize(model)
        with pytest.raises(ValueError):
            RankerForward(quantized)
        assert _inference_forward(quantized) is quantized
    finally:
        # quantize turns the fused attention path off process-wide.
        torch.backends.mha.set_fastpath_enabled(True)
