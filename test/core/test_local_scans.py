"""A track's local fixes scanned in windows about the last scans' peaks (issue 20, with issue
19's honesty kept, :class:`LocalScans`): the whole scan is the full search's to the bit, and a
windowed scan still finds the peak ahead of a fix on the wrong wall, so that the track search
refuses it."""
import numpy as np
import pytest

from echoloc_ros.core.physics import wider_look
from echoloc_ros.core.physics.config import AXIS_STEP_M
from echoloc_ros.core.physics.local_scans import LocalScans
from echoloc_ros.core.physics.track_fix import local_fix
from dev_frames_testing import HEADING_STD_RAD, dev_frame


@pytest.fixture(scope='module')
def wrong_track(array, chirp, processor):
    """Frame 8 of dev room 18 (seed 7, 10 dB) and where a track would hold the array if it
    followed the fix found there without refining its peaks ahead: 30 cm off along y with a
    sub-millimetre sigma, the truth's peak along y 65 log units above it
    (``test_height_peaks``): ``(localizer, features, heading given, truth, fix)``."""
    loc, (features, position, heading) = dev_frame(18, 7, 8, array, chirp, processor)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loc, 'cross_scans', False)
        patch.setattr(wider_look, 'AHEAD_PEAK_GAP', np.inf)
        estimate = loc.localize(features, heading, yaw_std_rad=HEADING_STD_RAD)
    assert abs(estimate.position_m[1] - position[1]) > 0.25
    return loc, features, heading, position, estimate


class RecordedScans(LocalScans):
    """:class:`LocalScans` that keeps what each scan found: ``(whole, frame, theta, peaks)``."""

    def __init__(self) -> None:
        super().__init__()
        self.found = []

    def _scanned(self, physics, fr, theta, whole):
        peaks = super()._scanned(physics, fr, theta, whole)
        self.found.append((whole, fr, theta.copy(), peaks))
        return peaks


def _local(wrong_track, scans, shift_m: float):
    loc, features, heading, _, estimate = wrong_track
    return local_fix(loc, features, heading, estimate.position_m + [0.0, shift_m, 0.0],
                     estimate.speed_of_sound_mps, None, HEADING_STD_RAD, scans=scans)


def test_a_windowed_scan_still_finds_the_peak_ahead_of_a_wrong_track(wrong_track):
    """The track's first local fix there is scanned whole and refused (a peak ahead); the next
    one, from a prediction 1 cm on, is scanned in windows about the kept peaks alone and is
    refused too: its windows hold the truth's peak along y."""
    scans = RecordedScans()
    first = _local(wrong_track, scans, 0.0)
    assert first.peaks_ahead and not first.doubtful
    second = _local(wrong_track, scans, 0.01)
    assert second.peaks_ahead and not second.doubtful
    assert [whole for whole, _, _, _ in scans.found] == [True, False]
    assert (scans.counts.whole, scans.counts.windowed) == (1, 1)
    _, _, theta, peaks = scans.found[1]
    # The emitter where the array's origin is the truth (the fix's own offset between them).
    truth = wrong_track[3][:2] + theta[:2] - second.estimate.position_m[:2]
    ahead = [top for gap, top in peaks if gap < 0]
    assert any(abs(top[1] - truth[1]) < 0.02 and top[0] == theta[0] for top in ahead)


def test_the_whole_scan_is_the_full_search_scan(wrong_track):
    """A whole scan gives :meth:`AxisRivals._scanned_peaks`' peaks to the bit."""
    loc = wrong_track[0]
    scans = RecordedScans()
    _local(wrong_track, scans, 0.0)
    (whole, fr, theta, peaks), = scans.found
    assert whole and peaks
    for (gap, top), (full_gap, full_top) in zip(peaks, loc._scanned_peaks(fr, theta),
                                                strict=True):
        assert gap == full_gap
        np.testing.assert_array_equal(top, full_top)


def test_a_window_whose_evidence_rises_to_its_edge_is_not_trusted():
    """A window's best pose on its edge means its peak moved out of it (or a peak not kept
    rose beside it): the windowed scan gives up (``None``) and the whole scan runs; the ends
    of a whole scan's axis are no such sign. (The fix's own peak is no rival: nothing is
    scored again.)"""
    coords = 1.0 + np.arange(7) * AXIS_STEP_M
    theta = np.array([coords[3], 2.0, 0.5, 1.0, 0.0])
    thetas = np.repeat(theta[None], coords.size, axis=0)
    thetas[:, 0] = coords
    peaked = -np.abs(np.arange(7) - 3.0)
    rising = peaked + 2.0 * np.arange(7)
    for whole, score, gives_up in ((False, rising, True), (False, peaked, False),
                                   (True, rising, False)):
        found = LocalScans._axis_peaks(None, None, theta, 0, (coords, thetas, score), 0.0,
                                       whole)
        assert (found is None) == gives_up
        if not gives_up:
            assert found[0] == [] and found[1].size == 0
