"""Echo simulator: image sources from pyroomacoustics, received signals synthesised here.

pyroomacoustics (Scheibler et al. 2018) finds the image sources and their visibility (Allen &
Berkley 1979; Borish 1984 for non-rectangular rooms). Everything that depends on frequency is
applied here, per path, in the frequency domain: delay at the speed of sound of the true air
temperature, spherical spreading 1/r, wall reflection amplitudes sqrt(1 - alpha), ISO 9613-1
air absorption (pyroomacoustics extrapolates its absorption table far too low at 40 kHz), piston
directivity at both ends and the transducers' band-pass. See ``docs/physics.md``.
"""

from dataclasses import dataclass, field

import numpy as np
import pyroomacoustics as pra
from scipy import fft as sfft
from scipy import signal

from echoloc_ros.core.acoustics import air_absorption_db_per_m, speed_of_sound_mps
from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.geometry import (is_convex, orders_in_window, plane_contains, reflect,
                                       room_planes)
from echoloc_ros.sim.model_error import Hardware
from echoloc_ros.sim.unfolding import traced_sequences, undone_sequence
from echoloc_ros.core.room import Box, Room, any_box_blocks

INT16_FULL_SCALE = 32767
# The direct arrival's peak sits at this fraction of full scale (fixed front-end gain).
DIRECT_PEAK_FRACTION = 0.5
# Frequency bins whose replica magnitude is below this fraction of its peak are not synthesised.
BAND_THRESHOLD = 1e-5
# "Every order in the window" counts the orders that arrive in air up to this warm, degC.
ALL_ORDERS_MAX_TEMPERATURE_C = 50.0


@dataclass
class Scenario:
    """What differs between the world and what the localizer is told.

    :ivar snr_db: in-band SNR, see :meth:`EchoSimulator.noise_std_counts`.
    :ivar temperature_c: true air temperature, degC; ``None`` takes the room file's.
    :ivar gain_mismatch_db: standard deviation of each receiver's gain error, dB.
    :ivar dead_channel: index of a receiver that outputs only noise, or ``None``.
    :ivar clutter: furniture present in the world but not in the room file.
    :ivar n_random_clutter: number of extra random vertical panels (0.4-1.2 m wide and high)
        drawn per frame from the generator, not in the room file.
    :ivar seed: seed of the default random generator.
    :ivar furniture: the furniture as it stands in the world (moved since the room file was
        written); ``None``: as in the room file.
    :ivar hardware: the real array (transducers, channel gains and delays, positions, tilt;
        :meth:`ModelError.draw_hardware`); ``None``: as in the array file.
    """

    snr_db: float = 20.0
    temperature_c: float | None = None
    gain_mismatch_db: float = 0.0
    dead_channel: int | None = None
    clutter: list[Box] = field(default_factory=list)
    n_random_clutter: int = 0
    seed: int = 0
    furniture: list[Box] | None = None
    hardware: Hardware | None = None


@dataclass
class EchoPath:
    """One propagation path from the emitter to every receiver.

    :ivar kind: ``'direct'`` (emitter to receiver coupling), ``'room'`` (walls, floor,
        ceiling) or ``'furniture'`` (specular reflection from a box face).
    :ivar order: number of reflections.
    :ivar surfaces: names of the reflecting surfaces in the order the sound meets them.
    :ivar image_m: image-source position ``(3,)`` in the room frame.
    :ivar delay_s: propagation delay per receiver ``(n_rx,)``.
    :ivar amplitude: amplitude at the chirp centre per receiver ``(n_rx,)``, relative to a
        lossless 1 m path; 0 where the path is not visible from that receiver.
    """

    kind: str
    order: int
    surfaces: tuple[str, ...]
    image_m: np.ndarray
    delay_s: np.ndarray
    amplitude: np.ndarray


@dataclass
class _PathSet:
    """Vectorised paths: P paths x n receivers."""

    kind: list[str]
    order: np.ndarray
    surfaces: list[tuple[str, ...]]
    images: np.ndarray          # (P, 3)
    distance_m: np.ndarray      # (P, n)
    reflection: np.ndarray      # (P,) product of reflection amplitudes
    cos_departure: np.ndarray   # (P, n) cosine between ray and z axis at the emitter
    cos_arrival: np.ndarray     # (P, n) at the receiver
    visible: np.ndarray         # (P, n) bool


@dataclass
class _Plane:
    """A room surface: points x with normal . x == offset; the normal points into the room."""

    name: str
    normal: np.ndarray
    offset: float
    absorption: float


def random_panel(room: Room, rng: np.random.Generator, avoid_m: np.ndarray,
                 clearance_m: float = 0.3) -> Box:
    """A vertical panel 0.4-1.2 m wide and high, 3 cm thick, standing on the floor in the room.

    :param room: the room.
    :param rng: random generator.
    :param avoid_m: a point ``(3,)`` the panel must keep ``clearance_m`` away from (the array).
    :param clearance_m: minimum distance between panel and ``avoid_m``.
    :return: the panel as a :class:`Box`.
    """
    lo, hi = room.vertices_m.min(axis=0), room.vertices_m.max(axis=0)
    for _ in range(1000):
        width, height = rng.uniform(0.4, 1.2, size=2)
        along_x = rng.random() < 0.5
        size = np.array([width, 0.03] if along_x else [0.03, width])
        corner = rng.uniform(lo, hi - size)
        box = Box('clutter', [corner[0], corner[1], 0.0],
                  [corner[0] + size[0], corner[1] + size[1], height], absorption=0.1)
        footprint = np.array([corner, corner + size, [corner[0], corner[1] + size[1]],
                              [corner[0] + size[0], corner[1]]])
        if np.all(room.contains_xy(footprint)) and not box.contains(avoid_m, clearance_m):
            return box
    raise ValueError(f'room {room.name!r}: no place for a clutter panel')


class EchoSimulator:
    """Simulate raw int16 frames of the array in a room.

    :param room: the room (geometry, materials, furniture, nominal air).
    :param array: the array geometry and transducers.
    :param chirp: the emitted ping.
    :param fs_hz: sampling rate, Hz.
    :param max_order: highest reflection order of room image sources; ``'all'``: every order
        that arrives within the window in air up to :data:`ALL_ORDERS_MAX_TEMPERATURE_C` (a
        shoebox room only: :func:`orders_in_window`).
    :param window_s: receive window; ``None`` sizes it so the farthest wall's echo fits.
    """

    def __init__(self, room: Room, array: ArrayGeometry, chirp: Chirp, fs_hz: float = 250e3,
                 max_order: int | str = 2, window_s: float | None = None) -> None:
        if max_order != 'all' and not (isinstance(max_order, int) and max_order >= 1):
            raise ValueError(f'max_order must be an int >= 1 or \'all\', got {max_order!r}')
        self.room = room
        self.array = array
        self.chirp = chirp
        self.fs_hz = float(fs_hz)
        self.chirp_samples = chirp.samples(self.fs_hz)
        self.window_s = self.default_window_s(room, chirp) if window_s is None else window_s
        if self.window_s <= chirp.duration_s:
            raise ValueError(f'window_s {self.window_s} must exceed the chirp duration')
        self.n_samples = int(np.ceil(self.window_s * self.fs_hz))
        self.all_orders = max_order == 'all'
        if self.all_orders and not room.is_shoebox:
            raise ValueError(f'every order in the window (max_order \'all\') needs a shoebox '
                             f'room; {room.name!r} is not one: give max_order')
        self.max_order = int(orders_in_window(
            (room.width_m, room.length_m, room.height_m),
            self._window_path_m(ALL_ORDERS_MAX_TEMPERATURE_C))
            if self.all_orders else max_order)
        self.n_fft = sfft.next_fast_len(self.n_samples + self.chirp_samples.size + 256, real=True)
        freq = np.fft.rfftfreq(self.n_fft, 1.0 / self.fs_hz)
        spectrum = np.fft.rfft(self.chirp_samples, self.n_fft) * array.transducer_response(
            freq) ** 2
        magnitude = np.abs(spectrum)
        self._band = np.flatnonzero(magnitude > BAND_THRESHOLD * magnitude.max())
        self._freq = freq[self._band]
        self._replica_spectrum = spectrum[self._band]
        replica = np.fft.irfft(spectrum, self.n_fft)
        self.replica_peak = float(np.max(np.abs(replica)))
        self.replica_envelope_peak = float(np.max(np.abs(signal.hilbert(replica))))
        self.direct_amplitude = 10.0 ** (array.coupling_db / 20.0)
        self.counts_per_unit = (DIRECT_PEAK_FRACTION * INT16_FULL_SCALE
                                / (self.direct_amplitude * self.replica_peak))
        # Coarse grid for smooth per-path gains (directivity), interpolated onto the band.
        self._coarse_freq = np.linspace(self._freq[0], self._freq[-1], 9)
        idx = np.clip(np.searchsorted(self._coarse_freq, self._freq) - 1, 0, 7)
        frac = (self._freq - self._coarse_freq[idx]) / np.diff(self._coarse_freq)[idx]
        self._interp = np.zeros((9, self._freq.size))
        self._interp[idx, np.arange(self._freq.size)] = 1.0 - frac
        self._interp[idx + 1, np.arange(self._freq.size)] = frac
        self._absorption_cache: dict[tuple[float, float], np.ndarray] = {}
        self._planes = self._room_planes()
        self._convex = is_convex(room)
        self._pra_room = self._build_pra_room()

    @staticmethod
    def default_window_s(room: Room, chirp: Chirp) -> float:
        """Receive window: the round trip to the farthest wall at 10 degC below nominal, plus the
        chirp and a 1 ms margin."""
        c_min = speed_of_sound_mps(room.temperature_c - 10.0)
        return 2.0 * room.max_extent_m / c_min + chirp.duration_s + 1e-3

    # ----------------------------------------------------------------------------- geometry
    def _room_planes(self) -> list[_Plane]:
        room = self.room
        absorption = [*room.wall_absorption, room.floor_absorption, room.ceiling_absorption]
        return [_Plane(p.name, p.normal, p.offset, float(a))
                for p, a in zip(room_planes(room), absorption)]

    def _plane_contains(self, index: int, points: np.ndarray) -> np.ndarray:
        """Whether points lying on plane ``index`` are inside that surface's polygon."""
        return plane_contains(self.room, index, points, 1e-9, within_height=True)

    def _build_pra_room(self, emitter: np.ndarray | None = None,
                        receivers: np.ndarray | None = None) -> pra.Room:
        """The pyroomacoustics room, its source and microphones at ``emitter`` ``(3,)`` and
        ``receivers`` ``(n, 3)`` (``None``: at the room's centre, to be moved)."""
        room = self.room
        dummy = pra.Material(0.1)
        if room.is_shoebox:
            pra_room = pra.ShoeBox([room.width_m, room.length_m, room.height_m], fs=self.fs_hz,
                                   materials=dummy, max_order=self.max_order,
                                   air_absorption=False)
        else:
            pra_room = pra.Room.from_corners(room.vertices_m.T, fs=self.fs_hz, materials=dummy,
                                             max_order=self.max_order, air_absorption=False)
            pra_room.extrude(room.height_m, materials=dummy)
        centre = np.append(room.vertices_m.mean(axis=0), 0.5 * room.height_m)
        if not room.contains_xy(centre[:2]):
            # An L's vertices can average to a point in its notch: the middle of a span.
            lo, hi, s0, s1 = room.axis_spans(0)[0]
            centre[:2] = 0.5 * (lo + hi), 0.5 * (s0 + s1)
        pra_room.add_source(centre if emitter is None else emitter)
        pra_room.add_microphone_array(np.tile(centre[:, None], (1, self.array.n_receivers))
                                      if receivers is None else receivers.T)
        return pra_room

    def _room_paths(self, emitter: np.ndarray, receivers: np.ndarray,
                    max_path_m: float = np.inf) -> _PathSet:
        """Image sources of order 1..max_order from pyroomacoustics, labelled with surfaces;
        those farther than ``max_path_m`` from every receiver left out."""
        if self.room.is_shoebox:
            pra_room = self._pra_room
            pra_room.sources[0].position = emitter.copy()
            pra_room.mic_array.R = receivers.T.copy()
        else:
            # Its engine decides which paths exist from the microphones it was built with
            # (mic_array.R does not move them): beyond a shoebox, a reflection point on its
            # wall, and walls hiding paths. 3.6 ms to build one where the receivers are.
            pra_room = self._build_pra_room(emitter, receivers)
        pra_room.image_source_model()
        source = pra_room.sources[0]
        delta = receivers[None] - source.images.T[:, None]               # (P, n, 3)
        distance = np.linalg.norm(delta, axis=-1)
        keep = (source.orders > 0) & (distance.min(axis=1) < max_path_m)
        images, orders, delta, distance = (source.images.T[keep], source.orders[keep],
                                           delta[keep], distance[keep])
        visible = pra_room.visibility[0].T[keep].astype(bool)
        sequences = self._surface_sequences(emitter, receivers, images, orders)
        n = receivers.shape[0]
        p = images.shape[0]
        reflection = np.ones(p)
        cos_dep = np.empty((p, n))
        for k, seq in enumerate(sequences):
            for s in seq:
                reflection[k] *= np.sqrt(1.0 - self._planes[s].absorption)
        cos_arr = delta[..., 2] / distance
        # Unbaffled piston: only |cos| matters, and walls and floor/ceiling mirror the ray, so
        # the departure angle from the axis equals the arrival angle.
        cos_dep[:] = cos_arr
        names = [tuple(self._planes[s].name for s in seq) for seq in sequences]
        return _PathSet(['room'] * p, orders, names, images, distance, reflection, cos_dep,
                        cos_arr, visible)

    def _surface_sequences(self, emitter: np.ndarray, receivers: np.ndarray,
                           images: np.ndarray, orders: np.ndarray) -> list[tuple[int, ...]]:
        """Which surfaces (plane indices, in travel order) produced each image."""
        normals = np.array([pl.normal for pl in self._planes])
        offsets = np.array([pl.offset for pl in self._planes])
        contains = None if self._convex else self._plane_contains
        traced, ok = traced_sequences(normals, offsets, contains, emitter,
                                      receivers.mean(axis=0), images, orders)
        # An image hidden from the receivers' centre: traced to each receiver in turn, then
        # (hidden from all) its surfaces found by undoing reflections.
        for receiver in receivers:
            if np.all(ok):
                break
            retry = np.flatnonzero(~ok)
            again, found = traced_sequences(normals, offsets, contains, emitter, receiver,
                                            images[retry], orders[retry])
            traced[retry[found], :again.shape[1]] = again[found]
            ok[retry[found]] = True
        first = emitter[None] - 2.0 * ((normals @ emitter) - offsets)[:, None] * normals
        return [tuple(int(s) for s in seq[:order]) if found else
                undone_sequence(image, order, first, normals, offsets, receivers.mean(axis=0),
                                self._plane_contains)
                for image, order, seq, found in zip(images, orders, traced, ok)]

    def _reflection_points(self, seq: tuple[int, ...], image: np.ndarray,
                           receivers: np.ndarray) -> list[np.ndarray]:
        """Reflection points ``(n, 3)`` of a path for every receiver, in travel order."""
        points = []
        start = receivers
        target = np.broadcast_to(image, receivers.shape)
        for s in reversed(seq):
            pl = self._planes[s]
            d = target - start
            t = (pl.offset - start @ pl.normal) / (d @ pl.normal)
            hit = start + t[:, None] * d
            points.append(hit)
            start = hit
            target = reflect(target, pl.normal, pl.offset)
        return points[::-1]

    def _furniture_paths(self, emitter: np.ndarray, receivers: np.ndarray,
                         boxes: list[Box]) -> _PathSet:
        """First-order specular reflections from the faces of furniture boxes."""
        kinds, orders, names, images, dist, refl, cdep, carr, vis = ([] for _ in range(9))
        for box in boxes:
            for axis in range(3):
                for side, value in ((-1.0, box.min_m[axis]), (1.0, box.max_m[axis])):
                    normal = np.zeros(3)
                    normal[axis] = side
                    offset = side * value
                    # Both ends must be in front of the face.
                    if normal @ emitter <= offset:
                        continue
                    in_front = receivers @ normal > offset
                    image = reflect(emitter, normal, offset)
                    d = receivers - image
                    t = (offset - image @ normal) / (d @ normal)
                    hit = image + t[:, None] * d
                    others = [a for a in range(3) if a != axis]
                    on_face = np.all((hit[:, others] >= box.min_m[others])
                                     & (hit[:, others] <= box.max_m[others]), axis=1)
                    visible = in_front & on_face
                    if not np.any(visible):
                        continue
                    distance = np.linalg.norm(d, axis=1)
                    kinds.append('furniture')
                    orders.append(1)
                    names.append((f'{box.name}:{"-+"[side > 0]}{"xyz"[axis]}',))
                    images.append(image)
                    dist.append(distance)
                    refl.append(np.sqrt(1.0 - box.absorption))
                    cos = d[:, 2] / distance
                    cdep.append((hit[:, 2] - emitter[2]) / np.linalg.norm(hit - emitter, axis=1))
                    carr.append(cos)
                    vis.append(visible)
        n = receivers.shape[0]
        if not kinds:
            return _PathSet([], np.zeros(0, int), [], np.zeros((0, 3)), np.zeros((0, n)),
                            np.zeros(0), np.zeros((0, n)), np.zeros((0, n)),
                            np.zeros((0, n), bool))
        return _PathSet(kinds, np.array(orders), names, np.array(images), np.array(dist),
                        np.array(refl), np.array(cdep), np.array(carr), np.array(vis))

    def _occlude(self, paths: _PathSet, emitter: np.ndarray, receivers: np.ndarray,
                 boxes: list[Box]) -> None:
        """Mark room paths blocked by a box on any of their segments as invisible."""
        if not boxes:
            return
        for k in range(len(paths.kind)):
            if paths.kind[k] != 'room':
                continue
            seq = tuple(self.room.surface_names.index(s) for s in paths.surfaces[k])
            if not seq:
                continue
            points = self._reflection_points(seq, paths.images[k], receivers)
            chain = [np.broadcast_to(emitter, receivers.shape)] + points + [receivers]
            for a, b in zip(chain[:-1], chain[1:]):
                paths.visible[k] &= ~any_box_blocks(boxes, a, b)

    def _all_paths(self, position_m: np.ndarray, yaw_rad: float, boxes: list[Box],
                   hardware: Hardware | None = None, max_path_m: float = np.inf
                   ) -> tuple[_PathSet, np.ndarray, np.ndarray]:
        where = self.array if hardware is None else hardware
        emitter, receivers = where.to_world(position_m, yaw_rad)
        room_paths = self._room_paths(emitter, receivers, max_path_m)
        self._occlude(room_paths, emitter, receivers, boxes)
        furniture = self._furniture_paths(emitter, receivers, boxes)
        merged = _PathSet(
            room_paths.kind + furniture.kind,
            np.concatenate([room_paths.order, furniture.order]),
            room_paths.surfaces + furniture.surfaces,
            np.vstack([room_paths.images, furniture.images]),
            np.vstack([room_paths.distance_m, furniture.distance_m]),
            np.concatenate([room_paths.reflection, furniture.reflection]),
            np.vstack([room_paths.cos_departure, furniture.cos_departure]),
            np.vstack([room_paths.cos_arrival, furniture.cos_arrival]),
            np.vstack([room_paths.visible, furniture.visible]))
        return merged, emitter, receivers

    def _absorption_np_per_m(self, temperature_c: float, freq_hz: np.ndarray) -> np.ndarray:
        """ISO 9613-1 amplitude attenuation in neper per metre."""
        return air_absorption_db_per_m(freq_hz, temperature_c,
                                       self.room.humidity_pct) * np.log(10.0) / 20.0

    def paths(self, position_m: np.ndarray, yaw_rad: float,
              temperature_c: float | None = None, extra_boxes: list[Box] | None = None,
              gains: np.ndarray | None = None, hardware: Hardware | None = None,
              furniture: list[Box] | None = None) -> list[EchoPath]:
        """All propagation paths for a pose, the direct coupling first; of the room's image
        sources, those that reach a receiver within the window.

        :param position_m: array position ``(3,)`` in the room frame, m.
        :param yaw_rad: array heading, rad.
        :param temperature_c: air temperature; ``None`` takes the room file's.
        :param extra_boxes: furniture not in the room file (clutter).
        :param gains: receiver gains ``(n,)``; ``None`` takes the array's.
        :param hardware: the real array (:attr:`Scenario.hardware`); ``None``: the file's.
        :param furniture: the furniture as it stands; ``None``: the room file's.
        :return: list of :class:`EchoPath`, sorted by mean delay.
        """
        position = self._check_pose(position_m, yaw_rad)
        temperature = self.room.temperature_c if temperature_c is None else temperature_c
        c = speed_of_sound_mps(temperature)
        gains = self.array.gains if gains is None else np.asarray(gains, dtype=float)
        furniture = self.room.furniture if furniture is None else furniture
        boxes = list(furniture) + list(extra_boxes or [])
        ps, emitter, receivers = self._all_paths(position, yaw_rad, boxes, hardware,
                                                 self._window_path_m(temperature))
        fc = np.array([self.chirp.center_hz])
        a_np = self._absorption_np_per_m(temperature, fc)[0]
        directivity = (self.array.directivity(fc[0], ps.cos_departure, c)
                       * self.array.directivity(fc[0], ps.cos_arrival, c))
        amplitude = (gains * ps.reflection[:, None] / ps.distance_m
                     * np.exp(-a_np * ps.distance_m) * directivity * ps.visible)
        direct = np.linalg.norm(receivers - emitter, axis=1)
        result = [EchoPath('direct', 0, (), emitter.copy(), direct / c,
                           gains * self.direct_amplitude)]
        for k in range(len(ps.kind)):
            result.append(EchoPath(ps.kind[k], int(ps.order[k]), ps.surfaces[k],
                                   ps.images[k].copy(), ps.distance_m[k] / c, amplitude[k]))
        result.sort(key=lambda path: float(np.mean(path.delay_s)))
        return result

    # ----------------------------------------------------------------------------- signals
    def noise_std_counts(self, position_m: np.ndarray, yaw_rad: float, snr_db: float,
                         temperature_c: float | None = None) -> float:
        """Standard deviation of the white noise added to each channel, in counts.

        SNR definition: the reference is the strongest first-order echo from a wall (not floor
        or ceiling) over all receivers, with nominal gains; its peak power is half the square of
        the peak of its envelope. The noise power counted is the part inside the chirp band
        [f0, f1]; white noise over [0, fs/2] has ``(fs/2) / B`` times more.

        :return: noise standard deviation per sample, counts.
        """
        position = self._check_pose(position_m, yaw_rad)
        temperature = self.room.temperature_c if temperature_c is None else temperature_c
        ps, _, _ = self._all_paths(position, yaw_rad, list(self.room.furniture))
        return self._noise_std(ps, speed_of_sound_mps(temperature), temperature, snr_db)

    def _noise_std(self, ps: _PathSet, c: float, temperature_c: float, snr_db: float) -> float:
        walls = set(self.room.wall_names)
        is_wall = np.array([kind == 'room' and len(surf) == 1 and surf[0] in walls
                            for kind, surf in zip(ps.kind, ps.surfaces)], dtype=bool)
        if not np.any(is_wall & np.any(ps.visible, axis=1)):
            raise ValueError('no first-order wall echo is visible from this pose')
        fc = self.chirp.center_hz
        amplitude = (self.array.gains * ps.reflection[:, None] / ps.distance_m
                     * np.exp(-self._absorption_np_per_m(temperature_c, fc) * ps.distance_m)
                     * self.array.directivity(fc, ps.cos_departure, c)
                     * self.array.directivity(fc, ps.cos_arrival, c) * ps.visible)
        ref = float(np.max(amplitude[is_wall]))
        peak_power = 0.5 * (ref * self.replica_envelope_peak * self.counts_per_unit) ** 2
        band_noise_power = peak_power / 10.0 ** (snr_db / 10.0)
        in_band = abs(self.chirp.f1_hz - self.chirp.f0_hz) / (0.5 * self.fs_hz)
        return float(np.sqrt(band_noise_power / in_band))

    def clean_signals(self, position_m: np.ndarray, yaw_rad: float,
                      temperature_c: float | None = None, gains: np.ndarray | None = None,
                      extra_boxes: list[Box] | None = None,
                      hardware: Hardware | None = None) -> np.ndarray:
        """Noise-free received signals in counts, float64 ``(n_channels, n_samples)``.

        :param position_m: array position ``(3,)`` in the room frame, m.
        :param yaw_rad: array heading, rad.
        :param temperature_c: true air temperature; ``None`` takes the room file's.
        :param gains: receiver gains ``(n,)``; ``None`` takes the array's.
        :param extra_boxes: furniture not in the room file (clutter).
        :param hardware: the real array (:attr:`Scenario.hardware`); ``None``: the file's.
        """
        position = self._check_pose(position_m, yaw_rad)
        temperature = self.room.temperature_c if temperature_c is None else temperature_c
        gains = self.array.gains if gains is None else np.asarray(gains, dtype=float)
        boxes = list(self.room.furniture) + list(extra_boxes or [])
        ps, emitter, receivers = self._all_paths(position, yaw_rad, boxes, hardware,
                                                 self._window_path_m(temperature))
        return self._synthesise(ps, emitter, receivers, temperature, gains, hardware)

    def _window_path_m(self, temperature_c: float) -> float:
        """The longest path that arrives within the window, m (a path this long or longer
        is not rendered, and its image not labelled)."""
        if self.all_orders and temperature_c > ALL_ORDERS_MAX_TEMPERATURE_C:
            raise ValueError(f'air at {temperature_c} degC: every order in the window is '
                             f'counted up to {ALL_ORDERS_MAX_TEMPERATURE_C} degC')
        return self.n_samples / self.fs_hz * speed_of_sound_mps(temperature_c)

    def _synthesise(self, ps: _PathSet, emitter: np.ndarray, receivers: np.ndarray,
                    temperature_c: float, gains: np.ndarray,
                    hardware: Hardware | None = None) -> np.ndarray:
        c = speed_of_sound_mps(temperature_c)
        window = self.n_samples / self.fs_hz
        use = ps.visible & (ps.distance_m / c < window)
        p_idx, r_idx = np.nonzero(use)
        # Directivity varies smoothly with frequency: evaluate it (in nepers) on a coarse grid
        # and interpolate onto the band.
        coarse = np.log(np.maximum(
            self.array.directivity(self._coarse_freq, ps.cos_departure[p_idx, r_idx, None], c)
            * self.array.directivity(self._coarse_freq, ps.cos_arrival[p_idx, r_idx, None], c),
            1e-12))
        dist = ps.distance_m[p_idx, r_idx]
        log_gain = np.log(gains[r_idx] * ps.reflection[p_idx] / dist)
        # Delay and ISO 9613-1 absorption both grow with path length: exp(-r (a(f) + j w / c)).
        kappa = self._absorption_np_per_m(temperature_c, self._freq) + 2j * np.pi * self._freq / c
        terms = np.exp(log_gain[:, None] + coarse @ self._interp - dist[:, None] * kappa)
        n = receivers.shape[0]
        spectrum_band = np.stack([terms[r_idx == r].sum(axis=0) for r in range(n)])
        direct_delay = np.linalg.norm(receivers - emitter, axis=1) / c
        spectrum_band += (gains * self.direct_amplitude)[:, None] * np.exp(
            -2j * np.pi * self._freq * direct_delay[:, None])
        if hardware is not None:
            # Every path, the direct coupling included, goes through the real transducers and
            # channels rather than the file's.
            spectrum_band *= hardware.response(self._freq) / self.array.transducer_response(
                self._freq) ** 2
        spectrum = np.zeros((n, self.n_fft // 2 + 1), dtype=complex)
        spectrum[:, self._band] = spectrum_band * self._replica_spectrum * self.counts_per_unit
        return np.fft.irfft(spectrum, self.n_fft, axis=1)[:, :self.n_samples]

    def simulate(self, position_m: np.ndarray, yaw_rad: float, scenario: Scenario | None = None,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        """One received frame.

        :param position_m: array position ``(3,)`` in the room frame, m.
        :param yaw_rad: array heading, rad.
        :param scenario: what the world is like; ``None`` is :class:`Scenario` defaults.
        :param rng: random generator; ``None`` seeds one from ``scenario.seed``. The same
            generator state gives a byte-identical frame.
        :return: int16 ``(n_channels, n_samples)``, quantised and clipped.
        """
        scenario = Scenario() if scenario is None else scenario
        rng = np.random.default_rng(scenario.seed) if rng is None else rng
        position = self._check_pose(position_m, yaw_rad)
        n = self.array.n_receivers
        if scenario.dead_channel is not None and not 0 <= scenario.dead_channel < n:
            raise ValueError(f'dead_channel must be in [0, {n}), got {scenario.dead_channel}')
        temperature = (self.room.temperature_c if scenario.temperature_c is None
                       else scenario.temperature_c)
        gains = self.array.gains * 10.0 ** (
            scenario.gain_mismatch_db * rng.standard_normal(n) / 20.0)
        clutter = list(scenario.clutter) + [random_panel(self.room, rng, position)
                                            for _ in range(scenario.n_random_clutter)]
        furniture = self.room.furniture if scenario.furniture is None else scenario.furniture
        boxes = list(furniture) + clutter
        ps, emitter, receivers = self._all_paths(position, yaw_rad, boxes, scenario.hardware,
                                                 self._window_path_m(temperature))
        clean = self._synthesise(ps, emitter, receivers, temperature, gains, scenario.hardware)
        if scenario.dead_channel is not None:
            clean[scenario.dead_channel] = 0.0
        noise_std = self._noise_std(ps, speed_of_sound_mps(temperature), temperature,
                                    scenario.snr_db)
        noisy = clean + noise_std * rng.standard_normal(clean.shape)
        return np.clip(np.rint(noisy), -INT16_FULL_SCALE - 1, INT16_FULL_SCALE).astype(np.int16)

    def simulate_random_pose(self, world: Room, scenario: Scenario, rng: np.random.Generator,
                             margin_m: float = 0.4,
                             z_range_m: tuple[float, float] = (0.2, 1.2), tries: int = 100
                             ) -> tuple[np.ndarray, np.ndarray, float]:
        """A frame at a pose drawn by ``world.random_pose``, drawn again (up to ``tries``
        times) where no wall echo reaches the array (moved furniture can hide every wall).

        :param world: the room as it stands (its furniture keeps the poses clear).
        :return: ``(frame, position_m, yaw_rad)``.
        """
        for _ in range(tries):
            position, yaw = world.random_pose(rng, margin_m, z_range_m)
            try:
                return self.simulate(position, yaw, scenario, rng), position, yaw
            except ValueError:
                continue
        raise ValueError(f'no pose with a visible wall in {tries} draws in room {world.name!r}')

    def _check_pose(self, position_m: np.ndarray, yaw_rad: float) -> np.ndarray:
        position = np.asarray(position_m, dtype=float)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError(f'position_m must be 3 finite numbers, got {position_m!r}')
        if not np.isfinite(yaw_rad):
            raise ValueError(f'yaw_rad must be finite, got {yaw_rad}')
        emitter, receivers = self.array.to_world(position, yaw_rad)
        points = np.vstack([emitter, receivers])
        if not (np.all(self.room.contains_xy(points[:, :2])) and np.all(points[:, 2] > 0)
                and np.all(points[:, 2] < self.room.height_m)):
            raise ValueError(f'array at {position.tolist()} (yaw {yaw_rad:.3f} rad) is not '
                             f'inside room {self.room.name!r}')
        return position
