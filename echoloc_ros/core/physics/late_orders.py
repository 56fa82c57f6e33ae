"""The residual the reflection orders a fix's final fit leaves out are expected to leave in it
(issue 19): the doubt's allowance for a room that has every order.

In a shoebox room the final fit models the room's images to order 3
(:meth:`ImageSources._final_model`, where the frame's evidence prefers them: the frame holds
higher orders). A real room has every order, and those above 3 arrive in the window too: in
the default room 129 images of orders 1-9 reach a receiver within it, each of the late ones
about as strong as a far wall's echo. Where one falls in a modelled path's main lobes it is in
the residual the doubt judges (:meth:`Evidence._residual_ratio`); at 20 dB with every order
simulated a quarter of the default room's fixes, every one right, passed
``UNEXPLAINED_RATIO`` on it alone and were published as anywhere in the room (stop 35).

The images of orders 4 and up are the room's (:func:`shoebox_image_maps`), so the energy of
their echoes at the fix is predicted as the model predicts any path's (reflection, spreading,
air, both transducers' directivity, the receivers' gains), at the fit's own amplitude scale,
and the share of it that falls in the modelled paths' main lobes is what the residual may
hold beyond the noise. Nothing of the frame's residual enters it: a fix on the wrong echoes is
allowed only what the room's late orders would leave at that pose, not the real echoes it
leaves unexplained.
"""

import copy

import numpy as np

from echoloc_ros.core.geometry import orders_in_window
from echoloc_ros.core.physics.images import FINAL_ORDER, FINAL_REACH_MARGIN_M, shoebox_image_maps

# The share of the late orders' predicted energy in the modelled paths' main lobes that the
# doubt allows. The fit takes up part of it (each path's complex amplitude and the pose fit what
# overlaps them) and an echo whose centre lies in a lobe leaves part of its energy outside it:
# the residual beyond the noise of right fixes over the predicted energy had quartiles 0.18 /
# 0.54 / 0.74 (dev: the default room, every order, 20 dB, seed 20, 300 fixes, all right, 64
# of them doubted). The median, rounded down: every one of the 300 is then explained (ratio
# 1.69 at most; 0.4 leaves 1.9, 0.25 leaves 17 doubted), and a fix on the wrong echoes is
# allowed no more than a right one at its pose would leave.
LATE_SHARE = 0.5


def late_allowance(model, fr, theta: np.ndarray, tau: np.ndarray, amp: np.ndarray,
                   coef: np.ndarray, half: int) -> float:
    """The residual energy (noise units) that the room's reflection orders above
    ``FINAL_ORDER`` are expected to leave in the main lobes of a final fit at ``theta (5,)``
    of paths ``tau, amp (P, n)`` with amplitudes ``coef (P,)``, times :data:`LATE_SHARE`:
    0 unless ``model`` is the final model with the higher orders (the frame's evidence
    preferred them: :meth:`ImageSources._final_model`).

    :param model: the :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer` (or its
        final model) the fit was made with; ``fr``: its :class:`Frame`.
    :param half: the main lobes' half-width in bins (as :meth:`Evidence._residual_ratio`).
    """
    modelled = np.any(amp > 0, axis=1)
    if getattr(model, '_final', None) is not model or not modelled.any():
        return 0.0
    reach_m = fr.t_max * fr.c0 * (1.0 + model.speed_tolerance) + FINAL_REACH_MARGIN_M
    late = _late_model(model, reach_m)
    if late is None:
        return 0.0
    # The images that can be in reach from somewhere in the room (all of them from outside).
    maps = late._late_in_reach if _in_room(model.room, theta) else slice(None)
    # diag(m) @ emitter: the same bits as the product with the map's matrix (its other
    # terms are exact zeros).
    images = late._late_diagonal[maps] * theta[:3] + late._img_t[maps]
    near = np.arange(late._img_t.shape[0])[maps][
        np.linalg.norm(images - theta[:3], axis=1) < reach_m]
    if near.size == 0:
        return 0.0
    late_tau, late_amp, _ = late._paths(fr, theta[None], near, np.ones(near.size, dtype=bool))
    late_tau, late_amp = late_tau[0], late_amp[0]
    heard = (late_tau > fr.t_min) & (late_tau < fr.t_max)
    # The fit's amplitude scale: each path's fitted amplitude over its prediction, weighted by
    # its echo's strength (the strong paths' are the sure ones).
    strength = np.sum(amp[modelled] ** 2 * fr.weights, axis=1)
    gain2 = float(np.sum(np.abs(coef[modelled]) ** 2 * strength) / np.sum(strength))
    features = fr.features
    dt, n_bins = features.bin_width_s, features.baseband.shape[1]
    # The bins residual_power counts: each modelled path's main lobes on each receiver that
    # receives it; a late echo counts where its centre lies in them.
    receiver = np.broadcast_to(np.arange(amp.shape[1]), amp.shape)[amp > 0]
    lobes = (np.rint((tau[amp > 0] - features.start_s) / dt).astype(np.int64)[:, None]
             + np.arange(-half, half + 1))
    counted = np.zeros((amp.shape[1], n_bins), dtype=bool)
    counted[receiver[:, None], np.clip(lobes, 0, n_bins - 1)] = True
    path, late_receiver = np.nonzero(heard)
    centre = np.rint((late_tau[heard] - features.start_s) / dt).astype(np.int64)
    inside = counted[late_receiver, np.clip(centre, 0, n_bins - 1)]
    energy = late_amp[path, late_receiver] ** 2 * fr.weights[late_receiver]
    return LATE_SHARE * gain2 * model._echo_moments(fr)[2] * float(np.sum(energy[inside]))


def _late_model(model, reach_m: float):
    """``model`` (the final model of a shoebox room) with the room's images of orders above
    ``FINAL_ORDER`` up to the last one a path of ``reach_m`` can hold
    (:func:`orders_in_window`) in place of its own; None where there are none. Built once
    per model and reach."""
    cached = getattr(model, '_late_images', None)
    if cached is not None and cached[0] == reach_m:
        return cached[1]
    room = model.room
    size = np.array([room.width_m, room.length_m, room.height_m])
    top = orders_in_window(size, reach_m)
    late = None
    if top > FINAL_ORDER:
        # The surface at 0 and at D of each axis, as _final_model takes them.
        refl = np.array([s.reflection for s in model._surfaces])[[[3, 1], [0, 2], [4, 5]]]
        maps = shoebox_image_maps(size, refl, range(FINAL_ORDER + 1, top + 1))
        late = copy.copy(model)
        late._img_m = np.array([np.diag(m) for m, _, _ in maps])
        late._img_t = np.array([t for _, t, _ in maps])
        late._img_refl = np.array([r for _, _, r in maps])
        late._vertical_only = np.array([m[0] == 1 and m[1] == 1 and t[0] == t[1] == 0
                                        for m, t, _ in maps])
        late._late_diagonal = np.array([m for m, _, _ in maps], dtype=float)
        # A micrometre to spare: the rounding of either distance decides nothing.
        late._late_in_reach = np.flatnonzero(_least_distance(late._late_diagonal, late._img_t,
                                                             size) < reach_m + 1e-6)
    model._late_images = (reach_m, late)
    return late


def _least_distance(diagonal: np.ndarray, offset: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The least distance from an emitter in the box ``[0, size]`` to its images under the
    maps ``diag(diagonal) @ emitter + offset`` (``(P, 3)`` each), ``(P,)``: along an axis
    the map keeps (1) the image is ``offset`` away, along one it mirrors (-1) ``|offset -
    2 x|`` for ``x`` in ``[0, size]``."""
    gap = np.where(diagonal > 0, np.abs(offset),
                   np.maximum(np.maximum(offset - 2.0 * size, -offset), 0.0))
    return np.linalg.norm(gap, axis=1)


def _in_room(room, theta: np.ndarray) -> bool:
    """Whether the emitter of ``theta (5,)`` is inside the shoebox ``room``'s box."""
    size = (room.width_m, room.length_m, room.height_m)
    return all(0.0 <= theta[a] <= size[a] for a in range(3))
