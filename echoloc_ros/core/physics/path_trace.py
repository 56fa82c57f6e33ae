"""Compiled trace of the physics localizer's room paths in a plan that is not a shoebox
(numba): whether each path's reflection points lie on their surfaces, each reflection on its
wall's room side, no leg through a wall and none round a corner that juts in.

The arithmetic is :func:`~echoloc_ros.core.geometry.on_surfaces`' over
:func:`~echoloc_ros.core.geometry.plane_contains`, in the same order and rounding (numpy's
``@`` of short vectors sums with fused multiply-adds, and so does :func:`_dot`), so the
decisions, and the poses made from them, are bit-identical to that per-path Python loop's,
at a small part of its cost.
"""

import math

import numba
import numpy as np
from numba.extending import intrinsic

# As the other kernels: cached on disk, and numpy's floating-point semantics.
_JIT = {'cache': True, 'nogil': True, 'error_model': 'numpy'}


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once, as the BLAS ``ddot`` behind numpy's ``@`` sums."""
    sig = numba.types.float64(numba.types.float64, numba.types.float64, numba.types.float64)
    return sig, lambda context, builder, signature, args: builder.fma(*args)


@numba.njit(**_JIT)
def _dot(u, v):
    """``u @ v`` of short vectors, rounded as numpy's (a fused multiply-add per term), so the
    traced paths decide as :func:`~echoloc_ros.core.geometry.on_surfaces` does."""
    total = u[0] * v[0]
    for a in range(1, u.shape[0]):
        total = _fma(u[a], v[a], total)
    return total


@numba.njit(**_JIT)
def _on_plane_surface(s, hit, vertices, wall_sq, tolerance_m):
    """:func:`~echoloc_ros.core.geometry.plane_contains` of one point, without the height
    test: between the wall's ends, or on or inside the plan for the floor and ceiling."""
    n_walls = vertices.shape[0]
    if s < n_walls:
        b = vertices[(s + 1) % n_walls]
        u = _dot(hit[:2] - vertices[s], b - vertices[s]) / wall_sq[s]
        return u >= -tolerance_m and u <= 1 + tolerance_m
    crossings = 0
    nearest = np.inf
    for i in range(n_walls):
        a = vertices[i]
        b = vertices[(i + 1) % n_walls]
        if (a[1] > hit[1]) != (b[1] > hit[1]):
            if hit[0] < a[0] + (hit[1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1]):
                crossings += 1
        ab0 = b[0] - a[0]
        ab1 = b[1] - a[1]
        u = min(max(((hit[0] - a[0]) * ab0 + (hit[1] - a[1]) * ab1) / wall_sq[i], 0.0), 1.0)
        dx = hit[0] - (a[0] + u * ab0)
        dy = hit[1] - (a[1] + u * ab1)
        nearest = min(nearest, math.sqrt(dx * dx + dy * dy))
    return crossings % 2 == 1 or nearest <= tolerance_m


@numba.njit(**_JIT)
def _crosses_wall(p, q, walls):
    """:func:`~echoloc_ros.core.geometry.crosses_walls` of one leg ``p -> q`` (plan)."""
    d0 = q[0] - p[0]
    d1 = q[1] - p[1]
    for w in range(walls.shape[0]):
        a = walls[w, 0]
        b = walls[w, 1]
        e0 = b[0] - a[0]
        e1 = b[1] - a[1]
        sides_of_leg = ((d0 * (a[1] - p[1]) - d1 * (a[0] - p[0]))
                        * (d0 * (b[1] - p[1]) - d1 * (b[0] - p[0])))
        sides_of_wall = ((e0 * (p[1] - a[1]) - e1 * (p[0] - a[0]))
                         * (e0 * (q[1] - a[1]) - e1 * (q[0] - a[0])))
        if sides_of_leg < -1e-9 and sides_of_wall < -1e-9:
            return True
    return False


@numba.njit(**_JIT)
def _on_surfaces(seq, order, image, receiver, normals, offsets, vertices, wall_sq, hiding,
                 walls, reflex):
    """:func:`~echoloc_ros.core.geometry.on_surfaces` of one path ``seq[:order]`` (plane
    containment as :func:`_on_plane_surface`, 1e-6 m)."""
    points = np.empty((order + 2, 3))
    points[0] = receiver
    start = receiver.copy()
    target = image.copy()
    for j in range(order):
        s = seq[order - 1 - j]
        denom = _dot(normals[s], target - start)
        if abs(denom) < 1e-12:
            return False
        t = (offsets[s] - _dot(normals[s], start)) / denom
        hit = start + t * (target - start)
        if not (0.0 <= t <= 1.0 and _on_plane_surface(s, hit, vertices, wall_sq, 1e-6)):
            return False
        points[j + 1] = hit
        start = hit
        target = target - 2.0 * (_dot(normals[s], target) - offsets[s]) * normals[s]
    if not hiding:
        return True
    for j in range(1, order + 1):
        for r in range(reflex.shape[0]):
            if math.hypot(points[j, 0] - reflex[r, 0], points[j, 1] - reflex[r, 1]) < 1e-6:
                return False
    points[order + 1] = target
    for j in range(1, order + 1):
        s = seq[order - j]
        # A wall reflects on its room side only (1e-9 m: a neighbour on a meeting wall).
        if (min(_dot(normals[s], points[j - 1]), _dot(normals[s], points[j + 1]))
                < offsets[s] - 1e-9):
            return False
    for j in range(order + 1):
        if _crosses_wall(points[j], points[j + 1], walls):
            return False
    return True


@numba.njit(**_JIT)
def traced_paths(images, receivers, seqs, orders, swappable, normals, offsets, vertices,
                 hiding, walls, reflex):
    """Whether the reflection points of room paths lie on their surfaces, as
    :meth:`~echoloc_ros.core.physics.images.ImageSources._traced` decides, for every pose and
    path at once.

    :param images: ``(K, P, 3)`` the paths' images of each pose's emitter; ``receivers``
        ``(K, 3)``.
    :param seqs: ``(P, 2)`` each path's planes in travel order (``orders (P,)`` of them).
    :param swappable: ``(P,)`` second-order paths off two perpendicular planes, which count
        traced in either order.
    :param vertices: the plan ``(W, 2)``. :param hiding: whether the plan hides paths; then
        ``walls (W, 2, 2)`` and ``reflex (R, 2)`` are its
        :class:`~echoloc_ros.core.geometry.Occluders`.
    :return: ``(K, P)`` bool.
    """
    n_walls = vertices.shape[0]
    wall_sq = np.empty(n_walls)
    for i in range(n_walls):
        b = vertices[(i + 1) % n_walls]
        wall_sq[i] = (b[0] - vertices[i, 0]) ** 2 + (b[1] - vertices[i, 1]) ** 2
    swapped = seqs[:, ::-1].copy()
    traced = np.zeros(images.shape[:2], dtype=np.bool_)
    for k in range(images.shape[0]):
        for p in range(images.shape[1]):
            traced[k, p] = (
                _on_surfaces(seqs[p], orders[p], images[k, p], receivers[k], normals, offsets,
                             vertices, wall_sq, hiding, walls, reflex)
                or (swappable[p]
                    and _on_surfaces(swapped[p], orders[p], images[k, p], receivers[k],
                                     normals, offsets, vertices, wall_sq, hiding, walls,
                                     reflex)))
    return traced
