"""How the real array and room differ from their files: knobs for the simulator's world.

The localizer reads the array and room files; the simulator can be given a world drawn from
:class:`ModelError` instead (transducers off their nominal resonance and bandwidth, per-channel
gain and delay, receivers and emitter off their drawn positions, the array tilted, room surfaces
off the file). One draw per array and room, fixed over the frames, as real hardware is.
"""

from dataclasses import dataclass, replace

import numpy as np

from echoloc_ros.core.array_geometry import (ArrayGeometry, resonator_response, tilt_matrix,
                                             yaw_matrix)
from echoloc_ros.core.geometry import moved_shell
from echoloc_ros.core.room import Room


@dataclass
class ModelError:
    """The spread of the errors a real deployment has; every draw is uniform in its range.

    :ivar resonance_offset_hz: every transducer of the array resonates this far off the file's
        centre, drawn once per array in +-this.
    :ivar resonance_spread_hz: each transducer further off, drawn in +-this per transducer.
    :ivar bandwidth_range_hz: the array's true -3 dB bandwidth drawn in this range ``(lo, hi)``;
        ``None``: the file's.
    :ivar bandwidth_spread_hz: each transducer's bandwidth further off, +-this.
    :ivar gain_db: each receiver's gain off nominal, +-this, dB.
    :ivar delay_s: each receiver channel's extra delay (front end, cable), +-this, s.
    :ivar receiver_offset_m: each receiver coordinate off the file, +-this, m.
    :ivar emitter_offset_m: each emitter coordinate off the file, +-this, m.
    :ivar tilt_deg: roll and pitch of the array from level, each +-this, deg.
    :ivar surface_offset_m: each room surface (every wall, floor, ceiling) off the file
        along its normal, +-this, m.
    :ivar air_std_c: the air's true temperature drawn normal about the one the localizer is
        told, with this standard deviation, degC (:meth:`draw_air_c`): for an honest
        evaluation, the doubt the localizer is told of it, so that a covariance stating that
        doubt is judged over worlds where it is realized (one world's air, exactly as told,
        never realizes it).
    :ivar seed: seed of the draw.
    :ivar draws: worlds an evaluation draws (seeds ``seed`` on) and spreads its frames over:
        one world's errors are the same in every frame, so a rate over one says little.
    """

    resonance_offset_hz: float = 0.0
    resonance_spread_hz: float = 0.0
    bandwidth_range_hz: tuple[float, float] | None = None
    bandwidth_spread_hz: float = 0.0
    gain_db: float = 0.0
    delay_s: float = 0.0
    receiver_offset_m: float = 0.0
    emitter_offset_m: float = 0.0
    tilt_deg: float = 0.0
    surface_offset_m: float = 0.0
    air_std_c: float = 0.0
    seed: int = 0
    draws: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 1:
            raise ValueError(f'model error draws must be an integer >= 1, got {self.draws}')
        for name in ('resonance_offset_hz', 'resonance_spread_hz', 'bandwidth_spread_hz',
                     'gain_db', 'delay_s', 'receiver_offset_m', 'emitter_offset_m', 'tilt_deg',
                     'surface_offset_m', 'air_std_c'):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f'model error {name} must be a finite number >= 0, got '
                                 f'{value}')
        if self.bandwidth_range_hz is not None:
            lo, hi = self.bandwidth_range_hz
            if not 0 < lo <= hi:
                raise ValueError(f'model error bandwidth_range_hz must be (lo, hi) with '
                                 f'0 < lo <= hi, got {self.bandwidth_range_hz}')

    @property
    def changes_array(self) -> bool:
        """Whether the real array differs from its file at all."""
        return bool(self.resonance_offset_hz or self.resonance_spread_hz
                    or self.bandwidth_range_hz or self.bandwidth_spread_hz or self.gain_db
                    or self.delay_s or self.receiver_offset_m or self.emitter_offset_m
                    or self.tilt_deg)

    def draw_hardware(self, array: ArrayGeometry) -> 'Hardware':
        """The real array behind ``array``'s file, drawn from this spread."""
        rng = np.random.default_rng([self.seed, 1])
        n = array.n_receivers
        centre = array.transducer_center_hz + rng.uniform(-1, 1) * self.resonance_offset_hz
        centres = centre + rng.uniform(-1, 1, n + 1) * self.resonance_spread_hz
        width = (array.transducer_bandwidth_hz if self.bandwidth_range_hz is None
                 else rng.uniform(*self.bandwidth_range_hz))
        widths = width + rng.uniform(-1, 1, n + 1) * self.bandwidth_spread_hz
        tilt = np.deg2rad(self.tilt_deg) * rng.uniform(-1, 1, 2)
        return Hardware(
            emitter_center_hz=float(centres[0]), receiver_center_hz=centres[1:],
            emitter_bandwidth_hz=float(widths[0]), receiver_bandwidth_hz=widths[1:],
            gains=10.0 ** (self.gain_db * rng.uniform(-1, 1, n) / 20.0),
            delay_s=self.delay_s * rng.uniform(-1, 1, n),
            emitter_m=array.emitter_m + self.emitter_offset_m * rng.uniform(-1, 1, 3),
            receivers_m=array.receivers_m + self.receiver_offset_m * rng.uniform(-1, 1, (n, 3)),
            roll_rad=float(tilt[0]), pitch_rad=float(tilt[1]))

    def draw_air_c(self, told_c: float) -> float:
        """The air's true temperature behind the ``told_c`` (degC) the localizer is told:
        normal about it with standard deviation :attr:`air_std_c`, one draw per world (seeded
        from :attr:`seed`); ``told_c`` itself for a zero std."""
        rng = np.random.default_rng([self.seed, 3])
        return float(told_c + self.air_std_c * rng.standard_normal())

    def draw_room(self, room: Room) -> 'TrueRoom':
        """The real room behind ``room``'s file: each surface moved along its normal.

        A shoebox stays one with its south-west corner at the origin; every wall of another
        plan moves along its normal (its corners where the moved walls meet).
        """
        rng = np.random.default_rng([self.seed, 2])
        offsets = self.surface_offset_m * rng.uniform(-1, 1, len(room.wall_names) + 2)
        floor, ceiling = offsets[-2], offsets[-1]
        if room.is_shoebox:
            south, east, north, west = offsets[:4]
            origin = np.array([west, south, floor])
            vertices = np.array([[0, 0], [room.width_m + east - west, 0],
                                 [room.width_m + east - west, room.length_m + north - south],
                                 [0, room.length_m + north - south]])
        else:
            # Outward offsets, as the room calibration reports them.
            world, origin = moved_shell(room, offsets)
            return TrueRoom(world, origin, offsets)
        furniture = [box.shifted(-origin) for box in room.furniture]
        world = replace(room, vertices_m=vertices, height_m=room.height_m + ceiling - floor,
                        furniture=furniture)
        return TrueRoom(world, origin, offsets)


@dataclass
class Hardware:
    """One real array: its transducers, channels, geometry and attitude (see
    :meth:`ModelError.draw_hardware`)."""

    emitter_center_hz: float
    receiver_center_hz: np.ndarray
    emitter_bandwidth_hz: float
    receiver_bandwidth_hz: np.ndarray
    gains: np.ndarray
    delay_s: np.ndarray
    emitter_m: np.ndarray
    receivers_m: np.ndarray
    roll_rad: float = 0.0
    pitch_rad: float = 0.0

    @classmethod
    def nominal(cls, array: ArrayGeometry) -> 'Hardware':
        """The array exactly as its file says."""
        n = array.n_receivers
        return cls(array.transducer_center_hz, np.full(n, array.transducer_center_hz),
                   array.transducer_bandwidth_hz, np.full(n, array.transducer_bandwidth_hz),
                   np.ones(n), np.zeros(n), array.emitter_m.copy(), array.receivers_m.copy())

    def response(self, freq_hz: np.ndarray) -> np.ndarray:
        """Emitter times receiver transducer response, channel gain and delay per channel
        ``(n, n_freq)``."""
        f = np.asarray(freq_hz, dtype=float)
        emit = resonator_response(f, self.emitter_center_hz, self.emitter_bandwidth_hz)
        receive = resonator_response(f[None], self.receiver_center_hz[:, None],
                                     self.receiver_bandwidth_hz[:, None])
        return (self.gains[:, None] * emit * receive
                * np.exp(-2j * np.pi * f * self.delay_s[:, None]))

    def to_world(self, position_m: np.ndarray, yaw_rad: float) -> tuple[np.ndarray, np.ndarray]:
        """Emitter ``(3,)`` and receivers ``(n, 3)`` in the room frame: heading, then pitch
        about the array's y axis, then roll about its x axis (z-y-x Euler angles)."""
        rot = yaw_matrix(yaw_rad) @ tilt_matrix(self.roll_rad, self.pitch_rad)
        position = np.asarray(position_m, dtype=float)
        return position + rot @ self.emitter_m, position + self.receivers_m @ rot.T

    def summary(self) -> dict:
        """The drawn values, for a benchmark's JSON."""
        return {'emitter_center_hz': round(self.emitter_center_hz, 1),
                'receiver_center_hz': np.round(self.receiver_center_hz, 1).tolist(),
                'emitter_bandwidth_hz': round(self.emitter_bandwidth_hz, 1),
                'receiver_bandwidth_hz': np.round(self.receiver_bandwidth_hz, 1).tolist(),
                'delay_us': np.round(1e6 * self.delay_s, 3).tolist(),
                'roll_deg': round(float(np.rad2deg(self.roll_rad)), 3),
                'pitch_deg': round(float(np.rad2deg(self.pitch_rad)), 3)}


@dataclass
class TrueRoom:
    """The room as it stands: ``room`` has its floor at z = 0 and (for a shoebox) a corner at
    the origin; a point p of the file's frame is ``p - origin_m`` in ``room``'s frame.

    :ivar offsets_m: each surface's offset from the file (walls in the file's order, then
        floor, ceiling), m: a shoebox's along +x/+y/+z, another plan's outward.
    """

    room: Room
    origin_m: np.ndarray
    offsets_m: np.ndarray
