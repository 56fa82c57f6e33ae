"""The ranker's forward without module calls gives the module's logits: to float32's
rounding, since the path encoder's last layer is computed for its first token only."""

import pytest
import torch

from echoloc_ros.core.model import CandidateRanker, ModelConfig, load_checkpoint
from echoloc_ros.core.nn_inference import RankerForward, _first_token_args, first_token
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


# The logits' tolerance: float32's rounding (1.2e-7 relative) over the few hundred terms of
# a sum and the logits' own size (a few units), far below what moves a probability.
LOGIT_ATOL = 2e-5


def _same(model: CandidateRanker, inputs: tuple) -> None:
    with torch.inference_mode():
        expected, got = model(*inputs), RankerForward(model)(*inputs)
    assert torch.isfinite(expected[:, -1]).all()
    # The absent slots' -inf where the module has them, the rest to float32's rounding.
    assert torch.equal(torch.isinf(expected), torch.isinf(got))
    finite = torch.isfinite(expected)
    difference = (expected[finite] - got[finite]).abs().max().item()
    assert difference <= LOGIT_ATOL, difference


@pytest.mark.parametrize('name', ['tiny', 'base'])
def test_the_first_token_equals_the_layers_whole_output(name):
    config = ModelConfig.named(name)
    torch.manual_seed(2)
    layer = CandidateRanker(config).eval().paths.layers[-1]
    h = torch.randn(36, config.n_paths + 1, config.d_model) * 3
    with torch.inference_mode():
        whole = layer(h)[:, 0]
        got = first_token(h, *_first_token_args(layer))
    assert got.shape == whole.shape
    # A layer's outputs are of order 1-10: float32 rounding, summed over the width.
    assert torch.allclose(got, whole, rtol=1e-5, atol=1e-5)
    # Not the input passed through: the layer changes the first token.
    assert not torch.allclose(got, h[:, 0], atol=1e-2)


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
