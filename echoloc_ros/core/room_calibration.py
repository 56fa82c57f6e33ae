"""The room's shell as it stands, measured from the echoes of a drive: every wall (each wall of
a plan that is not a rectangle too), the floor and the ceiling, as the speed of sound and the
furniture survey (:mod:`~echoloc_ros.core.survey`) are.

Per frame with a trusted pose (the tracked position and the fix's heading), each surface's
own echoes (its first-order echo and its double bounces with the floor and ceiling, whose
delays move with that surface alone) are scanned along the surface's normal: the emitter
shift ``c`` that explains them best says that the surface lies ``c`` farther out than the file
has it, as seen from a pose that is itself off by ``b`` (the stale file biased the fix):
``c_s = u_s - n_s . b``, with ``n_s`` the surface's inward normal and ``u_s`` its outward
offset. Over the frames, each frame's ``b`` is fitted and the offsets ``u`` remain, up to one
translation of the whole shell: echoes tell the room's shape and size, never where its frame
lies. The corrected room keeps the file's frame as nearly as the shape allows (the
translation that best aligns it with the file), and a shoebox stays a shoebox with its
south-west corner and floor at the origin (its furniture moves with that frame).

Echoes measure time, so the room's scale and the speed of sound trade off: the speed of sound
of the temperature told (the room file's, or the one given) is one ruler, 0.18 % of scale per
degC, and the calibrated room may keep the scale the echoes measured at it (``ruler``
``'temperature'``). The file's own scale (its surfaces, each within its ``tolerance_m``) is a
second ruler, as good for a tape-measured room (+-1 cm over 4-6 m: 0.1 %) as a temperature
known to 0.6 degC: asked (``ruler='both'``), the calibrated room takes the scale of least
variance between the two, each weighed by its doubt (:func:`ruler_weight`). The default
(``'auto'``) weighs the two where the file's is the better ruler (a tape-measured room whose
air is only guessed: the kept scale's doubt half the temperature's) and keeps the
temperature's where it is not (a room file within +-3 cm: the file's 0.31 % would take a
quarter of the scale and gain 14 % of its doubt, and where the temperature told is right it
moves every wall millimetres toward the file's error). Nothing in the echoes tells the scale
itself: a room ``1 + s`` larger in air ``1 + s`` faster sounds the same but for the array's
few centimetres, whose receivers are themselves known to a fraction of a millimetre (0.1-0.2 %
of scale), so a longer drive pins the scale measured at the temperature told (to 0.03 % in
10 s) but not the air's error in it. Either way the measured scale's doubt counts the
measurement's own
error (the surfaces' uncertainties through the fit, or the drive's segments' disagreement on
the scale) besides the air's. Where the two disagree by more than three standard deviations
of both together (air 5 degC off the file's 20 degC: the room measured 0.85 % too small), the
temperature told is wrong, and the calibrated room keeps the file's scale (the localizer
estimates the speed of sound per frame from the floor and ceiling anyway). The tolerance the
calibrated room states covers, per surface, the disagreement of its estimate between
segments of the drive, the array's own uncertainty; the ruler's doubt is one more term, the
room's ``scale_std``, shared by every surface (a scale moves each by its distance from the
room's centre, all together: :func:`~echoloc_ros.core.room_tolerance.scale_covariance`), not
added to each surface's.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.array_geometry import yaw_matrix
from echoloc_ros.core.echo_processing import EchoFeatures
from echoloc_ros.core.geometry import moved_shell, room_planes
from echoloc_ros.core.paths import resolve_config
from echoloc_ros.core.physics.config import RESPONSE_HALF_S
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import MAX_SCALE_STD, Room

# Shifts scanned per surface and frame, m: the stale file's fix is off by a few cm at most.
SCAN_HALF_M = 0.08
SCAN_STEP_M = 0.0005
# A surface whose echoes explain less than this energy (noise units: 10 is 10 dB above the
# noise) is not heard in the frame.
MIN_SCORE = 10.0
# The boxes' common step from the file's frame is searched within +-this, m, and needs this
# many face echoes heard on an axis.
BOX_STEP_HALF_M = 0.05
MIN_FACE_ECHOES = 20
# Per-frame measurements further than this many robust standard deviations from the fit are
# dropped (a wrong fringe of the carrier, an echo under another).
OUTLIER_SIGMAS = 3.5
# The drive is cut into this many consecutive segments; their estimates' disagreement is a
# surface's uncertainty (batch means: errors that hold over a stretch of poses are in it).
SEGMENTS = 4
# What a surface's estimate cannot see from its own frames: the array's phase centres, tilt
# and transducers as calibrated leave every echo's path this uncertain (one standard
# deviation, m; with the realistic mix, walls came out 1.5-1.7 mm off at 20 degC).
ARRAY_STD_M = 0.001
# The same once the receivers' phase centres are calibrated from the drive
# (:func:`~echoloc_ros.offline.room_calibration.receivers_then_room`): on dev (model-error seed
# 1, the realistic mix) the walls came out within 0.30 mm of the truth.
CALIBRATED_ARRAY_STD_M = 0.0003
# What of it a wall's own doubt keeps with the receivers calibrated: none. Its estimate's own
# residual (the segments' disagreement, 0.16-0.48 mm) sizes its error, and the array share on
# top stated every wall at 0.32-0.57 mm where the walls were 0.18 mm rms off the truth after
# the room's scale (dev, model-error seed 11, the realistic mix, ten worlds: z rms 0.46); the
# floor and ceiling keep the share (their errors 0.4-0.9 mm, z rms 1.6: the height the scale
# does not explain). The array share stays in the bound the residual is judged against
# (``tolerance_m``): the array's error leaves its residual in every echo whatever the walls'.
# Issue 18, branch r37-06.
CALIBRATED_WALL_ARRAY_STD_M = 0.0
# The temperature told is this uncertain (one standard deviation, degC) unless the caller
# says otherwise: a room file's temperature is a guess, indoor air is 18-26 degC.
TEMPERATURE_STD_C = 1.0
# The file's scale is held when the temperature's disagrees with it by more than this many
# standard deviations of both together.
RULER_SIGMAS = 3.0
# The scale kept where the two agree: ``'temperature'``, the one the echoes measured at the
# temperature told, ``'both'``, it and the file's each weighed by its doubt
# (:func:`ruler_weight`), or ``'auto'`` (the default): ``'both'`` where the file's scale is
# the better ruler of the two (its doubt below the measured scale's), else ``'temperature'``.
RULERS = ('temperature', 'both', 'auto')


def ruler_weight(file_std: float, measured_std: float) -> tuple[float, float]:
    """The share of the scale the echoes measured at the temperature told that the calibrated
    room keeps, and the kept scale's standard deviation (fractions).

    The echoes measure the room's scale ``s_file - s_air + e`` (the file's own scale error
    less the air's, as a fraction of the speed of sound told, and the measurement's own error
    ``e``); keeping ``w`` of it leaves the room ``-(1 - w) s_file - w (s_air - e)`` off, least
    in variance at ``w = file_std^2 / (file_std^2 + measured_std^2)``, with the standard
    deviation of the two rulers combined. A file that states no doubt (``tolerance_m`` 0: the
    simulated rooms' files) gives no scale to weigh: the measured one is kept (``w = 1``).

    :param file_std: the room file's scale's standard deviation (its surfaces' tolerance).
    :param measured_std: the measured scale's as a ruler: the temperature's doubt and the
        measurement's own error together.
    """
    if file_std <= 0.0:
        return 1.0, measured_std
    file_var, measured_var = file_std ** 2, measured_std ** 2
    total = file_var + measured_var
    return file_var / total, float(np.sqrt(file_var * measured_var / total))


@dataclass
class RoomCalibrationResult:
    """What :meth:`RoomCalibration.solve` found.

    :ivar room: the room as it stands (:attr:`Room.tolerance_m` its surfaces' uncertainty).
    :ivar offsets_m: each surface's outward offset from the file (walls in plan order, floor,
        ceiling), in the file's frame after the translation of least change, m.
    :ivar std_m: each offset's own standard uncertainty (segments, array; the scale's is
        ``room.scale_std``, shared), m (``inf``: never heard).
    :ivar frames: each surface's frames used.
    :ivar shift_m: a point of the file's frame is ``p - shift_m`` in ``room``'s frame.
    :ivar ruler: ``'temperature'`` (the scale measured at the speed of sound told),
        ``'both'`` (it and the file's, each weighed by its doubt: :func:`ruler_weight`; asked
        for, or ``'auto'`` and the file's the better ruler) or ``'file'`` (the two disagreed;
        the file's scale is kept).
    :ivar scale: the room's scale the echoes measured at the temperature told, over the
        file's, minus 1 (what the ruler ``'file'`` took out).
    :ivar temperature_c: the air's temperature that ``scale`` implies, against the file's
        scale, degC.
    """

    room: Room
    offsets_m: np.ndarray
    std_m: np.ndarray
    frames: np.ndarray
    shift_m: np.ndarray
    ruler: str = 'temperature'
    scale: float = 0.0
    temperature_c: float = float('nan')

    def to_dict(self) -> dict:
        """The offsets and their uncertainties in mm, per surface name, for JSON."""
        names = self.room.surface_names
        return {'surface_offset_mm': {n: round(1e3 * float(u), 2)
                                      for n, u in zip(names, self.offsets_m)},
                'surface_std_mm': {n: round(1e3 * float(s), 3)
                                   for n, s in zip(names, self.std_m)},
                'surface_frames': {n: int(k) for n, k in zip(names, self.frames)},
                'ruler': self.ruler, 'scale_pct': round(100.0 * self.scale, 4),
                'temperature_c': round(self.temperature_c, 2),
                'tolerance_m': self.room.tolerance_m,
                'scale_std_pct': round(100.0 * self.room.scale_std, 4)}


class RoomCalibration:
    """Collects each frame's surface shifts (:meth:`add`) and solves for the shell
    (:meth:`solve`).

    :param localizer: a physics localizer of the room file (its image model and point
        response; its processor made the features).
    :param refresh_every: every this many frames the surfaces are scanned from then on in
        the room as solved so far, not the file's: a wall's double bounces with the floor and
        ceiling, and the echoes that arrive among its own, are then where they are.
    :param temperature_std_c: how well the temperature told is known (one standard
        deviation, degC): a guess from the room file, or a thermometer's reading.
    :param array_std_m: what the array leaves every echo's path uncertain by (one standard
        deviation, m): :data:`ARRAY_STD_M`, or :data:`CALIBRATED_ARRAY_STD_M` with the
        receivers calibrated.
    :param ruler: the scale kept where the temperature's and the file's agree (one of
        :data:`RULERS`): ``'temperature'``, the one measured at the temperature told,
        ``'both'``, it and the file's weighed by their doubts, or ``'auto'``: ``'both'`` where
        the file's is the better ruler of the two, else ``'temperature'``.
    :param wall_array_std_m: the array's share in each wall's own doubt (m; ``None``:
        ``array_std_m``): :data:`CALIBRATED_WALL_ARRAY_STD_M` with the receivers calibrated.
        The floor and ceiling keep ``array_std_m``.
    """

    def __init__(self, localizer: PhysicsLocalizer, refresh_every: int = 25,
                 temperature_std_c: float = TEMPERATURE_STD_C,
                 array_std_m: float = ARRAY_STD_M, ruler: str = 'auto',
                 wall_array_std_m: float | None = None) -> None:
        if refresh_every < 1:
            raise ValueError(f'refresh_every must be >= 1, got {refresh_every}')
        if not (np.isfinite(temperature_std_c) and temperature_std_c >= 0):
            raise ValueError(f'temperature_std_c must be a finite number >= 0 degC, got '
                             f'{temperature_std_c}')
        for name, value in (('array_std_m', array_std_m), ('wall_array_std_m',
                                                           wall_array_std_m)):
            if value is not None and not (np.isfinite(value) and 0 <= value <= 0.05):
                raise ValueError(f'{name} must be in [0, 0.05] m, got {value}')
        if ruler not in RULERS:
            raise ValueError(f'ruler must be one of {", ".join(map(repr, RULERS))}, got '
                             f'{ruler!r}')
        self.ruler = ruler
        self.array_std_m = array_std_m
        self.wall_array_std_m = array_std_m if wall_array_std_m is None else wall_array_std_m
        self.localizer = localizer
        self.refresh_every = refresh_every
        self.temperature_std_c = temperature_std_c
        # The room scanned in (the file's, then the latest solution), its surfaces' offsets
        # from the file and its frame's shift from the file's.
        self.scanner = localizer
        self.scan_offsets_m = np.zeros(len(room_planes(localizer.room)))
        self.scan_shift_m = np.zeros(3)
        room = localizer.room
        self.planes = room_planes(room)
        self.normals = np.array([p.normal for p in self.planes])
        n_surfaces = len(self.planes)
        vertical = {n_surfaces - 2, n_surfaces - 1}
        sequences = localizer._sequences
        # A surface's own echoes: those of it alone and its bounces with floor or ceiling,
        # whose delays move with that surface only.

        def own(s: int, seq: tuple[int, ...]) -> bool:
            return s in seq and all(i == s or (i in vertical and s not in vertical)
                                    for i in seq)

        self.families = [np.array([own(s, seq) for seq in sequences])
                         for s in range(n_surfaces)]
        self.grid_m = np.arange(-SCAN_HALF_M, SCAN_HALF_M + 0.5 * SCAN_STEP_M, SCAN_STEP_M)
        # A scale about the room's centre moves each surface out by its distance from it.
        centre = np.append(room.vertices_m.mean(axis=0), 0.5 * room.height_m)
        self.scale_mode_m = np.array([p.normal @ centre - p.offset for p in self.planes])
        self.shifts: list[np.ndarray] = []
        self.temperatures_c: list[float] = []
        # The known boxes' upright faces (first-order paths): each heard one's score over the
        # scan, (frame, axis, side, scores), for the boxes' step (:meth:`_box_step`).
        self.face_paths = [(p, axis, side) for p, _, axis, side, _ in localizer._faces
                           if axis < 2]
        self.face_scores: list[tuple[int, int, float, np.ndarray]] = []

    @property
    def n_frames(self) -> int:
        """Frames added so far."""
        return len(self.shifts)

    def add(self, features: EchoFeatures, position_m: np.ndarray, yaw_rad: float,
            temperature_c: float | None = None) -> np.ndarray:
        """Measure one frame's surface shifts at a trusted pose.

        :param position_m: the array's position (the tracked one), room file frame ``(3,)``.
        :param yaw_rad: its heading (the fix's), rad.
        :param temperature_c: the air's, degC; ``None``: the room file's.
        :return: each surface's shift ``c_s`` ``(S,)``, m (``nan`` where not heard).
        """
        loc = self.scanner
        temperature = loc.room.temperature_c if temperature_c is None else temperature_c
        fr = loc.frame(features, yaw_rad, temperature)
        emitter = (np.asarray(position_m, dtype=float) - self.scan_shift_m
                   + yaw_matrix(yaw_rad) @ loc.array.emitter_m)
        valid = loc._valid_images(emitter[None], emitter[None] + fr.offsets.mean(axis=0))[0]
        at = np.append(emitter, [1.0, 0.0])[None]
        every = np.flatnonzero(valid)
        tau0, amp0, _ = loc._paths(fr, at, every, np.ones(every.size, dtype=bool))
        shifts = np.full(len(self.planes), np.nan)
        n_walls = len(self.planes) - 2
        # Floor and ceiling first: the floor's shift puts the emitter at its height above the
        # floor, where the walls' double bounces with the floor are.
        for s in (n_walls, n_walls + 1, *range(n_walls)):
            if s == 0 and np.isfinite(shifts[n_walls]):
                at[0, 2] += shifts[n_walls]
                tau0, amp0, _ = loc._paths(fr, at, every, np.ones(every.size, dtype=bool))
            mine = self.families[s][every]
            if mine.any():
                shifts[s] = self._scan(fr, at, self.normals[s], every, mine, tau0, amp0)[0]
        for p, axis, side in self.face_paths:
            mine = every == p
            if mine.any():
                found, score = self._scan(fr, at, side * np.eye(3)[axis], every, mine, tau0,
                                          amp0)
                if np.isfinite(found):
                    self.face_scores.append((self.n_frames, axis, side, score))
        shifts += self.scan_offsets_m
        self.shifts.append(shifts)
        self.temperatures_c.append(float(temperature))
        if self.n_frames % self.refresh_every == 0:
            self._refresh()
        return shifts

    def _scan(self, fr, at: np.ndarray, normal: np.ndarray, every: np.ndarray,
              mine: np.ndarray, tau0: np.ndarray, amp0: np.ndarray) -> tuple[float, np.ndarray]:
        """The shift of the surface with inward ``normal`` whose echoes are ``every[mine]``,
        from the emitter ``at (1, 5)`` in the scanned room: the parabola's vertex at the best
        of its echoes' scores (``nan`` when not heard), and the scores over the scan."""
        # Other echoes that arrive among this surface's over the scan stay in the fit where
        # the room scanned has them, so that they are not taken for its echoes.
        reach = RESPONSE_HALF_S + 2.0 * SCAN_HALF_M / fr.c0
        near = np.any(np.abs(tau0[0, ~mine][:, None] - tau0[0, mine][None]) < reach,
                      axis=(1, 2))
        thetas = np.repeat(at, self.grid_m.size, axis=0)
        thetas[:, :3] += self.grid_m[:, None] * normal
        score = self._scores(fr, thetas, every[mine], tau0[:, ~mine][:, near],
                             amp0[:, ~mine][:, near])
        best = int(np.argmax(score))
        if not (0 < best < score.size - 1 and score[best] >= MIN_SCORE):
            return float('nan'), score
        y0, y1, y2 = score[best - 1:best + 2]
        return float(self.grid_m[best] + SCAN_STEP_M * 0.5 * (y0 - y2)
                     / min(y0 - 2 * y1 + y2, -1e-12)), score

    def _refresh(self) -> None:
        """Scan from now on in the room as solved so far (kept as it was while too few frames
        hear its surfaces)."""
        try:
            result = self.solve(min_frames=min(self.refresh_every, 20), as_measured=True)
        except ValueError:
            return
        # The boxes are scanned where the file has them (their step is fitted anew).
        self.scanner = self.localizer.with_room(replace(result.room, furniture=[
            box.shifted(-result.shift_m) for box in self.localizer.room.furniture]))
        self.scan_offsets_m, self.scan_shift_m = result.offsets_m, result.shift_m

    def _scores(self, fr, thetas: np.ndarray, paths: np.ndarray, fixed_tau: np.ndarray,
                fixed_amp: np.ndarray) -> np.ndarray:
        """Energy of the frame that ``paths`` at each emitter of ``thetas (K, 5)`` and the
        fixed paths ``fixed_tau, fixed_amp (1, Q, n)`` explain together, one complex amplitude
        per path fitted jointly (least squares over the point response's overlap: near the
        floor a wall's echo and its double bounce arrive within a few mm) ``(K,)``, in noise
        units."""
        loc = self.scanner
        tau, amp, _ = loc._paths(fr, thetas, paths, np.ones(paths.size, dtype=bool))
        k = thetas.shape[0]
        tau = np.concatenate([tau, np.repeat(fixed_tau, k, axis=0)], axis=1)
        amp = np.concatenate([amp, np.repeat(fixed_amp, k, axis=0)], axis=1)
        amp = np.where(np.all((tau > fr.t_min) & (tau < fr.t_max), axis=-1)[..., None], amp,
                       0.0)
        gram, b = loc._gram_terms(fr, tau, amp)
        # A tiny ridge, so that a path with no energy stays solvable.
        scale = np.trace(gram, axis1=1, axis2=2).real / max(gram.shape[-1], 1)
        gram = gram + (1e-9 * scale + 1e-300)[:, None, None] * np.eye(gram.shape[-1])
        fitted = np.linalg.solve(gram, b[..., None])[..., 0]
        return np.real(np.sum(np.conj(b) * fitted, axis=-1))

    def solve(self, min_frames: int = 20, as_measured: bool = False) -> RoomCalibrationResult:
        """The shell from the frames added: every frame's pose error fitted out, robustly.

        :param min_frames: frames each surface needs; one heard less often keeps the file's
            place (offset 0, standard error ``inf``).
        :param as_measured: the shell at the scale the echoes measured at the temperature
            told, whatever the ruler keeps: the room the scans see (:meth:`_refresh`; scanned
            in a room at another scale, the surfaces' shifts come out biased: on two dev
            worlds with ``'both'`` the measured scale was 0.07 and 0.13 % beyond the
            temperature's ruler's in the same worlds).
        :raises ValueError: fewer than ``min_frames`` frames hear three surfaces.
        """
        c = np.array(self.shifts).reshape(-1, len(self.planes))
        heard = np.isfinite(c)
        usable = np.count_nonzero(heard, axis=1) >= 4
        if np.count_nonzero(usable) < min_frames:
            raise ValueError(f'{np.count_nonzero(usable)} frames hear four or more surfaces of '
                             f'room {self.localizer.room.name!r}; need at least {min_frames}')
        c, heard = c[usable], heard[usable]
        offsets = np.zeros(len(self.planes))
        for _ in range(4):
            bias = self._frame_bias(c, heard, offsets)
            residual = c + bias @ self.normals.T                     # u_s per frame
            offsets = np.array([np.median(residual[heard[:, s], s]) if heard[:, s].any()
                                else 0.0 for s in range(len(self.planes))])
            spread = 1.4826 * np.array([np.median(np.abs(residual[heard[:, s], s] - offsets[s]))
                                        if heard[:, s].any() else np.inf
                                        for s in range(len(self.planes))])
            heard &= np.abs(residual - offsets) <= OUTLIER_SIGMAS * np.maximum(spread, 2e-4)
        counts = np.count_nonzero(heard, axis=0)
        known = counts >= min_frames
        offsets = np.where(known, offsets, 0.0)
        segment_std, segment_scale_std = self._segment_std(residual, heard, offsets, known)
        own = np.maximum(spread / np.sqrt(np.maximum(counts, 1)), segment_std)
        std = np.where(known, np.sqrt(own ** 2 + self.array_std_m ** 2), np.inf)
        # Each surface's stated doubt: the walls' with their own share of the array's.
        share = np.full(len(self.planes), self.array_std_m)
        share[:-2] = self.wall_array_std_m
        stated = np.where(known, np.sqrt(own ** 2 + share ** 2), np.inf)
        # The measured scale's own error: the surfaces' doubts through the fit, or the
        # segments' disagreement on it (an error shared by the surfaces), whichever is larger.
        measured_std = max(self._measured_scale_std(std, known), segment_scale_std)
        # Echoes cannot tell where the room is: keep the translation of least change.
        offsets = offsets - self._gauge(offsets, known)
        kept, ruler, scale, scale_std = self._ruler(offsets, known, measured_std)
        offsets = offsets if as_measured else kept
        room, shift = moved_shell(self.localizer.room, offsets)
        step = self._box_step(offsets)
        room = replace(room, furniture=[box.shifted(step) for box in room.furniture])
        # Uniform within +-tolerance has the worst surface's variance, the array's whole share
        # in it: the bound the residual is judged against. The covariance reads each
        # surface's own (a surface not heard keeps the file's doubt); the scale's doubt is one
        # term of its own.
        tolerance = float(np.clip(np.sqrt(3.0) * std[known].max(initial=0.0), 0.0, 0.5))
        surface_std = np.clip(np.where(known, stated, self.localizer.room.tolerance_m
                                       / np.sqrt(3.0)), 0.0, 0.5)
        told_c = float(np.mean(self.temperatures_c))
        c = speed_of_sound_mps(told_c)
        room = replace(room, tolerance_m=tolerance, surface_std_m=surface_std,
                       scale_std=float(np.clip(scale_std, 0.0, MAX_SCALE_STD)))
        return RoomCalibrationResult(room, offsets, stated, counts, shift, ruler, scale,
                                     told_c - scale * c / 0.606)

    def _segment_std(self, residual: np.ndarray, heard: np.ndarray, offsets: np.ndarray,
                     known: np.ndarray) -> tuple[np.ndarray, float]:
        """Each surface's uncertainty from the disagreement of :data:`SEGMENTS` consecutive
        stretches of the drive ``(S,)``, m (0 where fewer than two stretches hear it): the
        standard error of their mean, each stretch's median offset taken after the shell's
        common translation; and the same of the room's scale (fraction; 0 where fewer than two
        stretches hear enough surfaces to fit it)."""
        parts = np.array_split(np.arange(residual.shape[0]), SEGMENTS)
        estimates = np.full((SEGMENTS, len(self.planes)), np.nan)
        for k, rows in enumerate(parts):
            for s in np.flatnonzero(known):
                mine = rows[heard[rows, s]]
                if mine.size >= 5:
                    estimates[k, s] = np.median(residual[mine, s])
        gap = estimates - offsets
        gap = gap - np.array([self._gauge(np.nan_to_num(g), known & np.isfinite(g))
                              if np.count_nonzero(known & np.isfinite(g)) >= 3 else
                              np.zeros_like(g) for g in gap])
        n = np.count_nonzero(np.isfinite(gap), axis=0)
        sum_sq = np.nansum(gap ** 2, axis=0)
        scales = []
        for g in gap:
            rows = known & np.isfinite(g)
            design = np.column_stack([self.normals, self.scale_mode_m])[rows]
            if np.linalg.matrix_rank(design) == 4 and rows.sum() > 4:
                scales.append(np.linalg.lstsq(design, g[rows], rcond=None)[0][3])
        k = len(scales)
        scale_std = float(np.sqrt(np.sum(np.square(scales)) / (k * (k - 1)))) if k >= 2 else 0.0
        return np.where(n >= 2, np.sqrt(sum_sq / np.maximum(n * (n - 1), 1)), 0.0), scale_std

    def _measured_scale_std(self, std_m: np.ndarray, known: np.ndarray) -> float:
        """The standard deviation of the scale :meth:`_ruler` fits to offsets each ``std_m``
        uncertain (independent), a fraction: their variances through the least squares."""
        design = np.column_stack([self.normals, self.scale_mode_m])[known]
        row = np.linalg.pinv(design)[3]
        return float(np.sqrt(np.sum((row * std_m[known]) ** 2)))

    def _ruler(self, offsets: np.ndarray, known: np.ndarray,
               measured_std: float = 0.0) -> tuple[np.ndarray, str, float, float]:
        """The scale: the temperature told's (the ruler ``'temperature'``), or it and the
        file's each weighed by its doubt (``'both'``; with ``'auto'`` where the file's doubt is
        below the measured scale's); the file's where the two disagree.

        :param offsets: the surfaces' offsets at the temperature told, translation removed.
        :param measured_std: the measured scale's own error, one standard deviation (fraction):
            the kept scale's doubt counts its part (all of it with the temperature's ruler).
        :return: the offsets at the scale kept, the ruler (``'temperature'``, ``'both'``,
            ``'file'``), the scale measured against the file's, and the kept scale's standard
            deviation.
        """
        design = np.column_stack([self.normals, self.scale_mode_m])[known]
        fit = np.linalg.lstsq(design, offsets[known], rcond=None)[0]
        scale = float(fit[3])
        # The file's surfaces each uniform within +-tolerance_m: its scale's deviation.
        inverse = np.linalg.pinv(design.T @ design)
        file_std = self.localizer.room.tolerance_m / np.sqrt(3.0) * np.sqrt(inverse[3, 3])
        told_c = float(np.mean(self.temperatures_c))
        temperature_std = 0.606 * self.temperature_std_c / speed_of_sound_mps(told_c)
        # The measured scale as a ruler: the air's doubt and the measurement's own error.
        measured = float(np.hypot(temperature_std, measured_std))
        if abs(scale) > RULER_SIGMAS * np.hypot(file_std, measured):
            held = offsets - scale * self.scale_mode_m
            return held - self._gauge(held, known), 'file', scale, float(file_std)
        weight, scale_std = ruler_weight(float(file_std), measured)
        temperature = self.ruler == 'temperature' or (self.ruler == 'auto'
                                                      and file_std >= measured)
        if temperature or weight == 1.0:
            return offsets, 'temperature', scale, measured
        kept = offsets - (1.0 - weight) * scale * self.scale_mode_m
        return kept - self._gauge(kept, known), 'both', scale, scale_std

    def _box_step(self, offsets: np.ndarray) -> np.ndarray:
        """The boxes' common step in plan from where the file has them ``(2,)``, m.

        The file places its boxes in its own frame, and the shell's translation of least
        change need not keep it: the boxes' faces tell where they stand against the walls.
        Each heard face's scores over its scan, moved by its frame's pose error as the shell
        gives it, are summed per axis over all faces and frames (one face echo in a frame is
        a few cm wide; their sum peaks where all agree); an axis with fewer than
        ``MIN_FACE_ECHOES`` stays.
        """
        c = np.array(self.shifts)
        bias = self._frame_bias(np.nan_to_num(c), np.isfinite(c), offsets)
        steps = np.arange(-BOX_STEP_HALF_M, BOX_STEP_HALF_M + 0.5 * SCAN_STEP_M, SCAN_STEP_M)
        step = np.zeros(2)
        for axis in range(2):
            heard = [(f, side, score) for f, a, side, score in self.face_scores if a == axis]
            if len(heard) < MIN_FACE_ECHOES:
                continue
            # A box moved by g moves its face's echo by -side (g + the frame's pose error).
            total = sum(np.interp(-side * (steps + bias[f, axis]), self.grid_m, score,
                                  left=0.0, right=0.0) for f, side, score in heard)
            step[axis] = steps[int(np.argmax(total))]
        return step

    def _gauge(self, offsets: np.ndarray, known: np.ndarray) -> np.ndarray:
        """The part of ``offsets`` that is a translation of the whole shell ``(S,)``."""
        normals = self.normals[known]
        g = np.linalg.lstsq(normals, offsets[known], rcond=None)[0]
        return np.where(known, self.normals @ g, 0.0)

    def _frame_bias(self, c: np.ndarray, heard: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Each frame's pose error ``b`` ``(F, 3)`` given the offsets: least squares of
        ``c_s = u_s - n_s . b`` over the surfaces it hears (an axis no surface it hears
        constrains stays 0)."""
        bias = np.zeros((c.shape[0], 3))
        for f in range(c.shape[0]):
            rows = heard[f]
            bias[f] = np.linalg.lstsq(-self.normals[rows], c[f, rows] - offsets[rows],
                                      rcond=None)[0]
        return bias


def room_yaml(source: str | Path, result: RoomCalibrationResult) -> str:
    """The room file ``source`` (a room name or YAML path) as YAML text with its shell as
    ``result`` found it: plan, height, furniture in the new frame, ``tolerance_m`` and
    ``surface_std_m``; every other field as written."""
    data = yaml.safe_load(resolve_config('rooms', source).read_text(encoding='utf-8'))
    room = result.room
    if 'shoebox' in data['plan']:
        data['plan'] = {'shoebox': {'width_m': round(float(room.width_m), 4),
                                    'length_m': round(float(room.length_m), 4)}}
    else:
        data['plan'] = {'polygon': np.round(room.vertices_m, 4).tolist()}
    data['height_m'] = round(float(room.height_m), 4)
    for item in data.get('furniture') or []:
        for key in ('min_m', 'max_m'):
            item[key] = np.round(np.asarray(item[key], dtype=float) - result.shift_m,
                                 4).tolist()
    data['tolerance_m'] = round(float(room.tolerance_m), 4)
    data['scale_std'] = round(float(room.scale_std), 6)
    if room.surface_std_m is not None:
        data['surface_std_m'] = {name: round(float(v), 6) for name, v in
                                 zip(room.surface_names, room.surface_std_m)}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
