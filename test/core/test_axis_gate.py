"""The axis scans where they pay (issue 20, with issue 19's honesty kept): a fix is scanned
(:meth:`AxisRivals._scans_pay`) where it is doubtful, a proposed rival is near, or the echoes
along an axis give it little; a fix the scans would fix is still scanned, a clear one is not,
and where the gate leaves a fix unscanned the full scans would not have changed it."""
import numpy as np

from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.sim.room_generator import generate_room
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.offline.room_evaluation import frames_seed

HEADING_STD_RAD = float(np.deg2rad(1.0))


class CountedScans(PhysicsLocalizer):
    """A physics localizer that counts the axis scans it runs (:meth:`_scanned_peaks`)."""

    scans = 0

    def _scanned_peaks(self, fr, theta):
        self.scans += 1
        return super()._scanned_peaks(fr, theta)


def _localizers(room, array, chirp, processor):
    """The gated localizer and one that scans every fix, both counted."""
    gated = CountedScans(room, array, chirp, processor=processor, axis_rivals=True)
    full = CountedScans(room, array, chirp, processor=processor, axis_rivals=True)
    full.axis_gate = False
    return gated, full


def _dev_frames(index: int, snr_db: float, count: int, array, processor):
    """The first ``count`` frames of dev room ``index`` as ``echoloc evaluate --rooms
    random:30 --split dev --seed 7 --snr-db ... --heading-noise-deg 1`` draws them:
    ``(features, heading given)``."""
    room = generate_room('dev', index, 7)
    simulator = EchoSimulator(room, array, processor.chirp, 250e3, max_order=2)
    room_seed = frames_seed(7, index)
    drawn = random_frames(simulator, Scenario(snr_db=snr_db, seed=7), count, room_seed)
    return room, [(processor.process(frame), yaw + HEADING_STD_RAD * draw)
                  for _, frame, _, yaw, draw, _ in drawn]


def test_a_fix_the_scans_move_is_still_scanned(array, chirp, processor):
    """Frame 2 of dev room 2 at 20 dB: without the scans its fix sits 3.38 m off along y
    with a sub-millimetre sigma (``test_axis_rivals``); its proposed rivals are far behind,
    but the echoes that move along y give it little, so it is scanned, and the gated fix is
    the fully scanned one."""
    room, frames = _dev_frames(2, 20.0, 3, array, processor)
    gated, full = _localizers(room, array, chirp, processor)
    features, heading = frames[2]
    estimate = gated.localize(features, heading, yaw_std_rad=HEADING_STD_RAD)
    reference = full.localize(features, heading, yaw_std_rad=HEADING_STD_RAD)
    assert gated.scans >= 1
    assert np.allclose(estimate.position_m, reference.position_m, atol=1e-9)
    assert np.allclose(estimate.covariance_m2, reference.covariance_m2, rtol=1e-9, atol=0)


def test_clear_fixes_are_not_scanned_and_lose_nothing(room, array, chirp, processor):
    """The default room at 20 dB along the start of the bench's path, where its fixes are
    sharp: most are not scanned, and every fix (scanned or not) is the fully scanned one's,
    its sigma within 1 %."""
    sim = SimulatedArray(room, array, chirp, 250e3, Scenario(snr_db=20.0, seed=0), seed=0)
    gated, full = _localizers(room, array, chirp, processor)
    n = 12
    for i in range(n):
        frame = sim.acquire(0.04 * i)
        features = processor.process(frame.samples)
        estimate = gated.localize(features, frame.measured_yaw_rad)
        reference = full.localize(features, frame.measured_yaw_rad)
        assert np.allclose(estimate.position_m, reference.position_m, atol=1e-9)
        assert np.allclose(np.sqrt(np.diag(estimate.covariance_m2)),
                           np.sqrt(np.diag(reference.covariance_m2)), rtol=0.01)
    assert full.scans >= n
    assert gated.scans <= n // 3


def test_a_repeated_scan_gives_the_peaks_a_fresh_scan_gives(array, chirp, processor):
    """The wider look's fix is often the first fix finished again: its scans (the same frame
    and parameters) reuse the first's peaks, which are those of a fresh scan; another pose is
    scanned afresh."""
    _, frames = _dev_frames(25, 10.0, 1, array, processor)
    room25 = generate_room('dev', 25, 7)
    features, heading = frames[0]
    first = CountedScans(room25, array, chirp, processor=processor)
    proposal = first.propose(features, heading, yaw_std_rad=HEADING_STD_RAD)
    theta = first._fix_theta(proposal, first.finish(proposal))
    fr = proposal.frame
    first.scans = 0
    scanned = first._evidence_peaks(fr, theta)
    again = first._evidence_peaks(fr, theta.copy())
    fresh = CountedScans(room25, array, chirp, processor=processor)._scanned_peaks(fr, theta)
    assert len(scanned) == len(again) == len(fresh) > 0
    for (gap, top), (gap_again, top_again), (gap_fresh, top_fresh) in zip(scanned, again, fresh):
        assert gap == gap_again == gap_fresh
        assert np.array_equal(top, top_again) and np.array_equal(top, top_fresh)
    moved = theta.copy()
    moved[0] += 0.01
    first._evidence_peaks(fr, moved)
    assert first.scans == 2
    assert first._last_scan[1][0] == moved[0]
