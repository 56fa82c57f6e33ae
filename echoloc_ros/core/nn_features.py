"""The network's view of a frame: the echoes each candidate of the physics proposer predicts,
read off the frame (:func:`candidate_echoes`), and one frame's input to the ranker
(:func:`candidate_example`). numpy only: the same features feed training and inference."""

import numpy as np

from echoloc_ros.core.physics.config import YAW
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.matched_filter import sample
from echoloc_ros.core.physics.results import Proposal

# Lags read around each predicted delay: one baseband bin (16 us, ~5.5 mm of path) apart.
LAGS_S = np.arange(-2, 3) * 16e-6


def candidate_echoes(localizer: PhysicsLocalizer, proposal: Proposal, n_candidates: int,
                     lags_s: np.ndarray) -> dict[str, np.ndarray]:
    """The echoes as each candidate predicts them: what a learned ranker reads.

    For the first ``n_candidates`` candidates and every room image path of order 1 and 2
    (furniture left out: it is what moves), the matched-filter output of each receiver at
    the path's predicted delay plus each of ``lags_s``, in noise units and with the
    carrier phase of the predicted delay removed, so that an echo where the candidate
    predicts it reads as a peak of steady phase at lag 0.

    :param localizer: the localizer for the whole array.
    :param proposal: from its :meth:`~PhysicsLocalizer.propose`.
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
    tau, amp, keep = loc.room_echoes(fr, thetas)
    lags = np.asarray(lags_s, dtype=float)
    z = sample(fr, tau[:, :, None, :] + lags[:, None], smooth=False)   # (M,P,W,n)
    scale = np.sqrt(fr.weights)
    echo = np.moveaxis(z * scale.astype(np.float32), 2, 3).astype(np.complex64)
    expected = fr.gain * amp * abs(loc.response.zero[0]) * scale
    working = proposal.working
    if not working.all():
        full = np.zeros(echo.shape[:2] + (len(working),) + echo.shape[3:], np.complex64)
        full[:, :, working] = echo
        echo = full
        full = np.zeros(expected.shape[:2] + (len(working),))
        full[:, :, working] = expected
        expected = full
    lo, hi = localizer.room.vertices_m.min(axis=0), localizer.room.vertices_m.max(axis=0)
    psi = thetas[:, YAW]
    candidate = np.column_stack([
        np.clip((proposal.scores[:m] - proposal.scores.max()) / 10.0, -10.0, 0.0),
        np.arange(m) < proposal.n_polished,
        psi * np.sqrt(fr.yaw_info), np.rad2deg(psi),
        100.0 * (thetas[:, 3] - 1.0),
        (thetas[:, :2] - lo) / (hi - lo), thetas[:, 2:3] / localizer.room.height_m])
    return {'echo': echo, 'expected': expected, 'keep': keep,
            'candidate': candidate.astype(np.float32)}


def candidate_example(localizer: PhysicsLocalizer, proposal: Proposal | None,
                      n_candidates: int, truth_m: np.ndarray | None = None
                      ) -> dict[str, np.ndarray]:
    """One frame's network input, padded to ``n_candidates`` slots (numpy, float16 echoes).

    :param localizer: the localizer for the whole array (a proposal made without a dead
        receiver fills that receiver's entries with zeros).
    :param proposal: ``localizer.propose``'s; ``None``: a frame without candidates.
    :return: ``echo (M, P, n, W, 2)``, ``expected``, ``keep``, ``candidate``, ``present``,
        ``position_m (M, 3)`` (candidate positions) and ``truth_m (3,)`` (NaN when unknown).
    """
    paths = localizer.n_room_paths
    shape = (n_candidates, paths, localizer.array.n_receivers, len(LAGS_S))
    out = {'echo': np.zeros(shape + (2,), np.float16),
           'expected': np.zeros(shape[:3], np.float16),
           'keep': np.zeros(shape[:2], bool),
           'candidate': np.zeros((n_candidates, 8), np.float32),
           'present': np.zeros(n_candidates, bool),
           'position_m': np.zeros((n_candidates, 3), np.float32),
           'truth_m': np.full(3, np.nan) if truth_m is None else np.asarray(truth_m, float)}
    if proposal is None:
        return out
    aligned = candidate_echoes(localizer, proposal, n_candidates, LAGS_S)
    m = aligned['echo'].shape[0]
    # float16 holds up to 65504: a clipped int16 frame's echoes stay below.
    out['echo'][:m, ..., 0] = np.clip(aligned['echo'].real, -6e4, 6e4)
    out['echo'][:m, ..., 1] = np.clip(aligned['echo'].imag, -6e4, 6e4)
    out['expected'][:m] = np.minimum(aligned['expected'], 6e4)
    out['keep'][:m] = aligned['keep']
    out['candidate'][:m] = aligned['candidate']
    out['present'][:m] = True
    out['position_m'][:m] = proposal.positions_m()[:m]
    return out
