"""Training data and training for the candidate ranker (:mod:`echoloc_ros.core.model`).

Data: each example is one simulated frame run through the echo processor and the physics
localizer's :meth:`~PhysicsLocalizer.propose`, stored as the candidates' aligned echoes
(:func:`~echoloc_ros.core.nn_features.candidate_echoes`) with the candidates' positions and the
truth. The
world is randomised per frame (domain randomisation), so the network meets in training what
physics gets wrong in use: SNR, furniture moved from where the room file has it, panels not
in the file, heading error, temperature, receiver gain mismatch and a dead receiver. Frame
``i`` draws everything from ``default_rng([seed, i])``; chunks are written whole and a rerun
resumes (:func:`echoloc_ros.offline.dataset.generate`).

Training: AdamW, linear warm-up then cosine, gradient clipping, early stopping on the
validation rate of wrong choices, augmentation (a random reflection phase per path, receiver
gain jitter), resume from ``OUT.state``, then a temperature fitted on the validation set so
that the probabilities, and the covariance built from them, are calibrated.
"""
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from echoloc_ros.offline import dataset
from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.model import (CandidateRanker, ModelConfig, TrainedFor, model_inputs,
                                    save_checkpoint)
from echoloc_ros.core.nn_features import LAGS_S, candidate_example
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import Room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

# A candidate within this distance of the truth is a right one (the gross-error threshold).
LABEL_RADIUS_M = 0.10
#: The last this share of a dataset's frames validates the training (and is never trained on).
VAL_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class CandidateSpec:
    """Everything that determines a candidate dataset; ranges are drawn uniformly per frame.

    :ivar snr_db: SNR range, dB.
    :ivar furniture_shift_m: furniture moved by up to this on each axis ...
    :ivar p_moved: ... in this fraction of frames (the rest: as in the room file).
    :ivar p_known: fraction of the frames with moved furniture in which the proposer is told
        where it stands (the room file brought up to date); in the rest it has the room file's.
    :ivar heading_noise_deg: range of the heading error's standard deviation (the localizer is
        told it), deg.
    :ivar temperature_spread_c: true temperature within this of the room file's, degC.
    :ivar gain_mismatch_db: range of the receivers' gain error std, dB.
    :ivar p_dead: fraction of frames with one dead receiver.
    :ivar p_clutter: fraction of frames with one or two panels not in the room file.
    :ivar optimization_level: of the physics localizer that proposes the candidates.
    :ivar n_rescan: its ``n_rescan`` (the network, not the evidence, chooses: more candidates
        from the weaker axis raise the chance that the right one is among them).
    :ivar n_candidates: candidate slots per frame.
    :ivar general: the room-independent input
        (:func:`~echoloc_ros.core.nn_features.candidate_example`).
    """

    room: Room
    array: ArrayGeometry
    chirp: Chirp
    n_frames: int
    seed: int
    fs_hz: float = 250e3
    chunk_size: int = 128
    margin_m: float = 0.4
    z_range_m: tuple[float, float] = (0.2, 1.2)
    snr_db: tuple[float, float] = (5.0, 25.0)
    furniture_shift_m: float = 1.0
    p_moved: float = 0.8
    p_known: float = 0.5
    heading_noise_deg: tuple[float, float] = (0.2, 2.0)
    temperature_spread_c: float = 5.0
    gain_mismatch_db: tuple[float, float] = (0.0, 1.0)
    p_dead: float = 0.05
    p_clutter: float = 0.3
    optimization_level: str = 'balanced'
    n_rescan: int = 10
    n_candidates: int = 12
    general: bool = False

    def __post_init__(self) -> None:
        if min(self.n_candidates, self.n_rescan) < 1:
            raise ValueError(f'n_candidates and n_rescan must be >= 1, got '
                             f'{self.n_candidates} and {self.n_rescan}')

    def metadata(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in ('room', 'array', 'chirp')}
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        if not self.general:
            del values['general']     # a per-room dataset's metadata as before the option
        return {'kind': 'candidates', 'room': self.room.name, 'array': self.array.to_dict(),
                'chirp': self.chirp.to_dict(), 'lags_s': LAGS_S.tolist(), **values,
                'format': 1}

    def n_chunks(self) -> int:
        return -(-self.n_frames // self.chunk_size)

    def start_worker(self) -> None:
        global _worker
        _worker = _Worker(self)

    def write_chunk(self, chunk: int, out_dir: Path) -> int:
        indices = range(chunk * self.chunk_size,
                        min((chunk + 1) * self.chunk_size, self.n_frames))
        examples = [_worker.example(i) for i in indices]
        dataset.save_chunk(out_dir, chunk, index=np.array(indices),
                           **{k: np.stack([e[k] for e in examples]) for k in examples[0]})
        return len(indices)


class _Worker:
    """Simulator, processor and physics localizer of one data-making process."""

    def __init__(self, spec: CandidateSpec) -> None:
        self.spec = spec
        self.simulator = EchoSimulator(spec.room, spec.array, spec.chirp, spec.fs_hz)
        self.processor = EchoProcessor(spec.chirp, spec.fs_hz, array=spec.array)
        self.localizer = PhysicsLocalizer(spec.room, spec.array, spec.chirp, spec.fs_hz,
                                          processor=self.processor,
                                          optimization_level=spec.optimization_level,
                                          n_rescan=spec.n_rescan)

    def example(self, index: int) -> dict[str, np.ndarray]:
        spec = self.spec
        rng = np.random.default_rng([spec.seed, index])
        furniture = None
        if spec.room.furniture and rng.random() < spec.p_moved:
            furniture = spec.room.rearranged(rng, spec.furniture_shift_m)
        world = (spec.room if furniture is None
                 else dataclasses.replace(spec.room, furniture=furniture))
        localizer = self.localizer
        if furniture is not None and rng.random() < spec.p_known:
            localizer = localizer.with_room(world)
        n_rx = spec.array.n_receivers
        scenario = Scenario(
            snr_db=rng.uniform(*spec.snr_db),
            temperature_c=spec.room.temperature_c + rng.uniform(-1, 1)
            * spec.temperature_spread_c,
            gain_mismatch_db=rng.uniform(*spec.gain_mismatch_db),
            dead_channel=int(rng.integers(n_rx)) if rng.random() < spec.p_dead else None,
            n_random_clutter=int(rng.integers(1, 3)) if rng.random() < spec.p_clutter else 0,
            furniture=furniture)
        samples, position, yaw = self.simulator.simulate_random_pose(
            world, scenario, rng, spec.margin_m, spec.z_range_m)
        features = self.processor.process(samples)
        heading_std = np.deg2rad(rng.uniform(*spec.heading_noise_deg))
        yaw_told = yaw + heading_std * rng.standard_normal()
        try:
            proposal = localizer.propose(features, yaw_told, yaw_std_rad=heading_std)
        except ValueError:
            proposal = None    # no floor or ceiling echo: no candidate, "none" is the answer
        return candidate_example(localizer, proposal, spec.n_candidates, position,
                                 general=spec.general)


_worker: _Worker | None = None


def labels(position_m: torch.Tensor, truth_m: torch.Tensor, present: torch.Tensor,
           radius_m: float = LABEL_RADIUS_M) -> torch.Tensor:
    """Index of the present candidate nearest the truth if within ``radius_m``, else ``M``
    ("none")."""
    d = torch.linalg.norm(position_m - truth_m[:, None], dim=-1).masked_fill(~present, 1e9)
    best = d.argmin(dim=1)
    none = d.gather(1, best[:, None])[:, 0] > radius_m
    return torch.where(none, torch.full_like(best, position_m.shape[1]), best)


def load_examples(data_dir: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """All examples of a candidate dataset as tensors (echoes stay float16)."""
    meta, chunks = dataset.load(Path(data_dir))
    if meta.get('kind') != 'candidates':
        raise ValueError(f'{data_dir} is not a candidate dataset (make one with echoloc fit or '
                         'training.CandidateSpec)')
    parts: dict[str, list] = {}
    for chunk in chunks:
        for k, v in chunk.items():
            parts.setdefault(k, []).append(v)
    return meta, {k: torch.from_numpy(np.concatenate(v)) for k, v in parts.items()}


def _augment(echo: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random reflection phase per (frame, path), shared by every candidate, receiver and
    lag, and a receiver gain error of about 0.5 dB: what the physics cannot know either."""
    b, _, p, r = echo.shape[:4]
    phase = 2 * math.pi * torch.rand(b, 1, p, 1, 1, generator=generator)
    gain = torch.exp(0.06 * torch.randn(b, 1, 1, r, 1, generator=generator))
    c, s = torch.cos(phase) * gain, torch.sin(phase) * gain
    re, im = echo[..., 0], echo[..., 1]
    return torch.stack([re * c - im * s, re * s + im * c], dim=-1)


def evaluate_choices(model: CandidateRanker, data: dict[str, torch.Tensor],
                     temperature: float = 1.0, batch_size: int = 256) -> dict[str, Any]:
    """Logits, and how often the chosen candidate is wrong, for the network and for physics."""
    model.eval()
    logits = []
    with torch.inference_mode():
        for i in range(0, len(data['present']), batch_size):
            batch = {k: v[i:i + batch_size] for k, v in data.items()}
            logits.append(model(*model_inputs(batch)) / temperature)
    logits = torch.cat(logits)
    target = labels(data['position_m'], data['truth_m'].float(), data['present'])
    m = data['present'].shape[1]
    choice = logits[:, :m].argmax(dim=1)
    error = torch.linalg.norm(data['position_m'][torch.arange(len(choice)), choice]
                              - data['truth_m'].float(), dim=1)
    physics = torch.linalg.norm(data['position_m'][:, 0] - data['truth_m'].float(), dim=1)
    return {'logits': logits, 'target': target,
            'nll': float(F.cross_entropy(logits, target)),
            'wrong': float(torch.mean((error > LABEL_RADIUS_M).float())),
            'physics_wrong': float(torch.mean((physics > LABEL_RADIUS_M).float())),
            'none_rate': float(torch.mean((target == m).float()))}


def fit_temperature(logits: torch.Tensor, target: torch.Tensor) -> float:
    """The softmax temperature that minimises the validation NLL (golden-section search on
    log T in [-2, 2])."""
    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / math.exp(log_t), target))
    a, b = -2.0, 2.0
    g = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = b - g * (b - a), a + g * (b - a)
        if nll(c) < nll(d):
            b = d
        else:
            a = c
    return math.exp(0.5 * (a + b))


def validation_frames(data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The frames :func:`train` validates on (and does not train on) of a dataset's examples
    (:func:`load_examples`): the last :data:`VAL_FRACTION` of them."""
    return _split(data, VAL_FRACTION, 'the examples')[1]


def _split(data: dict, val_fraction: float, data_dir) -> tuple[dict, dict]:
    """The examples for training and the last ``val_fraction`` of them for validation."""
    n = len(data['present'])
    n_val = max(1, int(round(val_fraction * n)))
    if n - n_val < 1:
        raise ValueError(f'dataset {data_dir} has {n} frames; need at least 2')
    return ({k: v[:n - n_val] for k, v in data.items()},
            {k: v[n - n_val:] for k, v in data.items()})


def _resume(state_path: Path, config: ModelConfig, model, optimizer,
            scheduler) -> tuple[list, dict, int]:
    """Load an interrupted run's state; return its history, best epoch and next epoch."""
    state = torch.load(state_path, weights_only=True)
    if state.get('config') != config.to_dict():
        raise ValueError(f'{state_path} is the state of another model configuration '
                         f'({state.get("config")}); delete it or do not resume')
    model.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    scheduler.load_state_dict(state['scheduler'])
    return state['history'], state['best'], state['epoch'] + 1


def _train_epoch(model, optimizer, scheduler, train_data: dict, target, batch_size: int,
                 generator, desc: str, progress: bool) -> list[float]:
    """One pass over the training examples in a random order; return each batch's loss."""
    from tqdm import tqdm
    model.train()
    n_train = len(train_data['present'])
    order = torch.randperm(n_train, generator=generator)
    losses = []
    bar = tqdm(range(-(-n_train // batch_size)), desc=desc, unit='batch', disable=not progress,
               leave=False)
    for s in bar:
        idx = order[s * batch_size:(s + 1) * batch_size]
        batch = {k: v[idx] for k, v in train_data.items()}
        batch['echo'] = _augment(batch['echo'].float(), generator)
        loss = F.cross_entropy(model(*model_inputs(batch)), target[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f'{np.mean(losses[-50:]):.3f}')
    return losses


def training_provenance(meta: dict, n_train: int, n_val: int) -> dict[str, Any]:
    """What a checkpoint records of the data it was trained on: the dataset's rooms (a general
    dataset's list, else its one room), frames, seed, SNR range and proposer, and how many
    frames trained and validated."""
    return {'rooms': list(meta.get('rooms', [meta['room']])), 'n_frames': int(meta['n_frames']),
            'seed': int(meta['seed']), 'snr_db': list(meta['snr_db']),
            'optimization_level': meta['optimization_level'], 'train_frames': n_train,
            'val_frames': n_val}


def _warmup_cosine(optimizer, steps_per_epoch: int, epochs: int):
    """The learning rate rises over the first epoch, then falls on a half cosine to zero."""
    total = epochs * steps_per_epoch

    def schedule(step: int) -> float:
        if step < steps_per_epoch:
            return (step + 1) / steps_per_epoch
        return 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def _calibrate(out_ckpt, val_data: dict, trained_for: TrainedFor,
               extra: dict) -> tuple[Any, dict, float]:
    """Calibrate the best model's probabilities on the validation frames and save it (with
    ``extra``: the history and the data's provenance).

    :return: the model, its calibrated validation result and its temperature.
    """
    from echoloc_ros.core.model import load_checkpoint
    model, _ = load_checkpoint(out_ckpt)
    result = evaluate_choices(model, val_data)
    temperature = fit_temperature(result['logits'], result['target'])
    calibrated = evaluate_choices(model, val_data, temperature)
    save_checkpoint(out_ckpt, model, trained_for, {**extra, 'temperature': temperature})
    return model, calibrated, temperature


def train(data_dir: str | Path, out_ckpt: str | Path, room: Room | None, size: str = 'tiny',
          epochs: int = 30, batch_size: int = 64, lr: float = 2e-3, patience: int = 6,
          seed: int = 0, resume: bool = True, max_minutes: float | None = None,
          val_fraction: float = VAL_FRACTION, progress: bool = True) -> dict[str, Any]:
    """Train a ranker on a candidate dataset; write the best checkpoint to ``out_ckpt``.

    :param room: the dataset's room; ``None`` for a room-independent dataset (made by
        :class:`~echoloc_ros.offline.general_training.GeneralCandidateSpec`), whose model is
        room-independent too.

    :return: metrics of the best epoch (validation rate of wrong choices, physics' rate on
        the same frames, NLL, temperature, epochs, seconds).
    """
    start = time.perf_counter()
    meta, data = load_examples(data_dir)
    general = bool(meta.get('general', False))
    if not general and (room is None or meta['room'] != room.name):
        raise ValueError(f'dataset {data_dir} is for room {meta["room"]!r}, not '
                         f'{getattr(room, "name", None)!r}')
    train_data, val_data = _split(data, val_fraction, data_dir)
    n_train, n_val = len(train_data['present']), len(val_data['present'])
    target = labels(train_data['position_m'], train_data['truth_m'].float(),
                    train_data['present'])
    _, m, p, r, w, _ = data['echo'].shape
    config = ModelConfig.named(size, n_receivers=r, n_paths=p, n_lags=w, n_candidates=m,
                               room_independent=general)
    torch.manual_seed(seed)
    model = CandidateRanker(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    scheduler = _warmup_cosine(optimizer, -(-n_train // batch_size), epochs)
    state_path = Path(str(out_ckpt) + '.state')
    history: list[dict] = []
    best = {'wrong': float('inf'), 'nll': float('inf')}
    epoch0 = 0
    if resume and state_path.exists():
        history, best, epoch0 = _resume(state_path, config, model, optimizer, scheduler)
    generator = torch.Generator().manual_seed(seed + epoch0)
    trained_for = TrainedFor(room=meta['room'], array=meta['array'], chirp=meta['chirp'],
                             input_spec={'lags_s': meta['lags_s'],
                                         'optimization_level': meta['optimization_level'],
                                         'n_rescan': meta.get('n_rescan'),
                                         'n_candidates': m})
    provenance = {'training_data': training_provenance(meta, n_train, n_val)}
    stale = 0 if not history else len(history) - 1 - min(
        range(len(history)), key=lambda i: (history[i]['wrong'], history[i]['nll']))
    for epoch in range(epoch0, epochs):
        losses = _train_epoch(model, optimizer, scheduler, train_data, target, batch_size,
                              generator, f'epoch {epoch + 1}/{epochs}', progress)
        result = evaluate_choices(model, val_data)
        row = {'epoch': epoch + 1, 'train_loss': float(np.mean(losses)),
               'nll': result['nll'], 'wrong': result['wrong'],
               'physics_wrong': result['physics_wrong']}
        history.append(row)
        if progress:
            print(f'epoch {epoch + 1}: loss {row["train_loss"]:.4f} val nll {row["nll"]:.4f} '
                  f'wrong {row["wrong"]:.4f} (physics {row["physics_wrong"]:.4f})', flush=True)
        if (row['wrong'], row['nll']) < (best['wrong'], best['nll']):
            best = dict(row)
            stale = 0
            save_checkpoint(out_ckpt, model, trained_for, {'history': history, **provenance})
        else:
            stale += 1
        torch.save({'config': config.to_dict(), 'model': model.state_dict(),
                    'optimizer': optimizer.state_dict(),
                    'scheduler': scheduler.state_dict(), 'history': history, 'best': best,
                    'epoch': epoch}, state_path)
        out_of_time = (max_minutes is not None
                       and time.perf_counter() - start > 60 * max_minutes)
        if stale >= patience or out_of_time:
            break
    model, calibrated, temperature = _calibrate(out_ckpt, val_data, trained_for,
                                                {'history': history, **provenance})
    return {'val_wrong': best['wrong'], 'val_physics_wrong': best['physics_wrong'],
            'val_nll': calibrated['nll'], 'temperature': temperature,
            'best_epoch': best.get('epoch'), 'epochs': len(history),
            'train_frames': n_train, 'val_frames': n_val,
            'parameters': sum(p.numel() for p in model.parameters()),
            'seconds': round(time.perf_counter() - start, 1)}
