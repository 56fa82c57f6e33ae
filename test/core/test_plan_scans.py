"""A fix in the wrong part of a plan that is not a shoebox, refined from the evidence scanned
over the plan's other strips (issue 19, :meth:`AxisRivals._plan_peaks`); where the strips'
lines lie."""
import numpy as np
import pytest

from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.offline.evaluation import CHI2_999_3DOF
from dev_frames_testing import dev_frame, localized


def _localized(loc: PhysicsLocalizer, frame, plan_scans: bool, monkeypatch):
    return localized(loc, frame, loc, 'plan_scans', plan_scans, monkeypatch)


@pytest.mark.long
def test_a_fix_in_the_wrong_part_of_the_plan_is_refined_from_a_strip_scan(
        array, chirp, processor, monkeypatch):
    """Frame 3 of dev room 9 (seed 9, 10 dB, a chamfered plan): without the plan scans its fix
    sat 3.5 m off in x and 3.2 m in y (covered only by a covariance metres wide), the truth
    refined 473 log units above it and no candidate within 0.5 m of it; the scan along an
    axis through another strip of the plan and the scan across through its peak reach the
    truth."""
    loc, frame = dev_frame(9, 9, 3, array, chirp, processor)
    before, old_error, _ = _localized(loc, frame, False, monkeypatch)
    assert np.all(np.abs(old_error[:2]) > 1.0)
    estimate, error, d2 = _localized(loc, frame, True, monkeypatch)
    assert np.linalg.norm(error) < 0.01
    assert d2 < CHI2_999_3DOF
    # The evidence chose it: the refined truth explains the echoes better.
    assert estimate.score > before.score


def test_a_shoebox_has_no_other_strip(room, array, chirp, processor):
    """The default room is a shoebox: one strip across each axis, which holds every fix."""
    loc = PhysicsLocalizer(room, array, chirp, processor=processor)
    for axis in range(2):
        assert loc._plan_lines(axis, 1.0) == []


def test_the_lines_cross_every_strip_but_the_fix_own(array, chirp, processor, monkeypatch):
    """In the L room each axis has two strips across it: the line through the other strip's
    middle is scanned, the fix's own strip is not (its scan through the fix crosses it);
    with bands of at most 1 m, every band but the fix's."""
    from echoloc_ros.core.physics import axis_rivals
    room = load_room('l_shaped_room')
    loc = PhysicsLocalizer(room, array, chirp, processor=processor)
    for axis in range(2):
        strips = loc._plan_strips[axis]
        assert len(strips) == 2
        inside = 0.5 * (strips[0][0] + strips[0][1])
        assert loc._plan_lines(axis, inside) == [pytest.approx(np.mean(strips[1]))]
        monkeypatch.setattr(axis_rivals, 'PLAN_LINE_M', 1.0)
        lines = loc._plan_lines(axis, inside)
        widths = np.diff(strips, axis=1).ravel()
        assert len(lines) == int(sum(np.ceil(widths))) - 1
        assert all(abs(line - inside) > 0.25 for line in lines)
        monkeypatch.undo()
