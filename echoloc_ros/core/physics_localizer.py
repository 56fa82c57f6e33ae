"""Physics-based localization in a known room from one frame of echoes, with the heading
given by the robot corrected from the echoes.

The method (details and sources in ``docs/physics.md``):

1. Per surface, a 1-D coherent score: the receivers' analytic matched-filter outputs
   ``z_i(tau) = baseband_i(tau) exp(j 2 pi f_c tau)`` summed at the delays of that surface's
   first-order echo, as a function of the emitter's distance to the surface. With heading known,
   a wall's echo delays depend on that distance only.
2. Height and speed of sound from the floor and ceiling: their apparent distances (at the
   assumed speed) add up to ``H c0 / c``. The floor and ceiling paths, which do not depend on x
   and y, are then fitted and removed.
3. Wall candidates: in a shoebox per axis, from every path that moves with that axis alone
   (its walls and their floor and ceiling double bounces); pairs are ranked with the corner
   echoes, and the weaker axis is scanned again once the stronger axis' echoes are fitted and
   removed. In other floor plans a grid over the plan and scans along each axis.
4. Every candidate is scored by the evidence of the full image-source model (orders 1-2, known
   furniture faces): the matched-filter outputs at the predicted delays, with the point
   response's overlap between paths (a Gram matrix) and a Gaussian prior on each path's complex
   amplitude. Working on the matched-filter outputs at the predicted delays instead of on the
   baseband bins makes a score cost tens of microseconds.
5. The best are refined by Gauss-Newton on the likelihood with the path amplitudes projected
   out (variable projection), with an analytic gradient and information built from the same
   outputs and the point response's derivatives. The covariance is the inverse information,
   scaled by the residual of the fit, plus a floor and the spread toward a competitor that
   explains the echoes almost as well.

The heading given is a prior, not a fact: 1 deg of error moves a receiver 7 cm from the emitter
by 1.2 mm, 0.9 rad of carrier phase, which decoheres the scores. Its offset psi is searched on a
grid for the wall candidates (a wall's echoes across the array measure it) and refined as a
fifth parameter with the prior as a regulariser; the position covariance marginalises it.
"""

import functools
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import fft as sfft
from scipy import interpolate, stats

from echoloc_ros.core.acoustics import air_absorption_db_per_m, speed_of_sound_mps
from echoloc_ros.core.array_geometry import ArrayGeometry, yaw_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor, working_channels
from echoloc_ros.core.localization import Fix
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.room import Room, any_box_blocks

# Work per frame for each optimization level: peaks kept per axis scan, (x, y) pairs kept from
# their product, values of the strong axis whose echoes are removed before the weak axis is
# scanned again, candidates polished and their Gauss-Newton steps, iterations of the winner,
# heights tried, step of the heading offsets tried per wall candidate (deg).
OPTIMIZATION_LEVELS = {
    'fast': {'n_candidates': 3, 'n_pairs': 4, 'n_explain': 1, 'n_polish': 2,
             'polish_iterations': 1, 'max_iterations': 2, 'n_heights': 1, 'yaw_step_deg': 1.5},
    'balanced': {'n_candidates': 5, 'n_pairs': 12, 'n_explain': 1, 'n_polish': 6,
                 'polish_iterations': 1, 'max_iterations': 5, 'n_heights': 1,
                 'yaw_step_deg': 0.75},
    'accurate': {'n_candidates': 8, 'n_pairs': 30, 'n_explain': 2, 'n_polish': 10,
                 'polish_iterations': 2, 'max_iterations': 8, 'n_heights': 2,
                 'yaw_step_deg': 0.5},
}
# Standard deviation of the heading given to :meth:`PhysicsLocalizer.localize` when the caller
# does not say: an IMU or compass heading indoors is good to a degree or two.
DEFAULT_YAW_STD_RAD = float(np.deg2rad(2.0))
# Heading offsets are searched within this many standard deviations of the given heading, and
# never beyond YAW_SPAN_MAX_RAD: the first wall scans run at the given heading, and 1 deg of
# error already costs a receiver 0.9 rad of carrier phase, so much larger errors lose the walls.
YAW_SPAN_SIGMAS = 3.0
YAW_SPAN_MAX_RAD = float(np.deg2rad(10.0))
# The wall scans run again at the heading found when it is this far from the one scanned: the
# coherent score of a wall's echoes loses ~40 % at 1 deg, ~90 % at 2 deg.
YAW_RESCAN_RAD = float(np.deg2rad(1.5))
# The baseband is upsampled by this factor once per frame so that interpolating it at any delay
# is accurate to ~0.2 % even linearly (the echoes occupy +-5 kHz around the carrier).
UPSAMPLE = 4
# The point response is negligible (< 0.2 % of its peak) beyond this lag, s.
RESPONSE_HALF_S = 0.5e-3
# Prior on path amplitudes: E|a|^2 = PRIOR_SCALE * gain^2 with the gain fitted on the floor and
# ceiling (reflection coefficients and directivity are only known roughly).
PRIOR_SCALE = 2.0
# Log-evidence gap to the best distinct competitor for full confidence, and the temperature of
# the competitor's weight 1 / (1 + exp(gap / AMBIGUOUS_GAP)) in the covariance. Over simulated
# frames, wrong fixes had gaps below ~15 and correct ones mostly above 30 at 10-20 dB; the
# evidence is overconfident (the noise model and amplitudes are approximate), hence the
# temperature above 1. See docs/physics.md.
CONFIDENT_GAP = 30.0
AMBIGUOUS_GAP = 5.0
# Parameters theta: emitter x, y, z (m), kappa = c / c0 and psi, the heading's offset from the
# one given (rad). Gauss-Newton stops when every step is below this: 0.1 mm, 1e-5 in kappa
# (0.05 mm at 5 m) and 1e-4 rad (7 um at a receiver 7 cm from the emitter).
STEP_TOLERANCE = np.array([1e-4, 1e-4, 1e-4, 1e-5, 1e-4])
STEP_LIMIT = np.array([0.01, 0.01, 0.01, 0.003, 0.01])
N_THETA = 5
YAW = 4
# The weaker axis is scanned again with the stronger axis' echoes removed unless its best
# score already leads the runner-up by this much (log units; over simulated frames at 10 dB no
# frame above it needed the second scan).
EXPLAIN_GAP = 3.0
# A second height is proposed only when its floor/ceiling evidence is within this of the best.
HEIGHT_GAP = 1.0
# A learned ranker's covariance (:meth:`PhysicsLocalizer._region_covariance`): its 95 % ellipsoid
# holds this much of the mixture, its components widened at most to this level.
REGION_MASS = 0.95
REGION_LEVEL_MAX = 0.999
# A plane this close to the emitter (m) echoes inside the direct arrival: not scored.
PLANE_MIN_DISTANCE_M = 0.02
# Rivals a learned ranker gives at least this probability are reported with the fix.
RIVAL_MIN_PROBABILITY = 0.01


@dataclass
class Explained:
    """A frame with the room's own echoes at a known pose removed
    (:meth:`PhysicsLocalizer.explain_at`).

    :ivar localizer: the localizer that fitted it (the array without dead receivers, if any).
    :ivar emitter_m: the emitter's position ``(3,)``, m.
    :ivar residual: baseband less the fitted room paths ``(n_channels, n_bins)``.
    """

    localizer: 'PhysicsLocalizer'
    frame: '_Frame'
    emitter_m: np.ndarray
    residual: np.ndarray


@dataclass
class Proposal:
    """The candidates of one frame (:meth:`PhysicsLocalizer.propose`).

    :ivar thetas: candidate parameters ``(M, 5)``: emitter x, y, z (m), kappa = c / c0 and
        the heading offset psi (rad); the ``n_polished`` polished ones first, best first,
        then the rest by their coarse score.
    :ivar scores: log evidence of each ``(M,)`` (comparable within the frame).
    :ivar n_polished: how many were polished.
    :ivar working: which receivers were used ``(n_channels,)``.
    :ivar yaw_given_rad: the heading the localizer was given, rad.
    """

    localizer: 'PhysicsLocalizer'
    frame: '_Frame'
    yaw_given_rad: float
    thetas: np.ndarray
    scores: np.ndarray
    n_polished: int
    working: np.ndarray

    def positions_m(self) -> np.ndarray:
        """Array-frame origin of every candidate ``(M, 3)``, m (the emitter moved back by
        its offset in the array, turned by the candidate's heading)."""
        emitter = self.localizer.array.emitter_m
        yaws = self.yaw_given_rad + self.thetas[:, YAW]
        c, s = np.cos(yaws), np.sin(yaws)
        offset = np.column_stack([c * emitter[0] - s * emitter[1],
                                  s * emitter[0] + c * emitter[1],
                                  np.full(len(yaws), emitter[2])])
        return self.thetas[:, :3] - offset


@dataclass
class _Surface:
    name: str
    normal: np.ndarray     # unit, into the room
    offset: float          # normal . x == offset on the surface
    reflection: float      # amplitude reflection coefficient sqrt(1 - alpha)
    index: int


@dataclass
class _Fit:
    """Result of :meth:`PhysicsLocalizer._newton` for a batch of B starting points."""

    theta: np.ndarray          # (B, 5) emitter x, y, z, kappa and psi
    evidence: np.ndarray       # (B,) log evidence with the amplitude and heading priors
    info: np.ndarray | None    # (B, 5, 5) information of the echoes (heading prior not included),
                               # zero outside the free parameters (None when not asked for)
    coef: np.ndarray           # (B, P) least-squares path amplitudes
    paths: np.ndarray          # (P,) image indices modelled
    keep: np.ndarray           # (B, P) which of them each fit modelled
    tau: np.ndarray            # (B, P, n) delays of the paths at theta, s
    amp: np.ndarray            # (B, P, n) their predicted amplitudes (0 where not modelled)


@dataclass
class _Frame:
    """What one call of :meth:`PhysicsLocalizer.localize` knows about its frame."""

    features: EchoFeatures
    offsets: np.ndarray        # receivers relative to the emitter, room axes (n, 3)
    c0: float                  # assumed speed of sound, m/s
    absorb: float              # air absorption, Np/m
    t_min: float               # earliest usable delay (after the direct arrival), s
    t_max: float               # last bin, s
    weights: np.ndarray        # 1 / noise power per channel (n,)
    table: np.ndarray          # baseband upsampled UPSAMPLE times (n, UPSAMPLE * n_bins)
    gain: float = 1.0          # fitted amplitude scale of the predicted paths
    yaw_info: float = 0.0      # 1 / variance of the given heading, 1/rad^2 (0: heading exact)
    yaw_grid: np.ndarray = field(default_factory=lambda: np.zeros(1))   # psi tried, rad

    @property
    def yaw_free(self) -> bool:
        """Whether the heading is estimated (not declared exact)."""
        return self.yaw_info > 0

    def yaw_prior(self, psi: np.ndarray) -> np.ndarray:
        """Log prior density of heading offsets ``psi``, up to a constant."""
        return -0.5 * self.yaw_info * np.asarray(psi) ** 2

    def rotated_offsets(self, psi: np.ndarray) -> np.ndarray:
        """Receivers relative to the emitter with the heading turned by ``psi (K,)``:
        ``(K, n, 3)``."""
        out = np.empty((len(psi),) + self.offsets.shape)
        c, s = np.cos(psi)[:, None], np.sin(psi)[:, None]
        x, y = self.offsets[:, 0], self.offsets[:, 1]
        out[..., 0] = c * x - s * y
        out[..., 1] = s * x + c * y
        out[..., 2] = self.offsets[:, 2]
        return out


def _peaks(score: np.ndarray, grid: np.ndarray, k: int, separation: float) -> np.ndarray:
    """Indices of the k highest local maxima at least ``separation`` apart."""
    interior = np.flatnonzero((score[1:-1] >= score[:-2]) & (score[1:-1] >= score[2:])) + 1
    order = interior[np.argsort(score[interior])[::-1]]
    chosen: list[int] = []
    for i in order:
        if all(abs(grid[i] - grid[j]) >= separation for j in chosen):
            chosen.append(int(i))
            if len(chosen) == k:
                break
    return np.array(chosen, dtype=int)


def _vertex(score: np.ndarray, grid: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Grid positions of ``peaks`` moved to the vertex of the parabola through each peak and
    its neighbours (uniform grid)."""
    i = np.clip(peaks, 1, grid.size - 2)
    y0, y1, y2 = score[i - 1], score[i], score[i + 1]
    denom = y0 - 2 * y1 + y2
    shift = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
    return grid[i] + np.clip(shift, -0.5, 0.5) * (grid[1] - grid[0])


def _scatter(values: np.ndarray, incidence: np.ndarray) -> np.ndarray:
    """Sum ``values (K, Q, m)`` over pairs into paths with ``incidence (Q, P)``:
    ``(K, P, m)``."""
    return np.swapaxes(np.swapaxes(values, 1, 2) @ incidence, 1, 2)


def _outer(x: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """``sum_{j,n} x_jn d1_jnf d2_jng`` for each batch row ``(K, f, g)``; ``x (K, J, n)``,
    ``d1, d2 (K, J, n, f)``."""
    left = (x[..., None] * d1).reshape(x.shape[0], -1, d1.shape[-1])
    return np.swapaxes(left, 1, 2) @ d2.reshape(x.shape[0], -1, d2.shape[-1])


@functools.lru_cache(maxsize=64)
def _upper_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(n, 1)``, cached (read-only)."""
    p, q = np.triu_indices(n, 1)
    p.flags.writeable = False
    q.flags.writeable = False
    return p, q


def _distinct(points: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """Indices of the rows of ``points`` (in order) not within ``tolerance`` of an earlier kept
    row, per column."""
    kept: list[int] = []
    for i in range(points.shape[0]):
        if not kept or np.all(np.any(np.abs(points[kept] - points[i]) > tolerance, axis=1)):
            kept.append(i)
    return np.array(kept, dtype=int)


class PhysicsLocalizer:
    """Localize the array in a known room from matched-filter features.

    :param room: the room (its file's temperature is the default assumption).
    :param array: the array geometry.
    :param chirp: the emitted ping.
    :param fs_hz: sampling rate of the frames, Hz.
    :param processor: the processor that made the features (for its point response); ``None``
        builds the default one for ``array``.
    :param n_candidates: candidates kept per axis and per kind of score; ``None`` takes the
        optimization level's.
    :param speed_tolerance: relative range searched for the speed of sound (0.05 = +-5 %,
        about +-28 degC).
    :param position_floor_m: standard deviation added to every axis of the covariance, m.
    :param z_range_m: heights the array can be at, m; ``None`` is the lower half of the room.
        A horizontal planar array with up-down symmetric transducers hears the same echoes at
        height z and H - z, so one half of the room must be ruled out.
    :param grid_step_m: step of the 1-D distance grids, m.
    :param max_iterations: Newton iterations of the final fit; ``None`` takes the
        optimization level's.
    :param n_rescan: peaks kept from the second scan of the weaker axis (see
        :meth:`_shoebox_candidates`); ``None``: ``n_candidates``. A learned ranker that
        chooses among the candidates gains from more; the evidence alone picks wrong more
        often among more.
    :param min_relative_amplitude: paths weaker than this fraction of the strongest wall echo
        are left out of the model.
    :param optimization_level: ``'fast'``, ``'balanced'`` or ``'accurate'``: how many
        candidates are generated, scored with the full model and polished, and how many Newton
        iterations the winner gets (:data:`OPTIMIZATION_LEVELS`). In the default room
        ``'fast'`` takes about 0.8 times the time of ``'balanced'`` (most of a frame's work is
        the same scans and fits), ``'accurate'`` about 1.5 times, trying a second height and
        more candidates. The levels also set the step of the heading offsets tried for the
        wall candidates (1.5, 0.75, 0.5 deg); the heading is refined in every level.
    """

    #: physics alone has no wide search (:class:`~echoloc_ros.core.localization.Localizer`).
    wide_search = False

    def __init__(self, room: Room, array: ArrayGeometry, chirp: Chirp, fs_hz: float = 250e3,
                 processor: EchoProcessor | None = None, n_candidates: int | None = None,
                 speed_tolerance: float = 0.05, position_floor_m: float = 0.0001,
                 z_range_m: tuple[float, float] | None = None, grid_step_m: float = 0.003,
                 max_iterations: int | None = None, min_relative_amplitude: float = 0.08,
                 optimization_level: str = 'balanced', n_rescan: int | None = None) -> None:
        if optimization_level not in OPTIMIZATION_LEVELS:
            raise ValueError(f'optimization_level must be one of '
                             f'{sorted(OPTIMIZATION_LEVELS)}, got {optimization_level!r}')
        level = OPTIMIZATION_LEVELS[optimization_level]
        self.room = room
        self.array = array
        self.chirp = chirp
        self.fs_hz = fs_hz
        self.processor = processor or EchoProcessor(chirp, fs_hz, array=array)
        self.optimization_level = optimization_level
        self.n_candidates = level['n_candidates'] if n_candidates is None else n_candidates
        self.max_iterations = level['max_iterations'] if max_iterations is None \
            else max_iterations
        self.n_rescan = self.n_candidates if n_rescan is None else n_rescan
        if min(self.n_candidates, self.max_iterations, self.n_rescan) < 1:
            raise ValueError(f'n_candidates, max_iterations and n_rescan must be >= 1, got '
                             f'{self.n_candidates}, {self.max_iterations} and {self.n_rescan}')
        self.n_pairs = level['n_pairs']
        self.n_polish = level['n_polish']
        self.n_heights = level['n_heights']
        self.n_explain = level['n_explain']
        self.polish_iterations = level['polish_iterations']
        self.yaw_step_rad = float(np.deg2rad(level['yaw_step_deg']))
        self.speed_tolerance = speed_tolerance
        self.position_floor_m = position_floor_m
        self.grid_step_m = grid_step_m
        self.z_range_m = (0.02, 0.5 * room.height_m) if z_range_m is None else tuple(z_range_m)
        if not 0.0 <= self.z_range_m[0] < self.z_range_m[1] <= room.height_m:
            raise ValueError(f'z_range_m must lie within [0, {room.height_m}], got {z_range_m}')
        self.min_relative_amplitude = min_relative_amplitude
        self._init_args = dict(fs_hz=fs_hz, n_candidates=n_candidates,
                               speed_tolerance=speed_tolerance,
                               position_floor_m=position_floor_m, z_range_m=z_range_m,
                               grid_step_m=grid_step_m, max_iterations=max_iterations,
                               min_relative_amplitude=min_relative_amplitude,
                               optimization_level=optimization_level, n_rescan=n_rescan)
        self._subsets: dict[tuple[bool, ...], 'PhysicsLocalizer'] = {}
        self._shoebox = room.is_shoebox
        self._surfaces = self._build_surfaces()
        self._build_images()
        self._n_walls = room.vertices_m.shape[0]
        self._normals = np.array([s.normal for s in self._surfaces])
        # Which images move with x and with y: a shoebox's families separate by axis.
        moves = np.abs(np.eye(3)[None] - self._img_m).sum(axis=1)[:, :2] > 1e-9     # (P, 2)
        room_paths = self._room_image & ~self._vertical_only
        self._moves = [room_paths & moves[:, a] for a in range(2)]
        # Opposite-wall pairs (paths longer than twice the room) add little but cost time.
        short = np.array([len(seq) == 1 or any(i >= self._n_walls for i in seq)
                          for seq in self._sequences])
        self._family = [room_paths & moves[:, a] & ~moves[:, 1 - a] & short for a in range(2)]
        self._corner = room_paths & moves[:, 0] & moves[:, 1]
        # Known furniture faces facing along each axis: when a box hides a wall, its face is
        # the echo that places the array on that axis.
        faces = np.zeros((2, len(self._sequences)), dtype=bool)
        for p, _, axis, _, _ in self._faces:
            if axis < 2:
                faces[axis, p] = True
        self._face_moves = list(faces)
        self._build_response()
        # Tops of known boxes the array may stand over (:meth:`_z_candidates`).
        self._box_tops = sorted({float(b.max_m[2]) for b in room.furniture
                                 if b.max_m[2] < self.z_range_m[1]})
        # Variance of a position drawn uniformly over the room (the spread of "no candidate
        # is right" in a learned ranker's mixture).
        extent = np.append(np.ptp(room.vertices_m, axis=0), self.z_range_m[1] - self.z_range_m[0])
        self._room_spread_m2 = extent ** 2 / 12.0
        # Baseband noise is correlated over the point response: residual power per bin counts
        # this many bins per independent sample.
        dt = self.processor.decimation / self.processor.fs_hz
        g = self.processor.point_response(np.arange(-200, 201) * dt)
        self._correlation_factor = float(np.sum(np.abs(g) ** 2) / np.abs(g[200]) ** 2)

    def _build_response(self) -> None:
        """Tabulate the point response g (without carrier) and its first two derivatives on a
        fine grid, from a cubic spline through the processor's response (the response is
        smooth on the scale of the spline's 1 us knots)."""
        knots = np.arange(-RESPONSE_HALF_S - 5e-6, RESPONSE_HALF_S + 5e-6 + 1e-12, 1e-6)
        spline = interpolate.CubicSpline(knots, self.processor.point_response(knots))
        self._response_step_s = 0.1e-6
        lags = np.arange(-RESPONSE_HALF_S, RESPONSE_HALF_S + 1e-12, self._response_step_s)
        self._response = np.stack([spline(lags, nu) for nu in range(3)])           # (3, L)
        # g(0), and the carrier-shifted r'(0), r''(0) (see _overlap).
        self._response_zero = self._overlap(np.zeros(1), self.chirp.center_hz)[:, 0]

    # ------------------------------------------------------------------------- geometry
    def _build_surfaces(self) -> list[_Surface]:
        room = self.room
        surfaces = []
        a = room.vertices_m
        b = np.roll(a, -1, axis=0)
        absorption = room.surface_absorption()
        for i in range(a.shape[0]):
            d = b[i] - a[i]
            normal = np.array([-d[1], d[0], 0.0]) / np.hypot(*d)
            surfaces.append(_Surface(room.wall_names[i], normal, float(normal[:2] @ a[i]),
                                     float(np.sqrt(1 - absorption[i])), i))
        k = a.shape[0]
        surfaces.append(_Surface('floor', np.array([0.0, 0.0, 1.0]), 0.0,
                                 float(np.sqrt(1 - absorption[k])), k))
        surfaces.append(_Surface('ceiling', np.array([0.0, 0.0, -1.0]), -room.height_m,
                                 float(np.sqrt(1 - absorption[k + 1])), k + 1))
        return surfaces

    def _build_images(self) -> None:
        """Affine maps image = M @ emitter + t for every surface sequence of order 1 and 2."""
        maps = []
        for s in self._surfaces:
            h = np.eye(3) - 2.0 * np.outer(s.normal, s.normal)
            maps.append(((s.index,), h, 2.0 * s.offset * s.normal, s.reflection))
        first = list(maps)
        # Every map so far, stacked, so each new one is compared with all at once.
        seen_m = np.array([m for _, m, _, _ in maps])
        seen_t = np.array([t for _, _, t, _ in maps])
        for (sa,), ha, ta, ra in first:
            for (sb,), hb, tb, rb in first:
                if sa == sb:
                    continue
                m = hb @ ha
                t = hb @ ta + tb
                if np.any(np.all(np.isclose(m, seen_m), axis=(1, 2))
                          & np.all(np.isclose(t, seen_t), axis=1)):
                    continue
                maps.append(((sa, sb), m, t, ra * rb))
                seen_m = np.concatenate([seen_m, m[None]])
                seen_t = np.concatenate([seen_t, t[None]])
        # Known furniture: first-order specular reflections from every box face.
        self._faces = []
        for box in self.room.furniture:
            refl = float(np.sqrt(1.0 - box.absorption))
            for axis in range(3):
                for side, value in ((-1.0, box.min_m[axis]), (1.0, box.max_m[axis])):
                    normal = np.zeros(3)
                    normal[axis] = side
                    h = np.eye(3) - 2.0 * np.outer(normal, normal)
                    self._faces.append((len(maps), box, axis, side, value))
                    surface = len(self._surfaces) + len(self._faces) - 1
                    maps.append(((surface,), h, 2.0 * side * value * normal, refl))
        self._face_index = np.array([f[0] for f in self._faces], dtype=np.int64)
        # Per face: the axis of its normal, the side it faces, its plane, its box's corners.
        self._face_geometry = (
            np.array([f[2] for f in self._faces], dtype=np.int64),
            np.array([f[3] for f in self._faces]), np.array([f[4] for f in self._faces]),
            np.array([f[1].min_m for f in self._faces]).reshape(-1, 3),
            np.array([f[1].max_m for f in self._faces]).reshape(-1, 3))
        self._sequences = [seq for seq, _, _, _ in maps]
        self._img_m = np.array([m for _, m, _, _ in maps])
        self._img_t = np.array([t for _, _, t, _ in maps])
        self._img_refl = np.array([r for _, _, _, r in maps])
        self._img_order = np.array([len(seq) for seq in self._sequences])
        n_walls = self.room.vertices_m.shape[0]
        n_room = len(self._surfaces)
        self._vertical_only = np.array([all(n_walls <= i < n_room for i in seq)
                                        for seq in self._sequences])
        self._room_image = np.array([all(i < n_room for i in seq) for seq in self._sequences])

    def _plane_contains(self, index: int, points: np.ndarray) -> np.ndarray:
        room = self.room
        k = self._n_walls
        if index >= k:
            return room.contains_xy(points[..., :2])
        a = room.vertices_m[index]
        b = room.vertices_m[(index + 1) % k]
        u = (points[..., :2] - a) @ (b - a) / np.sum((b - a) ** 2)
        return (u >= -1e-6) & (u <= 1 + 1e-6)

    def _valid_images(self, emitters: np.ndarray, receivers: np.ndarray,
                      paths: np.ndarray | None = None) -> np.ndarray:
        """Which images are real paths from each emitter to its receiver (the array centre).

        Room images: all of them in a shoebox, traced (reflection points on the surfaces) in
        other plans. Furniture faces: the emitter in front and the reflection point on the
        face. First-order room paths through a furniture box are blocked.

        :param emitters: ``(K, 3)``. :param receivers: ``(K, 3)``.
        :param paths: bool ``(P,)``: trace only these room paths (the rest stay True).
        :return: ``(K, P)`` bool.
        """
        wanted = np.ones(len(self._sequences), dtype=bool) if paths is None else paths
        valid = np.ones((emitters.shape[0], len(self._sequences)), dtype=bool)
        images = np.einsum('pij,kj->kpi', self._img_m, emitters) + self._img_t    # (K, P, 3)
        if not self._shoebox:
            for k in range(emitters.shape[0]):
                for p in np.flatnonzero(self._room_image & wanted):
                    valid[k, p] = self._traced(self._sequences[p], images[k, p], receivers[k])
        if not self._faces:
            return valid
        valid[:, self._face_index] = self._faces_valid(emitters, receivers,
                                                       images[:, self._face_index])
        # First-order room paths through a box: both legs, every path and box at once.
        first = np.flatnonzero(self._room_image & (self._img_order == 1) & wanted)
        if first.size:
            normals = self._normals[[self._sequences[p][0] for p in first]]         # (Q, 3)
            offsets = np.array([self._surfaces[self._sequences[p][0]].offset for p in first])
            toward = images[:, first] - receivers[:, None]                         # (K, Q, 3)
            with np.errstate(divide='ignore', invalid='ignore'):
                t = (offsets - receivers @ normals.T) / np.sum(toward * normals, axis=-1)
            hit = receivers[:, None] + t[..., None] * toward
            boxes = self.room.furniture
            blocked = (any_box_blocks(boxes, np.broadcast_to(emitters[:, None], hit.shape), hit)
                       | any_box_blocks(boxes, hit, np.broadcast_to(receivers[:, None],
                                                                    hit.shape)))
            valid[:, first] &= ~blocked
        return valid

    def _faces_valid(self, emitters: np.ndarray, receivers: np.ndarray,
                     images: np.ndarray) -> np.ndarray:
        """Which furniture faces reflect from each emitter to its receiver: the emitter in
        front of the face and the reflection point on it.

        :param images: the faces' images ``(K, F, 3)``, in the order of ``self._faces``.
        :return: ``(K, F)``.
        """
        axis, side, value, lo, hi = self._face_geometry
        across = np.take_along_axis(images, np.broadcast_to(axis[None, :, None],
                                                            images.shape[:2] + (1,)), -1)[..., 0]
        with np.errstate(divide='ignore', invalid='ignore'):
            t = (value - across) / (receivers[:, axis] - across)                  # (K, F)
        hit = images + t[..., None] * (receivers[:, None] - images)               # (K, F, 3)
        on_face = np.all((hit >= lo) & (hit <= hi) | (np.arange(3) == axis[:, None]), axis=-1)
        return (side * emitters[:, axis] > side * value) & on_face

    def _traced(self, seq: tuple[int, ...], image: np.ndarray, receiver: np.ndarray) -> bool:
        """Whether the reflection points of a room path lie on its surfaces."""
        start, target = receiver, image
        for s_idx in reversed(seq):
            s = self._surfaces[s_idx]
            denom = s.normal @ (target - start)
            if abs(denom) < 1e-12:
                return False
            t = (s.offset - s.normal @ start) / denom
            hit = start + t * (target - start)
            if not (0.0 <= t <= 1.0 and self._plane_contains(s_idx, hit)):
                return False
            start = hit
            target = target - 2.0 * (s.normal @ target - s.offset) * s.normal
        return True

    # ------------------------------------------------------------------------- data access
    def _frame(self, features: EchoFeatures, yaw_rad: float, temperature_c: float) -> _Frame:
        rot = yaw_matrix(yaw_rad)
        offsets = (self.array.receivers_m - self.array.emitter_m) @ rot.T
        direct = np.nan_to_num(features.direct_tof_s, nan=0.0)
        # The processor's noise floor is a median over the whole window, which echoes and
        # their sidelobes raise; the lower quartile of |b|^2 (ln(4/3) sigma^2 for complex
        # Gaussian noise) is less affected.
        t_start = float(np.max(direct)) + 1.2 * self.processor.mainlobe_half_width_s
        first = int(np.ceil((t_start - features.start_s) / features.bin_width_s))
        power = np.abs(features.baseband[:, max(first, 0):]) ** 2
        noise = np.sqrt(np.quantile(power, 0.25, axis=1) / np.log(4.0 / 3.0))
        noise = np.maximum(noise, 1e-12)
        table = self._upsample(features.baseband)
        return _Frame(
            features=features, offsets=offsets, c0=speed_of_sound_mps(temperature_c),
            absorb=air_absorption_db_per_m(self.chirp.center_hz, temperature_c,
                                           self.room.humidity_pct) * np.log(10) / 20,
            t_min=float(np.max(direct)) + 1.2 * self.processor.mainlobe_half_width_s,
            t_max=features.start_s + features.bin_width_s * (features.baseband.shape[1] - 1),
            weights=1.0 / noise ** 2, table=table)

    @staticmethod
    def _upsample(baseband: np.ndarray) -> np.ndarray:
        """The baseband at ``UPSAMPLE`` times its rate (zero padding of its spectrum):
        ``(n, UPSAMPLE * n_bins)`` complex64."""
        n_ch, n_bins = baseband.shape
        n_fft = sfft.next_fast_len(n_bins + 32)
        spectrum = sfft.fft(baseband.astype(np.complex64), n_fft, axis=1)
        padded = np.zeros((n_ch, UPSAMPLE * n_fft), dtype=np.complex64)
        half = n_fft // 2
        padded[:, :half] = spectrum[:, :half]
        padded[:, -(n_fft - half):] = spectrum[:, half:]
        return np.ascontiguousarray(sfft.ifft(padded, axis=1)[:, :UPSAMPLE * n_bins]) * UPSAMPLE

    def _sample(self, fr: _Frame, tau_s: np.ndarray, table: np.ndarray | None = None,
                smooth: bool = True, derivative: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Analytic matched-filter output z = baseband * exp(j 2 pi f_c tau) at delays tau.

        :param tau_s: delays ``(..., n_channels)``, s.
        :param table: a baseband other than the frame's upsampled one ``(n, m * n_bins)``
            (a cleaned one, upsampled m times or not at all).
        :param smooth: cubic interpolation in double precision (continuous slope, for the
            derivatives of the evidence) rather than linear in single precision (for scans).
        :param derivative: also return dz/dtau (smooth only).
        :return: complex ``(..., n_channels)``, 0 outside [t_min, t_max]; with ``derivative``,
            ``(z, dz/dtau)``.
        """
        table = fr.table if table is None else table
        n_row = table.shape[1]
        factor = n_row // fr.features.baseband.shape[1]
        table = table.ravel()
        x = (tau_s - fr.features.start_s) * (factor / fr.features.bin_width_s)
        i = x.astype(np.int64)
        np.maximum(i, 1, out=i)
        np.minimum(i, n_row - 3, out=i)
        flat = i + np.arange(tau_s.shape[-1]) * n_row
        p1, p2 = table[flat], table[flat + 1]
        cycles = fr.features.carrier_hz * tau_s
        phase = (2 * np.pi) * (cycles - np.floor(cycles))
        if smooth:
            t = x - i
            # Catmull-Rom cubic: continuous slope, so that the derivatives of the likelihood
            # are continuous across the table's nodes.
            p0, p3 = table[flat - 1], table[flat + 2]
            c1 = 0.5 * (p2 - p0)
            c2 = p0 - 2.5 * p1 + 2 * p2 - 0.5 * p3
            c3 = 1.5 * (p1 - p2) + 0.5 * (p3 - p0)
            value = p1 + t * (c1 + t * (c2 + t * c3))
            rotation = np.empty(tau_s.shape, dtype=np.complex128)
        else:
            t = (x - i).astype(np.float32)
            value = p1 + (p2 - p1) * t
            phase = phase.astype(np.float32)
            rotation = np.empty(tau_s.shape, dtype=np.complex64)
        rotation.real = np.cos(phase)
        rotation.imag = np.sin(phase)
        inside = (tau_s > fr.t_min) & (tau_s < fr.t_max)
        z = np.where(inside, value * rotation, 0)
        if not derivative:
            return z
        slope = (c1 + t * (2 * c2 + 3 * t * c3)) * (factor / fr.features.bin_width_s)
        dz = np.where(inside, slope * rotation, 0) + (2j * np.pi * fr.features.carrier_hz) * z
        return z, dz

    def _overlap(self, u_s: np.ndarray, fc: float, orders: int = 3) -> np.ndarray:
        """Analytic point response r(u) = g(u) exp(j 2 pi f_c u) and its first two derivatives:
        the matched-filter output at lag u for a unit echo (and the correlation of its noise
        between two outputs u apart). Zero beyond ``RESPONSE_HALF_S``.

        :param orders: 3, or 1 for r alone.
        :return: ``(orders, *u.shape)``: r, r', r''.
        """
        x = (u_s + RESPONSE_HALF_S) / self._response_step_s
        i = np.minimum(np.maximum(x.astype(np.int64), 0), self._response.shape[1] - 2)
        frac = x - i
        omega = 2 * np.pi * fc
        rotation = np.exp(1j * omega * u_s)
        if orders == 1:
            lo = self._response[0, i]
            return ((lo + (self._response[0, i + 1] - lo) * frac) * rotation)[None]
        lo = self._response[:, i]
        g, dg, ddg = lo + (self._response[:, i + 1] - lo) * frac
        jw = 1j * omega
        return np.stack([g, dg + jw * g, ddg + 2 * jw * dg + jw ** 2 * g]) * rotation

    # ------------------------------------------------------------------------- model
    def _paths(self, fr: _Frame, thetas: np.ndarray, paths: np.ndarray,
               keep: np.ndarray | None = None, valid: np.ndarray | None = None,
               free: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Delays and predicted amplitudes of image paths for a batch of parameters.

        :param thetas: ``(K, 5)``: emitter x, y, z (m), kappa = c / c0 and psi (rad).
        :param paths: indices of the images to model ``(P,)``.
        :param keep: which of them to keep ``(K, P)`` or ``(P,)``; ``None`` keeps those inside
            the window and stronger than ``min_relative_amplitude`` of the strongest wall echo.
        :param valid: ``(K, P)``: which paths exist for each (``None``: all).
        :param free: indices into ``theta``: also return the derivatives of tau with respect to
            them ``(K, P, n, f)``.
        :return: ``tau (K, P, n)`` s, ``amp (K, P, n)`` (0 for dropped paths), ``keep (K, P)``
            [, ``dtau``].
        """
        emitters = thetas[:, :3]
        speeds = fr.c0 * thetas[:, 3]
        offsets = fr.rotated_offsets(thetas[:, YAW])                               # (K, n, 3)
        images = np.einsum('pij,kj->kpi', self._img_m[paths], emitters) + self._img_t[paths]
        delta = (emitters[:, None, :] + offsets)[:, None] - images[:, :, None]     # (K,P,n,3)
        dist = np.sqrt(np.sum(delta ** 2, axis=-1))
        tau = dist / speeds[:, None, None]
        amp = self._amplitude(fr, delta, dist, self._img_refl[paths][:, None])
        if keep is None:
            keep = np.all((tau > fr.t_min) & (tau < fr.t_max), axis=-1)
            if valid is not None:
                keep = keep & valid
            peak = np.max(amp, axis=-1)
            walled = keep & ~self._vertical_only[paths]
            reference = np.max(np.where(walled, peak, 0.0), axis=1, keepdims=True)
            reference = np.where(reference > 0, reference,
                                 np.max(np.where(keep, peak, 0.0), axis=1, keepdims=True))
            keep = keep & (peak >= self.min_relative_amplitude * reference)
        if keep.shape != amp.shape[:2]:
            keep = np.broadcast_to(keep, amp.shape[:2])
        if free is None:
            return tau, amp * keep[..., None], keep
        # d tau / d emitter = (I - M)^T unit / c; d tau / d kappa = -tau / kappa; turning the
        # heading moves receiver i by z x offset_i.
        unit = delta / (dist * speeds[:, None, None])[..., None]
        grad_e = unit - np.einsum('pji,kpnj->kpni', self._img_m[paths], unit)
        columns = [grad_e[..., f] if f < 3 else -tau / thetas[:, 3, None, None] if f == 3
                   else unit[..., 1] * offsets[:, None, :, 0]
                   - unit[..., 0] * offsets[:, None, :, 1] for f in free]
        return tau, amp * keep[..., None], keep, np.stack(columns, axis=-1)

    def _amplitude(self, fr: _Frame, delta: np.ndarray, dist: np.ndarray,
                   reflection: np.ndarray | float) -> np.ndarray:
        """Predicted amplitude at each receiver of a path from an image ``delta`` away
        (receiver - image, ``(..., n, 3)``; ``dist`` its length ``(..., n)``): the surfaces'
        ``reflection``, spherical spreading, air absorption, both transducers' directivity and
        the receivers' gains."""
        directivity = self.array.directivity(self.chirp.center_hz, delta[..., 2] / dist,
                                             fr.c0) ** 2
        return (reflection / dist * np.exp(-fr.absorb * dist) * directivity
                * self.array.gains)

    def _evidence(self, fr: _Frame, tau: np.ndarray, amp: np.ndarray) -> np.ndarray:
        """Log evidence of the image-source model for a batch of path sets.

        With ``z`` the matched-filter outputs at the predicted delays, the least-squares fit of
        one complex amplitude per path (scaling its predicted amplitudes across receivers)
        needs only ``b_p = sum_i A_ip z_i(tau_ip) / s_i^2`` and the Gram matrix
        ``M_pq = sum_i A_ip A_iq r(tau_ip - tau_iq) / s_i^2`` (r: the analytic point response,
        also the correlation of the matched filter's noise). With a complex Gaussian prior of
        variance ``v`` on each amplitude the log evidence (noise units) is
        ``b^H (M + I / v)^-1 b - log det(I + v M)`` (:meth:`_with_prior`).

        :param tau: ``(K, P, n)`` s.
        :param amp: ``(K, P, n)``, 0 for paths not modelled.
        :return: ``(K,)``.
        """
        used = np.any(amp > 0, axis=(0, 2))
        tau, amp = tau[:, used], amp[:, used]
        b = np.sum(amp * fr.weights * self._sample(fr, tau), axis=-1)             # (K, P)
        gram = self._gram(fr, tau, amp, self._pairs(tau))[0]
        return self._with_prior(fr, gram, b)[0]

    def _gram(self, fr: _Frame, tau: np.ndarray, amp: np.ndarray,
              pairs: tuple[np.ndarray, np.ndarray], derivatives: bool = False
              ) -> tuple[np.ndarray, ...]:
        """Gram matrix ``M_pq = sum_i A_ip A_iq r(tau_ip - tau_iq) / s_i^2`` ``(K, P, P)`` of
        paths ``tau, amp (K, P, n)``, with the pairs ``(p, q)`` (p < q) that may overlap;
        with ``derivatives``, also r' and r'' at the pairs' lags ``(K, Q, n)`` each."""
        p, q = pairs
        weighted = amp * fr.weights
        lag = tau[:, p] - tau[:, q]                                                # (K, Q, n)
        near = np.abs(lag) < RESPONSE_HALF_S
        r = np.zeros((3 if derivatives else 1,) + lag.shape, dtype=complex)
        r[:, near] = self._overlap(lag[near], fr.features.carrier_hz, r.shape[0])
        upper = np.sum(r[0] * weighted[:, p] * amp[:, q], axis=-1)
        n_batch, n_paths = tau.shape[:2]
        gram = np.zeros((n_batch, n_paths, n_paths), dtype=complex)
        gram[:, p, q] = upper
        gram[:, q, p] = np.conj(upper)
        diagonal = np.arange(n_paths)
        gram[:, diagonal, diagonal] = self._response_zero[0] * np.sum(weighted * amp, axis=-1)
        return (gram,) + tuple(r[1:])

    @staticmethod
    def _regularised(gram: np.ndarray) -> np.ndarray:
        """Gram matrices with a tiny ridge, so that paths with no energy stay solvable."""
        scale = np.trace(gram, axis1=1, axis2=2).real / max(gram.shape[-1], 1)
        return gram + (1e-9 * scale + 1e-300)[:, None, None] * np.eye(gram.shape[-1])

    @staticmethod
    def _with_prior(fr: _Frame, gram: np.ndarray, b: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Log evidence ``b^H (M + I / v)^-1 b - log det(I + v M)`` and the amplitudes
        ``(M + I / v)^-1 b`` for Gram matrices ``(K, P, P)`` and outputs ``b (K, P)``, with
        ``v = PRIOR_SCALE * gain^2``."""
        v = PRIOR_SCALE * fr.gain ** 2
        system = np.eye(gram.shape[-1]) + v * gram
        a = np.linalg.solve(system, v * b[..., None])[..., 0]
        return (np.real(np.sum(np.conj(b) * a, axis=-1)) - np.linalg.slogdet(system)[1], a)

    @staticmethod
    def _pairs(tau: np.ndarray, margin_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Path pairs ``(p, q)``, p < q, within ``RESPONSE_HALF_S + margin_s`` of each other on
        some receiver for some row of ``tau (K, P, n)``."""
        p, q = _upper_pairs(tau.shape[1])
        near = np.any(np.abs(tau[:, p] - tau[:, q]) < RESPONSE_HALF_S + margin_s, axis=(0, 2))
        return p[near], q[near]

    def _score(self, fr: _Frame, thetas: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Log evidence of the full model with the heading prior at each of ``thetas (K, 5)``;
        ``valid (K, P)``."""
        tau, amp, _ = self._paths(fr, thetas, np.arange(len(self._sequences)), valid=valid)
        return self._evidence(fr, tau, amp) + fr.yaw_prior(thetas[:, YAW])

    def _valid_batch(self, fr: _Frame, thetas: np.ndarray) -> np.ndarray:
        """:meth:`_valid_images` for each of ``thetas (K, 5)``: ``(K, P)``."""
        if self._shoebox and not self._faces:
            return np.ones((thetas.shape[0], len(self._sequences)), dtype=bool)
        return self._valid_images(thetas[:, :3], thetas[:, :3] + fr.offsets.mean(axis=0))

    # ------------------------------------------------------------------------- refinement
    def _fit(self, fr: _Frame, thetas: np.ndarray, paths: np.ndarray, keep: np.ndarray,
             free: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], derivatives: bool = True,
             prior: bool = True) -> tuple[np.ndarray, ...]:
        """Log likelihood (amplitudes solved for, no prior), its gradient and its Gauss-Newton
        information over ``free``.

        In the raw-signal picture the model is ``S(theta) a`` (one column per path) and the
        likelihood is that of the least-squares fit with the amplitudes solved for (variable
        projection, Golub & Pereyra 1973). The gradient is ``2 Re <residual, J_k>`` and the
        information ``2 Re [J^H J - J^H S A^-1 S^H J]`` (Kaufman's approximation), with
        ``J_k = d(S a)/d theta_k`` and A the Gram matrix. Every inner product is one of the
        matched-filter outputs, its derivative, or the analytic point response r and its first
        two derivatives at the delay differences: ``<s_tau, s_t> = r(t - tau)``,
        ``<d s_tau, s_t> = -r'(t - tau)``, ``<d s_tau, d s_t> = -r''(t - tau)``.

        :param thetas: ``(K, 5)``.
        :param paths: image indices ``(P,)``.
        :param keep: which of them each row models ``(K, P)``.
        :param free: indices into theta of the parameters fitted ``(f,)``.
        :param pairs: ``(p, q)`` with p < q: the path pairs that may overlap.
        :param derivatives: compute the gradient and information (else only the likelihood,
            amplitudes and evidence: the gradient and information returned are ``None``).
        :param prior: compute the log evidence with the amplitude prior (else the last entry
            is ``(gram (K, P, P), b (K, P), tau (K, P, n), amp (K, P, n))``, from which
            :meth:`_with_prior` gives it).
        :return: ``(log likelihood (K,), gradient (K, f), information (K, f, f), amplitudes
            (K, P), log evidence with the amplitude prior (K,))``; none includes the heading
            prior.
        """
        w = fr.weights
        if derivatives:
            tau, amp, _, dtau = self._paths(fr, thetas, paths, keep, free=free)
            z, dz = self._sample(fr, tau, derivative=True)
            gram, r1, r2 = self._gram(fr, tau, amp, pairs, derivatives=True)
        else:
            tau, amp, _ = self._paths(fr, thetas, paths, keep)
            z = self._sample(fr, tau)
            gram, = self._gram(fr, tau, amp, pairs)
        weighted = amp * w
        b = np.sum(weighted * z, axis=-1)
        p, q = pairs
        n_paths = tau.shape[1]
        inverse = np.linalg.inv(self._regularised(gram))
        a = (inverse @ b[..., None])[..., 0]
        evidence = np.real(np.sum(np.conj(b) * a, axis=-1))
        last = self._with_prior(fr, gram, b)[0] if prior else (gram, b, tau, amp)
        if not derivatives:
            return evidence, None, None, a, last
        _, zero1, zero2 = self._response_zero
        alpha = a[..., None] * amp                                                # (K, P, n)
        incidence_p = np.eye(n_paths)[p]                                           # (Q, P)
        incidence_q = np.eye(n_paths)[q]
        # Slope of the matched-filter residual at each modelled delay.
        slope = (dz - zero1 * alpha
                 + _scatter(alpha[:, p] * np.conj(r1), incidence_q)
                 - _scatter(alpha[:, q] * r1, incidence_p))
        grad = 2.0 * np.real(np.sum((w * np.conj(alpha) * slope)[..., None] * dtau,
                                    axis=(1, 2)))
        # J^H J: the diagonal paths, then both orders of each overlapping pair.
        info = -zero2 * _outer(w * np.abs(alpha) ** 2, dtau, dtau)
        cross = _outer(-r2 * np.conj(w * alpha[:, p]) * alpha[:, q], dtau[:, p], dtau[:, q])
        info = info + cross + np.swapaxes(cross, 1, 2)
        # S^H J, row p': sum over paths q of alpha_q dtau_q A_p' (-r'(tau_p' - tau_q)).
        sj = np.sum((-zero1 * weighted * alpha)[..., None] * dtau, axis=2)          # (K, P, f)
        sj += _scatter(np.sum((-r1 * weighted[:, p] * alpha[:, q])[..., None] * dtau[:, q],
                             axis=2), incidence_p)
        sj += _scatter(np.sum((np.conj(r1) * weighted[:, q] * alpha[:, p])[..., None]
                             * dtau[:, p], axis=2), incidence_q)
        info = 2.0 * np.real(info - np.swapaxes(np.conj(sj), 1, 2) @ inverse @ sj)
        return evidence, grad, info, a, last

    def _newton(self, fr: _Frame, theta0: np.ndarray, valid: np.ndarray, free: np.ndarray,
                iterations: int, need_info: bool = True) -> _Fit:
        """Maximise the likelihood over the ``free`` entries of ``theta`` by damped
        Gauss-Newton (Levenberg-Marquardt) steps, for several starting points at once.

        The paths modelled are those kept at each starting point. The heading prior enters the
        objective, its gradient and the step's information (a regulariser on psi), not the
        information returned.

        :param theta0: starting points ``(B, 5)``.
        :param valid: images that exist for each ``(B, P)``.
        :param need_info: return the information at the best points (else ``info`` is
            ``None``, and the last evaluation skips the derivatives).
        :return: the best point of each start, its evidence, information (inverse covariance
            of theta before scaling by the residual), amplitudes, and its paths' delays and
            predicted amplitudes.
        """
        n_start = theta0.shape[0]
        f = free.size
        paths = np.flatnonzero(np.any(valid, axis=0))
        tau0, _, keep = self._paths(fr, theta0, paths, valid=valid[:, paths])
        used = np.any(keep, axis=0)
        paths, keep, tau0 = paths[used], keep[:, used], tau0[:, used]
        n_paths = paths.size
        # Delays move by at most a few steps' worth: the overlapping pairs are found once.
        pairs = self._pairs(tau0, iterations * 2 * np.max(STEP_LIMIT[:3]) / fr.c0)
        theta = np.array(theta0, dtype=float)
        best_theta = theta.copy()
        best_e = np.full(n_start, -np.inf)
        grad = np.zeros((n_start, f))
        info = np.zeros((n_start, f, f))
        coef = np.zeros((n_start, n_paths), dtype=complex)
        # What the evidence with the amplitude prior, and the caller, need at the best points.
        gram = np.zeros((n_start, n_paths, n_paths), dtype=complex)
        outputs = np.zeros((n_start, n_paths), dtype=complex)
        tau = np.zeros(tau0.shape)
        amp = np.zeros(tau0.shape)
        lam = np.full(n_start, 1e-3)
        active = np.ones(n_start, dtype=bool)
        limit = STEP_LIMIT[free]
        tolerance = STEP_TOLERANCE[free]
        # The heading prior's curvature on the free psi, if any.
        yaw_info = np.where(free == YAW, fr.yaw_info, 0.0)
        diagonal = np.arange(f)
        for iteration in range(iterations + 1):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            last = iteration == iterations
            e, g, h, a, (gm, b, tt, aa) = self._fit(fr, theta[rows], paths, keep[rows], free,
                                                    pairs, derivatives=need_info or not last,
                                                    prior=False)
            e = e + fr.yaw_prior(theta[rows, YAW])
            better = e >= best_e[rows]
            won, lost = rows[better], rows[~better]
            best_theta[won], best_e[won] = theta[won], e[better]
            if g is not None:
                grad[won], info[won] = g[better], h[better]
            coef[won], gram[won], outputs[won] = a[better], gm[better], b[better]
            tau[won], amp[won] = tt[better], aa[better]
            lam[won] = np.maximum(lam[won] / 3.0, 1e-6)
            lam[lost] *= 10.0
            active[lost[lam[lost] > 1e3]] = False
            if last:
                # The step from the last point would not be evaluated.
                break
            rows = rows[active[rows]]
            if rows.size == 0:
                break
            damped = info[rows].copy()
            damped[:, diagonal, diagonal] += (lam[rows, None] * np.abs(damped[:, diagonal,
                                                                               diagonal])
                                              + 1e-300 + yaw_info)
            rhs = grad[rows] - yaw_info * best_theta[rows, YAW, None]
            try:
                step = np.linalg.solve(damped, rhs[..., None])[..., 0]
                solved = np.ones(rows.size, dtype=bool)
            except np.linalg.LinAlgError:
                step = np.zeros(rhs.shape)
                solved = np.zeros(rows.size, dtype=bool)
                for r in range(rows.size):
                    try:
                        step[r] = np.linalg.solve(damped[r], rhs[r])
                        solved[r] = True
                    except np.linalg.LinAlgError:
                        pass
            step = np.clip(step, -limit, limit)
            moving = solved & ~np.all(np.abs(step) < tolerance, axis=1)
            active[rows[~moving]] = False
            rows, step = rows[moving], step[moving]
            theta[rows] = best_theta[rows]
            theta[rows[:, None], free[None, :]] += step
        evidence = np.zeros(n_start)
        fitted = np.isfinite(best_e)
        if np.any(fitted):
            evidence[fitted] = (self._with_prior(fr, gram[fitted], outputs[fitted])[0]
                                + fr.yaw_prior(best_theta[fitted, YAW]))
        full = None
        if need_info:
            full = np.zeros((n_start, N_THETA, N_THETA))
            full[:, free[:, None], free[None, :]] = info
        return _Fit(best_theta, evidence, full, coef, paths, keep, tau, amp)

    # ------------------------------------------------------------------------- candidates
    def _surface_scores(self, fr: _Frame, normals: np.ndarray, distance_m: np.ndarray,
                        table: np.ndarray) -> np.ndarray:
        """Coherent evidence of each surface's first-order echo vs emitter-surface distance.

        For the surface with inward normal n at distance d from the emitter, receiver i hears
        the echo after ``|delta_i + 2 d n| / c0``. The score is the log of the receivers'
        coherent power over its noise expectation, so that the evidence of opposite surfaces
        adds up: a candidate needs both echoes rather than one that is merely strong.

        :param normals: inward unit normals ``(S, 3)``.
        :param distance_m: distance grid ``(G,)``.
        :return: scores ``(S, G)``.
        """
        offsets = fr.offsets
        dn = normals @ offsets.T                                             # (S, n)
        d2 = np.sum(offsets ** 2, axis=1)                                    # (n,)
        d = distance_m[None, :, None]
        tau = np.sqrt(d2 + 4.0 * d * dn[:, None, :] + 4.0 * d ** 2) / fr.c0  # (S, G, n)
        z = self._sample(fr, tau, table, smooth=False)
        power = np.abs(np.sum(z, axis=-1)) ** 2
        return np.log1p(power * np.mean(fr.weights) / offsets.shape[0])

    def _path_scores(self, fr: _Frame, thetas: np.ndarray, paths: np.ndarray,
                     table: np.ndarray) -> np.ndarray:
        """Sum over ``paths`` of each path's log coherent power over noise, at ``thetas``.

        Each path is weighted across receivers by its predicted amplitudes (a matched filter
        over the array), and paths add as evidence through the log, so a whole family of
        echoes must line up rather than one strong echo.

        :return: ``(K,)``.
        """
        index = np.flatnonzero(paths)
        tau, amp, _ = self._paths(fr, thetas, index, np.ones(index.size, dtype=bool))
        weighted = amp * fr.weights
        z = self._sample(fr, tau, table, smooth=False)
        inside = np.all((tau > fr.t_min) & (tau < fr.t_max), axis=-1)
        power = np.abs(np.sum(weighted * z, axis=-1)) ** 2 / np.maximum(
            np.sum(weighted * amp, axis=-1), 1e-300)
        return np.sum(np.where(inside, np.log1p(power), 0.0), axis=-1)

    def _family_scan(self, fr: _Frame, axis: int, theta: np.ndarray, paths: np.ndarray,
                     table: np.ndarray, coords: np.ndarray | None = None,
                     psi: np.ndarray | None = None,
                     traced: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Score along one axis of a shoebox, the other parameters fixed at ``theta``: each of
        ``paths`` adds the log of its receivers' coherent power over the noise, so a whole
        family of echoes must line up rather than one strong echo.

        :param coords: values of the coordinate ``(G,)``; ``None``: the whole room on a grid.
        :param psi: heading offsets ``(J,)``; ``None``: ``theta``'s alone.
        :param traced: score each path only where it exists (:meth:`_valid_images`: known
            furniture hides a wall, a furniture face reflects only in front of it and within
            its extent), with the other coordinates ``theta``'s.
        :return: ``(coordinates (G,), scores (G,))``, or ``(G, J)`` when ``psi`` is given.
        """
        if coords is None:
            extent = (self.room.width_m, self.room.length_m)[axis]
            coords = np.arange(0.03, extent - 0.03, 3 * self.grid_step_m)
        exists = None
        if traced:
            emitters = np.repeat(theta[None, :3], coords.size, axis=0)
            emitters[:, axis] = coords
            exists = self._valid_images(emitters, emitters + fr.offsets.mean(axis=0),
                                        paths)[:, paths]
        psis = np.array([theta[YAW]]) if psi is None else np.asarray(psi, dtype=float)
        # receiver - image = d0 + coord * v, affine in the scanned coordinate.
        base = theta[:3].copy()
        base[axis] = 0.0
        m = self._img_m[paths]
        offsets = fr.rotated_offsets(psis)                                          # (J, n, 3)
        d0 = ((base + offsets)[:, None]
              - (m @ base + self._img_t[paths])[None, :, None])                    # (J, P, n, 3)
        v = np.eye(3)[axis] - m[:, :, axis]                                         # (P, 3)
        a0 = np.sum(d0 ** 2, axis=-1)
        a1 = 2.0 * np.einsum('jpni,pi->jpn', d0, v)
        a2 = np.sum(v ** 2, axis=-1)[:, None]
        c = coords[:, None, None, None]
        tau = np.sqrt(a0 + a1 * c + a2 * c ** 2) / (fr.c0 * theta[3])          # (G, J, P, n)
        z_out = self._sample(fr, tau, table, smooth=False)
        weights = (fr.weights / np.sum(fr.weights)).astype(np.float32)
        power = np.abs(z_out @ weights) ** 2 * np.sum(fr.weights)
        inside = np.all((tau > fr.t_min) & (tau < fr.t_max), axis=-1)
        if exists is not None:
            inside &= exists[:, None]
        score = np.sum(np.where(inside, np.log1p(power), 0.0), axis=-1)
        return coords, score[:, 0] if psi is None else score

    def _z_candidates(self, floor: np.ndarray, ceiling: np.ndarray, grid: np.ndarray,
                      k: int) -> list[tuple[float, float, float, float]]:
        """(emitter z, kappa = c / c0, score, top of the box below or 0: over the floor) from
        floor and ceiling scores vs apparent distance, best first."""
        height = self.room.height_m
        f_pk = _peaks(floor, grid, 2 * k, 0.02)
        c_pk = _peaks(ceiling, grid, 2 * k, 0.02)
        cands = []
        for i in f_pk:
            for j in c_pk:
                kappa = height / (grid[i] + grid[j])
                if abs(kappa - 1.0) <= self.speed_tolerance:
                    cands.append((kappa * grid[i], kappa))
        cands += [(grid[i], 1.0) for i in f_pk] + [(height - grid[j], 1.0) for j in c_pk]
        # (z, kappa, what the first echo from below comes off): the floor, or over a known box
        # whose top is below the array, its top face (the floor's echo hidden by the box).
        cands = [(z, kappa, 0.0) for z, kappa in cands]
        cands += [(top + grid[i], 1.0, top) for top in self._box_tops for i in f_pk]
        scored = []
        for z, kappa, below in cands:
            if not self.z_range_m[0] <= z <= self.z_range_m[1]:
                continue
            s = (np.interp((z - below) / kappa, grid, floor, left=0, right=0)
                 + np.interp((height - z) / kappa, grid, ceiling, left=0, right=0))
            scored.append((z, kappa, float(s), below))
        scored.sort(key=lambda c: -c[2])
        chosen: list[tuple[float, float, float, float]] = []
        for cand in scored:
            if all(abs(cand[0] - o[0]) > 0.01 or abs(cand[1] - o[1]) > 0.003 for o in chosen):
                chosen.append(cand)
            if len(chosen) == k:
                break
        return chosen

    def _scan_axis(self, fr: _Frame, theta: np.ndarray, axis: int, table: np.ndarray,
                   k: int) -> np.ndarray:
        """Candidates along one axis with the others fixed, scored on every path that moves.

        Every image whose delay depends on the coordinate (first-order walls, their double
        bounces with floor and ceiling, corners) adds the log of its coherent power over the
        noise: a wall's whole family of echoes must line up, which a stray strong echo does not.
        """
        lo = self.room.vertices_m.min(axis=0)[axis] + 0.03
        hi = self.room.vertices_m.max(axis=0)[axis] - 0.03
        coords = np.arange(lo, hi, 2 * self.grid_step_m)
        thetas = np.repeat(theta[None], coords.size, axis=0)
        thetas[:, axis] = coords
        score = self._path_scores(fr, thetas, self._moves[axis], table)
        if not self._shoebox:
            score = np.where(self.room.contains_xy(thetas[:, :2]), score, -np.inf)
        return coords[_peaks(score, coords, k, 0.02)]

    def _plan_candidates(self, wall_scores: list[np.ndarray], grid: np.ndarray, kappa: float,
                         k: int) -> np.ndarray:
        """Emitter (x, y) candidates in a general floor plan: every wall plane scored at once."""
        lo = self.room.vertices_m.min(axis=0)
        hi = self.room.vertices_m.max(axis=0)
        step = 0.02
        xs = np.arange(lo[0] + 0.03, hi[0] - 0.03, step)
        ys = np.arange(lo[1] + 0.03, hi[1] - 0.03, step)
        xy = np.stack(np.meshgrid(xs, ys, indexing='ij'), axis=-1).reshape(-1, 2)
        inside = self.room.contains_xy(xy)
        xy = xy[inside]
        total = np.zeros(xy.shape[0])
        for w, score in enumerate(wall_scores):
            s = self._surfaces[w]
            dist = xy @ s.normal[:2] - s.offset
            foot = np.column_stack([xy - dist[:, None] * s.normal[:2], np.zeros(len(xy))])
            seen = (dist > 0) & self._plane_contains(w, foot)
            total += np.where(seen, np.interp(dist / kappa, grid, score, left=0, right=0), 0.0)
        chosen: list[int] = []
        for i in np.argsort(total)[::-1]:
            if all(np.hypot(*(xy[i] - xy[j])) >= 0.05 for j in chosen):
                chosen.append(int(i))
                if len(chosen) == k:
                    break
        return xy[chosen]

    # ------------------------------------------------------------------------- residual
    def _synthesise(self, fr: _Frame, tau: np.ndarray, amp: np.ndarray,
                    coef: np.ndarray) -> np.ndarray:
        """Baseband of the fitted paths ``coef_p amp_ip exp(-j 2 pi f_c tau_ip) g(t - tau_ip)``
        on the frame's bins ``(n, n_bins)``; ``tau, amp (P, n)``, ``coef (P,)``."""
        features = fr.features
        n_ch, n_bins = features.baseband.shape
        dt = features.bin_width_s
        p, ch = np.nonzero(amp > 0)
        t = tau[p, ch]
        c = coef[p] * amp[p, ch] * np.exp(-2j * np.pi * features.carrier_hz * t)
        half = int(RESPONSE_HALF_S / dt)
        bins = np.rint((t - features.start_s) / dt).astype(np.int64)[:, None] + np.arange(
            -half, half + 1)
        u = features.start_s + bins * dt - t[:, None]
        x = (u + RESPONSE_HALF_S) / self._response_step_s
        i = np.clip(x.astype(np.int64), 0, self._response.shape[1] - 2)
        g = self._response[0, i] + (self._response[0, i + 1] - self._response[0, i]) * (x - i)
        values = c[:, None] * g
        ok = (bins >= 0) & (bins < n_bins)
        flat = (ch[:, None] * n_bins + bins)[ok]
        model = np.bincount(flat, values.real[ok], n_ch * n_bins) + 1j * np.bincount(
            flat, values.imag[ok], n_ch * n_bins)
        return model.reshape(n_ch, n_bins)

    def _residual_ratio(self, fr: _Frame, tau: np.ndarray, amp: np.ndarray,
                        coef: np.ndarray) -> float:
        """Residual power of a fit over the noise floor in the main lobes of its paths.

        About 1 when the model explains the echoes; larger when echoes are missing from it
        (unknown furniture, higher orders) or the fit sits on the wrong echoes. The fitted
        amplitudes absorb part of the noise: each removes about one correlation length of bins.
        """
        features = fr.features
        n_ch, n_bins = features.baseband.shape
        dt = features.bin_width_s
        half = int(np.ceil(1.2 * self.processor.mainlobe_half_width_s / dt))
        p, ch = np.nonzero(amp > 0)
        if p.size == 0:
            return 1.0
        bins = np.rint((tau[p, ch] - features.start_s) / dt).astype(np.int64)[:, None] \
            + np.arange(-half, half + 1)
        mask = np.zeros((n_ch, n_bins), dtype=bool)
        rows = np.broadcast_to(ch[:, None], bins.shape)
        mask[rows, np.clip(bins, 0, n_bins - 1)] = True
        residual = features.baseband - self._synthesise(fr, tau, amp, coef)
        power = np.sum(np.abs(residual[mask]) ** 2 * np.broadcast_to(
            fr.weights[:, None], mask.shape)[mask])
        dof = max(mask.sum() - np.unique(p).size * self._correlation_factor, 0.25 * mask.sum())
        return float(power / dof)

    # ------------------------------------------------------------------------- public
    def _without_dead_channels(self, working: np.ndarray) -> 'PhysicsLocalizer':
        """The same localizer for the array without its dead receivers (built once each)."""
        key = tuple(bool(w) for w in working)
        if sum(key) < 2:
            raise ValueError(f'only {sum(key)} of {len(key)} receivers work (a working '
                             'receiver hears the direct emitter path); need at least 2')
        if key not in self._subsets:
            kept = ','.join(map(str, np.flatnonzero(working)))
            array = replace(self.array, name=f'{self.array.name}[{kept}]',
                            receivers_m=self.array.receivers_m[working],
                            gains=self.array.gains[working])
            self._subsets[key] = PhysicsLocalizer(self.room, array, self.chirp,
                                                  processor=self.processor, **self._init_args)
        return self._subsets[key]

    def with_room(self, room: Room) -> 'PhysicsLocalizer':
        """The same localizer for ``room`` as it stands now: the same room (by name) with its
        furniture moved, added or removed in the room file."""
        if room.name != self.room.name:
            raise ValueError(f'with_room takes the same room with other furniture; got room '
                             f'{room.name!r} for a localizer of {self.room.name!r}')
        return PhysicsLocalizer(room, self.array, self.chirp, processor=self.processor,
                                **self._init_args)

    def explain_at(self, features: EchoFeatures, position_m: np.ndarray, yaw_rad: float,
                   temperature_c: float | None = None) -> 'Explained':
        """The frame with this room's own echoes at a known pose fitted and removed: what is
        left holds the echoes the room model lacks (furniture that moved, objects not in the
        file). The speed of sound is fitted; amplitudes are free, so a path that furniture
        hides takes an amplitude near zero.

        :param position_m: array-frame origin ``(3,)``, m (from tracking, or ground truth).
        :param yaw_rad: heading of the array, rad.
        :param temperature_c: assumed air temperature; ``None`` takes the room file's.
        :raises ValueError: a non-finite pose, a channel count that is not the array's.
        """
        position = np.asarray(position_m, dtype=float)
        if position.shape != (3,) or not np.all(np.isfinite(position)) \
                or not np.isfinite(yaw_rad):
            raise ValueError(f'pose must be a finite position (3,) and yaw, got position '
                             f'{np.asarray(position_m).tolist()} and yaw {yaw_rad}')
        if features.n_channels != self.array.n_receivers:
            raise ValueError(f'features have {features.n_channels} channels, array '
                             f'{self.array.name!r} has {self.array.n_receivers}')
        working = working_channels(features)
        if not working.all():
            return self._without_dead_channels(working).explain_at(
                features.channels(working), position_m, yaw_rad, temperature_c)
        temperature = self.room.temperature_c if temperature_c is None else temperature_c
        fr = self._frame(features, yaw_rad, temperature)
        emitter = position + yaw_matrix(yaw_rad) @ self.array.emitter_m
        theta = np.array([[*emitter, 1.0, 0.0]])
        paths = np.ones((1, len(self._sequences)), dtype=bool)
        fit = self._newton(fr, theta, paths, np.array([3]), 2, need_info=False)
        residual = features.baseband - self._synthesise(fr, fit.tau[0], fit.amp[0], fit.coef[0])
        fr.c0 *= float(fit.theta[0, 3])
        # The amplitude scale of the predicted echoes, as propose fits it: the fitted amplitudes
        # weighted by each path's predicted strength.
        strength = np.sum(fit.amp[0] ** 2 * fr.weights, axis=-1)
        fr.gain = float(np.sum(np.abs(fit.coef[0]) * strength) / max(np.sum(strength), 1e-300))
        return Explained(localizer=self, frame=fr, emitter_m=emitter,
                         residual=residual.astype(np.complex64))

    def plane_scores(self, explained: 'Explained', axis: int, coords_m: np.ndarray,
                     facing: int, absorption: float,
                     coverage: np.ndarray | None = None) -> np.ndarray:
        """Log likelihood ratio, in the residual of :meth:`explain_at`, of the first-order echo
        of a plane normal to ``axis`` at each of ``coords_m``, facing ``facing`` (+1: its normal
        points along +axis), against no echo there.

        Each receiver's output at the delay of the emitter's image in the plane is summed
        across the array (power ``P`` in noise units, as in the wall scans). With ``s`` the
        power the plane's echo should have there (its distance, ``absorption``, the
        transducers' directivity and the frame's fitted amplitude scale), and a complex
        Gaussian amplitude of that variance, the ratio is ``P s / (1 + s) - log(1 + s)``: a
        plane where an echo is heard scores about ``s - log(1 + s)``, and one where the echo
        it should give is missing scores ``s / (1 + s) - log(1 + s)``, below 0. Planes the
        array is not in front of score 0.

        :param coords_m: plane positions along ``axis`` ``(G,)``, m.
        :param absorption: energy absorption coefficient of the plane's surface.
        :param coverage: fractions of the receivers whose reflection point lies on the face
            ``(C,)`` (a face's edge between them): the echo sums over that fraction, its power
            over its square. ``None``: all of them.
        :return: ``(C, G)`` (``(1, G)`` for ``None``).
        """
        fr = explained.frame
        tau, amp, heard = self._plane_echo(explained, axis, np.asarray(coords_m, dtype=float),
                                           facing, absorption)
        z = self._sample(fr, tau, explained.residual, smooth=False)
        weights = (fr.weights / np.sum(fr.weights)).astype(np.float32)
        power = np.abs(z @ weights) ** 2 * np.sum(fr.weights)
        peak = fr.gain * abs(self._response_zero[0]) * amp                        # (G, n)
        full = np.sum(peak * fr.weights, axis=-1) ** 2 / np.sum(fr.weights)
        fractions = np.ones(1) if coverage is None else np.asarray(coverage, dtype=float)
        expected = fractions[:, None] ** 2 * full[None]                            # (C, G)
        ratio = power * expected / (1.0 + expected) - np.log1p(expected)
        return np.where(heard, ratio, 0.0)

    def _plane_echo(self, explained: 'Explained', axis: int, coords_m: np.ndarray,
                    facing: int, absorption: float) -> tuple[np.ndarray, ...]:
        """The first-order echo of a plane normal to ``axis`` at each of ``coords_m`` ``(G,)``:
        delays and predicted amplitudes ``(G, n)`` (without the frame's amplitude scale), and
        whether the array hears it ``(G,)``: in front of the plane and inside the window."""
        fr, emitter = explained.frame, explained.emitter_m
        images = np.repeat(emitter[None], coords_m.size, axis=0)
        images[:, axis] = 2.0 * coords_m - emitter[axis]
        delta = (emitter + fr.offsets)[None] - images[:, None]                     # (G, n, 3)
        dist = np.linalg.norm(delta, axis=-1)
        tau = dist / fr.c0
        heard = (((emitter[axis] - coords_m) * facing > PLANE_MIN_DISTANCE_M)
                 & np.all((tau > fr.t_min) & (tau < fr.t_max), axis=-1))
        return tau, self._amplitude(fr, delta, dist, np.sqrt(1.0 - absorption)), heard

    def remove_plane_echo(self, explained: 'Explained', axis: int, coord_m: float,
                          facing: int, absorption: float) -> None:
        """Fit the first-order echo of one plane (as :meth:`plane_scores` places it) to the
        residual of :meth:`explain_at` and subtract it there, so that no other plane at the
        same distance can take it. Nothing happens where the array is not in front of it."""
        fr = explained.frame
        tau, amp, heard = self._plane_echo(explained, axis, np.array([float(coord_m)]), facing,
                                           absorption)
        if not heard[0]:
            return
        z = self._sample(fr, tau, explained.residual)
        coef = np.sum(amp * fr.weights * z) / (
            self._response_zero[0] * np.sum(amp ** 2 * fr.weights))
        explained.residual = (explained.residual - self._synthesise(
            fr, tau, amp, np.array([coef]))).astype(np.complex64)

    def localize(self, features: EchoFeatures, yaw_rad: float,
                 temperature_c: float | None = None,
                 yaw_std_rad: float | None = None) -> Estimate:
        """Position (and a heading correction) of the array from one frame.

        :param features: output of :meth:`EchoProcessor.process` for the frame.
        :param yaw_rad: heading of the array given by the robot (IMU, compass), rad.
        :param temperature_c: assumed air temperature, degC; ``None`` takes the room file's.
            The speed of sound is re-estimated from the echoes around this value.
        :param yaw_std_rad: standard deviation of the error of ``yaw_rad``, rad: the heading is
            estimated from the echoes with a Gaussian prior of this width around ``yaw_rad``
            (offsets searched within 3 of them, at most 10 deg). ``None`` takes
            :data:`DEFAULT_YAW_STD_RAD` (2 deg); 0 declares the heading exact.
        :return: :class:`Estimate`; its covariance includes the heading's uncertainty.
        """
        return self.finish(self.propose(features, yaw_rad, temperature_c, yaw_std_rad))

    def fix(self, features: EchoFeatures, yaw_rad: float, temperature_c: float | None = None,
            yaw_std_rad: float | None = None, wide_search_allowed: bool = True) -> Fix:
        """:meth:`localize` as a :class:`~echoloc_ros.core.localization.Fix` (the
        :class:`~echoloc_ros.core.localization.Localizer` protocol; physics has no wide search,
        so ``wide_search_allowed`` changes nothing)."""
        return Fix(self.localize(features, yaw_rad, temperature_c, yaw_std_rad))

    def propose(self, features: EchoFeatures, yaw_rad: float,
                temperature_c: float | None = None,
                yaw_std_rad: float | None = None) -> Proposal:
        """The candidate poses of one frame, scored and the best few polished: everything
        :meth:`localize` does before it commits to one (same arguments). :meth:`finish` turns
        a proposal and a chosen candidate into an :class:`Estimate`."""
        if features.n_channels != self.array.n_receivers:
            raise ValueError(f'features have {features.n_channels} channels, array '
                             f'{self.array.name!r} has {self.array.n_receivers}')
        if not np.isfinite(yaw_rad):
            raise ValueError(f'yaw_rad must be finite, got {yaw_rad}')
        yaw_std = DEFAULT_YAW_STD_RAD if yaw_std_rad is None else float(yaw_std_rad)
        if not (np.isfinite(yaw_std) and yaw_std >= 0.0):
            raise ValueError(f'yaw_std_rad must be finite and >= 0, got {yaw_std_rad}')
        temperature = self.room.temperature_c if temperature_c is None else temperature_c
        if not -40.0 <= temperature <= 60.0:
            raise ValueError(f'temperature_c must be in [-40, 60], got {temperature}')
        working = working_channels(features)
        if not working.all():
            proposal = self._without_dead_channels(working).propose(
                features.channels(working), yaw_rad, temperature_c, yaw_std_rad)
            proposal.working = working
            return proposal
        fr = self._frame(features, yaw_rad, temperature)
        if yaw_std > 0.0:
            fr.yaw_info = 1.0 / yaw_std ** 2
            span = min(YAW_SPAN_SIGMAS * yaw_std, YAW_SPAN_MAX_RAD)
            n_side = int(np.ceil(span / self.yaw_step_rad - 0.25))
            fr.yaw_grid = np.linspace(-span, span, 2 * n_side + 1) if n_side else np.zeros(1)
        # Apparent distances of the floor and ceiling for heights in z_range_m.
        tol = self.speed_tolerance
        lo, hi = self.z_range_m
        height = self.room.height_m
        grid = np.arange(max(min(lo, height - hi) / (1 + tol) - 0.02, 0.01),
                         max(hi, height - lo) / (1 - tol) + 0.02, self.grid_step_m)
        vertical = self._surface_scores(fr, self._normals[-2:], grid, fr.table)
        k = self.n_candidates
        z_cands = self._z_candidates(vertical[0], vertical[1], grid, k)
        if not z_cands:
            raise ValueError('no floor or ceiling echo found in the frame')
        # A second height is tried only when its floor/ceiling evidence is nearly as strong.
        z_cands = [zc for zc in z_cands if zc[2] >= z_cands[0][2] - HEIGHT_GAP]
        # A height over a box's top comes in addition to those over the floor.
        z_cands = sorted([zc for zc in z_cands if not zc[3]][:self.n_heights]
                         + [zc for zc in z_cands if zc[3]][:1], key=lambda zc: -zc[2])
        centre = self.room.vertices_m.mean(axis=0)
        candidates = []
        gains = []
        for z, kappa, _, _ in z_cands:
            # Floor and ceiling paths do not depend on x, y or the heading: fit (z, c) on them
            # alone, then remove them, since they are the strongest distractors of the wall
            # scores.
            fit = self._newton(fr, np.array([[centre[0], centre[1], z, kappa, 0.0]]),
                               self._vertical_only[None], np.array([2, 3]), 1,
                               need_info=False)
            theta, coef = fit.theta[0], fit.coef
            tau, amp = fit.tau, fit.amp
            strength = np.sum(amp[0] ** 2 * fr.weights, axis=-1)
            gains.append(float(np.sum(np.abs(coef[0]) * strength)
                               / max(np.sum(strength), 1e-300)))
            cleaned = features.baseband - self._synthesise(fr, tau[0], amp[0], coef[0])
            # Scans interpolate linearly: the baseband's own rate is enough for them.
            table = cleaned.astype(np.complex64)
            z, kappa = float(theta[2]), float(theta[3])
            if self._shoebox:
                xy = self._shoebox_candidates(fr, theta, table)
            else:
                grid = np.arange(0.02, self.room.max_extent_m * (1 + tol) + 0.05,
                                 2 * self.grid_step_m)
                walls = self._surface_scores(fr, self._normals[:-2], grid, table)
                xy = self._plan_candidates(walls, grid, kappa, 2 * k)
                base = np.array([xy[0][0], xy[0][1], z, kappa, 0.0])
                scan_x = self._scan_axis(fr, base, 0, table, 3)
                scan_y = self._scan_axis(fr, base, 1, table, 3)
                xy = np.vstack([xy] + [[x, base[1]] for x in scan_x]
                               + [[base[0], y] for y in scan_y]
                               + [[x, y] for x in scan_x for y in scan_y])
                xy = np.column_stack([xy, np.zeros(len(xy))])
            candidates.append(np.column_stack([xy[:, :2], np.full(len(xy), z),
                                               np.full(len(xy), kappa), xy[:, 2]]))
        fr.gain = gains[0]
        thetas = np.vstack(candidates)
        thetas = thetas[_distinct(thetas, np.array([0.01, 0.01, 0.01, 0.002, 0.01]))]
        valid = self._valid_batch(fr, thetas)
        scores = self._score(fr, thetas, valid)
        order = np.argsort(scores)[::-1]
        # Polish the best few in (x, y) and the heading, then finish the winner in all.
        polish_free = np.array([0, 1, YAW]) if fr.yaw_free else np.array([0, 1])
        top = order[:self.n_polish]
        fit = self._newton(fr, thetas[top], valid[top], polish_free, self.polish_iterations,
                           need_info=False)
        polished, polished_scores = fit.theta, fit.evidence
        ranked = np.argsort(polished_scores)[::-1]
        rest = order[self.n_polish:]
        return Proposal(localizer=self, frame=fr, yaw_given_rad=float(yaw_rad),
                        thetas=np.vstack([polished[ranked], thetas[rest]]),
                        scores=np.concatenate([polished_scores[ranked], scores[rest]]),
                        n_polished=len(ranked), working=working)

    def finish(self, proposal: Proposal, index: int = 0,
               probabilities: np.ndarray | None = None,
               component_scale: float = 1.0) -> Estimate:
        """Refine candidate ``index`` of ``proposal`` in all parameters and give its
        :class:`Estimate`.

        :param index: which of ``proposal.thetas``; 0 is the physics choice.
        :param probabilities: probability of each candidate being the right one ``(M,)``
            and, last, of none being right ``(M + 1,)`` (from a learned ranker). ``None``
            derives the spread toward the rivals from their evidence gaps.
        :param component_scale: with ``probabilities``, the fix's own covariance is scaled by
            this (a calibration fitted on held-out frames, see ``echoloc calibrate``).
        :return: the fix; its covariance adds the rivals' spread (a mixture's second moment).
        """
        if proposal.localizer is not self:
            return proposal.localizer.finish(proposal, index, probabilities, component_scale)
        fr, yaw_rad = proposal.frame, proposal.yaw_given_rad
        theta = proposal.thetas[index]
        free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
        fit = self._newton(fr, theta[None], self._valid_batch(fr, theta[None]), free,
                           self.max_iterations)
        theta, info, score = fit.theta[0], fit.info[0], float(fit.evidence[0])
        others = [i for i in range(len(proposal.thetas)) if i != index]
        rivals = [(proposal.scores[i], proposal.thetas[i], i) for i in others]
        rivals = [r for r in rivals if np.linalg.norm(r[1][:3] - theta[:3]) > 0.02]
        rivals.sort(key=lambda r: -r[0])
        tau, amp = fit.tau, fit.amp
        ratio = max(self._residual_ratio(fr, tau[0], amp[0], fit.coef[0]), 1.0)
        yaw = yaw_rad + float(theta[YAW])
        # Array origin = emitter - R(yaw) emitter_m: its Jacobian in (x, y, z, kappa, psi).
        emitter_m = self.array.emitter_m
        jacobian = np.zeros((3, N_THETA))
        jacobian[:, :3] = np.eye(3)
        if fr.yaw_free:
            jacobian[:, YAW] = -yaw_matrix(yaw + 0.5 * np.pi) @ (emitter_m * [1.0, 1.0, 0.0])
        full_cov = self._covariance(info, ratio, fr.yaw_info)
        cov = jacobian @ full_cov @ jacobian.T
        component = None
        listed = []
        if probabilities is None:
            confidence = 1.0
            for other_score, other, _ in rivals[:3]:
                gap = max(score - other_score, 0.0)
                confidence = min(confidence, float(np.clip(gap / CONFIDENT_GAP, 0.0, 1.0)))
                # A competitor that explains the echoes nearly as well widens the covariance
                # toward it (a two-component mixture's second moment).
                d = other[:3] - theta[:3]
                cov = cov + np.outer(d, d) / (1.0 + np.exp(min(gap / AMBIGUOUS_GAP, 700.0)))
        else:
            p = np.asarray(probabilities, dtype=float)
            if p.shape != (len(proposal.thetas) + 1,):
                raise ValueError(f'probabilities must have {len(proposal.thetas) + 1} entries '
                                 f'(one per candidate and one for none), got {p.shape}')
            # Candidates within 2 cm of the refined fix are the same place: their share is
            # the fix's.
            kept = {i for _, _, i in rivals}
            confidence = float(p[index] + sum(p[i] for i in others if i not in kept))
            component = component_scale * cov
            cov = self._region_covariance(component, theta[:3], rivals, p, index)
            component = 0.5 * (component + component.T) + self.position_floor_m ** 2 * np.eye(3)
            listed = sorted([(p[i], t) for _, t, i in rivals if p[i] >= RIVAL_MIN_PROBABILITY],
                            key=lambda r: -r[0])
        cov = 0.5 * (cov + cov.T) + self.position_floor_m ** 2 * np.eye(3)

        def origin(t: np.ndarray) -> np.ndarray:
            return t[:3] - yaw_matrix(yaw_rad + t[YAW]) @ emitter_m

        return Estimate(position_m=origin(theta), covariance_m2=cov,
                        speed_of_sound_mps=float(fr.c0 * theta[3]), confidence=confidence,
                        score=float(score), n_echoes=int(np.count_nonzero(amp[0, :, 0] > 0)),
                        candidates_m=np.array([origin(theta)]
                                              + [origin(t) for _, t, _ in rivals[:4]]),
                        residual_ratio=ratio, yaw_rad=yaw,
                        yaw_variance_rad2=float(full_cov[YAW, YAW]) if fr.yaw_free else 0.0,
                        component_covariance_m2=component,
                        rivals_m=np.array([origin(t) for _, t in listed]).reshape(-1, 3),
                        rival_probabilities=np.array([q for q, _ in listed], dtype=float))

    def candidate_echoes(self, proposal: Proposal, n_candidates: int,
                         lags_s: np.ndarray) -> dict[str, np.ndarray]:
        """The echoes as each candidate predicts them: what a learned ranker reads.

        For the first ``n_candidates`` candidates and every room image path of order 1 and 2
        (furniture left out: it is what moves), the matched-filter output of each receiver at
        the path's predicted delay plus each of ``lags_s``, in noise units and with the
        carrier phase of the predicted delay removed, so that an echo where the candidate
        predicts it reads as a peak of steady phase at lag 0.

        :param proposal: from :meth:`propose`.
        :param n_candidates: at most this many candidates (fewer when the frame has fewer).
        :param lags_s: offsets around each predicted delay ``(W,)``, s.
        :return: ``echo`` complex64 ``(M, P, n, W)``; ``expected`` ``(M, P, n)``: the peak a
            path would give at its predicted strength, noise units; ``keep`` bool ``(M, P)``:
            paths inside the window and not hidden by known furniture; ``candidate``
            ``(M, 8)``: evidence below the best (/ 10), polished, heading offset (in prior
            standard deviations and in deg), kappa - 1 (%), x and y over the room's extent,
            z over its height. Dead receivers' entries are 0.
        """
        loc, fr = proposal.localizer, proposal.frame
        m = min(int(n_candidates), len(proposal.thetas))
        thetas = proposal.thetas[:m]
        paths = np.flatnonzero(loc._room_image)
        tau, amp, _ = loc._paths(fr, thetas, paths, keep=np.ones(len(paths), dtype=bool))
        keep = (loc._valid_batch(fr, thetas)[:, paths]
                & np.all((tau > fr.t_min) & (tau < fr.t_max), axis=-1))
        lags = np.asarray(lags_s, dtype=float)
        z = loc._sample(fr, tau[:, :, None, :] + lags[:, None], smooth=False)   # (M,P,W,n)
        scale = np.sqrt(fr.weights)
        echo = np.moveaxis(z * scale.astype(np.float32), 2, 3).astype(np.complex64)
        expected = fr.gain * amp * abs(loc._response_zero[0]) * scale
        working = proposal.working
        if not working.all():
            full = np.zeros(echo.shape[:2] + (len(working),) + echo.shape[3:], np.complex64)
            full[:, :, working] = echo
            echo = full
            full = np.zeros(expected.shape[:2] + (len(working),))
            full[:, :, working] = expected
            expected = full
        lo, hi = self.room.vertices_m.min(axis=0), self.room.vertices_m.max(axis=0)
        psi = thetas[:, YAW]
        candidate = np.column_stack([
            np.clip((proposal.scores[:m] - proposal.scores.max()) / 10.0, -10.0, 0.0),
            np.arange(m) < proposal.n_polished,
            psi * np.sqrt(fr.yaw_info), np.rad2deg(psi),
            100.0 * (thetas[:, 3] - 1.0),
            (thetas[:, :2] - lo) / (hi - lo), thetas[:, 2:3] / self.room.height_m])
        return {'echo': echo, 'expected': expected, 'keep': keep,
                'candidate': candidate.astype(np.float32)}

    def _shoebox_candidates(self, fr: _Frame, theta: np.ndarray,
                            table: np.ndarray) -> np.ndarray:
        """(x, y, psi) candidates in a shoebox.

        Per axis, the peaks of the score of the paths that move with that axis alone (its two
        walls and their floor and ceiling double bounces); pairs ranked by those scores plus the
        corner echoes. The coordinate between two far walls has weak echoes, and the strong
        axis' echoes leak into its score: so from the best values of the stronger axis, that
        axis' paths are fitted and removed and the weaker axis is scanned again, corners
        included, and so are the faces of known furniture that face along it, each where it
        reflects (in front of the face, within its extent): a box that hides a wall has a face
        whose echo places the array as the wall's would. The rescan keeps ``n_rescan`` peaks.

        When the heading is estimated, the scans run at the given heading (a degree of error
        weakens the peaks but seldom moves them; beyond ``YAW_RESCAN_RAD`` they run again at
        the heading found), twice as many peaks are kept, and each is
        scored again over the heading offsets ``fr.yaw_grid``: the direction of a wall's echoes
        across the array measures the heading. The offset where the best peaks of both axes
        together score highest is the frame's; the peaks are ranked, and the pairs made, at
        that offset (the weak axis' peaks alone would each pick an offset from noise).

        :param theta: ``(5,)`` with the fitted z and kappa.
        :return: ``(n, 3)``.
        """
        k = self.n_candidates
        scan = theta.copy()
        for _ in range(2):
            values = []
            profiles = []
            for axis in range(2):
                coords, score = self._family_scan(fr, axis, scan, self._family[axis], table)
                peaks = _peaks(score, coords, max(2 * k if fr.yaw_free else k, 2), 0.02)
                values.append(_vertex(score, coords, peaks))
                if fr.yaw_free:
                    profiles.append(self._family_scan(fr, axis, scan, self._family[axis], table,
                                                      values[-1], fr.yaw_grid)[1])
                else:
                    profiles.append(score[peaks][:, None])
            frame_psi = int(np.argmax(sum(np.max(p, axis=0) for p in profiles)))
            if abs(fr.yaw_grid[frame_psi] - scan[YAW]) <= YAW_RESCAN_RAD:
                break
            # The strong walls gave a heading far from the one scanned at: the weak walls'
            # peaks may have decohered, so scan again at the heading found.
            scan[YAW] = fr.yaw_grid[frame_psi]
        per_axis = []
        family = []
        for value, profile in zip(values, profiles):
            order = np.argsort(profile[:, frame_psi])[::-1]
            per_axis.append(value[order][:k])
            family.append(profile[order, frame_psi][:max(k, 2)])
        psi = fr.yaw_grid[frame_psi]
        xs, ys = per_axis
        pairs = np.stack(np.meshgrid(xs, ys, indexing='ij'), axis=-1).reshape(-1, 2)
        rank = (family[0][:len(xs), None] + family[1][None, :len(ys)]).ravel()
        thetas = np.repeat(theta[None], len(pairs), axis=0)
        thetas[:, :2] = pairs
        thetas[:, YAW] = psi
        rank = rank + self._path_scores(fr, thetas, self._corner, table)
        chosen = [np.column_stack([pairs[np.argsort(rank)[::-1][:self.n_pairs]],
                                   np.full(min(self.n_pairs, len(pairs)), psi)])]
        strong = int(np.argmax([f[0] if f.size else -np.inf for f in family]))
        weak = 1 - strong
        clear = family[weak].size > 1 and family[weak][0] - family[weak][1] > EXPLAIN_GAP
        if clear and not self._faces:
            # The weak axis has a clear winner already (with furniture, a clear winner may be
            # a box face taken for a wall: the rescan scores the faces where they are).
            return np.vstack(chosen)
        free = np.array([strong, YAW]) if fr.yaw_free else np.array([strong])
        for value in per_axis[strong][:self.n_explain]:
            start = theta.copy()
            start[strong] = value
            start[YAW] = psi
            known = (self._vertical_only | self._family[strong])[None]
            fit = self._newton(fr, start[None], known, free, 1, need_info=False)
            fitted, coef = fit.theta, fit.coef
            tau, amp = fit.tau, fit.amp
            explained = (fr.features.baseband
                         - self._synthesise(fr, tau[0], amp[0], coef[0])).astype(np.complex64)
            coords, score = self._family_scan(fr, weak, fitted[0],
                                              self._moves[weak] | self._face_moves[weak],
                                              explained, traced=bool(self._faces))
            found = _vertex(score, coords, _peaks(score, coords, self.n_rescan, 0.02))
            more = np.empty((found.size, 3))
            more[:, strong] = fitted[0, strong]
            more[:, weak] = found
            more[:, 2] = fitted[0, YAW]
            chosen.append(more)
        return np.vstack(chosen)

    def _region_covariance(self, cov: np.ndarray, position: np.ndarray, rivals: list,
                           p: np.ndarray, index: int) -> np.ndarray:
        """A Gaussian whose 95 % ellipsoid holds 95 % of the ranker's mixture.

        The components are the fix (``cov``), the rivals (``cov`` moved to each) and "none"
        (a spread over the room), with the ranker's probabilities ``p``. The most probable
        ones are taken until they hold 95 %; the others are left out, as a 95 % region leaves
        out the tail. The second moment of those taken, about the fix, is then scaled so that
        its own Gaussian holds the share ``0.95 / mass`` they need. A confident frame keeps
        the physics ellipsoid (slightly widened); a doubtful one spans its rivals. (Adding
        every rival's second moment instead makes even a 1 % rival metres away dominate a
        sub-millimetre fix, and the 95 % ellipsoid then holds ~100 %.)
        """
        centre = np.append(self.room.vertices_m.mean(axis=0), np.mean(self.z_range_m))
        others = [(p[i], np.outer(other[:3] - position, other[:3] - position))
                  for _, other, i in rivals]
        others.append((p[-1], np.diag(self._room_spread_m2)
                       + np.outer(centre - position, centre - position)))
        others.sort(key=lambda o: -o[0])
        mass = float(p[index])
        moment = mass * cov
        for weight, spread in others:
            if mass >= REGION_MASS:
                break
            moment = moment + weight * (cov + spread)
            mass += weight
        level = min(REGION_MASS / max(mass, 1e-12), REGION_LEVEL_MAX)
        scale = stats.chi2.ppf(level, 3) / stats.chi2.ppf(REGION_MASS, 3)
        return moment / mass * scale

    @staticmethod
    def _covariance(info: np.ndarray, ratio: float, yaw_info: float) -> np.ndarray:
        """Covariance ``(5, 5)`` of (x, y, z, kappa, psi): the inverse of the echoes'
        information scaled down by the residual ratio plus the heading prior (a fixed heading
        gets a placeholder), directions with almost no information clamped to a weak one. Its
        position block marginalises the heading and kappa."""
        total = info / ratio
        total[YAW, YAW] += yaw_info if yaw_info > 0 else 1.0
        scale = np.array([1.0, 1.0, 1.0, 0.1, 1.0])
        scaled = total * np.outer(scale, scale)
        values, vectors = np.linalg.eigh(0.5 * (scaled + scaled.T))
        # Weakest allowed information before the residual scaling: a 10 cm standard deviation
        # (1 % in kappa, 0.1 rad).
        values = np.maximum(values, 1.0 / (0.1 ** 2 * ratio))
        return (vectors / values) @ vectors.T * np.outer(scale, scale)
