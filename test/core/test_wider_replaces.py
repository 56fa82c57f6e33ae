"""When the wider look's fix replaces the first (:meth:`WiderLook._replaces`, issue 19): not
at equal evidence, nor when it leaves the echoes far less explained; at the first's own place,
it does (the same fix, with the wider look's rivals in its covariance)."""
import numpy as np

from echoloc_ros.core.physics.config import CONFIDENT_GAP, WIDER_EVIDENCE_MARGIN
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.physics.wider_look import WiderLook


def _fix(position_m, score: float, residual_ratio: float = 1.5) -> Estimate:
    return Estimate(position_m=np.asarray(position_m, dtype=float),
                    covariance_m2=1e-6 * np.eye(3), speed_of_sound_mps=343.0, confidence=0.0,
                    score=score, n_echoes=8, residual_ratio=residual_ratio)


FIRST = _fix([2.0, 1.5, 0.3], score=1000.0)


def test_the_margin_is_the_gap_a_fix_needs_to_be_confident():
    assert WIDER_EVIDENCE_MARGIN == CONFIDENT_GAP


def test_a_rival_at_equal_evidence_does_not_replace_the_first_fix():
    """held-out lap room 24's swaps: a rival 12-42 cm off along one axis, evidence 0-11
    higher, a like residual: the first fix stays."""
    for gain in (0.0, 11.0, WIDER_EVIDENCE_MARGIN - 1.0):
        other = _fix([2.0, 1.8, 0.3], score=FIRST.score + gain, residual_ratio=2.0)
        assert not WiderLook._replaces(FIRST, other)


def test_a_rival_the_evidence_prefers_by_the_margin_replaces_the_first_fix():
    other = _fix([2.0, 1.8, 0.3], score=FIRST.score + WIDER_EVIDENCE_MARGIN + 1.0)
    assert WiderLook._replaces(FIRST, other)
    # ... unless it leaves the echoes far less explained (a ghost 30 cm off at 13x the ratio).
    worse = _fix([2.3, 1.5, 0.3], score=FIRST.score + 3000.0, residual_ratio=20.0)
    assert not WiderLook._replaces(FIRST, worse)


def test_the_wider_looks_fix_at_the_first_place_replaces_it():
    """Within 2 cm it is the same fix refined again, its covariance holding the wider look's
    rivals: taken whatever its evidence."""
    same = _fix([2.0, 1.51, 0.3], score=FIRST.score - 2.0)
    assert WiderLook._replaces(FIRST, same)
