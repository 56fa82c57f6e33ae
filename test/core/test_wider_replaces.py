"""When the wider look's fix replaces the first (:meth:`WiderLook._choice`, issue 19): never
when it leaves the echoes far less explained; with the tie margin (off in localize), not at
equal evidence when the first explains its echoes, but at the first's own place, or over a
first fix that leaves echoes unexplained, it does."""
import numpy as np

import pytest

from echoloc_ros.core.physics.config import (AMBIGUOUS_GAP, CONFIDENT_GAP, UNEXPLAINED_RATIO,
                                             WIDER_EVIDENCE_MARGIN, WIDER_TIE_MARGIN)
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.physics.wider_look import WiderLook
from echoloc_ros.core.tracker import HYPOTHESIS_COVER_WEIGHT


def _fix(position_m, score: float, residual_ratio: float = 1.5) -> Estimate:
    return Estimate(position_m=np.asarray(position_m, dtype=float),
                    covariance_m2=1e-6 * np.eye(3), speed_of_sound_mps=343.0, confidence=0.0,
                    score=score, n_echoes=8, residual_ratio=residual_ratio)


FIRST = _fix([2.0, 1.5, 0.3], score=1000.0)


def test_the_margin_is_the_gap_at_which_a_rival_weighs_an_eighth():
    """Below the margin the rival's weight in the covariance's mixture is at least the
    tracker's HYPOTHESIS_COVER_WEIGHT; a confident fix needs a larger gap."""
    weight = 1.0 / (1.0 + np.exp(WIDER_TIE_MARGIN / AMBIGUOUS_GAP))
    assert weight == pytest.approx(HYPOTHESIS_COVER_WEIGHT)
    assert WIDER_TIE_MARGIN < CONFIDENT_GAP


def test_localize_applies_no_margin_by_default():
    """Per frame the margin lost right fixes (docs/results.md, r30-44): by default a tie goes
    to the wider look's fix, as before."""
    assert WIDER_EVIDENCE_MARGIN == -np.inf
    other = _fix([2.0, 1.8, 0.3], score=FIRST.score + 1.0)
    assert WiderLook._choice(FIRST, other) == 'other'


def test_a_rival_at_equal_evidence_does_not_replace_the_first_fix():
    """Dev lap dev_7_001's swaps: a rival 12-250 cm off, evidence 0-9 higher, a like
    residual: the first fix stays (finished on the wider look's proposal: 'kept')."""
    for gain in (0.0, 9.0, WIDER_TIE_MARGIN - 0.1):
        other = _fix([2.0, 1.8, 0.3], score=FIRST.score + gain, residual_ratio=2.0)
        assert not WiderLook._replaces(FIRST, other, WIDER_TIE_MARGIN)
        assert WiderLook._choice(FIRST, other, WIDER_TIE_MARGIN) == 'kept'


def test_a_rival_the_evidence_prefers_by_the_margin_replaces_the_first_fix():
    other = _fix([2.0, 1.8, 0.3], score=FIRST.score + WIDER_TIE_MARGIN + 1.0)
    assert WiderLook._replaces(FIRST, other, WIDER_TIE_MARGIN)
    # ... unless it leaves the echoes far less explained (a ghost 30 cm off at 13x the ratio).
    worse = _fix([2.3, 1.5, 0.3], score=FIRST.score + 3000.0, residual_ratio=20.0)
    assert WiderLook._choice(FIRST, worse, WIDER_TIE_MARGIN) == 'first'


def test_the_wider_looks_fix_at_the_first_place_replaces_it():
    """Within 2 cm it is the same fix refined again, its covariance holding the wider look's
    rivals: taken whatever its evidence."""
    same = _fix([2.0, 1.51, 0.3], score=FIRST.score - 2.0)
    assert WiderLook._replaces(FIRST, same, WIDER_TIE_MARGIN)


def test_a_first_fix_that_leaves_echoes_unexplained_is_replaced_at_any_gain():
    """Per frame (dev split, 20 dB) such swaps at gains under the margin turned fixes metres
    off into right ones: the margin holds only for a first fix that explains its echoes."""
    first = _fix([2.0, 1.5, 0.3], score=1000.0, residual_ratio=2.0 * UNEXPLAINED_RATIO)
    other = _fix([2.0, 4.5, 0.3], score=1001.0, residual_ratio=UNEXPLAINED_RATIO)
    assert WiderLook._replaces(first, other, WIDER_TIE_MARGIN)
