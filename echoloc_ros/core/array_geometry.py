"""The ultrasonic array: one emitter and N receivers, their transducers and their geometry.

Coordinates are in the array frame (REP-103: x forward, y left, z up). The array is horizontal and
its heading (yaw) rotates it about z; the transducers face along the array's z axis.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from echoloc_ros.core.paths import load_config

# What an array name from the wire (EchoFrame.array_id) may look like: a file name in
# config/arrays without its .yaml, never a path.
_ARRAY_NAME = re.compile(r'[A-Za-z0-9_-]{1,64}')
# How far each receiver's acoustic phase centre may lie from the file's position when the file
# does not say (``position_std_m``), one standard deviation per axis: a phase centre differs
# from the drawing by fractions of a millimetre (a part placed within +-0.25 mm, uniform, has
# 0.14 mm).
DEFAULT_POSITION_STD_M = 1.5e-4


@dataclass
class ArrayGeometry:
    """An emitter and receivers with their transducer model.

    :ivar emitter_m: emitter position ``(3,)`` in the array frame, m.
    :ivar receivers_m: receiver positions ``(n, 3)`` in the array frame, m.
    :ivar gains: nominal receiver sensitivities ``(n,)`` (linear, 1 = nominal).
    :ivar transducer_center_hz: resonance of each transducer (a second-order band-pass).
    :ivar transducer_bandwidth_hz: -3 dB bandwidth of one transducer.
    :ivar piston_radius_m: radius of the circular piston used for directivity.
    :ivar coupling_db: level of the direct emitter-to-receiver arrival (acoustic plus structural)
        relative to a lossless echo with a 1 m path.
    :ivar position_std_m: how far each receiver's phase centre may lie from ``receivers_m``,
        one standard deviation per receiver and axis ``(n, 3)`` (a number: every one alike),
        m: the parts' tolerance, or what a calibration achieved. The published covariance
        adds the pose error it causes
        (:func:`~echoloc_ros.core.physics.array_doubt.array_doubt`).
    :ivar common_std_m: the doubt of a shift common to every receiver ``(3,)`` (a number: each
        axis alike), one standard deviation per axis, m, on top of ``position_std_m``: what a
        receiver calibration cannot see (it measures the receivers against each other), so
        one error moves them all. 0 for a file of the parts' tolerance, whose independent
        doubts already span a common shift.
    """

    name: str
    emitter_m: np.ndarray
    receivers_m: np.ndarray
    gains: np.ndarray = field(default=None)
    transducer_center_hz: float = 40e3
    transducer_bandwidth_hz: float = 12e3
    piston_radius_m: float = 1.5e-3
    coupling_db: float = 35.0
    description: str = ''
    position_std_m: np.ndarray | float = DEFAULT_POSITION_STD_M
    common_std_m: np.ndarray | float = 0.0

    def __post_init__(self) -> None:
        self.emitter_m = np.asarray(self.emitter_m, dtype=float)
        self.receivers_m = np.asarray(self.receivers_m, dtype=float)
        if self.emitter_m.shape != (3,) or not np.all(np.isfinite(self.emitter_m)):
            raise ValueError(f'array {self.name!r}: emitter_m must be 3 finite numbers, got '
                             f'{self.emitter_m.tolist()}')
        if (self.receivers_m.ndim != 2 or self.receivers_m.shape[1] != 3
                or self.receivers_m.shape[0] < 1 or not np.all(np.isfinite(self.receivers_m))):
            raise ValueError(f'array {self.name!r}: receivers_m must be a list of [x, y, z] '
                             f'(finite), got shape {self.receivers_m.shape}')
        n = self.receivers_m.shape[0]
        self.gains = np.ones(n) if self.gains is None else np.asarray(self.gains, dtype=float)
        if self.gains.shape != (n,) or np.any(self.gains <= 0) or not np.all(
                np.isfinite(self.gains)):
            raise ValueError(f'array {self.name!r}: gains must be {n} positive numbers, got '
                             f'{self.gains.tolist()}')
        if not 0 < self.transducer_bandwidth_hz < 2 * self.transducer_center_hz:
            raise ValueError(f'array {self.name!r}: transducer_bandwidth_hz must be in (0, '
                             f'{2 * self.transducer_center_hz}), got '
                             f'{self.transducer_bandwidth_hz}')
        if self.piston_radius_m < 0:
            raise ValueError(f'array {self.name!r}: piston_radius_m must be >= 0, got '
                             f'{self.piston_radius_m}')
        std = np.asarray(self.position_std_m, dtype=float)
        if (std.shape not in ((), (n, 3)) or not np.all(np.isfinite(std)) or np.any(std < 0)
                or np.any(std > 0.01)):
            raise ValueError(f'array {self.name!r}: position_std_m must be a number or {n} '
                             f'[x, y, z] in [0, 0.01] m, got {std.tolist()}')
        self.position_std_m = np.broadcast_to(std, (n, 3)).copy()
        common = np.asarray(self.common_std_m, dtype=float)
        if (common.shape not in ((), (3,)) or not np.all(np.isfinite(common))
                or np.any(common < 0) or np.any(common > 0.01)):
            raise ValueError(f'array {self.name!r}: common_std_m must be a number or [x, y, z] '
                             f'in [0, 0.01] m, got {common.tolist()}')
        self.common_std_m = np.broadcast_to(common, (3,)).copy()
        if np.any(np.linalg.norm(self.receivers_m - self.emitter_m, axis=1) < 1e-3):
            raise ValueError(f'array {self.name!r}: a receiver coincides with the emitter')

    @property
    def n_receivers(self) -> int:
        """Number of receive channels."""
        return self.receivers_m.shape[0]

    def to_world(self, position_m: np.ndarray, yaw_rad: float) -> tuple[np.ndarray, np.ndarray]:
        """Transducer positions in the room frame for an array at ``position_m`` with heading yaw.

        :param position_m: array-frame origin in the room frame ``(3,)``, m.
        :param yaw_rad: heading about z, rad.
        :return: ``(emitter (3,), receivers (n, 3))`` in the room frame, m.
        """
        rot = yaw_matrix(yaw_rad)
        position = np.asarray(position_m, dtype=float)
        return position + rot @ self.emitter_m, position + self.receivers_m @ rot.T

    def transducer_response(self, freq_hz: np.ndarray) -> np.ndarray:
        """Complex response of one transducer, a second-order resonator (unit gain at centre).

        :param freq_hz: frequencies in Hz (positive).
        :return: complex response, same shape.
        """
        return resonator_response(freq_hz, self.transducer_center_hz,
                                  self.transducer_bandwidth_hz)

    def directivity(self, freq_hz: np.ndarray, cos_axis: np.ndarray,
                    speed_of_sound_mps: float) -> np.ndarray:
        """Amplitude directivity of an unbaffled circular piston, 2 J1(ka sin t) / (ka sin t).

        It depends on sin t only, so it radiates alike on both sides of its plane; t is the angle
        between the ray and the array's z axis.

        :param freq_hz: frequencies ``(..., n_freq)`` or broadcastable, Hz.
        :param cos_axis: cosine of the angle between ray and z axis, broadcastable.
        :param speed_of_sound_mps: speed of sound, m/s.
        :return: real amplitude factor in (0, 1].
        """
        sin_t = np.sqrt(np.clip(1.0 - np.asarray(cos_axis) ** 2, 0.0, 1.0))
        x = 2 * np.pi * np.asarray(freq_hz) / speed_of_sound_mps * self.piston_radius_m * sin_t
        x = np.maximum(x, 1e-9)
        return 2.0 * special.j1(x) / x

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, the inverse of :func:`array_from_dict`."""
        return {
            'name': self.name,
            'description': self.description,
            'emitter_m': self.emitter_m.tolist(),
            'receivers_m': self.receivers_m.tolist(),
            'gains': self.gains.tolist(),
            'transducer': {'center_hz': self.transducer_center_hz,
                           'bandwidth_hz': self.transducer_bandwidth_hz,
                           'piston_radius_m': self.piston_radius_m},
            'coupling_db': self.coupling_db,
        }


def resonator_response(freq_hz: np.ndarray, center_hz: float | np.ndarray,
                       bandwidth_hz: float | np.ndarray) -> np.ndarray:
    """Complex response of a second-order resonator with unit gain at its centre.

    :param freq_hz: frequencies in Hz (positive); broadcast with the other two.
    :param center_hz: resonance, Hz.
    :param bandwidth_hz: -3 dB bandwidth, Hz.
    """
    f = np.maximum(np.asarray(freq_hz, dtype=float), 1e-9)
    q = np.asarray(center_hz) / np.asarray(bandwidth_hz)
    return 1.0 / (1.0 + 1j * q * (f / center_hz - center_hz / f))


def yaw_matrix(yaw_rad: float) -> np.ndarray:
    """Rotation about z by ``yaw_rad`` ``(3, 3)``."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def tilt_matrix(roll_rad: float, pitch_rad: float) -> np.ndarray:
    """The array's attitude below its heading ``(3, 3)``: pitch about its y axis after roll
    about its x axis (z-y-x Euler angles; the full rotation is ``yaw_matrix(yaw) @ this``)."""
    cr, sr = np.cos(roll_rad), np.sin(roll_rad)
    cp, sp = np.cos(pitch_rad), np.sin(pitch_rad)
    return np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]]) @ np.array(
        [[1, 0, 0], [0, cr, -sr], [0, sr, cr]])


def array_from_dict(data: dict[str, Any]) -> ArrayGeometry:
    """Build an :class:`ArrayGeometry` from its YAML/dict form, naming any bad field."""
    if not isinstance(data, dict):
        raise ValueError(f'array description must be a mapping, got {type(data).__name__}')
    allowed = {'name', 'description', 'emitter_m', 'receivers_m', 'gains', 'transducer',
               'coupling_db', 'position_std_m', 'common_std_m'}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f'unknown array fields {sorted(unknown)}; expected {sorted(allowed)}')
    for key in ('name', 'emitter_m', 'receivers_m'):
        if key not in data:
            raise ValueError(f'array description lacks {key!r}')
    transducer = dict(data.get('transducer') or {})
    unknown = set(transducer) - {'center_hz', 'bandwidth_hz', 'piston_radius_m'}
    if unknown:
        raise ValueError(f'unknown transducer fields {sorted(unknown)}; expected center_hz, '
                         'bandwidth_hz, piston_radius_m')
    return ArrayGeometry(
        name=str(data['name']), description=str(data.get('description', '')),
        emitter_m=data['emitter_m'], receivers_m=data['receivers_m'], gains=data.get('gains'),
        transducer_center_hz=float(transducer.get('center_hz', 40e3)),
        transducer_bandwidth_hz=float(transducer.get('bandwidth_hz', 12e3)),
        piston_radius_m=float(transducer.get('piston_radius_m', 1.5e-3)),
        coupling_db=float(data.get('coupling_db', 35.0)),
        position_std_m=data.get('position_std_m', DEFAULT_POSITION_STD_M),
        common_std_m=data.get('common_std_m', 0.0))


def load_array(name_or_path: str | Path = 'square_4sensor') -> ArrayGeometry:
    """Load ``config/arrays/<name>.yaml`` or a YAML file by path.

    :param name_or_path: array name or path to a YAML file.
    :return: the array geometry.
    """
    return load_config('arrays', name_or_path, array_from_dict)


def load_named_array(name: str) -> ArrayGeometry:
    """Load an array shipped in ``config/arrays`` by its bare name, as a message names it.

    :raises ValueError: ``name`` is not a bare name (a path, say, which would have the node open
        whatever file a peer names) or no shipped array has it.
    """
    if not isinstance(name, str) or not _ARRAY_NAME.fullmatch(name):
        raise ValueError(f'array_id {str(name)[:80]!r} is not an array name (letters, digits, '
                         '_ and -, as in config/arrays)')
    return load_array(name)
