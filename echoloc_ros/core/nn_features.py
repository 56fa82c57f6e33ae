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
#: A room-independent input keeps this many of each candidate's paths: the strongest heard
#: (a shoebox has 24 paths of order 1 and 2; a plan of more walls has more).
GENERAL_PATHS = 24
#: What a room-independent input says of each path it keeps (its slot says nothing):
#: path length over 10 m, the spread of its delays over the receivers (cm of path), and
#: whether it is heard.
N_PATH_FEATURES = 3
#: Speed of sound that turns the delays into path lengths for :data:`N_PATH_FEATURES` (a
#: scale only: 20 degC air), m/s.
SPEED_M_S = 343.0


def candidate_echoes(localizer: PhysicsLocalizer, proposal: Proposal, n_candidates: int,
                     lags_s: np.ndarray, general: bool = False) -> dict[str, np.ndarray]:
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
    :param general: the room-independent input: each candidate's :data:`GENERAL_PATHS`
        strongest heard paths (:func:`strongest_paths`, adds ``path``), and its place as
        distance from the best candidate rather than in the room.
    :return: ``echo`` complex64 ``(M, P, n, W)``; ``expected`` ``(M, P, n)``: the peak a
        path would give at its predicted strength, noise units; ``keep`` bool ``(M, P)``:
        paths inside the window and not hidden by known furniture; ``candidate``
        ``(M, 8)``: evidence below the best (/ 10), polished, heading offset (in prior
        standard deviations and in deg), kappa - 1 (%), x and y over the room's extent,
        z over its height (general: horizontal distance from the best candidate, height over
        the best one's, height, m). Dead receivers' entries are 0.
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
    psi = thetas[:, YAW]
    if general:
        # Where a candidate stands relative to the best one, and its height: nothing that
        # names the room's size or its origin.
        offset = thetas[:, :3] - thetas[:1, :3]
        where = np.column_stack([np.minimum(np.hypot(offset[:, 0], offset[:, 1]), 5.0),
                                 np.clip(offset[:, 2], -2.0, 2.0), thetas[:, 2]])
    else:
        lo, hi = localizer.room.vertices_m.min(axis=0), localizer.room.vertices_m.max(axis=0)
        where = np.column_stack([(thetas[:, :2] - lo) / (hi - lo),
                                 thetas[:, 2:3] / localizer.room.height_m])
    candidate = np.column_stack([
        np.clip((proposal.scores[:m] - proposal.scores.max()) / 10.0, -10.0, 0.0),
        np.arange(m) < proposal.n_polished,
        psi * np.sqrt(fr.yaw_info), np.rad2deg(psi),
        100.0 * (thetas[:, 3] - 1.0), where])
    out = {'echo': echo, 'expected': expected, 'keep': keep,
           'candidate': candidate.astype(np.float32)}
    if general:
        out = strongest_paths(out, tau, GENERAL_PATHS)
    return out


def strongest_paths(aligned: dict[str, np.ndarray], tau_s: np.ndarray, n_paths: int
                    ) -> dict[str, np.ndarray]:
    """Each candidate's ``n_paths`` strongest heard paths, strongest first, and what each
    is (``path (M, n_paths, N_PATH_FEATURES)``): the room-independent input.

    A room's paths differ in number and meaning from room to room, so a slot of a general
    input names no wall: it holds the candidate's k-th strongest heard echo, and the path's
    length and its delays' spread over the receivers (a floor or ceiling echo reaches all
    receivers at once, a wall's does not) say what it is. Slots beyond the heard paths are
    empty (not kept, zeros).

    :param aligned: :func:`candidate_echoes`' ``echo``, ``expected``, ``keep`` (room paths).
    :param tau_s: the paths' predicted delays ``(M, P, n)``, s.
    :param n_paths: slots per candidate.
    """
    echo, expected, keep = aligned['echo'], aligned['expected'], aligned['keep']
    m, p = keep.shape
    strength = np.where(keep, expected.max(axis=2), -1.0)
    order = np.argsort(-strength, axis=1, kind='stable')[:, :n_paths]
    rows = np.arange(m)[:, None]
    k = order.shape[1]
    length_m = SPEED_M_S * tau_s.mean(axis=2)
    spread_cm = 100.0 * SPEED_M_S * np.ptp(tau_s, axis=2)
    path = np.zeros((m, n_paths, N_PATH_FEATURES), np.float32)
    kept = np.zeros((m, n_paths), bool)
    kept[:, :k] = keep[rows, order]
    path[:, :k, 0] = length_m[rows, order] / 10.0
    path[:, :k, 1] = np.minimum(spread_cm[rows, order], 50.0) / 10.0
    path[:, :k, 2] = kept[:, :k]
    path *= kept[..., None]
    out_echo = np.zeros((m, n_paths) + echo.shape[2:], echo.dtype)
    out_echo[:, :k] = echo[rows, order]
    out_expected = np.zeros((m, n_paths) + expected.shape[2:], expected.dtype)
    out_expected[:, :k] = expected[rows, order]
    return {**aligned, 'echo': out_echo * kept[:, :, None, None],
            'expected': out_expected * kept[:, :, None], 'keep': kept, 'path': path}


def candidate_example(localizer: PhysicsLocalizer, proposal: Proposal | None,
                      n_candidates: int, truth_m: np.ndarray | None = None,
                      general: bool = False) -> dict[str, np.ndarray]:
    """One frame's network input, padded to ``n_candidates`` slots (numpy, float16 echoes).

    :param localizer: the localizer for the whole array (a proposal made without a dead
        receiver fills that receiver's entries with zeros).
    :param proposal: ``localizer.propose``'s; ``None``: a frame without candidates.
    :param general: the room-independent input (:func:`candidate_echoes`).
    :return: ``echo (M, P, n, W, 2)``, ``expected``, ``keep``, ``candidate``, ``present``,
        ``path (M, P, N_PATH_FEATURES)`` (zeros for a per-room input), ``position_m (M, 3)``
        (candidate positions) and ``truth_m (3,)`` (NaN when unknown).
    """
    paths = GENERAL_PATHS if general else localizer.n_room_paths
    shape = (n_candidates, paths, localizer.array.n_receivers, len(LAGS_S))
    out = {'echo': np.zeros(shape + (2,), np.float16),
           'expected': np.zeros(shape[:3], np.float16),
           'keep': np.zeros(shape[:2], bool),
           'candidate': np.zeros((n_candidates, 8), np.float32),
           'present': np.zeros(n_candidates, bool),
           'path': np.zeros(shape[:2] + (N_PATH_FEATURES,), np.float32),
           'position_m': np.zeros((n_candidates, 3), np.float32),
           'truth_m': np.full(3, np.nan) if truth_m is None else np.asarray(truth_m, float)}
    if proposal is None:
        return out
    aligned = candidate_echoes(localizer, proposal, n_candidates, LAGS_S, general)
    m = aligned['echo'].shape[0]
    # float16 holds up to 65504: a clipped int16 frame's echoes stay below.
    out['echo'][:m, ..., 0] = np.clip(aligned['echo'].real, -6e4, 6e4)
    out['echo'][:m, ..., 1] = np.clip(aligned['echo'].imag, -6e4, 6e4)
    out['expected'][:m] = np.minimum(aligned['expected'], 6e4)
    out['keep'][:m] = aligned['keep']
    out['candidate'][:m] = aligned['candidate']
    out['present'][:m] = True
    if general:
        out['path'][:m] = aligned['path']
    out['position_m'][:m] = proposal.positions_m()[:m]
    return out
