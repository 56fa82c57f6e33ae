"""Pairing by stamp: the nearest value within a tolerance, and exact pairs of two streams."""
import pytest

from echoloc_ros.core.stamps import StampBuffer, StampPairs, paired


def test_buffer_drop_outside_keeps_the_bounds():
    buf = StampBuffer(horizon_s=10.0)
    for t_s in (1.0, 2.0, 3.0, 4.0):
        buf.add(t_s, t_s)
    assert buf.drop_outside(2.0, 3.0) == 2
    assert buf.times == [2.0, 3.0] and buf.values == [2.0, 3.0]
    assert buf.at(2.4, 1.0) == 2.0 and buf.at(2.6, 1.0) == 3.0


def test_pairs_come_out_when_both_halves_are_in_whichever_first():
    pairs = StampPairs()
    assert pairs.add(0, (1, 0), 'pose 1') is None
    assert pairs.add(1, (2, 0), 'truth 2') is None
    assert pairs.add(1, (1, 0), 'truth 1') == ('pose 1', 'truth 1')
    assert pairs.add(0, (2, 0), 'pose 2') == ('pose 2', 'truth 2')
    assert pairs.waiting(0) == 0 and pairs.waiting(1) == 0


def test_a_half_without_partner_is_forgotten_beyond_capacity():
    pairs = StampPairs(capacity=2)
    for sec in range(3):
        pairs.add(0, (sec, 0), f'pose {sec}')
    assert pairs.waiting(0) == 2
    # The oldest pose went: its truth now waits instead of pairing.
    assert pairs.add(1, (0, 0), 'truth 0') is None
    assert pairs.add(1, (2, 0), 'truth 2') == ('pose 2', 'truth 2')


def test_pairs_refuse_a_capacity_below_one():
    with pytest.raises(ValueError, match='capacity must be at least 1, got 0'):
        StampPairs(capacity=0)


def test_paired_dicts_in_stamp_order():
    first = {(2, 0): 'b', (1, 5): 'a', (3, 0): 'only first'}
    second = {(1, 5): 'A', (2, 0): 'B', (0, 0): 'only second'}
    assert paired(first, second) == [((1, 5), 'a', 'A'), ((2, 0), 'b', 'B')]
