"""The plan's own symmetries (issue 19, the 2-D wing and mirror offsets): which mirrors and
translations lay a plan's walls on its walls (what ``scripts/ambiguity-study.py --sym-share``
maps each fix by)."""
import numpy as np
import pytest

from echoloc_ros.core.physics.plan_symmetry import plan_symmetries

# An L plan: a 6 x 3 m bar with a 3 x 2 m wing on its west half.
L_PLAN_M = np.array([[0, 0], [6, 0], [6, 3], [3, 3], [3, 5], [0, 5]], dtype=float)


def _maps(found: list) -> set:
    return {(tuple(signs), tuple(shift)) for _, signs, shift in found}


def test_a_shoebox_has_its_two_mirrors_and_their_product_and_nothing_else():
    found = plan_symmetries(np.array([[0, 0], [5, 0], [5, 4], [0, 4]], dtype=float), 0.3)
    assert _maps(found) == {((-1.0, 1.0), (5.0, 0.0)), ((1.0, -1.0), (0.0, 4.0)),
                            ((-1.0, -1.0), (5.0, 4.0))}
    assert all(share == pytest.approx(1.0) for share, _, _ in found)


def test_an_l_plan_s_mirror_keeps_most_of_its_walls_but_not_all():
    found = plan_symmetries(L_PLAN_M, 0.5)
    share, signs, shift = found[0]
    # Across x = 3: the bar's south, east and west walls and the wing's inner wall.
    assert (tuple(signs), tuple(shift)) == ((-1.0, 1.0), (6.0, 0.0))
    assert 0.5 < share < 1.0
    assert all(s < 1.0 for s, _, _ in found)
    # A higher share asked for keeps fewer maps; the identity is never one.
    assert len(plan_symmetries(L_PLAN_M, 0.6)) < len(found)
    assert ((1.0, 1.0), (0.0, 0.0)) not in _maps(plan_symmetries(L_PLAN_M, 0.01))


@pytest.mark.parametrize('share', [0.0, -0.1, 1.5, float('nan')])
def test_a_share_outside_zero_to_one_is_refused(share):
    with pytest.raises(ValueError, match='min_share'):
        plan_symmetries(L_PLAN_M, share)
