"""The fix the wider look did not choose, kept beside the one it chose where the evidence
cannot tell the two apart (issue 19), so that a tracker weighs both against its prediction
instead of jumping with the choice (:class:`~echoloc_ros.core.tracker_measurement.Measurement`).

On tracked laps the wider look swapped fixes at evidence gaps of 0-18 log units (dev lap
``dev_7_001``, held-out ``heldout_26_024``): right fixes became rivals 12-250 cm away along a
weakly held axis and back, and the track drifted with them. The choice stands (per frame the
swaps are right more often than not); the fix only carries the other as a rival."""

from dataclasses import replace

import numpy as np

from echoloc_ros.core.physics.config import AMBIGUOUS_GAP, CONFIDENT_GAP
from echoloc_ros.core.physics.results import Estimate

# Two fixes closer than this are the same fix (where finish tells rivals apart), m.
SAME_FIX_M = 0.02


def unchosen_weight(gap: float) -> float:
    """The share of the two fixes' probability the unchosen one holds at an evidence ``gap``
    (the chosen fix's log evidence minus the other's): the weight the covariance's mixture
    gives a rival, ``1 / (1 + exp(gap / AMBIGUOUS_GAP))``."""
    return float(1.0 / (1.0 + np.exp(np.clip(gap / AMBIGUOUS_GAP, -50.0, 50.0))))


def with_unchosen(chosen: Estimate, unchosen: Estimate) -> Estimate:
    """``chosen`` carrying ``unchosen`` as its rival (``rivals_m``, ``rival_probabilities``:
    :func:`unchosen_weight`, ``rival_local_covariances_m2``), where the two are distinct
    fixes (more than :data:`SAME_FIX_M` apart) whose evidence is within ``CONFIDENT_GAP``
    and both carry a local covariance; ``chosen`` unchanged otherwise. The position, the
    covariance and every other field are ``chosen``'s: a lone fix is published as before."""
    if (chosen.local_covariance_m2 is None or unchosen.local_covariance_m2 is None
            or np.linalg.norm(chosen.position_m - unchosen.position_m) <= SAME_FIX_M):
        return chosen
    gap = float(chosen.score - unchosen.score)
    if not gap < CONFIDENT_GAP:
        return chosen
    return replace(chosen, rivals_m=np.asarray(unchosen.position_m, dtype=float)[None],
                   rival_probabilities=np.array([unchosen_weight(gap)]),
                   rival_local_covariances_m2=np.asarray(unchosen.local_covariance_m2,
                                                         dtype=float)[None])
