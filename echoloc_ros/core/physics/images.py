"""Image-source geometry of the physics localizer: image maps of the room's surfaces and
furniture faces, and which image paths exist from a pose."""

import copy
from dataclasses import dataclass

import numpy as np

from echoloc_ros.core.geometry import occluders, plane_contains, room_planes
from echoloc_ros.core.physics.config import PRIOR_SCALE, STEP_LIMIT, STEP_TOLERANCE
from echoloc_ros.core.physics.kernels import faces_valid, first_order_blocked, image_points
from echoloc_ros.core.physics.newton import final_fit, model_evidence
from echoloc_ros.core.physics.path_trace import traced_paths
from echoloc_ros.core.physics.results import Fit


# The final fit of a fix in a shoebox room models the room's image paths up to this order (the
# search, orders 1 and 2); and, for that fit, paths down to this fraction of the strongest wall
# echo (the search: ``min_relative_amplitude``).
FINAL_ORDER = 3
FINAL_MIN_RELATIVE = 0.04
# An image farther than the window's path (at the fastest sound searched) plus this, m, from
# the emitter is not heard at any receiver.
FINAL_REACH_MARGIN_M = 0.5


def shoebox_image_maps(size_m: np.ndarray, reflection: np.ndarray, orders: range
                       ) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Every image of a shoebox room's emitter of the given orders, as an affine map
    ``image = diag(m) @ emitter + t`` and its reflection coefficient.

    Along one axis, ``k`` reflections between the surfaces at 0 and ``D`` starting with the
    one at 0 map ``x`` to ``-x - (k - 1) D`` (k odd) or ``x + k D`` (k even), starting with the one
    at ``D`` to ``-x + (k + 1) D`` or ``x - k D``, meeting the first surface ``ceil(k / 2)``
    times and the other ``floor(k / 2)``; an image is one such history per axis.

    :param size_m: width, length and height ``(3,)``.
    :param reflection: amplitude reflection per surface: ``(3, 2)``, the surface at 0 and at
        ``D`` of each axis.
    :return: ``(m (3,), t (3,), reflection)`` per image.
    """
    per_axis = []
    for axis in range(3):
        d, (r0, r1) = size_m[axis], reflection[axis]
        histories = {0: [(1.0, 0.0, 1.0)]}
        for k in range(1, max(orders) + 1):
            odd = k % 2
            first = (-1.0 if odd else 1.0, -(k - 1) * d if odd else k * d,
                     r0 ** ((k + 1) // 2) * r1 ** (k // 2))
            second = (-1.0 if odd else 1.0, (k + 1) * d if odd else -k * d,
                      r1 ** ((k + 1) // 2) * r0 ** (k // 2))
            histories[k] = [first, second]
        per_axis.append(histories)
    maps = []
    for order in orders:
        for kx in range(order + 1):
            for ky in range(order + 1 - kx):
                for hx in per_axis[0][kx]:
                    for hy in per_axis[1][ky]:
                        for hz in per_axis[2][order - kx - ky]:
                            maps.append((np.array([hx[0], hy[0], hz[0]]),
                                         np.array([hx[1], hy[1], hz[1]]),
                                         hx[2] * hy[2] * hz[2]))
    return maps


def second_order_maps(first: list[tuple]) -> list[tuple]:
    """The image maps of order 2 made from the room's first-order ones (``(planes, M, t,
    reflection)`` each): one per two planes in travel order, and one for two perpendicular
    planes, which make the same image either way round.

    Two pairs of walls can make one image from reflection points elsewhere: a wall in the
    plane of another (an alcove's back wall beside the room's) with a third, or two pairs of
    parallel walls as far apart (``l_shaped_room``'s y = 0 and 2.5 and y = 2.5 and 5). Each is
    a path of its own, traced on its own walls. Two walls in one plane make no path between
    them.
    """
    maps = []
    # Every map so far, stacked, so each new one is compared with all at once, and the planes
    # that made it (a second-order map never equals a first-order one: det M = 1).
    seen_m = np.zeros((0, 3, 3))
    seen_t = np.zeros((0, 3))
    seen_pair = []
    for (sa,), ha, ta, ra in first:
        for (sb,), hb, tb, rb in first:
            m = hb @ ha
            t = hb @ ta + tb
            if sa == sb or (np.allclose(m, np.eye(3)) and np.allclose(t, 0.0)):
                continue
            same = np.all(np.isclose(m, seen_m), axis=(1, 2)) & np.all(
                np.isclose(t, seen_t), axis=1)
            if any(seen_pair[k] == {sa, sb} for k in np.flatnonzero(same)):
                continue
            maps.append(((sa, sb), m, t, ra * rb))
            seen_m = np.concatenate([seen_m, m[None]])
            seen_t = np.concatenate([seen_t, t[None]])
            seen_pair.append(frozenset((sa, sb)))
    return maps


@dataclass
class Surface:
    name: str
    normal: np.ndarray     # unit, into the room
    offset: float          # normal . x == offset on the surface
    reflection: float      # amplitude reflection coefficient sqrt(1 - alpha)
    index: int


class ImageSources:
    """The image-source geometry of the room (orders 1 and 2 of its surfaces, first order of
    the known furniture's faces) and which paths exist from a pose: a part of
    :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`, over its ``room``."""

    def _build_surfaces(self) -> list[Surface]:
        absorption = self.room.surface_absorption()
        # In a plan that is not convex, walls hide paths: whether, and which walls and corners
        # (as traced_paths takes them).
        hiding = occluders(self.room)
        self._hiding = ((False, np.zeros((0, 2, 2)), np.zeros((0, 2))) if hiding is None
                        else (True, hiding.walls, hiding.reflex))
        return [Surface(p.name, p.normal, p.offset, float(np.sqrt(1 - absorption[p.index])),
                        p.index) for p in room_planes(self.room)]

    def _build_images(self) -> None:
        """Affine maps image = M @ emitter + t for every surface sequence of order 1 and 2."""
        maps = []
        for s in self._surfaces:
            h = np.eye(3) - 2.0 * np.outer(s.normal, s.normal)
            maps.append(((s.index,), h, 2.0 * s.offset * s.normal, s.reflection))
        maps += second_order_maps(maps)
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
        # The model of a fix's final fit, built when first needed (:meth:`_final_model`).
        self._final = None
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
        # The room paths' planes as :func:`traced_paths` takes them. Two perpendicular planes
        # make the same image in either order (one map is kept), and from an emitter at the
        # receivers' centre the path runs through their corner, where rounding picks which
        # order fits: either counts.
        self._traced_seqs = np.array([seq + (-1,) * (2 - len(seq)) for seq in self._sequences],
                                     dtype=np.int64)
        normals = np.array([s.normal for s in self._surfaces])
        self._swappable = np.array([len(seq) == 2 and room
                                    and abs(normals[seq[0]] @ normals[seq[1]]) < 1e-9
                                    for seq, room in zip(self._sequences, self._room_image)])
        # First-order room paths (which known boxes may block): each one's plane, per path.
        self._first_order = self._room_image & (self._img_order == 1)
        planes = [seq[0] if first else 0 for seq, first in zip(self._sequences,
                                                               self._first_order)]
        self._first_planes = (normals[planes], np.array([self._surfaces[i].offset
                                                         for i in planes]))
        self._box_bounds = (np.array([b.min_m for b in self.room.furniture]).reshape(-1, 3),
                            np.array([b.max_m for b in self.room.furniture]).reshape(-1, 3))

    def _plane_contains(self, index: int, points: np.ndarray) -> np.ndarray:
        return plane_contains(self.room, index, points, 1e-6, within_height=False)

    def _valid_images(self, emitters: np.ndarray, receivers: np.ndarray,
                      paths: np.ndarray | None = None) -> np.ndarray:
        """Which images are real paths from each emitter to its receiver (the array centre).

        Room images: all of them in a shoebox, traced (reflection points on the surfaces) in
        other plans. Furniture faces: the emitter in front and the reflection point on the
        face. First-order room paths through a furniture box are blocked.

        :param emitters: ``(K, 3)``. :param receivers: ``(K, 3)``.
        :param paths: bool ``(P,)``: decide only for these paths (the rest stay True).
        :return: ``(K, P)`` bool.
        """
        wanted = np.ones(len(self._sequences), dtype=bool) if paths is None else paths
        valid = np.ones((emitters.shape[0], len(self._sequences)), dtype=bool)
        emitters = np.ascontiguousarray(emitters, dtype=float)
        receivers = np.ascontiguousarray(receivers, dtype=float)
        if not self._shoebox:
            traced = np.flatnonzero(self._room_image & wanted)
            valid[:, traced] = traced_paths(
                np.einsum('pij,kj->kpi', self._img_m[traced], emitters) + self._img_t[traced],
                receivers, self._traced_seqs[traced], self._img_order[traced],
                self._swappable[traced], self._normals, self._offsets, self.room.vertices_m,
                *self._hiding)
        if not self._faces:
            return valid
        faces = wanted[self._face_index]
        index = self._face_index[faces]
        valid[:, index] = faces_valid(emitters, receivers, self._img_m[index],
                                      self._img_t[index],
                                      *(g[faces] for g in self._face_geometry))
        # First-order room paths through a box: both legs, every path and box at once.
        first = np.flatnonzero(self._first_order & wanted)
        if first.size:
            blocked = first_order_blocked(
                emitters, receivers, image_points(self._img_m[first], self._img_t[first],
                                                  emitters),
                self._first_planes[0][first], self._first_planes[1][first], *self._box_bounds)
            valid[:, first] &= ~blocked
        return valid

    def _final_model(self, fr, thetas: np.ndarray) -> tuple['ImageSources', np.ndarray]:
        """The model a fix's final fit is made with, and which of its paths exist at the
        candidate ``thetas (1, 5)``: in a shoebox room, where the frame's evidence there
        prefers it, this one with the room's images of orders 3 to ``FINAL_ORDER`` after its
        own (``FINAL_MIN_RELATIVE``); else this one.

        Higher orders reach a receiver as strongly as the far walls' echoes, and overlap them:
        left out of the fit, they pull it by up to millimetres and raise its residual. Where
        they are not in the frame (a simulation to order 2), each modelled path only fits
        noise, and the evidence (the log det of its prior is each path's price) keeps the
        smaller model. The search keeps orders 1 and 2 (its scans and candidates are what
        the higher orders follow, and they cost it per candidate).
        """
        valid, final, richer = self._final_models(fr, thetas)
        if final is None:
            return self, valid
        # Each model's evidence (:meth:`_paths`, :meth:`_evidence`) in one compiled call.
        signal = self._signal(fr, (None, None))
        start = np.ascontiguousarray(thetas[:1], dtype=float)
        evidence = [model_evidence(start, np.ascontiguousarray(paths[:1]),
                                   model._geometry(fr, slice(None)), signal[:7] + signal[9:],
                                   PRIOR_SCALE * fr.gain ** 2)
                    for model, paths in ((self, valid), (final, richer))]
        return (final, richer) if evidence[1] > evidence[0] else (self, valid)

    def _final_fit(self, fr, theta: np.ndarray, free: np.ndarray,
                   iterations: int) -> tuple['ImageSources', np.ndarray, Fit]:
        """:meth:`_final_model` at ``theta (5,)`` and that model's :meth:`_newton` from it over
        ``free`` (with the information): the model, its paths' ``valid (1, P)`` and the fit.
        In a shoebox room both in one compiled call (:func:`final_fit`: the chosen model's
        fit starts from the delays its evidence was taken at), the same bits."""
        valid, final, richer = self._final_models(fr, theta[None])
        if final is None:
            return self, valid, self._newton(fr, theta[None], valid, free, iterations)
        free = np.asarray(free, dtype=np.int64)
        signal = self._signal(fr, (None, None))
        taken, *fit = final_fit(
            np.array(theta[None], dtype=float),
            ((np.ascontiguousarray(valid), self._geometry(fr, slice(None))),
             (np.ascontiguousarray(richer), final._geometry(fr, slice(None)))),
            signal[:7] + signal[9:], free, iterations, self._pair_limit_s(fr, iterations),
            fr.yaw_info, STEP_LIMIT[free], STEP_TOLERANCE[free], PRIOR_SCALE * fr.gain ** 2)
        model, valid = (final, richer) if taken else (self, valid)
        return model, valid, model._fit_result(free, *fit)

    def _final_models(self, fr, thetas: np.ndarray
                      ) -> tuple[np.ndarray, 'ImageSources | None', np.ndarray | None]:
        """Which of this model's paths exist at ``thetas (1, 5)``, and in a shoebox room the
        model with the room's higher orders (:meth:`_final_model`) and which of its paths
        exist there and are near enough to be heard (``None`` for both elsewhere)."""
        valid = self._valid_batch(fr, thetas)
        if not self._shoebox or FINAL_ORDER <= 2:
            return valid, None, None
        if self._final is None:
            room = self.room
            size = np.array([room.width_m, room.length_m, room.height_m])
            # The surface at 0 and at D of each axis: west and east, south and north, floor and
            # ceiling (room_planes' order: south, east, north, west, floor, ceiling).
            refl = np.array([s.reflection for s in self._surfaces])[[[3, 1], [0, 2], [4, 5]]]
            late = shoebox_image_maps(size, refl, range(3, FINAL_ORDER + 1))
            final = copy.copy(self)
            final._img_m = np.concatenate([self._img_m, [np.diag(m) for m, _, _ in late]])
            final._img_t = np.concatenate([self._img_t, [t for _, t, _ in late]])
            final._img_refl = np.concatenate([self._img_refl, [r for _, _, r in late]])
            final._vertical_only = np.concatenate(
                [self._vertical_only, [m[0] == 1 and m[1] == 1 and t[0] == t[1] == 0
                                       for m, t, _ in late]])
            final.min_relative_amplitude = FINAL_MIN_RELATIVE
            final._final = final
            self._final = final
        final = self._final
        late = slice(self._img_m.shape[0], None)
        # Only the images near enough to be heard in the window at any speed searched (with
        # the array's size to spare) enter the fit: a far one costs it and adds nothing.
        reach_m = fr.t_max * fr.c0 * (1.0 + self.speed_tolerance) + FINAL_REACH_MARGIN_M
        images = (np.einsum('pij,kj->kpi', final._img_m[late], thetas[:, :3])
                  + final._img_t[late])
        near = np.linalg.norm(images - thetas[:, None, :3], axis=-1) < reach_m
        return valid, final, np.hstack([valid, near])
