"""A fix off along x and y at once, refined from the evidence scanned across through its axis
peaks (issue 19, :meth:`AxisRivals._cross_peaks`); a right fix in the default room keeps its
place and sigma; the scans across start only from the fix's own axis peaks."""
import numpy as np
import pytest

from echoloc_ros.core.physics import wider_look
from echoloc_ros.core.physics.config import N_CROSS_SCANS
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.offline.evaluation import CHI2_999_3DOF
from dev_frames_testing import assert_right_fix_kept, dev_frame, localized


def _localized(loc: PhysicsLocalizer, frame, cross_scans: bool, monkeypatch):
    return localized(loc, frame, loc, 'cross_scans', cross_scans, monkeypatch)


@pytest.mark.long
def test_a_fix_off_in_both_axes_is_refined_from_a_scan_across(array, chirp, processor,
                                                              monkeypatch):
    """Frame 0 of dev room 17 (seed 7, 10 dB, a plan that is not a shoebox): without the
    scans across, its fix sat 33 cm off in x and 55 cm in y, published with a sigma of a
    few millimetres (d2 about 1e4), among no candidate; the scan along y through it peaks at
    the true y, and the scan along x through that peak at the truth, above the fix. The
    wider look's checks for non-rectangular plans (r36-03) repair most of it too, and r38-03's
    heading rule and lobe restarts doubt or move the fix without them: off here, so that the
    scans across are what is tested."""
    monkeypatch.setattr(wider_look, 'NON_RECTANGULAR_POLISHED_RIVALS', 0)
    monkeypatch.setattr(wider_look, 'NON_RECTANGULAR_HEADING_MOVED_SIGMAS', None)
    monkeypatch.setattr(wider_look, 'NON_RECTANGULAR_HEADING_RULED_OUT_SIGMAS', None)
    monkeypatch.setattr(wider_look, 'NON_RECTANGULAR_LOBE_STEPS', False)
    loc, frame = dev_frame(17, 7, 0, array, chirp, processor)
    before, old_error, old_d2 = _localized(loc, frame, False, monkeypatch)
    assert np.all(np.abs(old_error[:2]) > 0.2)
    assert old_d2 > CHI2_999_3DOF
    estimate, error, d2 = _localized(loc, frame, True, monkeypatch)
    assert np.linalg.norm(error) < 0.01
    assert d2 < CHI2_999_3DOF
    # The evidence chose it: the refined truth explains the echoes better.
    assert estimate.score > before.score


def test_a_right_fix_in_the_default_room_keeps_its_place_and_sigma(room, array, chirp,
                                                                   simulator, processor,
                                                                   monkeypatch):
    assert_right_fix_kept(room, array, chirp, simulator, processor,
                          lambda loc, frame, on: _localized(loc, frame, on, monkeypatch))


def test_scans_across_start_from_the_best_axis_peaks_only():
    """Of the peaks through a fix, the best :data:`N_CROSS_SCANS` along each horizontal axis
    start a scan across (best first); a height peak, or a pose moved along both, starts none."""
    theta = np.array([1.0, 2.0, 0.5, 1.0, 0.0])

    def moved(axis, by):
        top = theta.copy()
        top[axis] += by
        return top

    both = theta.copy()
    both[:2] += 0.3
    peaks = [(40.0, moved(0, 0.5)), (-5.0, moved(0, -0.7)), (90.0, moved(0, 1.1)),
             (12.0, moved(1, 0.4)), (-50.0, moved(2, 0.2)), (-60.0, both)]
    starts = PhysicsLocalizer._cross_starts(theta, peaks)
    expected = sorted([(0, gap) for gap in (-5.0, 40.0, 90.0)[:N_CROSS_SCANS]] + [(1, 12.0)],
                      key=lambda start: start[1])
    assert [(axis, gap) for axis, gap, _ in starts] == expected
    np.testing.assert_array_equal(starts[0][2], moved(0, -0.7))
