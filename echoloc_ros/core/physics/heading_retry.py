"""A doubtful fix's candidates searched again from headings off the one given (issue 19).

The wall scans run at the heading given (or the heading step's): a wall's coherent score
loses about 40 % at 1 deg of heading error and 90 % at 2 deg, so where the heading given is
1.5 of its standard deviations off or more, the right place's peaks can fall below wrong ones
and no candidate lie near the truth, however well the echoes would explain it there (the
candidates' heading grid spans 3 standard deviations, but only around the peaks the scans
found). Where the first fix leaves the frame doubtful (:meth:`WiderLook._wider_look`), the
scans are started again :data:`HEADING_RETRY_SIGMAS` standard deviations either side of the
heading given and their best polished candidates are refined with the wider look's, so that
the evidence (with the heading's prior) chooses. On dev it also righted fixes metres off whose
heading was given within a degree (the starts' scans peak at other places; why the first scans
missed those was not traced).
"""

from dataclasses import replace

import numpy as np

from echoloc_ros.core.physics import config
from echoloc_ros.core.physics.candidates import distinct
from echoloc_ros.core.physics.config import YAW
from echoloc_ros.core.physics.results import Estimate, Proposal


def retry_starts(loc, proposal: Proposal, estimate: Estimate) -> list[np.ndarray]:
    """The candidates ``(5,)`` each of the scans started :data:`HEADING_RETRY_SIGMAS`
    standard deviations of the given heading either side of it (none where
    :data:`HEADING_RETRY` is off or the heading is exact): per start, its
    :data:`N_HEADING_RETRY` best after the search's polish, those 5 cm or more from the fix.

    :param loc: the :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer` of
        ``proposal``.
    :param estimate: the first fix of ``proposal`` (:meth:`PhysicsLocalizer.finish`).
    """
    fr = proposal.frame
    if not (config.HEADING_RETRY and fr.yaw_free and fr.yaw_grid.size > 1):
        return []
    fix = loc._fix_theta(proposal, estimate)
    # The floor and ceiling fix the height and the speed whatever the heading: the fix's,
    # fitted once more on them alone for the baseband with their echoes removed.
    vertical, _, table = loc._vertical_fit(fr, fr.features, fix, float(fix[2]), float(fix[3]))
    z, kappa = float(vertical[2]), float(vertical[3])
    offset = config.HEADING_RETRY_SIGMAS / float(np.sqrt(fr.yaw_info))
    free = np.array([0, 1, YAW])
    starts = []
    for psi in (offset, -offset):
        # The candidates' heading grid around the start (the prior stays on the given one).
        shifted = replace(fr, yaw_grid=psi + fr.yaw_grid)
        start = np.array([fix[0], fix[1], z, kappa, psi])
        if loc._shoebox:
            xy = loc._shoebox_candidates(shifted, start, table)
        else:
            xy = loc._general_candidates(shifted, z, kappa, table, psi)
        thetas = np.column_stack([xy[:, :2], np.full(len(xy), z), np.full(len(xy), kappa),
                                  xy[:, 2]])
        thetas = thetas[distinct(thetas, np.array([0.01, 0.01, 0.01, 0.002, 0.01]))]
        valid = loc._valid_batch(fr, thetas)
        top = np.argsort(loc._score(fr, thetas, valid))[::-1][:loc.n_polish]
        fit = loc._newton(fr, thetas[top], valid[top], free, loc.polish_iterations,
                          need_info=False)
        apart = np.linalg.norm(fit.theta[:, :2] - fix[:2], axis=1) >= 0.05
        best = np.argsort(np.where(apart, fit.evidence, -np.inf))[::-1][:config.N_HEADING_RETRY]
        starts += [fit.theta[i] for i in best if apart[i]]
    return starts
