"""The neural localizer at run time: a trained checkpoint behind the physics localizer's API.

``NeuralLocalizer.localize(features, yaw_rad, temperature_c)`` returns the same
:class:`~echoloc_ros.core.physics_localizer.Estimate` as the physics method. Optimization levels:

- ``accurate`` and ``balanced``: the float model.
- ``fast``: dynamic int8 quantization of every ``nn.Linear`` (weights int8, activations
  quantized on the fly); the CNN front end stays float.

:func:`combine` is the hybrid the measurements favour (docs/model.md): the physics fix where the
network's covariance admits it (physics is ~100x more precise when it picks the right
candidate), the network's fix where it does not (physics' gross errors).
"""

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor
from echoloc_ros.core.model import TrainedFor, load_checkpoint
from echoloc_ros.core.physics_localizer import Estimate, PhysicsLocalizer
from echoloc_ros.core.room import Room
from echoloc_ros.core.training import frame_inputs, heading_input

OPTIMIZATION_LEVELS = ('fast', 'balanced', 'accurate')
# Physics fixes farther than this (squared Mahalanobis distance under the network's
# covariance) from the network's are treated as physics' gross errors: chi2(3) at 0.999.
GATE_CHI2 = float(stats.chi2.ppf(0.999, 3))


def quantize(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of the model's ``nn.Linear`` layers (a copy)."""
    with warnings.catch_warnings():
        # torch 2.13 marks torch.ao.quantization deprecated in favour of torchao, which is not
        # a dependency; the eager API still works and is what we measure.
        warnings.simplefilter('ignore')
        from torch.ao.quantization import quantize_dynamic
        # The encoder's fused fast path reads float weights; quantized layers need the plain
        # path (process-wide switch; the float path gives the same numbers).
        torch.backends.mha.set_fastpath_enabled(False)
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


class NeuralLocalizer:
    """A trained :class:`~echoloc_ros.core.model.EchoTransformer` for one room and array.

    :param model: the network (eval mode).
    :param checkpoint: its checkpoint dict (input spec, trained-for metadata).
    :param device: ``'cpu'`` or ``'cuda'``.
    """

    def __init__(self, model: nn.Module, checkpoint: dict[str, Any], device: str = 'cpu'
                 ) -> None:
        self.model = model
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self.config = model.config
        self.input_spec = checkpoint.get('input_spec', {})

    @classmethod
    def from_checkpoint(cls, path: str | Path, room: Room, array: ArrayGeometry, chirp: Chirp,
                        device: str = 'cpu', optimization_level: str = 'balanced',
                        num_threads: int | None = 1) -> 'NeuralLocalizer':
        """Load a checkpoint for ``room``/``array``/``chirp``.

        :param optimization_level: ``'fast'`` (int8 dynamic quantization, CPU only),
            ``'balanced'`` or ``'accurate'`` (float).
        :param num_threads: torch intra-op threads; ``None`` leaves torch's setting.
        :raises ValueError: unreadable checkpoint, another room/array/chirp, unknown level or
            device.
        """
        if optimization_level not in OPTIMIZATION_LEVELS:
            raise ValueError(f'optimization_level must be one of {OPTIMIZATION_LEVELS}, got '
                             f'{optimization_level!r}')
        if device not in ('cpu', 'cuda'):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if device == 'cuda' and not torch.cuda.is_available():
            raise ValueError('device cuda requested but torch sees no CUDA device')
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        expect = TrainedFor(room=room.name, array=array.to_dict(), chirp=chirp.to_dict())
        model, ckpt = load_checkpoint(path, expect, map_location=device)
        config = model.config
        if optimization_level == 'fast' and device == 'cpu':
            model = quantize(model)
            model.config = config
        return cls(model.to(device), ckpt, device)

    def _check(self, features: EchoFeatures) -> None:
        n_in = self.input_spec.get('n_bins_in')
        if n_in is not None and features.baseband.shape[1] != n_in:
            raise ValueError(f'features have {features.baseband.shape[1]} bins per channel; the '
                             f'model was trained on {n_in}')
        if features.n_channels != self.config.n_receivers:
            raise ValueError(f'features have {features.n_channels} channels; the model expects '
                             f'{self.config.n_receivers}')

    def predict_inputs(self, x: np.ndarray, yaw_rad: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(B, 3)`` m and covariances ``(B, 3, 3)`` m^2 from model inputs.

        :param x: ``(B, n_receivers, 2, n_bins)`` from :func:`training.frame_inputs`.
        :param yaw_rad: ``(B,)``.
        """
        with torch.inference_mode():
            xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
            yaw = torch.as_tensor(np.asarray(yaw_rad, dtype=np.float32), device=self.device)
            mean, chol = self.model(xt, heading_input(yaw))
            scale = self.config.position_scale_m
            centre = np.asarray(self.config.position_centre_m)
            position = centre + scale * mean.double().cpu().numpy()
            chol = chol.double().cpu().numpy()
        return position, scale ** 2 * chol @ np.swapaxes(chol, 1, 2)

    def localize(self, features: EchoFeatures, yaw_rad: float,
                 temperature_c: float | None = None) -> Estimate:
        """One fix, as :meth:`PhysicsLocalizer.localize` gives it.

        :param temperature_c: accepted for the common API; the model was trained at the room's
            temperature and learned the spread around it.
        """
        return self.localize_batch([features], np.array([yaw_rad]))[0]

    def localize_batch(self, features: list[EchoFeatures], yaw_rad: np.ndarray,
                       temperature_c: float | None = None) -> list[Estimate]:
        """Fixes of several frames in one forward pass."""
        for f in features:
            self._check(f)
        x = np.stack([frame_inputs(f, self.config.n_bins) for f in features])
        position, cov = self.predict_inputs(x, np.asarray(yaw_rad, dtype=float))
        sigma = np.sqrt(np.trace(cov, axis1=1, axis2=2))
        return [Estimate(position_m=p, covariance_m2=c, speed_of_sound_mps=float('nan'),
                         confidence=float(np.exp(-s / 0.05)), score=0.0, n_echoes=0,
                         candidates_m=p[None])
                for p, c, s in zip(position, cov, sigma)]


def combine(nn_estimate: Estimate, physics_estimate: Estimate) -> tuple[Estimate, bool]:
    """The physics fix if the network's covariance admits it, else the network's.

    :return: ``(estimate, used_physics)``.
    """
    d = physics_estimate.position_m - nn_estimate.position_m
    m2 = float(d @ np.linalg.solve(nn_estimate.covariance_m2, d))
    if m2 <= GATE_CHI2:
        return physics_estimate, True
    return nn_estimate, False


def compare_on_dataset(ckpt_path: str | Path, data_dir: str | Path, room: Room,
                       array: ArrayGeometry, chirp: Chirp, heading_noise_deg: float = 1.0,
                       seed: int = 0, n: int | None = None, physics: bool = True,
                       optimization_level: str = 'balanced', progress: bool = True
                       ) -> dict[str, Any]:
    """NN, physics and their combination on a simulated dataset's frames, side by side.

    Every method gets the same features and the same noisy heading (true yaw plus
    ``N(0, heading_noise_deg)``).

    :return: ``{'nn': metrics, 'physics': metrics, 'hybrid': metrics, 'n': ...}`` with
        :func:`evaluation.error_metrics` plus latency; ``errors`` arrays under ``'_raw'``.
    """
    from tqdm import tqdm

    from echoloc_ros.core import dataset
    from echoloc_ros.core.evaluation import error_metrics
    meta, chunks = dataset.load(data_dir)
    if meta['room'] != room.name:
        raise ValueError(f'dataset {data_dir} is for room {meta["room"]!r}, not {room.name!r}')
    nn_loc = NeuralLocalizer.from_checkpoint(ckpt_path, room, array, chirp,
                                             optimization_level=optimization_level)
    processor = EchoProcessor(chirp, meta['fs_hz'], array=array)
    phys = PhysicsLocalizer(room, array, chirp, meta['fs_hz'], processor=processor)
    rng = np.random.default_rng(seed)
    chi2_95 = stats.chi2.ppf(0.95, 3)
    total = min(n or meta['n_frames'], meta['n_frames'])
    rows: dict[str, list] = {k: [] for k in ('nn', 'physics', 'hybrid')}
    lat: dict[str, list] = {'nn': [], 'physics': []}
    truth, used_physics = [], []
    bar = tqdm(total=total, desc='evaluate', unit='frame', disable=not progress)
    for chunk in chunks:
        for samples, position, yaw in zip(chunk['samples'], chunk['position_m'],
                                          chunk['yaw_rad']):
            if len(truth) >= total:
                break
            yaw_given = yaw + np.radians(heading_noise_deg) * rng.standard_normal()
            features = processor.process(samples)
            t0 = time.perf_counter()
            est_nn = nn_loc.localize(features, yaw_given)
            t1 = time.perf_counter()
            lat['nn'].append(1e3 * (t1 - t0))
            rows['nn'].append(est_nn)
            if physics:
                est_ph = phys.localize(features, yaw_given, room.temperature_c)
                lat['physics'].append(1e3 * (time.perf_counter() - t1))
                rows['physics'].append(est_ph)
                hybrid, used = combine(est_nn, est_ph)
                rows['hybrid'].append(hybrid)
                used_physics.append(used)
            truth.append(position)
            bar.update(1)
        if len(truth) >= total:
            break
    bar.close()
    truth = np.array(truth)
    out: dict[str, Any] = {'n': len(truth), 'heading_noise_deg': heading_noise_deg,
                           'scenario': meta['scenario'], 'room': room.name, '_raw': {}}
    for name, estimates in rows.items():
        if not estimates:
            continue
        pos = np.array([e.position_m for e in estimates])
        err = pos - truth
        inside = np.array([e @ np.linalg.solve(est.covariance_m2, e) <= chi2_95
                           for e, est in zip(err, estimates)])
        errors = np.linalg.norm(err, axis=1)
        metrics = error_metrics(errors, inside)
        if name in lat:
            metrics['latency_ms_p50'] = float(np.percentile(lat[name], 50))
            metrics['latency_ms_p95'] = float(np.percentile(lat[name], 95))
        if name == 'hybrid':
            metrics['physics_fraction'] = float(np.mean(used_physics))
        out[name] = metrics
        out['_raw'][name] = {'errors_m': errors, 'inside_95': inside, 'position_m': pos}
    out['_raw']['truth_m'] = truth
    return out
