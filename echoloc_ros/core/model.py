"""The neural localizer's network: a CNN front end per receiver, a Transformer across receivers.

Input (see :mod:`echoloc_ros.core.training` for how a frame becomes one): the matched-filter
complex baseband of every receiver, low-passed and decimated to ``n_bins`` bins and divided by
the channel's noise floor, as ``(batch, n_receivers, 2, n_bins)`` (real, imaginary), plus the
heading as ``(batch, 2)`` (cos, sin).

1. Each receiver's sequence is compressed (magnitude ``log1p``, phase kept) and fed through one
   shared strided 1-D CNN, giving ``n_bins / prod(strides)`` tokens per receiver.
2. Tokens get a learned receiver embedding and a learned time embedding; the heading is one
   more token. A Transformer encoder attends across time and receivers.
3. The head reads the heading token and the mean of all tokens and outputs the position relative
   to the room's centre (in units of ``position_scale_m``) and a Cholesky factor of its 3x3
   covariance, trained with the Gaussian negative log likelihood (:func:`gaussian_nll`).
"""

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

CHECKPOINT_FORMAT = 1
# Smallest standard deviation the head can express, in units of position_scale_m (0.01 mm at
# a 3 m scale): keeps the Cholesky factor invertible.
MIN_SIGMA = 3e-6


@dataclass
class ModelConfig:
    """Sizes of the network and the frame of its outputs.

    :ivar n_receivers: receivers (tokens are made per receiver).
    :ivar n_bins: baseband bins per receiver in the input.
    :ivar cnn_channels: output channels of each convolution.
    :ivar cnn_strides: stride of each convolution (their product divides time into tokens).
    :ivar cnn_kernel: kernel length of every convolution.
    :ivar d_model: token width.
    :ivar n_heads: attention heads.
    :ivar n_layers: Transformer encoder layers.
    :ivar ff_mult: feed-forward width over ``d_model``.
    :ivar dropout: dropout in the encoder.
    :ivar position_centre_m: room-frame point the outputs are relative to ``(3,)``, m.
    :ivar position_scale_m: unit of the outputs, m.
    """

    n_receivers: int = 4
    n_bins: int = 603
    cnn_channels: tuple[int, ...] = (16, 32, 48)
    cnn_strides: tuple[int, ...] = (2, 4, 4)
    cnn_kernel: int = 5
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    ff_mult: int = 2
    dropout: float = 0.0
    position_centre_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    position_scale_m: float = 1.0

    @classmethod
    def tiny(cls, **overrides: Any) -> 'ModelConfig':
        """About 0.1 M parameters, 77 tokens: CPU training in minutes."""
        return cls(**overrides)

    @classmethod
    def base(cls, **overrides: Any) -> 'ModelConfig':
        """About 0.4 M parameters, 153 tokens."""
        values = dict(cnn_channels=(32, 64, 96), cnn_strides=(2, 2, 4), d_model=96,
                      n_heads=4, n_layers=4, ff_mult=2, dropout=0.05)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def named(cls, name: str, **overrides: Any) -> 'ModelConfig':
        """``'tiny'`` or ``'base'``."""
        if name not in ('tiny', 'base'):
            raise ValueError(f"model size must be 'tiny' or 'base', got {name!r}")
        return getattr(cls, name)(**overrides)

    @property
    def n_tokens_per_receiver(self) -> int:
        n = self.n_bins
        for s in self.cnn_strides:
            n = (n - 1) // s + 1
        return n

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


class ReceiverCNN(nn.Module):
    """Shared 1-D CNN: ``(B * n_rx, 3, n_bins)`` -> ``(B * n_rx, d_model, n_tokens)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out, stride in zip(config.cnn_channels, config.cnn_strides):
            layers += [nn.Conv1d(c_in, c_out, config.cnn_kernel, stride,
                                 config.cnn_kernel // 2), nn.GroupNorm(1, c_out), nn.GELU()]
            c_in = c_out
        layers.append(nn.Conv1d(c_in, config.d_model, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GaussianHead(nn.Module):
    """Position mean and a lower-triangular Cholesky factor, both in scaled units."""

    def __init__(self, d_in: int, d_hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, 9))
        self._rows, self._cols = torch.tril_indices(3, 3, offset=-1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.mlp(h)
        mean = out[:, :3]
        diag = F.softplus(out[:, 3:6] - 2.0) + MIN_SIGMA
        chol = torch.diag_embed(diag)
        chol[:, self._rows, self._cols] = 0.1 * out[:, 6:9]
        return mean, chol


class EchoTransformer(nn.Module):
    """The network; see the module docstring."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.cnn = ReceiverCNN(config)
        self.receiver_embedding = nn.Parameter(torch.zeros(config.n_receivers, 1, d))
        self.time_embedding = nn.Parameter(torch.zeros(1, config.n_tokens_per_receiver, d))
        nn.init.normal_(self.receiver_embedding, std=0.02)
        nn.init.normal_(self.time_embedding, std=0.02)
        # A fixed sinusoidal code of each token's time (= range) on top of the learned one: the
        # absolute delay is what carries position, and a learned code alone starts blind.
        t = torch.arange(config.n_tokens_per_receiver, dtype=torch.float32)[:, None]
        freq = torch.exp(-math.log(1e3) * torch.arange(0, d, 2, dtype=torch.float32) / d)
        code = torch.zeros(config.n_tokens_per_receiver, d)
        code[:, 0::2], code[:, 1::2] = torch.sin(t * freq), torch.cos(t * freq)
        self.register_buffer('time_code', code[None], persistent=False)
        self.heading = nn.Sequential(nn.Linear(2, d), nn.GELU(), nn.Linear(d, d))
        layer = nn.TransformerEncoderLayer(d, config.n_heads, config.ff_mult * d,
                                           config.dropout, activation='gelu',
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.n_layers,
                                             enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = GaussianHead(2 * d, 2 * d)

    @staticmethod
    def compress(x: torch.Tensor) -> torch.Tensor:
        """``(..., 2, n)`` re/im in noise-floor units -> ``(..., 3, n)`` compressed re, im, log|z|.

        Echoes span ~60 dB; ``log1p`` of the magnitude keeps the weak far walls visible while
        the phase (re, im over the magnitude) stays intact.
        """
        mag = torch.sqrt(x[..., 0, :] ** 2 + x[..., 1, :] ** 2 + 1e-6)
        log_mag = torch.log1p(mag)
        unit = x / mag.unsqueeze(-2)
        return torch.cat([unit * log_mag.unsqueeze(-2), log_mag.unsqueeze(-2)], dim=-2)

    def forward(self, x: torch.Tensor, heading: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled position mean and Cholesky factor.

        :param x: ``(B, n_receivers, 2, n_bins)`` baseband in noise-floor units.
        :param heading: ``(B, 2)`` cos and sin of the yaw.
        :return: ``(mean (B, 3), chol (B, 3, 3))``, both in units of ``position_scale_m``.
        """
        b, r, _, n = x.shape
        tokens = self.cnn(self.compress(x).reshape(b * r, 3, n))          # (B*r, d, t)
        tokens = tokens.transpose(1, 2).reshape(b, r, -1, self.config.d_model)
        tokens = tokens + self.receiver_embedding + self.time_embedding + self.time_code
        tokens = tokens.reshape(b, -1, self.config.d_model)
        tokens = torch.cat([self.heading(heading).unsqueeze(1), tokens], dim=1)
        h = self.norm(self.encoder(tokens))
        return self.head(torch.cat([h[:, 0], h[:, 1:].mean(dim=1)], dim=1))

    def position_covariance(self, x: torch.Tensor, heading: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Room-frame position ``(B, 3)`` m and covariance ``(B, 3, 3)`` m^2."""
        mean, chol = self(x, heading)
        scale = self.config.position_scale_m
        centre = torch.tensor(self.config.position_centre_m, dtype=mean.dtype)
        return centre + scale * mean, scale ** 2 * chol @ chol.transpose(1, 2)


def gaussian_nll(mean: torch.Tensor, chol: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean negative log likelihood of ``target`` under N(mean, chol chol^T), constant dropped.

    :param mean: ``(B, 3)``.
    :param chol: ``(B, 3, 3)`` lower triangular, positive diagonal.
    :param target: ``(B, 3)``.
    """
    residual = (target - mean).unsqueeze(-1)
    white = torch.linalg.solve_triangular(chol, residual, upper=False).squeeze(-1)
    log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return (0.5 * (white ** 2).sum(-1) + log_det).mean()


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


def save_checkpoint(path: str | Path, model: EchoTransformer, trained_for: TrainedFor,
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
                    map_location: str = 'cpu') -> tuple[EchoTransformer, dict[str, Any]]:
    """Rebuild the model from a checkpoint, in eval mode.

    :param expect: when given, the room name, array and chirp must match the checkpoint's.
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
    missing = [k for k in ('config', 'state_dict', 'room', 'array', 'chirp') if k not in ckpt]
    if missing:
        raise ValueError(f'{path} is not an echoloc model checkpoint (missing {missing})')
    if expect is not None:
        if ckpt['room'] != expect.room:
            raise ValueError(f'model {path} was trained for room {ckpt["room"]!r}, not '
                             f'{expect.room!r}')
        if _normalise(ckpt['array']) != _normalise(expect.array):
            raise ValueError(f'model {path} was trained for array '
                             f'{ckpt["array"].get("name")!r} with another geometry than array '
                             f'{expect.array.get("name")!r}')
        if _normalise(ckpt['chirp']) != _normalise(expect.chirp):
            raise ValueError(f'model {path} was trained for chirp {ckpt["chirp"]}, not '
                             f'{expect.chirp}')
    model = EchoTransformer(ModelConfig.from_dict(ckpt['config']))
    model.load_state_dict(ckpt['state_dict'])
    return model.eval(), ckpt
