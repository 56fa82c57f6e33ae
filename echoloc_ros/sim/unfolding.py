"""Which surfaces made each image source, found by following the ray back from the receiver.

The straight line from a receiver to an image source of order n is the unfolded path: it leaves
the room through the surface of the last reflection; mirrored in that surface, the image's
parent lies on the continuation, and so on n times, back to the emitter. Every image is traced
at once (n steps of a few array operations), where undoing each reflection in turn tries every
surface at every step (6^n branches pruned). An image whose trace does not end at the emitter
has no path to that receiver (it is hidden from it); the caller decides what to do with it.
"""

from collections.abc import Callable

import numpy as np

from echoloc_ros.core.geometry import on_surfaces

# A crossing this far behind the segment's start, m, is still ahead of it: where the ray meets
# an edge (two surfaces at one point), the second surface is crossed at the start of the next
# segment, give or take the images' rounding.
EDGE_TOLERANCE_M = 1e-5
# A trace ends at the emitter to this distance, m: pyroomacoustics gives its images in float32,
# a few micrometres at 20 m; two images are centimetres apart at least.
END_TOLERANCE_M = 1e-4


def traced_sequences(normals: np.ndarray, offsets: np.ndarray,
                     contains: Callable[[int, np.ndarray], np.ndarray] | None,
                     emitter: np.ndarray, receiver: np.ndarray, images: np.ndarray,
                     orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reflecting surfaces of every image, in travel order (emitter to receiver).

    :param normals: the surfaces' unit normals into the room ``(S, 3)``.
    :param offsets: ``normal . x`` on each surface ``(S,)``, m.
    :param contains: ``contains(s, points)`` tells whether ``points`` ``(P, 3)`` lying on
        plane ``s`` are inside that surface's polygon; ``None`` where every crossing of a
        plane out of the room is on its surface (a convex room).
    :param emitter: emitter position ``(3,)``, m.
    :param receiver: the receiver position the paths are traced to ``(3,)``, m.
    :param images: image-source positions ``(P, 3)``, m.
    :param orders: their reflection orders ``(P,)``, each >= 1.
    :return: ``(sequences, ok)``: surface indices ``(P, max order)`` in travel order, -1 past
        an image's own order; ``ok`` ``(P,)`` where the trace ended at the emitter.
    """
    images = np.asarray(images, dtype=float)
    orders = np.asarray(orders, dtype=int)
    p = images.shape[0]
    depth = int(orders.max()) if p else 0
    backwards = np.full((p, depth), -1, dtype=int)
    ok = np.ones(p, dtype=bool)
    start = np.broadcast_to(receiver, images.shape).astype(float)
    target = images.copy()
    rows = np.arange(p)
    for step in range(depth):
        active = step < orders
        d = target - start
        denom = d @ normals.T                                   # (P, S)
        with np.errstate(divide='ignore', invalid='ignore'):
            t = (offsets[None] - start @ normals.T) / denom
        # Leaving the room: moving against the inward normal, ahead of the start.
        ahead = t * np.linalg.norm(d, axis=1)[:, None] > -EDGE_TOLERANCE_M
        t = np.where((denom < 0.0) & ahead, t, np.inf)
        if contains is not None:
            for s in range(normals.shape[0]):
                finite = np.flatnonzero(np.isfinite(t[:, s]))
                hit = start[finite] + t[finite, s, None] * d[finite]
                t[finite[~contains(s, hit)], s] = np.inf
        surface = np.argmin(t, axis=1)
        t_hit = t[rows, surface]
        ok &= ~active | np.isfinite(t_hit)
        moving = active & np.isfinite(t_hit)
        backwards[moving, step] = surface[moving]
        n = normals[surface[moving]]
        start[moving] = start[moving] + t_hit[moving, None] * d[moving]
        target[moving] -= 2.0 * (np.sum(n * target[moving], axis=1)
                                 - offsets[surface[moving]])[:, None] * n
    ok &= np.linalg.norm(target - emitter, axis=1) < END_TOLERANCE_M
    source = orders[:, None] - 1 - np.arange(depth)[None]
    sequences = np.where(source >= 0, backwards[rows[:, None], np.maximum(source, 0)], -1)
    return sequences, ok


def undone_sequence(image: np.ndarray, order: int, first: np.ndarray, normals: np.ndarray,
                    offsets: np.ndarray, receiver: np.ndarray,
                    contains: Callable[[int, np.ndarray], np.ndarray]) -> tuple[int, ...]:
    """The surfaces of one image that no trace reaches, by undoing each reflection in turn.

    :param first: the emitter's first-order images ``(S, 3)``; the other arguments as
        :func:`traced_sequences`'s.
    :return: surface indices in travel order; ``()`` where no sequence rebuilds the image.
    """
    if order == 1:
        return (int(np.argmin(np.linalg.norm(first - image, axis=1))),)
    candidates = []
    for last in range(normals.shape[0]):
        parent = image - 2.0 * (normals[last] @ image - offsets[last]) * normals[last]
        if order == 2:
            match = np.flatnonzero(np.linalg.norm(first - parent, axis=1) < END_TOLERANCE_M)
            candidates += [(int(m), last) for m in match if m != last]
        else:
            head = undone_sequence(parent, order - 1, first, normals, offsets, receiver,
                                   contains)
            if head and head[-1] != last:
                candidates.append(head + (last,))
    if len(candidates) <= 1:
        return candidates[0] if candidates else ()
    # Perpendicular surfaces give the same image in either order; the real path is the one
    # whose reflection points lie on the surfaces.
    for seq in candidates:
        if on_surfaces(seq, image, receiver, normals, offsets, contains):
            return seq
    return candidates[0]
