import numpy as np
import pytest

from echoloc_ros.offline import dataset
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import Scenario


def _spec(seed=3, snr_db=20.0):
    return dataset.DatasetSpec(load_room('default_room'), load_array('square_4sensor'), Chirp(),
                               Scenario(snr_db=snr_db), n_frames=7, seed=seed, chunk_size=3)


def _read(path):
    meta, chunks = dataset.load(path)
    return meta, [c for c in chunks]


def test_same_seed_same_bytes_whatever_the_workers_and_resumes(tmp_path):
    dataset.generate(_spec(), tmp_path / 'a', workers=1, progress=False)
    dataset.generate(_spec(), tmp_path / 'b', workers=2, progress=False)
    meta_a, a = _read(tmp_path / 'a')
    _, b = _read(tmp_path / 'b')
    assert meta_a['n_frames'] == 7 and [len(c['index']) for c in a] == [3, 3, 1]
    for ca, cb in zip(a, b):
        for key in ca:
            assert np.array_equal(ca[key], cb[key]), key
    # Losing a chunk and running again rebuilds exactly that chunk.
    (tmp_path / 'a' / 'chunk_00001.npz').unlink()
    with pytest.raises(ValueError, match='incomplete'):
        _read(tmp_path / 'a')
    dataset.generate(_spec(), tmp_path / 'a', workers=1, progress=False)
    _, again = _read(tmp_path / 'a')
    assert np.array_equal(again[1]['samples'], b[1]['samples'])


def test_labels_are_inside_the_room_and_distinct():
    spec = _spec()
    room = spec.room
    sim = dataset.EchoSimulator(room, spec.array, spec.chirp)
    positions = np.array([dataset.simulate_frame(sim, spec, i)[1] for i in range(5)])
    assert np.all(room.wall_distance_m(positions[:, :2]) >= spec.margin_m)
    assert len({tuple(p) for p in positions}) == 5


def test_another_dataset_in_the_same_directory_is_refused(tmp_path):
    dataset.generate(_spec(), tmp_path, workers=1, progress=False)
    with pytest.raises(ValueError, match=r"another dataset \(differs in \['scenario'\]\)"):
        dataset.generate(_spec(snr_db=10.0), tmp_path, workers=1, progress=False)
