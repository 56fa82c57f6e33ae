"""Training the neural localizer on a simulated dataset.

Raw frames (77 KB each) become compact inputs once: the echo processor's matched-filter complex
baseband (62.5 kHz, carrier removed) keeps only its band (+-7.8 kHz around the carrier; the
chirp's echoes occupy +-5 kHz), is decimated 4x more (603 bins over a 38.6 ms window in the
default room) and divided by each channel's noise floor. Low-passing the complex baseband
loses no echo information, unlike pooling the envelope, which discards the carrier phase that
carries sub-millimetre timing. The inputs are cached next to the dataset as float16
(``nn_inputs.pt``: 9.6 KB a frame).

Augmentations act on those inputs, per sample: extra noise, per-receiver gain mismatch, trigger
jitter (a common carrier phase), a true temperature other than the room's (time stretch with the
matching carrier phase), a dead receiver (noise only) and heading noise on the conditioning yaw.
"""

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from echoloc_ros.core import dataset
from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.array_geometry import array_from_dict
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor
from echoloc_ros.core.model import (EchoTransformer, ModelConfig, TrainedFor, gaussian_nll,
                                    load_checkpoint, save_checkpoint)
from echoloc_ros.core.room import Room

CACHE_FILE = 'nn_inputs.pt'
INPUT_KIND = 'baseband_lowpass_v1'
# Further decimation of the processor's baseband: 62.5 kHz / 4 = 15.6 kHz complex rate, which
# still holds the chirp's 10 kHz band.
EXTRA_DECIMATION = 4


def frame_inputs(features: EchoFeatures, n_bins: int | None = None) -> np.ndarray:
    """Model input of one processed frame.

    :param features: the echo processor's output.
    :param n_bins: output bins; default ``ceil(n_in / EXTRA_DECIMATION)``.
    :return: float32 ``(n_channels, 2, n_bins)``: real and imaginary part of the low-passed,
        decimated baseband in units of each channel's noise floor.
    """
    baseband = features.baseband
    n_in = baseband.shape[1]
    n_out = n_bins or -(-n_in // EXTRA_DECIMATION)
    spectrum = np.fft.fft(baseband, axis=1)
    half = n_out // 2
    kept = np.concatenate([spectrum[:, :n_out - half], spectrum[:, n_in - half:]], axis=1)
    low = np.fft.ifft(kept, axis=1) * (n_out / n_in)
    low /= np.maximum(np.asarray(features.noise_floor, dtype=float), 1e-12)[:, None]
    return np.stack([low.real, low.imag], axis=1).astype(np.float32)


def input_spec(features: EchoFeatures) -> dict[str, Any]:
    """How :func:`frame_inputs` turned frames like ``features`` into inputs (for checks)."""
    n_in = features.baseband.shape[1]
    n_out = -(-n_in // EXTRA_DECIMATION)
    return {'kind': INPUT_KIND, 'n_bins_in': int(n_in), 'n_bins': int(n_out),
            'bin_width_s': float(features.bin_width_s * n_in / n_out),
            'carrier_hz': float(features.carrier_hz)}


_worker_processor: EchoProcessor | None = None


def _init_worker(meta: dict) -> None:
    global _worker_processor
    torch.set_num_threads(1)
    _worker_processor = EchoProcessor(Chirp.from_dict(meta['chirp']), meta['fs_hz'],
                                      array=array_from_dict(meta['array']))


def _chunk_inputs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    with np.load(path) as data:
        samples, position, yaw = data['samples'], data['position_m'], data['yaw_rad']
    feats = [_worker_processor.process(s) for s in samples]
    x = np.stack([frame_inputs(f) for f in feats]).astype(np.float16)
    return x, position.astype(np.float32), yaw.astype(np.float32), input_spec(feats[0])


def extract_inputs(data_dir: str | Path, workers: int = 2, progress: bool = True
                   ) -> dict[str, Any]:
    """Model inputs of a dataset, computed once and cached as ``DIR/nn_inputs.pt``.

    :return: ``{'x': float16 (n, n_rx, 2, n_bins), 'position_m': (n, 3), 'yaw_rad': (n,),
        'input_spec': dict, 'meta': dataset metadata}`` (tensors).
    """
    data_dir = Path(data_dir)
    cache = data_dir / CACHE_FILE
    meta, _ = dataset.load(data_dir)
    if cache.exists():
        cached = torch.load(cache, weights_only=True)
        if cached['meta'] == meta:
            return cached
    paths = [data_dir / f'chunk_{c:05d}.npz' for c in range(-(-meta['n_frames']
                                                             // meta['chunk_size']))]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ValueError(f'{data_dir} is incomplete ({len(missing)} chunks missing, e.g. '
                         f'{missing[0]}); finish it with echoloc simulate')
    parts = []
    with tqdm(total=meta['n_frames'], unit='frame', desc='features', disable=not progress) as bar:
        if workers <= 1:
            _init_worker(meta)
            for p in paths:
                parts.append(_chunk_inputs(p))
                bar.update(parts[-1][0].shape[0])
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker,
                                     initargs=(meta,)) as pool:
                for part in pool.map(_chunk_inputs, paths):
                    parts.append(part)
                    bar.update(part[0].shape[0])
    out = {'x': torch.from_numpy(np.concatenate([p[0] for p in parts])),
           'position_m': torch.from_numpy(np.concatenate([p[1] for p in parts])),
           'yaw_rad': torch.from_numpy(np.concatenate([p[2] for p in parts])),
           'input_spec': parts[0][3], 'meta': meta}
    torch.save(out, cache)
    return out


@dataclass
class Augment:
    """Per-sample augmentation of cached inputs (all off when a field is 0).

    :ivar noise_std: largest extra complex noise, in noise-floor units (1.0 = 3 dB less SNR).
    :ivar gain_db: std of each receiver's gain error, dB.
    :ivar jitter_s: std of the trigger jitter (applied as a common carrier phase), s.
    :ivar temperature_c: largest true-minus-assumed temperature, degC.
    :ivar temperature_p: fraction of samples with a temperature error.
    :ivar dead_channel_p: fraction of samples with one receiver replaced by noise.
    :ivar heading_noise_deg: std of the noise on the conditioning heading, deg.
    """

    noise_std: float = 1.0
    gain_db: float = 1.0
    jitter_s: float = 1e-6
    temperature_c: float = 3.0
    temperature_p: float = 0.3
    dead_channel_p: float = 0.05
    heading_noise_deg: float = 1.0

    def __call__(self, x: torch.Tensor, yaw: torch.Tensor, spec: dict[str, Any],
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented copies of a batch ``x (B, n_rx, 2, n)`` and ``yaw (B,)``."""
        b, r, _, n = x.shape
        x = x.clone()
        re, im = x[:, :, 0], x[:, :, 1]
        if self.temperature_c > 0 and self.temperature_p > 0:
            # Sound a bit faster or slower than assumed stretches every delay by c0 / c.
            t0 = 20.0
            dt = torch.empty(b).uniform_(-self.temperature_c, self.temperature_c, generator=gen)
            dt = dt * (torch.rand(b, generator=gen) < self.temperature_p)
            stretch = torch.tensor(speed_of_sound_mps(t0)) / (
                331.3 + 0.606 * (t0 + dt))                                   # (B,) k = c0/c
            times = torch.arange(n) * spec['bin_width_s']                     # (n,)
            src = torch.arange(n)[None] / stretch[:, None]                    # (B, n)
            lo = src.floor().clamp(0, n - 2).long()
            frac = (src - lo).clamp(0, 1)
            lo = lo[:, None].expand(b, r, n)

            def interp(v: torch.Tensor) -> torch.Tensor:
                a, c = v.gather(2, lo), v.gather(2, lo + 1)
                return a + (c - a) * frac[:, None]

            re, im = interp(re), interp(im)
            phase = (-2 * math.pi * spec['carrier_hz'] * times[None]
                     * (1 - 1 / stretch[:, None]))[:, None]                  # (B, 1, n)
            re, im = re * torch.cos(phase) - im * torch.sin(phase), \
                re * torch.sin(phase) + im * torch.cos(phase)
        if self.jitter_s > 0:
            phase = (2 * math.pi * spec['carrier_hz'] * self.jitter_s
                     * torch.randn(b, 1, 1, generator=gen))
            re, im = re * torch.cos(phase) - im * torch.sin(phase), \
                re * torch.sin(phase) + im * torch.cos(phase)
        if self.gain_db > 0:
            gain = 10 ** (self.gain_db * torch.randn(b, r, 1, generator=gen) / 20)
            re, im = re * gain, im * gain
        if self.noise_std > 0:
            std = self.noise_std * torch.rand(b, 1, 1, generator=gen) / math.sqrt(2)
            re = re + std * torch.randn(re.shape, generator=gen)
            im = im + std * torch.randn(im.shape, generator=gen)
        if self.dead_channel_p > 0:
            dead = torch.rand(b, generator=gen) < self.dead_channel_p
            which = torch.randint(0, r, (b,), generator=gen)
            mask = torch.zeros(b, r, 1, dtype=torch.bool)
            mask[dead, which[dead]] = True
            re = torch.where(mask, torch.randn(re.shape, generator=gen) / math.sqrt(2), re)
            im = torch.where(mask, torch.randn(im.shape, generator=gen) / math.sqrt(2), im)
        yaw = yaw + math.radians(self.heading_noise_deg) * torch.randn(b, generator=gen)
        return torch.stack([re, im], dim=2), yaw


def heading_input(yaw_rad: torch.Tensor) -> torch.Tensor:
    """``(B,)`` yaw -> ``(B, 2)`` cos, sin."""
    return torch.stack([torch.cos(yaw_rad), torch.sin(yaw_rad)], dim=-1)


def position_frame(room: Room, z_range_m: tuple[float, float]) -> tuple[list[float], float]:
    """Centre and scale of the model's outputs for a room: the plan's bounding box centre at
    mid height of the poses, and half the largest extent."""
    lo, hi = room.vertices_m.min(axis=0), room.vertices_m.max(axis=0)
    centre = [float(v) for v in (lo + hi) / 2] + [float(sum(z_range_m) / 2)]
    return centre, float(max(hi - lo) / 2)


def predict(model: EchoTransformer, x: torch.Tensor, yaw: torch.Tensor,
            batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Room-frame positions ``(n, 3)`` and covariances ``(n, 3, 3)`` for inputs ``x``."""
    means, covs = [], []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            m, c = model.position_covariance(x[i:i + batch_size].float(),
                                             heading_input(yaw[i:i + batch_size].float()))
            means.append(m)
            covs.append(c)
    return torch.cat(means), torch.cat(covs)


def _errors_cm(model: EchoTransformer, x: torch.Tensor, yaw: torch.Tensor,
               position: torch.Tensor) -> np.ndarray:
    mean, _ = predict(model, x, yaw)
    return 100 * torch.linalg.norm(mean - position, dim=1).numpy()


def train(data_dir: str | Path, out_ckpt: str | Path, room: Room,
          config: ModelConfig | str = 'tiny', epochs: int = 40, batch_size: int = 32,
          lr: float = 1e-3, weight_decay: float = 0.01, grad_clip: float = 1.0,
          val_fraction: float = 0.1, patience: int = 10, mse_warmup_epochs: int = 3,
          augment: Augment | None = None, seed: int = 0, resume: bool = True,
          max_minutes: float | None = None, workers: int = 2, progress: bool = True
          ) -> dict[str, Any]:
    """Train on a dataset; keep the best model by validation median error in ``out_ckpt``.

    AdamW with a cosine schedule (one-epoch linear warm-up), gradient clipping, Gaussian NLL
    (plus the squared error for the first ``mse_warmup_epochs``, so the mean moves before the
    covariance shrinks), early stopping after ``patience`` epochs without a better validation
    median. Training state goes to ``out_ckpt + '.state'`` after every epoch; with ``resume``
    a run continues from it.

    :param room: the dataset's room (its name must match the dataset's).
    :param config: a :class:`ModelConfig` or ``'tiny'``/``'base'``.
    :param max_minutes: stop after this much wall time (the best model so far is kept).
    :return: metrics: ``val_median_cm``, ``val_p95_cm``, ``epochs_run``, ``best_epoch``,
        ``seconds``, ``n_train``, ``n_val``, ``n_parameters``.
    """
    start = time.perf_counter()
    out_ckpt = Path(out_ckpt)
    data = extract_inputs(data_dir, workers=workers, progress=progress)
    meta = data['meta']
    if meta['room'] != room.name:
        raise ValueError(f'dataset {data_dir} is for room {meta["room"]!r}, not {room.name!r}')
    spec = data['input_spec']
    x, yaw, position = data['x'], data['yaw_rad'], data['position_m']
    n = x.shape[0]
    n_val = max(1, int(round(val_fraction * n)))
    if n - n_val < 1:
        raise ValueError(f'dataset {data_dir} has {n} frames: too few to train and validate')
    centre, scale = position_frame(room, tuple(meta['z_range_m']))
    if isinstance(config, str):
        config = ModelConfig.named(config)
    config = ModelConfig.from_dict({**config.to_dict(), 'n_receivers': int(x.shape[1]),
                                    'n_bins': int(x.shape[3]), 'position_centre_m': centre,
                                    'position_scale_m': scale})
    trained_for = TrainedFor(room=room.name, array=meta['array'], chirp=meta['chirp'],
                             input_spec=spec)
    torch.manual_seed(seed)
    model = EchoTransformer(config)
    augment = augment or Augment()
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-(n - n_val) // batch_size)
    total = epochs * steps_per_epoch

    def schedule(step: int) -> float:
        if step < steps_per_epoch:
            return (step + 1) / steps_per_epoch
        return 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    state_path = out_ckpt.with_name(out_ckpt.name + '.state')
    epoch0, best, best_epoch, history = 0, float('inf'), -1, []
    if resume and state_path.exists():
        state = torch.load(state_path, weights_only=True)
        if state['config'] != config.to_dict() or state['data_n'] != n:
            raise ValueError(f'{state_path} belongs to another model or dataset; delete it or '
                             'pass a new --out')
        model.load_state_dict(state['state_dict'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        gen.set_state(state['generator'])
        epoch0, best, best_epoch = state['epoch'] + 1, state['best'], state['best_epoch']
        history = state['history']
    train_idx = torch.arange(n - n_val)
    x_val, yaw_val, pos_val = x[n - n_val:], yaw[n - n_val:], position[n - n_val:]
    target = (position - torch.tensor(centre)) / scale
    epoch = epoch0 - 1
    for epoch in range(epoch0, epochs):
        model.train()
        order = train_idx[torch.randperm(train_idx.numel(), generator=gen)]
        losses = []
        bar = tqdm(range(0, order.numel(), batch_size), desc=f'epoch {epoch + 1}/{epochs}',
                   unit='batch', disable=not progress, leave=False)
        for i in bar:
            idx = order[i:i + batch_size]
            xb, yb = augment(x[idx].float(), yaw[idx], spec, gen)
            mean, chol = model(xb, heading_input(yb))
            loss = gaussian_nll(mean, chol, target[idx])
            if epoch < mse_warmup_epochs:
                loss = loss + 10 * ((mean - target[idx]) ** 2).sum(-1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss))
            bar.set_postfix(loss=f'{losses[-1]:.3f}')
        model.eval()
        err = _errors_cm(model, x_val, yaw_val, pos_val)
        median = float(np.median(err))
        history.append({'epoch': epoch, 'loss': float(np.mean(losses)), 'val_median_cm': median,
                        'val_p95_cm': float(np.percentile(err, 95))})
        if progress:
            tqdm.write(f'epoch {epoch + 1}: loss {history[-1]["loss"]:.3f}  val median '
                       f'{median:.2f} cm  p95 {history[-1]["val_p95_cm"]:.2f} cm')
        if median < best:
            best, best_epoch = median, epoch
            save_checkpoint(out_ckpt, model, trained_for, {'history': history})
        torch.save({'config': config.to_dict(), 'data_n': n, 'state_dict': model.state_dict(),
                    'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
                    'generator': gen.get_state(), 'epoch': epoch, 'best': best,
                    'best_epoch': best_epoch, 'history': history}, state_path)
        if epoch - best_epoch >= patience:
            break
        if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
            break
    best_model, _ = load_checkpoint(out_ckpt)
    err = _errors_cm(best_model, x_val, yaw_val, pos_val)
    return {'val_median_cm': float(np.median(err)), 'val_p95_cm': float(np.percentile(err, 95)),
            'epochs_run': epoch + 1, 'best_epoch': best_epoch + 1,
            'seconds': round(time.perf_counter() - start, 1), 'n_train': n - n_val,
            'n_val': n_val, 'n_parameters': sum(p.numel() for p in model.parameters()),
            'config': config.to_dict(), 'augment': asdict(augment)}
