"""The ranker's forward pass for inference without ``nn.Module`` calls: the same operations,
in the same order, on the same parameters (:class:`RankerForward`).

A frame's forward pass is about 90 small tensor operations; through the modules, each layer's
``__call__`` and the Transformer layers' checks of whether their fused path applies (masks
made canonical, hooks looked for, devices and dtypes checked) cost as much Python again. Here
those checks are made once, when the forward is built, and each layer's operation is called
directly: the Transformer layers' fused kernel (``torch._transformer_encoder_layer_fwd``, the
one their eager forward calls in inference) with their own parameters.

The path encoder's last layer is computed for its first token only (:func:`first_token`):
the ranker reads nothing else of its output. The other tokens are that layer's keys and
values, but its queries, attention output and feed-forward are needed for the first alone,
a twenty-fifth of them. The logits then differ from the module's in their last bits (about
1e-6), not to the bit.
"""

import torch
from torch import nn
from torch.nn import functional

from echoloc_ros.core.model import CandidateRanker, compress


class RankerForward:
    """:meth:`CandidateRanker.forward` of ``model`` in inference, without its modules' calls.

    The parameters are the model's own tensors (the last path layer's in-projection split
    into copies): a model moved, loaded anew or trained further needs a new
    :class:`RankerForward`. Its logits equal the module's to about 1e-6
    (``test/core/test_nn_inference.py``).

    :param model: the network, in eval mode.
    :raises ValueError: a model its fused Transformer path does not serve (training mode, an
        activation other than GELU, odd heads), which the module's own forward must run.
    """

    def __init__(self, model: CandidateRanker) -> None:
        if model.training:
            raise ValueError('RankerForward needs the model in eval mode (model.eval())')
        layers = list(model.paths.layers) + [model.across]
        for layer in layers:
            problem = _unfused(layer)
            if problem:
                raise ValueError(f'RankerForward needs the fused Transformer path: {problem}')
        if any(not isinstance(getattr(module, 'weight', None), (torch.Tensor, type(None)))
               for module in model.modules()):
            raise ValueError('RankerForward takes a float model (not a quantized one)')
        if model.paths.norm is not None:
            raise ValueError('RankerForward takes an encoder without a final norm')
        self.model = model
        self.config = model.config
        self.layers = [_fused_args(layer) for layer in layers]
        self.last_path_layer = _first_token_args(layers[-2])
        self.cnn = [module for module in model.cnn if not isinstance(module, nn.GELU)]

    def __call__(self, echo: torch.Tensor, expected: torch.Tensor, keep: torch.Tensor,
                 candidate: torch.Tensor, present: torch.Tensor,
                 path: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, M + 1)`` as :meth:`CandidateRanker.forward` (its arguments); call it
        under ``torch.inference_mode()``.

        :raises ValueError: a room-independent model without ``path``.
        """
        model = self.model
        b, m, p, r, w, _ = echo.shape
        kept = keep.reshape(b * m * p, 1).to(echo.dtype)
        x = compress(echo, expected) * kept.reshape(b, m, p, 1, 1, 1)
        x = x.reshape(b * m * p * r, 4 * w)
        for conv in self.cnn:
            x = functional.gelu(functional.linear(x, *conv.banded()))
        x = x.reshape(b * m * p, -1)
        tokens = functional.linear(torch.cat([x, kept], dim=1), model.path_in.weight,
                                   model.path_in.bias).reshape(b * m, p, -1)
        if self.config.room_independent:
            if path is None:
                raise ValueError('a room-independent model needs path (B, M, P, 3): what '
                                 'each path is; got None')
            tokens = tokens + functional.linear(path.reshape(b * m, p, -1),
                                                model.path_kind.weight, model.path_kind.bias)
        else:
            tokens = tokens + model.path_embedding
        first, _, second = model.candidate_in
        head = functional.linear(functional.gelu(functional.linear(
            candidate.reshape(b * m, -1), first.weight, first.bias)), second.weight,
            second.bias).unsqueeze(1)
        h = torch.cat([head, tokens], dim=1)
        for args in self.layers[:-2]:
            h = torch._transformer_encoder_layer_fwd(h, *args, None, None)
        h = first_token(h, *self.last_path_layer).reshape(b, m, -1)
        # The padding mask as the layer makes it: -inf where a slot holds no candidate.
        padding = torch.zeros_like(present, dtype=h.dtype)
        padding.masked_fill_(~present, float('-inf'))
        h = torch._transformer_encoder_layer_fwd(h, *self.layers[-1], padding, 1)
        h = functional.layer_norm(h, model.norm.normalized_shape, model.norm.weight,
                                  model.norm.bias, model.norm.eps)
        logits = functional.linear(h, model.logit.weight, model.logit.bias).squeeze(-1)
        logits = logits.masked_fill(~present, float('-inf'))
        weight = present.unsqueeze(-1).to(h.dtype)
        pooled = (h * weight).sum(1) / weight.sum(1).clamp(min=1.0)
        first, _, second = model.none
        none = functional.linear(functional.gelu(functional.linear(
            pooled, first.weight, first.bias)), second.weight, second.bias)
        return torch.cat([logits, none], dim=1)


def _unfused(layer: nn.TransformerEncoderLayer) -> str:
    """Why ``layer``'s eager forward in inference would not take its fused path (empty: it
    would), of the conditions that do not depend on the input."""
    attention = layer.self_attn
    if layer.training:
        return 'the layer is in training mode'
    if not torch.backends.mha.get_fastpath_enabled():
        return 'torch.backends.mha fast path disabled'
    if not (attention.batch_first and attention._qkv_same_embed_dim
            and attention.in_proj_bias is not None):
        return 'attention not batch-first with one biased in-projection'
    if layer.activation_relu_or_gelu != 2:
        return 'activation is not GELU'
    if layer.norm1.eps != layer.norm2.eps:
        return 'the two norms differ in eps'
    if attention.num_heads % 2:
        return 'odd number of heads'
    return ''


def _fused_args(layer: nn.TransformerEncoderLayer) -> tuple:
    """``torch._transformer_encoder_layer_fwd``'s arguments after the input and before the
    mask, for ``layer`` (as its eager forward passes them)."""
    attention = layer.self_attn
    return (attention.embed_dim, attention.num_heads, attention.in_proj_weight,
            attention.in_proj_bias, attention.out_proj.weight, attention.out_proj.bias,
            True, layer.norm_first, layer.norm1.eps, layer.norm1.weight, layer.norm1.bias,
            layer.norm2.weight, layer.norm2.bias, layer.linear1.weight, layer.linear1.bias,
            layer.linear2.weight, layer.linear2.bias)


def first_token(h: torch.Tensor, n_heads: int, eps: float, norm1: tuple, q_proj: tuple,
                kv_proj: tuple, out_proj: tuple, norm2: tuple, linear1: tuple,
                linear2: tuple) -> torch.Tensor:
    """The first token ``(N, d)`` of a pre-norm GELU Transformer encoder layer's output in
    inference (no mask, no dropout), from its input ``h (N, T, d)`` and its parameters
    (:func:`_first_token_args`): every token's keys and values, the first's query alone."""
    n, t, d = h.shape
    head = d // n_heads
    x = functional.layer_norm(h, (d,), *norm1, eps)
    q = functional.linear(x[:, :1], *q_proj).reshape(n, 1, n_heads, head).transpose(1, 2)
    k, v = functional.linear(x, *kv_proj).reshape(n, t, 2, n_heads, head).permute(
        2, 0, 3, 1, 4)
    attended = functional.scaled_dot_product_attention(q, k, v).reshape(n, d)
    y = h[:, 0] + functional.linear(attended, *out_proj)
    return y + functional.linear(functional.gelu(functional.linear(
        functional.layer_norm(y, (d,), *norm2, eps), *linear1)), *linear2)


def _first_token_args(layer: nn.TransformerEncoderLayer) -> tuple:
    """:func:`first_token`'s arguments after the input, for ``layer`` (pre-norm, as
    :class:`~echoloc_ros.core.model.CandidateRanker` builds its layers): the in-projection
    split into the query's rows and the keys' and values' (contiguous copies, made once).

    :raises ValueError: a post-norm layer.
    """
    if not layer.norm_first:
        raise ValueError('RankerForward needs pre-norm Transformer layers (norm_first=True)')
    attention = layer.self_attn
    d = attention.embed_dim
    weight, bias = attention.in_proj_weight.detach(), attention.in_proj_bias.detach()
    return (attention.num_heads, layer.norm1.eps, (layer.norm1.weight, layer.norm1.bias),
            (weight[:d].contiguous(), bias[:d].contiguous()),
            (weight[d:].contiguous(), bias[d:].contiguous()),
            (attention.out_proj.weight, attention.out_proj.bias),
            (layer.norm2.weight, layer.norm2.bias),
            (layer.linear1.weight, layer.linear1.bias),
            (layer.linear2.weight, layer.linear2.bias))
