"""Physics-based localization in a known room from one frame of echoes, heading known.

The method (details and sources in ``docs/physics.md``):

1. Per surface, a 1-D coherent score: the receivers' analytic matched-filter outputs
   ``z_i(tau) = baseband_i(tau) exp(j 2 pi f_c tau)`` summed at the delays of that surface's
   first-order echo, as a function of the emitter's distance to the surface. With heading known,
   a wall's echo delays depend on that distance only.
2. Height and speed of sound from the floor and ceiling: their apparent distances (at the
   assumed speed) add up to ``H c0 / c``.
3. The floor and ceiling paths, which do not depend on x and y, are fitted and removed.
4. Wall candidates: in a shoebox per axis from opposite walls, then scans along each axis over
   every path that moves with it; in other floor plans a grid over the plan.
5. The candidates are checked against the full image-source prediction (orders 1-2, known
   furniture faces) with a likelihood score.
6. The best are refined by Levenberg-Marquardt on the complex baseband itself: every predicted
   path is modelled with the point response and its own complex amplitude while (x, y, z, c)
   move. The covariance is the inverse Fisher information of that fit, scaled by the residual
   and the noise correlation between bins, plus a floor and the spread toward a competitor that
   scores almost as well.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from echoloc_ros.core.acoustics import air_absorption_db_per_m, speed_of_sound_mps
from echoloc_ros.core.array_geometry import ArrayGeometry, yaw_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor
from echoloc_ros.core.room import Room


# Relative evidence gaps (1 - runner-up score / best score) for full confidence and for
# treating the runner-up as a live alternative in the covariance.
CONFIDENT_GAP = 0.1
AMBIGUOUS_GAP = 0.01
# Candidates polished before the winner is chosen.
N_POLISH = 3


@dataclass
class Estimate:
    """One position fix.

    :ivar position_m: array-frame origin in the room frame ``(3,)``, m.
    :ivar covariance_m2: position covariance ``(3, 3)``, symmetric positive definite, m^2.
    :ivar speed_of_sound_mps: speed of sound estimated from the echoes, m/s.
    :ivar confidence: in [0, 1]; low when another position explains the echoes almost as well.
    :ivar score: likelihood score of the fix (higher is better; comparable within a room).
    :ivar n_echoes: number of modelled echo paths in the final fit.
    :ivar candidates_m: positions of the competing candidates ``(k, 3)``, best first.
    """

    position_m: np.ndarray
    covariance_m2: np.ndarray
    speed_of_sound_mps: float
    confidence: float
    score: float
    n_echoes: int
    candidates_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


@dataclass
class _Surface:
    name: str
    normal: np.ndarray     # unit, into the room
    offset: float          # normal . x == offset on the surface
    reflection: float      # amplitude reflection coefficient sqrt(1 - alpha)
    index: int


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


class PhysicsLocalizer:
    """Localize the array in a known room from matched-filter features.

    :param room: the room (its file's temperature is the default assumption).
    :param array: the array geometry.
    :param chirp: the emitted ping.
    :param fs_hz: sampling rate of the frames, Hz.
    :param processor: the processor that made the features (for its point response); ``None``
        builds the default one for ``array``.
    :param n_candidates: candidates kept per axis.
    :param speed_tolerance: relative range searched for the speed of sound (0.05 = +-5 %,
        about +-28 degC).
    :param position_floor_m: standard deviation added to every axis of the covariance, m.
    :param z_range_m: heights the array can be at, m; ``None`` is the lower half of the room.
        A horizontal planar array with up-down symmetric transducers hears the same echoes at
        height z and H - z, so one half of the room must be ruled out.
    :param grid_step_m: step of the 1-D distance grids, m.
    :param max_iterations: Levenberg-Marquardt iterations per candidate.
    :param min_relative_amplitude: paths weaker than this fraction of the strongest wall echo
        are left out of the fit.
    """

    def __init__(self, room: Room, array: ArrayGeometry, chirp: Chirp, fs_hz: float = 250e3,
                 processor: EchoProcessor | None = None, n_candidates: int = 5,
                 speed_tolerance: float = 0.05, position_floor_m: float = 0.0015,
                 z_range_m: tuple[float, float] | None = None, grid_step_m: float = 0.003,
                 max_iterations: int = 6, min_relative_amplitude: float = 0.08) -> None:
        self.room = room
        self.array = array
        self.chirp = chirp
        self.fs_hz = fs_hz
        self.processor = processor or EchoProcessor(chirp, fs_hz, array=array)
        self.n_candidates = n_candidates
        self.speed_tolerance = speed_tolerance
        self.position_floor_m = position_floor_m
        self.grid_step_m = grid_step_m
        self.z_range_m = (0.02, 0.5 * room.height_m) if z_range_m is None else tuple(z_range_m)
        if not 0.0 <= self.z_range_m[0] < self.z_range_m[1] <= room.height_m:
            raise ValueError(f'z_range_m must lie within [0, {room.height_m}], got {z_range_m}')
        self.max_iterations = max_iterations
        self.min_relative_amplitude = min_relative_amplitude
        self._shoebox = room.is_shoebox
        self._surfaces = self._build_surfaces()
        self._build_images()
        self._n_walls = room.vertices_m.shape[0]
        # The fit uses every ``_fit_stride``-th bin: the baseband is oversampled several times.
        dt = self.processor.decimation / self.processor.fs_hz
        self._fit_stride = max(1, int(0.25 * self.processor.mainlobe_half_width_s / dt))
        # Noise in the baseband is correlated over the point response; Fisher information that
        # treats the fitted bins as independent overcounts by this factor.
        dt *= self._fit_stride
        lags = np.arange(-200, 201) * dt
        g = self.processor.point_response(lags)
        self._correlation_factor = float(np.sum(np.abs(g) ** 2) / np.abs(g[200]) ** 2)

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
        for (sa,), ha, ta, ra in first:
            for (sb,), hb, tb, rb in first:
                if sa == sb:
                    continue
                m = hb @ ha
                t = hb @ ta + tb
                if any(np.allclose(m, m2) and np.allclose(t, t2) for _, m2, t2, _ in maps):
                    continue
                maps.append(((sa, sb), m, t, ra * rb))
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

    def _valid_images(self, emitter: np.ndarray, receiver: np.ndarray) -> np.ndarray:
        """Which images are real paths from ``emitter`` to ``receiver`` (the array centre).

        Room images: all of them in a shoebox, traced (reflection points on the surfaces) in
        other plans. Furniture faces: the emitter in front and the reflection point on the
        face. First-order room paths through a furniture box are blocked.
        """
        valid = np.ones(len(self._sequences), dtype=bool)
        images = self._img_m @ emitter + self._img_t
        if not self._shoebox:
            for p in np.flatnonzero(self._room_image):
                valid[p] = self._traced(self._sequences[p], images[p], receiver)
        for p, box, axis, side, value in self._faces:
            if side * emitter[axis] <= side * value:
                valid[p] = False
                continue
            t = (value - images[p, axis]) / (receiver[axis] - images[p, axis])
            hit = images[p] + t * (receiver - images[p])
            others = [a for a in range(3) if a != axis]
            valid[p] = bool(np.all(hit[others] >= box.min_m[others])
                            and np.all(hit[others] <= box.max_m[others]))
        if self._faces:
            for p in np.flatnonzero(self._room_image & (self._img_order == 1) & valid):
                s = self._surfaces[self._sequences[p][0]]
                t = (s.offset - s.normal @ receiver) / (s.normal @ (images[p] - receiver))
                hit = receiver + t * (images[p] - receiver)
                if any(box.blocks(emitter, hit) or box.blocks(hit, receiver)
                       for box in self.room.furniture):
                    valid[p] = False
        return valid

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
    @staticmethod
    def _sample(features: EchoFeatures, channel: np.ndarray, tau_s: np.ndarray) -> np.ndarray:
        """Analytic matched-filter output z = baseband * exp(j 2 pi f_c tau) at delays tau.

        :param channel: channel index per delay, broadcastable with ``tau_s``.
        """
        bb = features.baseband
        n_bins = bb.shape[1]
        x = (tau_s - features.start_s) / features.bin_width_s
        i = np.clip(np.floor(x).astype(np.int64), 0, n_bins - 2)
        frac = x - i
        flat = np.broadcast_to(channel, i.shape) * n_bins + i
        lo = bb.ravel()[flat]
        hi = bb.ravel()[flat + 1]
        value = lo + (hi - lo) * frac
        inside = (x >= 0) & (x <= n_bins - 1)
        phase = 2 * np.pi * features.carrier_hz * tau_s
        return np.where(inside, value * (np.cos(phase) + 1j * np.sin(phase)), 0.0)

    # ------------------------------------------------------------------------- stage 1-3
    def _surface_scores(self, features: EchoFeatures, offsets: np.ndarray,
                        normals: np.ndarray, distance_m: np.ndarray, c0: float,
                        t_min: float) -> np.ndarray:
        """Coherent evidence of each surface's first-order echo vs emitter-surface distance.

        For the surface with inward normal n at distance d from the emitter, receiver i hears
        the echo after ``|delta_i + 2 d n| / c0``. The score is the log of the receivers'
        coherent power over its noise expectation, so that the evidence of opposite surfaces
        adds up: a candidate needs both echoes rather than one that is merely strong.

        :param normals: inward unit normals ``(S, 3)``.
        :param distance_m: distance grid ``(G,)``.
        :return: scores ``(S, G)``.
        """
        dn = normals @ offsets.T                                             # (S, n)
        d2 = np.sum(offsets ** 2, axis=1)                                    # (n,)
        d = distance_m[None, :, None]
        tau = np.sqrt(d2 + 4.0 * d * dn[:, None, :] + 4.0 * d ** 2) / c0     # (S, G, n)
        z = self._sample(features, np.arange(offsets.shape[0]), tau)
        z = np.where(tau > t_min, z, 0.0)
        noise_power = offsets.shape[0] * np.mean(features.noise_floor ** 2)
        return np.log1p(np.abs(np.sum(z, axis=-1)) ** 2 / max(noise_power, 1e-30))

    def _z_candidates(self, floor: np.ndarray, ceiling: np.ndarray, grid: np.ndarray,
                      k: int) -> list[tuple[float, float, float]]:
        """(emitter z, kappa = c / c0, score) from floor and ceiling scores vs apparent
        distance."""
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
        scored = []
        for z, kappa in cands:
            if not self.z_range_m[0] <= z <= self.z_range_m[1]:
                continue
            s = (np.interp(z / kappa, grid, floor, left=0, right=0)
                 + np.interp((height - z) / kappa, grid, ceiling, left=0, right=0))
            scored.append((z, kappa, float(s)))
        scored.sort(key=lambda c: -c[2])
        chosen: list[tuple[float, float, float]] = []
        for cand in scored:
            if all(abs(cand[0] - o[0]) > 0.01 or abs(cand[1] - o[1]) > 0.003 for o in chosen):
                chosen.append(cand)
            if len(chosen) == k:
                break
        return chosen

    def _axis_candidates(self, low: np.ndarray, high: np.ndarray, grid: np.ndarray,
                         extent: float, kappa: float, k: int) -> np.ndarray:
        """Emitter coordinates along one axis of a shoebox from its two opposite walls."""
        coord = np.arange(0.03, extent - 0.03, self.grid_step_m)
        score = (np.interp(coord / kappa, grid, low, left=0, right=0)
                 + np.interp((extent - coord) / kappa, grid, high, left=0, right=0))
        return coord[_peaks(score, coord, k, 0.02)]

    def _scan_axis(self, features: EchoFeatures, emitter: np.ndarray, axis: int, kappa: float,
                   offsets: np.ndarray, c0: float, t_min: float, t_max: float,
                   k: int) -> np.ndarray:
        """Candidates along one axis with the others fixed, scored on every path that moves.

        Every image whose delay depends on the coordinate (first-order walls, their double
        bounces with floor and ceiling, corners) adds the log of its coherent power over the
        noise: a wall's whole family of echoes must line up, which a stray strong echo does not.
        """
        lo = self.room.vertices_m.min(axis=0)[axis] + 0.03
        hi = self.room.vertices_m.max(axis=0)[axis] - 0.03
        coords = np.arange(lo, hi, 4 * self.grid_step_m)
        moves = np.abs(1.0 - self._img_m[:, axis, axis]) > 1e-9
        moves &= np.array([any(i < self._n_walls for i in seq) for seq in self._sequences])
        # receiver - image = d0 + coord * v, affine in the scanned coordinate.
        base = emitter.copy()
        base[axis] = 0.0
        m = self._img_m[moves]
        d0 = (base + offsets)[None] - (m @ base + self._img_t[moves])[:, None]      # (P, n, 3)
        v = np.eye(3)[axis] - m[:, :, axis]                                      # (P, 3)
        a0 = np.sum(d0 ** 2, axis=-1)                                            # (P, n)
        a1 = 2.0 * np.einsum('pni,pi->pn', d0, v)
        a2 = np.sum(v ** 2, axis=-1)[:, None]
        c = coords[None, :, None]
        tau = np.sqrt(a0[:, None] + a1[:, None] * c + a2[:, None] * c ** 2) / (c0 * kappa)
        channels = np.arange(offsets.shape[0])
        z = self._sample(features, channels, tau)
        z = np.where((tau > t_min) & (tau < t_max), z, 0.0)
        noise_power = offsets.shape[0] * np.mean(features.noise_floor ** 2)
        score = np.sum(np.log1p(np.abs(np.sum(z, axis=-1)) ** 2 / max(noise_power, 1e-30)),
                       axis=0)
        if not self._shoebox:
            points = np.repeat(emitter[None, :2], coords.size, axis=0)
            points[:, axis] = coords
            score = np.where(self.room.contains_xy(points), score, -np.inf)
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

    # ------------------------------------------------------------------------- prediction
    def _predict(self, emitter: np.ndarray, offsets: np.ndarray, c: float,
                 valid: np.ndarray) -> tuple[np.ndarray, ...]:
        """Delays ``(P, n)``, amplitudes ``(P, n)``, unit vectors ``(P, n, 3)``, maps ``M``."""
        m = self._img_m[valid]
        images = m @ emitter + self._img_t[valid]                       # (P, 3)
        receivers = emitter + offsets                                   # (n, 3)
        delta = receivers[None] - images[:, None]                       # (P, n, 3)
        dist = np.linalg.norm(delta, axis=-1)
        unit = delta / dist[..., None]
        fc = self.chirp.center_hz
        directivity = self.array.directivity(fc, unit[..., 2], c) ** 2
        amp = (self._img_refl[valid][:, None] / dist * np.exp(-self._absorb * dist)
               * directivity * self.array.gains)
        return dist / c, amp, unit, m

    def _check_scores(self, features: EchoFeatures, emitters: np.ndarray, offsets: np.ndarray,
                      speeds: np.ndarray, t_min: float, t_max: float) -> np.ndarray:
        """Likelihood of the full image-source prediction (orders 1-2) for many candidates.

        With a free phase per path and the predicted amplitudes A the score is
        ``(sum_p |sum_i A_ip z_i(tau_ip)|)^2 / sum A^2``.

        :param emitters: candidate emitter positions ``(K, 3)``.
        :param speeds: candidate speeds of sound ``(K,)``.
        :return: scores ``(K,)``.
        """
        emitters = np.atleast_2d(emitters)
        speeds = np.broadcast_to(np.asarray(speeds, dtype=float), (emitters.shape[0],))
        valid = np.array([self._valid_images(e, e + offsets.mean(axis=0)) for e in emitters])
        images = np.einsum('pij,kj->kpi', self._img_m, emitters) + self._img_t      # (K, P, 3)
        receivers = emitters[:, None, :] + offsets[None]                         # (K, n, 3)
        delta = receivers[:, None] - images[:, :, None]                           # (K, P, n, 3)
        dist = np.sqrt(np.sum(delta ** 2, axis=-1))
        tau = dist / speeds[:, None, None]
        cos_axis = delta[..., 2] / dist
        amp = (self._img_refl[None, :, None] / dist * np.exp(-self._absorb * dist)
               * self.array.directivity(self.chirp.center_hz, cos_axis, speeds[0]) ** 2
               * self.array.gains * valid[..., None])
        amp = np.where((tau > t_min) & (tau < t_max), amp, 0.0)
        z = self._sample(features, np.arange(offsets.shape[0]), tau)
        numerator = np.sum(np.abs(np.sum(amp * z, axis=-1)), axis=-1) ** 2
        return numerator / np.maximum(np.sum(amp ** 2, axis=(1, 2)), 1e-30)

    def _check_score(self, features: EchoFeatures, emitter: np.ndarray, offsets: np.ndarray,
                     c: float, t_min: float, t_max: float) -> float:
        """:meth:`_check_scores` for one candidate."""
        return float(self._check_scores(features, emitter[None], offsets, np.array([c]), t_min,
                                        t_max)[0])

    # ------------------------------------------------------------------------- refinement
    def _evaluate(self, features: EchoFeatures, theta: np.ndarray, offsets: np.ndarray,
                  c0: float, valid: np.ndarray, t_min: float, t_max: float) -> dict | None:
        """Residual and Jacobian of the baseband model at ``theta = (emitter, kappa)``.

        Each modelled path p contributes ``a_p rel_ip exp(-j 2 pi f_c tau_ip) g(t - tau_ip)`` to
        channel i, with ``rel`` the predicted relative amplitude across receivers and ``a_p``
        solved by linear least squares (variable projection). Everything is whitened by each
        channel's noise floor.

        :param valid: which images to model (bool per image sequence).
        """
        proc = self.processor
        fc = features.carrier_hz
        c = c0 * theta[3]
        if not np.any(valid):
            return None
        tau, amp, unit, m = self._predict(theta[:3], offsets, c, valid)
        # Relative to the strongest wall echo: a near floor must not crowd the walls out.
        walled = ~self._vertical_only[valid]
        reference = np.max(amp[walled]) if np.any(walled) else np.max(amp)
        strong = np.max(amp, axis=1) >= self.min_relative_amplitude * reference
        keep = strong & np.all((tau > t_min) & (tau < t_max), axis=1)
        tau, amp, unit, m = tau[keep], amp[keep], unit[keep], m[keep]
        if tau.shape[0] == 0:
            return None
        noise = np.maximum(features.noise_floor, 1e-12)
        rel = amp / np.mean(amp, axis=1, keepdims=True)
        # Bins within the main lobe of any modelled arrival, per channel.
        dt = features.bin_width_s
        stride = self._fit_stride
        half = int(np.ceil(1.2 * proc.mainlobe_half_width_s / dt / stride))
        centre = np.rint((tau - features.start_s) / (dt * stride)).astype(np.int64) * stride
        n_bins = features.baseband.shape[1]
        flat = (np.arange(tau.shape[1])[None, :, None] * n_bins
                + np.clip(centre[..., None] + stride * np.arange(-half, half + 1), 0,
                          n_bins - 1))
        flat = np.unique(flat)
        ch, tb = np.divmod(flat, n_bins)
        data = features.baseband.ravel()[flat].astype(complex) / noise[ch]
        tau_r = tau[:, ch].T                                                   # (R, P)
        u = features.start_s + tb[:, None] * dt - tau_r
        phase = np.exp(-2j * np.pi * fc * tau_r)
        g, dg = proc.point_response(u, derivative=True)
        scale = rel[:, ch].T * phase / noise[ch][:, None]
        basis = scale * g
        gram = basis.conj().T @ basis
        gram += 1e-9 * np.trace(gram).real / gram.shape[0] * np.eye(gram.shape[0])
        coef = np.linalg.solve(gram, basis.conj().T @ data)
        residual = data - basis @ coef
        dbasis = scale * (-2j * np.pi * fc * g - dg)
        # d tau / d emitter = (I - M)^T unit / c; d tau / d kappa = -tau / kappa.
        grad_e = np.einsum('pji,pnj->pni', np.eye(3)[None] - m, unit) / c       # (P, n, 3)
        dtau = np.concatenate([grad_e, (-tau / theta[3])[..., None]], axis=-1)  # (P, n, 4)
        jac = -np.einsum('rp,rpk->rk', dbasis * coef[None, :],
                         dtau[:, ch].transpose(1, 0, 2))
        # Variable projection (Kaufman): the amplitudes absorb whatever lies in their span.
        jac -= basis @ np.linalg.solve(gram, basis.conj().T @ jac)
        return {
            'cost': float(np.sum(np.abs(residual) ** 2)),
            'jr': np.vstack([jac.real, jac.imag]),
            'rr': np.concatenate([residual.real, residual.imag]),
            'n_res': residual.size,
            'n_paths': tau.shape[0],
            'energy': float(np.sum(np.abs(data) ** 2)),
            'tau': tau,
            'rel': rel,
            'coef': coef,
        }

    def _refine(self, features: EchoFeatures, theta0: np.ndarray, offsets: np.ndarray,
                c0: float, t_min: float, t_max: float, subset: np.ndarray | None = None,
                free: np.ndarray | None = None,
                iterations: int | None = None) -> tuple[np.ndarray, np.ndarray, dict | None]:
        """Levenberg-Marquardt on ``theta = (emitter x, y, z, kappa)``.

        :param subset: which image sequences to model, untraced (for floor and ceiling paths);
            ``None`` models all that are valid from ``theta0``.
        :param free: indices of ``theta`` that move; ``None`` moves all four.
        :param iterations: iteration limit; ``None`` takes ``max_iterations``.
        :return: ``(theta, covariance (4, 4) of the free parameters' block, last evaluation)``.
        """
        # Floor and ceiling paths exist wherever the array is; others are traced.
        valid = (subset if subset is not None
                 else self._valid_images(theta0[:3], theta0[:3] + offsets.mean(axis=0)))
        free = np.arange(4) if free is None else np.asarray(free)
        theta = np.array(theta0, dtype=float)
        best_theta, best = theta, None
        lam = 1e-3
        limit = np.array([0.03, 0.03, 0.03, 0.01])[free]
        tol = np.array([5e-5, 5e-5, 5e-5, 2e-6])[free]
        for _ in range(self.max_iterations if iterations is None else iterations):
            ev = self._evaluate(features, theta, offsets, c0, valid, t_min, t_max)
            if ev is not None and (best is None or ev['cost'] < best['cost']):
                best_theta, best = theta, ev
                lam = max(lam / 3.0, 1e-6)
            else:
                lam *= 10.0
                if best is None or lam > 1e3:
                    break
            jr = best['jr'][:, free]
            normal = jr.T @ jr
            step = -np.linalg.solve(normal + lam * np.diag(np.diag(normal) + 1e-12),
                                    jr.T @ best['rr'])
            theta = best_theta.copy()
            theta[free] += np.clip(step, -limit, limit)
            if np.all(np.abs(step) < tol):
                break
        cov = np.diag([0.1, 0.1, 0.1, 0.01])
        if best is not None:
            # Residual power per bin relative to the noise floor: 1 when the model is complete,
            # larger when echoes are missing from it (unknown furniture, higher orders).
            dof = max(best['n_res'] - 2 * best['n_paths'] - len(free), 1)
            ratio = max(best['cost'] / dof, 1.0)
            jr = best['jr'][:, free]
            cov = np.zeros((4, 4))
            cov[np.ix_(free, free)] = (np.linalg.pinv(2.0 * jr.T @ jr)
                                       * self._correlation_factor * ratio)
        return best_theta, cov, best

    def _subtract(self, features: EchoFeatures, ev: dict) -> EchoFeatures:
        """Features with the fitted paths of an evaluation removed from the baseband."""
        times = features.times_s
        baseband = features.baseband.astype(complex)
        span = self.processor.support_s
        dt = features.bin_width_s
        width = int(np.ceil(span / dt))
        for p in range(ev['tau'].shape[0]):
            for i in range(features.n_channels):
                tau = ev['tau'][p, i]
                centre = int(round((tau - features.start_s) / dt))
                lo, hi = max(centre - width, 0), min(centre + width + 1, times.size)
                if lo >= hi:
                    continue
                g = self.processor.point_response(times[lo:hi] - tau)
                baseband[i, lo:hi] -= (ev['coef'][p] * ev['rel'][p, i]
                                       * np.exp(-2j * np.pi * features.carrier_hz * tau) * g)
        return replace(features, baseband=baseband.astype(np.complex64),
                       envelope=np.abs(baseband).astype(np.float32))

    # ------------------------------------------------------------------------- public
    def localize(self, features: EchoFeatures, yaw_rad: float,
                 temperature_c: float | None = None) -> Estimate:
        """Position of the array from one frame.

        :param features: output of :meth:`EchoProcessor.process` for the frame.
        :param yaw_rad: heading of the array, rad (known).
        :param temperature_c: assumed air temperature, degC; ``None`` takes the room file's.
            The speed of sound is re-estimated from the echoes around this value.
        :return: :class:`Estimate`.
        """
        if features.n_channels != self.array.n_receivers:
            raise ValueError(f'features have {features.n_channels} channels, array '
                             f'{self.array.name!r} has {self.array.n_receivers}')
        if not np.isfinite(yaw_rad):
            raise ValueError(f'yaw_rad must be finite, got {yaw_rad}')
        temperature = self.room.temperature_c if temperature_c is None else temperature_c
        if not -40.0 <= temperature <= 60.0:
            raise ValueError(f'temperature_c must be in [-40, 60], got {temperature}')
        c0 = speed_of_sound_mps(temperature)
        self._absorb = air_absorption_db_per_m(self.chirp.center_hz, temperature,
                                               self.room.humidity_pct) * np.log(10) / 20
        rot = yaw_matrix(yaw_rad)
        emitter_offset = rot @ self.array.emitter_m
        offsets = (self.array.receivers_m - self.array.emitter_m) @ rot.T      # (n, 3)
        direct = np.nan_to_num(features.direct_tof_s, nan=0.0)
        t_min = float(np.max(direct)) + 1.2 * self.processor.mainlobe_half_width_s
        t_max = features.start_s + features.bin_width_s * (features.baseband.shape[1] - 1)
        grid = np.arange(0.02, self.room.max_extent_m * (1 + self.speed_tolerance) + 0.05,
                         self.grid_step_m)
        normals = np.array([s.normal for s in self._surfaces])
        scores = self._surface_scores(features, offsets, normals[-2:], grid, c0, t_min)
        k = self.n_candidates
        z_cands = self._z_candidates(scores[-2], scores[-1], grid, k)
        if not z_cands:
            raise ValueError('no floor or ceiling echo found in the frame')
        centre = np.append(self.room.vertices_m.mean(axis=0), 0.0)
        candidates = []
        # A second height is tried only when its floor/ceiling evidence is nearly as strong.
        z_cands = [zc for zc in z_cands if zc[2] >= z_cands[0][2] - 1.0][:2]
        for z, kappa, _ in z_cands:
            # Floor and ceiling paths do not depend on x, y: fit (z, c) on them alone, then
            # remove them, since they are the strongest distractors of the wall scores.
            theta, _, ev = self._refine(features, np.array([centre[0], centre[1], z, kappa]),
                                        offsets, c0, t_min, t_max, subset=self._vertical_only,
                                        free=np.array([2, 3]), iterations=4)
            z, kappa = float(theta[2]), float(theta[3])
            cleaned = self._subtract(features, ev) if ev is not None else features
            walls = self._surface_scores(cleaned, offsets, normals[:-2], grid, c0, t_min)
            if self._shoebox:
                xs = self._axis_candidates(walls[3], walls[1], grid, self.room.width_m,
                                           kappa, k)
                ys = self._axis_candidates(walls[0], walls[2], grid, self.room.length_m,
                                           kappa, k)
                xy = [(x, y) for x in xs for y in ys]
            else:
                xy = [tuple(p) for p in self._plan_candidates(walls, grid, kappa, 2 * k)]
            # Coordinate scans on whole echo families, from the best first-order guess.
            base = np.array([xy[0][0], xy[0][1], z])
            scan_x = self._scan_axis(cleaned, base, 0, kappa, offsets, c0, t_min, t_max, 3)
            scan_y = self._scan_axis(cleaned, base, 1, kappa, offsets, c0, t_min, t_max, 3)
            scanned = [(x, base[1]) for x in scan_x] + [(base[0], y) for y in scan_y]
            scanned += [(x, y) for x in scan_x for y in scan_y]
            candidates += [(np.array([x, y, z]), kappa) for x, y in xy + scanned]
        unique: list[tuple[np.ndarray, float]] = []
        for e, kp in candidates:
            if all(np.max(np.abs(e - u)) > 0.01 or abs(kp - ku) > 0.002 for u, ku in unique):
                unique.append((e, kp))
        candidates = unique
        scores_k = self._check_scores(features, np.array([e for e, _ in candidates]), offsets,
                                      c0 * np.array([kp for _, kp in candidates]), t_min, t_max)
        checked = sorted(zip(scores_k.tolist(), range(len(candidates))), reverse=True)
        # Polish the best candidates briefly (those whose evidence is close to the best), then
        # finish the winner.
        refined = []
        for check, i in checked[:N_POLISH]:
            if check < 0.85 * checked[0][0]:
                break
            e, kp = candidates[i]
            theta, cov, ev = self._refine(features, np.append(e, kp), offsets, c0, t_min, t_max,
                                          iterations=2)
            score = self._check_score(features, theta[:3], offsets, c0 * theta[3], t_min, t_max)
            refined.append([score, theta, cov, ev])
        refined.sort(key=lambda r: -r[0])
        theta, cov, ev = self._refine(features, refined[0][1], offsets, c0, t_min, t_max)
        refined[0] = [self._check_score(features, theta[:3], offsets, c0 * theta[3], t_min,
                                        t_max), theta, cov, ev]
        n_polished = len(refined)
        refined += [[check, np.append(*candidates[i]), None, None]
                    for check, i in checked[n_polished:3]]
        refined = [(r[0], r[1][:3], r[1][3], r[2], 0 if r[3] is None else r[3]['n_paths'])
                   for r in refined]
        refined[1:] = sorted(refined[1:], key=lambda r: -r[0])
        score, emitter, kappa, cov, n_paths = refined[0]
        position = emitter - emitter_offset
        cov3 = cov[:3, :3]
        others = [r for r in refined[1:] if np.linalg.norm(r[1] - emitter) > 0.02]
        confidence = 1.0
        for other in others:
            # Relative evidence gap to a distinct competitor. Over simulated frames, wrong fixes
            # had gaps below a few percent; correct ones mostly above.
            gap = max(1.0 - other[0] / max(score, 1e-30), 0.0)
            confidence = min(confidence, float(np.clip(gap / CONFIDENT_GAP, 0.0, 1.0)))
            if gap < 3 * AMBIGUOUS_GAP:
                # A nearly as good competitor widens the covariance toward it (a two-component
                # mixture's second moment).
                d = other[1] - emitter
                cov3 = cov3 + np.exp(-gap / AMBIGUOUS_GAP) * np.outer(d, d)
        cov3 = 0.5 * (cov3 + cov3.T) + self.position_floor_m ** 2 * np.eye(3)
        return Estimate(position_m=position, covariance_m2=cov3,
                        speed_of_sound_mps=float(c0 * kappa), confidence=confidence,
                        score=float(score), n_echoes=int(n_paths),
                        candidates_m=np.array([r[1] - emitter_offset for r in refined]))
