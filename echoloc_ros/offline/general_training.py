"""Training data for one ranker that serves any room (issue 19): the candidate data of
:class:`~echoloc_ros.offline.training.CandidateSpec` made over many rooms at once, with the
room-independent input (:func:`~echoloc_ros.core.nn_features.strongest_paths`).

Frame ``i`` is made in room ``i % len(rooms)`` exactly as a per-room dataset's frame ``i``
would be in that room (the same world randomisation, drawn from ``default_rng([seed, i])``),
so the data do not depend on the workers or the chunking and a rerun resumes. The rooms are
those a user's room is not: generated rooms of the ``dev`` split
(:mod:`~echoloc_ros.sim.room_generator`) and, if asked, the project's own room files.
"""

import dataclasses

import numpy as np

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.model import ANY_ROOM
from echoloc_ros.core.nn_features import GENERAL_PATHS, LAGS_S
from echoloc_ros.core.room import Room, load_room
from echoloc_ros.offline import dataset
from echoloc_ros.offline.training import CandidateSpec, _Worker
from echoloc_ros.sim.room_generator import generate_rooms

#: The project's own rooms a general model may also learn from.
PROJECT_ROOMS = ('default_room', 'furnished_room', 'l_shaped_room')


def training_rooms(n_dev: int, seed: int, project_rooms: bool = True) -> tuple[Room, ...]:
    """Rooms ``0 .. n_dev - 1`` of the ``dev`` split for ``seed``, then (if asked) the
    project's rooms (:data:`PROJECT_ROOMS`). The ``heldout`` split is never drawn here."""
    rooms = list(generate_rooms('dev', n_dev, seed)) if n_dev else []
    if project_rooms:
        rooms += [load_room(name) for name in PROJECT_ROOMS]
    if not rooms:
        raise ValueError(f'no rooms to train on: n_dev {n_dev} and no project rooms')
    return tuple(rooms)


@dataclasses.dataclass(frozen=True)
class GeneralCandidateSpec:
    """A room-independent candidate dataset over ``rooms``.

    :ivar rooms: the rooms, frame ``i`` in room ``i % len(rooms)``.
    :ivar options: more :class:`CandidateSpec` fields (SNR range, furniture, ...), the same
        in every room, as ``(name, value)`` pairs.
    """

    rooms: tuple[Room, ...]
    array: ArrayGeometry
    chirp: Chirp
    n_frames: int
    seed: int
    chunk_size: int = 128
    options: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        if not self.rooms:
            raise ValueError('a general candidate dataset needs at least one room')
        names = [r.name for r in self.rooms]
        if len(set(names)) != len(names):
            raise ValueError(f'room names must differ, got {names}')
        self.for_room(self.rooms[0])     # unknown or bad options fail here, not in a worker

    def for_room(self, room: Room) -> CandidateSpec:
        """The per-room spec whose frame ``i`` this dataset's frame ``i`` is, in ``room``."""
        return CandidateSpec(room, self.array, self.chirp, self.n_frames, self.seed,
                             chunk_size=self.chunk_size, general=True, **dict(self.options))

    def metadata(self) -> dict:
        one = self.for_room(self.rooms[0]).metadata()
        one.update({'room': ANY_ROOM, 'rooms': [r.name for r in self.rooms],
                    'n_paths': GENERAL_PATHS, 'lags_s': LAGS_S.tolist()})
        return one

    def n_chunks(self) -> int:
        return -(-self.n_frames // self.chunk_size)

    def start_worker(self) -> None:
        global _workers
        _workers = {}

    def write_chunk(self, chunk: int, out_dir) -> int:
        indices = range(chunk * self.chunk_size,
                        min((chunk + 1) * self.chunk_size, self.n_frames))
        examples = []
        for i in indices:
            room = self.rooms[i % len(self.rooms)]
            if room.name not in _workers:
                _workers[room.name] = _Worker(self.for_room(room))
            examples.append(_workers[room.name].example(i))
        dataset.save_chunk(out_dir, chunk, index=np.array(indices),
                           **{k: np.stack([e[k] for e in examples]) for k in examples[0]})
        return len(indices)


#: A data-making process's workers, one per room met (:class:`_Worker` builds a simulator
#: and a physics localizer, so they are kept).
_workers: dict[str, _Worker] = {}
