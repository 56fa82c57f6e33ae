"""The full search's candidates over the room (:meth:`PhysicsLocalizer.propose`) in stages, so
that a track's periodic check can spread them over frames (issue 20,
:class:`~echoloc_ros.core.track_search.TrackSearch`).

:func:`proposal_stages` is ``propose``'s own work, in its order: the frame and the heights
from the floor and ceiling; per height, the floor and ceiling fitted and removed, then the wall
candidates scanned on what is left; the candidates scored and the best polished. It pauses
(yields ``None``) after the heights' and each fit, and after each height's wall scans, and
returns the :class:`Proposal`: run to the end (:func:`run_stages`) it is ``propose``, to the bit.
"""

from collections.abc import Generator

import numpy as np

from echoloc_ros.core.echo_processing import EchoFeatures, working_channels
from echoloc_ros.core.physics.candidates import distinct
from echoloc_ros.core.physics.config import (HEADING_STEP, YAW, YAW_SPAN_MAX_RAD,
                                             YAW_SPAN_SIGMAS)
from echoloc_ros.core.physics.heading_step import scan_heading
from echoloc_ros.core.physics.matched_filter import Frame
from echoloc_ros.core.physics.results import Proposal

Stages = Generator[None, None, Proposal]


def proposal_stages(physics, features: EchoFeatures, yaw_rad: float,
                    temperature_c: float | None = None, yaw_std_rad: float | None = None,
                    tilt_rad: tuple[float, float] | None = None) -> Stages:
    """:meth:`PhysicsLocalizer.propose` of ``physics`` (the same arguments) in stages (module
    docstring): each ``next`` runs one; the last ends it with the proposal
    (``StopIteration.value``).

    :raises ValueError: as ``propose`` (on the first stage).
    """
    yaw_std, temperature = physics._checked(features, yaw_rad, temperature_c, yaw_std_rad)
    working = working_channels(features)
    if not working.all():
        proposal = physics.for_receivers(working).propose(
            features.channels(working), yaw_rad, temperature_c, yaw_std_rad, tilt_rad)
        proposal.working = working
        return proposal
    fr = physics.frame(features, yaw_rad, temperature, tilt_rad)
    if yaw_std > 0.0:
        fr.yaw_info = 1.0 / yaw_std ** 2
        span = min(YAW_SPAN_SIGMAS * yaw_std, YAW_SPAN_MAX_RAD)
        n_side = int(np.ceil(span / physics.yaw_step_rad - 0.25))
        fr.yaw_grid = np.linspace(-span, span, 2 * n_side + 1) if n_side else np.zeros(1)
    z_cands = physics._height_candidates(fr)
    centre = physics.room.vertices_m.mean(axis=0)
    candidates = []
    gains = []
    tables = []
    for z, kappa, _, _ in z_cands:
        theta, gain, table = physics._vertical_fit(fr, features, centre, z, kappa)
        yield
        thetas = _wall_candidates(physics, fr, theta, table)
        candidates.append(thetas)
        gains.append(gain)
        if len(thetas):
            # The height, speed and heading the candidates were scanned at.
            tables.append((thetas[0], table))
        yield
    fr.gain = gains[0]
    thetas = np.vstack(candidates)
    thetas = thetas[distinct(thetas, np.array([0.01, 0.01, 0.01, 0.002, 0.01]))]
    valid = physics._valid_batch(fr, thetas)
    scores = physics._score(fr, thetas, valid)
    order = np.argsort(scores)[::-1]
    # Polish the best few in (x, y) and the heading, then finish the winner in all.
    polish_free = np.array([0, 1, YAW]) if fr.yaw_free else np.array([0, 1])
    top = order[:physics.n_polish]
    fit = physics._newton(fr, thetas[top], valid[top], polish_free, physics.polish_iterations,
                          need_info=False)
    floor = scores[top[-1]] if len(top) == physics.n_polish else -np.inf
    polished, polished_scores = physics._part_look(fr, fit, tables, polish_free, floor)
    polished, polished_scores = physics._second_look(fr, polished, polished_scores,
                                                     polish_free)
    ranked = np.argsort(polished_scores)[::-1]
    rest = order[physics.n_polish:]
    return Proposal(localizer=physics, frame=fr, yaw_given_rad=float(yaw_rad),
                    thetas=np.vstack([polished[ranked], thetas[rest]]),
                    scores=np.concatenate([polished_scores[ranked], scores[rest]]),
                    n_polished=len(ranked), working=working)


def run_stages(stages: Stages) -> Proposal:
    """The proposal of ``stages`` (:func:`proposal_stages`), its stages left run to the end."""
    while True:
        try:
            next(stages)
        except StopIteration as done:
            return done.value


def _wall_candidates(physics, fr: Frame, theta: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Candidates ``(n, 5)`` at the height and speed ratio of ``theta (5,)`` (the floor and
    ceiling fitted, :meth:`PhysicsLocalizer._vertical_fit`), scanned on ``table`` (the baseband
    with their echoes removed)."""
    z, kappa = float(theta[2]), float(theta[3])
    if fr.yaw_free and HEADING_STEP:
        reach_m = physics.room.max_extent_m * (1 + physics.speed_tolerance) + 0.05
        theta[YAW] = scan_heading(fr, physics._wall_directions, reach_m, table)
    if physics._shoebox:
        xy = physics._shoebox_candidates(fr, theta, table)
    else:
        xy = physics._general_candidates(fr, z, kappa, table, float(theta[YAW]))
    return np.column_stack([xy[:, :2], np.full(len(xy), z), np.full(len(xy), kappa),
                            xy[:, 2]])
