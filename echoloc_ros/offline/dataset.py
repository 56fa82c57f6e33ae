"""Simulated training and evaluation data: chunked, reproducible from the seed, resumable.

A dataset directory holds ``dataset.json`` (room, array, chirp, scenario, sizes, seed) and
``chunk_00000.npz`` ... each with ``samples`` int16 ``(n, n_channels, n_samples)``,
``position_m`` ``(n, 3)``, ``yaw_rad`` ``(n,)``, ``index`` ``(n,)``. Frame ``i`` draws its
pose and noise from ``default_rng([seed, i])``, so the data do not depend on how many
workers made them or in which order, and an interrupted run resumes where it stopped.
"""
import dataclasses
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
from threadpoolctl import threadpool_limits

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import Room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

META_FILE = 'dataset.json'


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything that determines a dataset's contents.

    :param margin_m: closest a pose comes to a wall [m].
    :param z_range_m: array heights drawn uniformly [m].
    """

    room: Room
    array: ArrayGeometry
    chirp: Chirp
    scenario: Scenario
    n_frames: int
    seed: int
    fs_hz: float = 250e3
    chunk_size: int = 256
    margin_m: float = 0.4
    z_range_m: tuple[float, float] = (0.2, 1.2)

    def metadata(self) -> dict:
        scenario = dataclasses.asdict(self.scenario)
        if self.scenario.hardware is not None:
            scenario['hardware'] = self.scenario.hardware.summary()
        scenario['clutter'] = [dataclasses.asdict(b) | {'min_m': list(b.min_m),
                                                        'max_m': list(b.max_m)}
                               for b in self.scenario.clutter]
        return {'room': self.room.name, 'array': self.array.to_dict(),
                'chirp': self.chirp.to_dict(), 'scenario': scenario,
                'n_frames': self.n_frames, 'seed': self.seed, 'fs_hz': self.fs_hz,
                'chunk_size': self.chunk_size, 'margin_m': self.margin_m,
                'z_range_m': list(self.z_range_m), 'format': 1}

    def n_chunks(self) -> int:
        return -(-self.n_frames // self.chunk_size)

    def start_worker(self) -> None:
        """Set up a process that writes chunks."""
        global _worker_sim
        _worker_sim = EchoSimulator(self.room, self.array, self.chirp, fs_hz=self.fs_hz)

    def write_chunk(self, chunk: int, out_dir: Path) -> int:
        """Write chunk ``chunk``; return its number of frames."""
        indices = range(chunk * self.chunk_size,
                        min((chunk + 1) * self.chunk_size, self.n_frames))
        frames = [simulate_frame(_worker_sim, self, i) for i in indices]
        save_chunk(out_dir, chunk, samples=np.stack([f[0] for f in frames]),
                   position_m=np.stack([f[1] for f in frames]),
                   yaw_rad=np.array([f[2] for f in frames]), index=np.array(indices))
        return len(indices)


_worker_sim: EchoSimulator | None = None


def _init_worker(spec) -> None:
    # One thread per worker process: the workers are the parallelism.
    os.environ['OMP_NUM_THREADS'] = '1'
    threadpool_limits(1)
    spec.start_worker()


def simulate_frame(sim: EchoSimulator, spec: DatasetSpec, index: int
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """Frame ``index`` of the dataset: int16 samples, position, yaw."""
    rng = np.random.default_rng([spec.seed, index])
    position, yaw = spec.room.random_pose(rng, margin_m=spec.margin_m, z_range_m=spec.z_range_m)
    return sim.simulate(position, yaw, scenario=spec.scenario, rng=rng), position, yaw


def save_chunk(out_dir: Path, chunk: int, **arrays: np.ndarray) -> None:
    """Write ``chunk_NNNNN.npz`` atomically: a chunk is there whole or not at all, so
    resuming redoes only the missing ones."""
    path = Path(out_dir) / f'chunk_{chunk:05d}.npz'
    tmp = path.with_suffix('.tmp.npz')
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _make_chunk(spec, chunk: int, out_dir: Path) -> int:
    return spec.write_chunk(chunk, out_dir)


def generate(spec, out_dir: Path, workers: int = 2, progress: bool = True,
             desc: str = 'simulate') -> dict:
    """Write the dataset (or the chunks still missing) to ``out_dir``; return its metadata.

    :param spec: a :class:`DatasetSpec`, or any spec with the same ``metadata``, ``n_frames``,
        ``chunk_size``, ``n_chunks``, ``start_worker`` and ``write_chunk``.

    :raises ValueError: ``out_dir`` holds a different dataset.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = spec.metadata()
    meta_path = out_dir / META_FILE
    if meta_path.exists():
        existing = json.loads(meta_path.read_text())
        if existing != meta:
            changed = sorted(k for k in meta if existing.get(k) != meta[k])
            raise ValueError(f'{out_dir} holds another dataset (differs in {changed}); '
                             'choose a new --out')
    else:
        meta_path.write_text(json.dumps(meta, indent=1))
    todo = [c for c in range(spec.n_chunks()) if not (out_dir / f'chunk_{c:05d}.npz').exists()]
    from tqdm import tqdm
    done = spec.n_frames - sum(min(spec.chunk_size, spec.n_frames - c * spec.chunk_size)
                               for c in todo)
    with tqdm(total=spec.n_frames, initial=done, unit='frame', disable=not progress,
              desc=desc) as bar:
        if workers <= 1:
            _init_worker(spec)
            for c in todo:
                bar.update(_make_chunk(spec, c, out_dir))
        else:
            with ProcessPoolExecutor(workers, initializer=_init_worker,
                                     initargs=(spec,)) as pool:
                for n in pool.map(_make_chunk, [spec] * len(todo), todo,
                                  [out_dir] * len(todo)):
                    bar.update(n)
    return meta


def load(out_dir: Path) -> tuple[dict, Iterator[dict]]:
    """Metadata and an iterator over chunks (dicts of arrays), in frame order."""
    out_dir = Path(out_dir)
    meta = json.loads((out_dir / META_FILE).read_text())

    def chunks():
        for c in range(-(-meta['n_frames'] // meta['chunk_size'])):
            path = out_dir / f'chunk_{c:05d}.npz'
            if not path.exists():
                raise ValueError(f'{path} is missing: the dataset is incomplete; run '
                                 'echoloc simulate again with the same arguments to finish it')
            with np.load(path) as data:
                yield {k: data[k] for k in data.files}

    return meta, chunks()
