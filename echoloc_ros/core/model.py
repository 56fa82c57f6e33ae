"""The neural localizer's network: a CNN-Transformer that ranks the physics candidates.

Why a ranker (docs/model.md, docs/results.md): the physics localizer is sub-millimetre
when its best-scoring candidate is the right one, and metres off when it is not (a wall taken
for another, an echo of moved furniture taken for a wall). A network that regressed the
position from the raw echoes learned the height but not x and y at the data and compute this
project has. So the network learns the step where physics fails, which candidate is right,
and physics keeps the step where it excels, the sub-millimetre refinement.

Input per frame, for each of up to ``n_candidates`` candidates (from
:func:`~echoloc_ros.core.nn_features.candidate_echoes`):

- ``echo`` ``(M, P, n_rx, W)`` complex: for each room image path of order 1 and 2, each
  receiver's matched-filter output at ``W`` lags around the delay the candidate predicts, in
  noise units, the predicted carrier phase removed;
- ``expected`` ``(M, P, n_rx)``: how strong the candidate says each echo should be;
- ``keep`` ``(M, P)``: paths the candidate says exist in the window;
- ``candidate`` ``(M, 8)``: the physics evidence and the candidate's parameters;
- ``path`` ``(M, P, 3)``: what each path is, for a room-independent model (below).

A per-room model's path slot is one of its room's image paths, and a learned embedding per
slot says which. A room-independent model (``ModelConfig.room_independent``) reads each
candidate's strongest heard paths instead (:func:`~echoloc_ros.core.nn_features.strongest_paths`)
and learns what a path is from its length and its delays' spread over the receivers, and a
candidate's place from its distance to the best candidate and its height: nothing in its
input names a room, so one checkpoint serves any room.

1. A 1-D CNN, shared by every path and receiver, reads each receiver's ``W`` lags (magnitude
   ``log1p``-compressed, phase kept, plus the expected strength); the receivers' outputs are
   joined into one token per path, with a learned path embedding.
2. A Transformer encoder attends across the path tokens and a candidate token (so it can judge
   a missing echo against the others: a moved sofa hides one wall, it does not fake three).
3. A second Transformer layer attends across the frame's candidates; a head gives one logit per
   candidate, and one for "none of them is right" from the pooled candidates.

Trained with cross-entropy against the candidate within ``label_radius_m`` of the truth (or
"none"), its softmax is the probability each candidate is right: the localizer's covariance
is the mixture those probabilities define (:meth:`PhysicsLocalizer.finish`).
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from echoloc_ros.core.nn_features import N_PATH_FEATURES

CHECKPOINT_FORMAT = 2
N_CANDIDATE_FEATURES = 8
#: The room name a room-independent checkpoint carries (it was trained on many rooms).
ANY_ROOM = '*'


@dataclass
class ModelConfig:
    """Sizes of the network and of its input.

    :ivar n_receivers: receivers.
    :ivar n_paths: room image paths per candidate (order 1 and 2; 24 in a shoebox).
    :ivar n_lags: lags read around each predicted delay.
    :ivar n_candidates: candidates ranked per frame.
    :ivar cnn_channels: channels of the two convolutions over the lags.
    :ivar d_model: token width.
    :ivar n_heads: attention heads.
    :ivar n_layers: Transformer layers across paths.
    :ivar ff_mult: feed-forward width over ``d_model``.
    :ivar dropout: dropout in the encoders.
    :ivar room_independent: paths described by what they are, not by their slot (see the
        module docstring): the model serves any room.
    """

    n_receivers: int = 4
    n_paths: int = 24
    n_lags: int = 5
    n_candidates: int = 12
    cnn_channels: tuple[int, ...] = (8, 8)
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 1
    ff_mult: int = 2
    dropout: float = 0.0
    room_independent: bool = False

    @classmethod
    def tiny(cls, **overrides: Any) -> 'ModelConfig':
        """About 25 k parameters: under 1 ms a frame on one CPU thread (TorchScript)."""
        return cls(**overrides)

    @classmethod
    def base(cls, **overrides: Any) -> 'ModelConfig':
        """About 0.15 M parameters."""
        values = dict(cnn_channels=(16, 16), d_model=64, n_heads=4, n_layers=2, dropout=0.05)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def named(cls, name: str, **overrides: Any) -> 'ModelConfig':
        """``'tiny'`` or ``'base'``."""
        if name not in ('tiny', 'base'):
            raise ValueError(f"model size must be 'tiny' or 'base', got {name!r}")
        return getattr(cls, name)(**overrides)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> 'ModelConfig':
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f'unknown model config keys {unknown}')
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def compress(echo: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """``echo (..., W, 2)`` re/im in noise units and ``expected (...)`` ->
    ``(..., 4, W)``: compressed re, im, log magnitude and log expected strength.

    Echoes span ~60 dB; ``log1p`` of the magnitude keeps weak ones visible while the phase
    (re, im over the magnitude) stays intact.
    """
    mag = torch.sqrt(echo[..., 0] ** 2 + echo[..., 1] ** 2 + 1e-6)
    log_mag = torch.log1p(mag)
    unit = echo / mag.unsqueeze(-1)
    ref = torch.log1p(expected).unsqueeze(-1).expand_as(log_mag)
    return torch.stack([unit[..., 0] * log_mag, unit[..., 1] * log_mag, log_mag, ref], dim=-2)


class LagConv(nn.Module):
    """A 1-D convolution over the few lags (kernel 3, zero padding 1), applied as one matrix
    product: on windows this short, building the banded matrix from the shared kernel is ~10x
    faster on a CPU than a convolution kernel, and it is the same function.

    ``(N, c_in * W)`` (channel-major) -> ``(N, c_out * W)``.
    """

    def __init__(self, c_in: int, c_out: int, n_lags: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in, 3))
        self.bias = nn.Parameter(torch.empty(c_out))
        bound = 1.0 / (3 * c_in) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        # shift[k, i, j] = 1 where output lag i reads input lag j through kernel tap k.
        shift = torch.zeros(3, n_lags, n_lags)
        for k in range(3):
            for i in range(n_lags):
                j = i + k - 1
                if 0 <= j < n_lags:
                    shift[k, i, j] = 1.0
        self.register_buffer('shift', shift, persistent=False)
        self.n_lags = n_lags
        self._banded: tuple = ((), ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, *self.banded())

    def banded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The banded weight ``(c_out * W, c_in * W)`` and bias ``(c_out * W,)``.

        Without gradients (inference) they are built once and kept while the parameters are
        the same tensors at the same version (an optimiser's step, a state dict loaded or a
        move to another device builds them anew): per frame they cost ~0.1 ms of a 1.2 ms
        forward pass on a CPU.
        """
        tensors = (self.weight, self.bias, self.shift)
        # Inference tensors (a model built in inference mode) have no version to check.
        keep = not (torch.is_grad_enabled() or torch.jit.is_tracing()
                    or any(t.is_inference() for t in tensors))
        key = tuple((t.data_ptr(), t._version) for t in tensors) if keep else None
        if keep and self._banded[0] == key:
            return self._banded[1]
        c_out, c_in, _ = self.weight.shape
        banded = (torch.einsum('oik,kab->oaib', self.weight, self.shift).reshape(
            c_out * self.n_lags, c_in * self.n_lags), self.bias.repeat_interleave(self.n_lags))
        if keep:
            self._banded = (key, banded)
        return banded


class CandidateRanker(nn.Module):
    """The network; see the module docstring."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d, c = config.d_model, config.cnn_channels
        w = config.n_lags
        self.cnn = nn.Sequential(LagConv(4, c[0], w), nn.GELU(), LagConv(c[0], c[1], w),
                                 nn.GELU())
        self.path_in = nn.Linear(config.n_receivers * c[1] * config.n_lags + 1, d)
        if config.room_independent:
            self.path_kind = nn.Linear(N_PATH_FEATURES, d)
        else:
            self.path_embedding = nn.Parameter(torch.zeros(config.n_paths, d))
            nn.init.normal_(self.path_embedding, std=0.02)
        self.candidate_in = nn.Sequential(nn.Linear(N_CANDIDATE_FEATURES, d), nn.GELU(),
                                          nn.Linear(d, d))

        def layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(d, config.n_heads, config.ff_mult * d,
                                              config.dropout, activation='gelu',
                                              batch_first=True, norm_first=True)

        self.paths = nn.TransformerEncoder(layer(), config.n_layers,
                                           enable_nested_tensor=False)
        self.across = layer()
        self.norm = nn.LayerNorm(d)
        self.logit = nn.Linear(d, 1)
        self.none = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))

    def forward(self, echo: torch.Tensor, expected: torch.Tensor, keep: torch.Tensor,
                candidate: torch.Tensor, present: torch.Tensor,
                path: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, M + 1)``: one per candidate (``-inf`` where absent), then "none".

        :param echo: ``(B, M, P, n_rx, W, 2)`` real and imaginary parts.
        :param expected: ``(B, M, P, n_rx)``.
        :param keep: bool ``(B, M, P)``.
        :param candidate: ``(B, M, 8)``.
        :param present: bool ``(B, M)``: which candidate slots hold a candidate.
        :param path: ``(B, M, P, 3)``: what each path is (a room-independent model needs
            it; a per-room model does not read it).
        :raises ValueError: a room-independent model without ``path``.
        """
        b, m, p, r, w, _ = echo.shape
        # A path the candidate says is absent reads nothing; its token says it is absent.
        kept = keep.reshape(b * m * p, 1).to(echo.dtype)
        x = compress(echo, expected) * kept.reshape(b, m, p, 1, 1, 1)
        x = self.cnn(x.reshape(b * m * p * r, 4 * w)).reshape(b * m * p, -1)
        tokens = self.path_in(torch.cat([x, kept], dim=1)).reshape(b * m, p, -1)
        if self.config.room_independent:
            if path is None:
                raise ValueError('a room-independent model needs path (B, M, P, 3): what '
                                 'each path is; got None')
            tokens = tokens + self.path_kind(path.reshape(b * m, p, -1))
        else:
            tokens = tokens + self.path_embedding
        head = self.candidate_in(candidate.reshape(b * m, -1)).unsqueeze(1)
        # No padding mask across paths (a masked softmax costs a quarter of the forward pass
        # on a CPU); absent paths carry zeros and their flag instead.
        h = self.paths(torch.cat([head, tokens], dim=1))[:, 0].reshape(b, m, -1)
        h = self.norm(self.across(h, src_key_padding_mask=~present))
        logits = self.logit(h).squeeze(-1).masked_fill(~present, float('-inf'))
        weight = present.unsqueeze(-1).to(h.dtype)
        pooled = (h * weight).sum(1) / weight.sum(1).clamp(min=1.0)
        return torch.cat([logits, self.none(pooled)], dim=1)


@dataclass
class TrainedFor:
    """What a checkpoint was trained for; a mismatch makes it unusable.

    :ivar room: room name.
    :ivar array: :meth:`ArrayGeometry.to_dict`.
    :ivar chirp: :meth:`Chirp.to_dict`.
    :ivar input_spec: how frames become inputs (see :func:`training.input_spec`).
    """

    room: str
    array: dict[str, Any]
    chirp: dict[str, Any]
    input_spec: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | Path, model: CandidateRanker, trained_for: TrainedFor,
                    extra: dict[str, Any] | None = None) -> None:
    """Write ``{'config', 'state_dict', 'room', 'array', 'chirp', 'input_spec', ...}``.

    :param extra: more plain entries (training state, metrics); must be ``weights_only``-safe.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {'format': CHECKPOINT_FORMAT, 'config': model.config.to_dict(),
               'state_dict': model.state_dict(), 'room': trained_for.room,
               'array': trained_for.array, 'chirp': trained_for.chirp,
               'input_spec': trained_for.input_spec, **(extra or {})}
    tmp = path.with_suffix(path.suffix + '.tmp')
    torch.save(payload, tmp)
    tmp.replace(path)


def _normalise(value: Any) -> Any:
    """Lists and tuples compared alike, floats to 9 digits."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, float):
        return round(value, 9)
    return value


def load_checkpoint(path: str | Path, expect: TrainedFor | None = None,
                    map_location: str = 'cpu') -> tuple[CandidateRanker, dict[str, Any]]:
    """Rebuild the model from a checkpoint, in eval mode.

    :param expect: when given, the room name (unless the checkpoint is room-independent:
        room :data:`ANY_ROOM`), array and chirp must match the checkpoint's.
    :return: ``(model, checkpoint dict)``.
    :raises ValueError: unreadable file, or trained for another room, array or chirp.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'model checkpoint {path} does not exist')
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise ValueError(f'cannot load model checkpoint {path}: {exc}') from exc
    if not isinstance(ckpt, dict):
        raise ValueError(f'{path} is not an echoloc model checkpoint: it holds a '
                         f'{type(ckpt).__name__}, not a dict')
    missing = [k for k in ('config', 'state_dict', 'room', 'array', 'chirp') if k not in ckpt]
    if missing:
        raise ValueError(f'{path} is not an echoloc model checkpoint (missing {missing})')
    wrong = [k for k in ('config', 'state_dict', 'array', 'chirp', 'input_spec')
             if k in ckpt and not isinstance(ckpt[k], dict)]
    if wrong:
        raise ValueError(f'{path} is not an echoloc model checkpoint: {wrong} must be dicts')
    if expect is not None:
        general = bool(ckpt.get('config', {}).get('room_independent', False))
        if general != (ckpt['room'] == ANY_ROOM):
            raise ValueError(f'{path} is not a consistent checkpoint: room '
                             f'{ckpt["room"]!r} with room_independent {general}')
        if not general and ckpt['room'] != expect.room:
            raise ValueError(f'model {path} was trained for room {ckpt["room"]!r}, not '
                             f'{expect.room!r}')
        if _normalise(ckpt['array']) != _normalise(expect.array):
            raise ValueError(f'model {path} was trained for array '
                             f'{ckpt["array"].get("name")!r} with another geometry than array '
                             f'{expect.array.get("name")!r}')
        if _normalise(ckpt['chirp']) != _normalise(expect.chirp):
            raise ValueError(f'model {path} was trained for chirp {ckpt["chirp"]}, not '
                             f'{expect.chirp}')
    try:
        model = CandidateRanker(ModelConfig.from_dict(ckpt['config']))
        model.load_state_dict(ckpt['state_dict'])
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        # load_state_dict raises RuntimeError for missing, extra or misshapen weights.
        raise ValueError(f'{path}: its config and weights do not make a candidate ranker: '
                         f'{str(exc)[:300]}') from None
    return model.eval(), ckpt


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device | str = 'cpu'
                 ) -> tuple[torch.Tensor, ...]:
    """The network's arguments from a batch of examples (a batch without ``path``, made for
    a per-room model, gets zeros)."""
    path = batch.get('path')
    if path is None:
        path = torch.zeros(batch['keep'].shape + (N_PATH_FEATURES,))
    return (batch['echo'].to(device, torch.float32), batch['expected'].to(device, torch.float32),
            batch['keep'].to(device), batch['candidate'].to(device),
            batch['present'].to(device), path.to(device, torch.float32))
