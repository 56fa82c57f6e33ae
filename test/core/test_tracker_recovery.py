"""A base carried off (kidnapped) or pushed sideways (wheels slipping) is re-acquired: the track
does not hold the old place, and while it is wrong its covariance covers the fixes it refuses
(issue 19, r37-05). Scripted: a base driving straight at 0.3 m/s, 1 mm fixes, its heading
0.2 degrees noisy, 25 frames a second."""

import numpy as np
import pytest
from scipy import stats
from tracker_testing import drawn_fix

from echoloc_ros.core.tracker import PoseTracker

CHI2_999_3D = float(stats.chi2.ppf(0.999, 3))
FRAME_S = 0.04
EVENT = 125


def _drive(event: str, seed: int) -> tuple[int, int]:
    """Ten seconds of a base driving straight; at frame ``EVENT`` it is carried 1.8 m and
    turned 1 rad (``'kidnap'``), or pushed sideways at 0.3 m/s for a second, its heading kept
    (``'push'``). Returns the last frame whose published pose is more than 1 cm off (or not
    published) after the event less ``EVENT``, and how many published poses of the drive have
    the truth outside their 99.9 % ellipsoid."""
    rng = np.random.default_rng(seed)
    tracker = PoseTracker()
    position, heading = np.array([1.0, 1.0, 0.3]), 0.0
    last_off, outside = EVENT, 0
    for k in range(250):
        if event == 'kidnap' and k == EVENT:
            position, heading = position + [1.5, 1.0, 0.0], heading + 1.0
        velocity = 0.3 * np.array([np.cos(heading), np.sin(heading), 0.0])
        if event == 'push' and EVENT <= k < EVENT + 25:
            velocity += 0.3 * np.array([-np.sin(heading), np.cos(heading), 0.0])
        position = position + velocity * FRAME_S
        fix = drawn_fix(position, heading, rng)
        published, covariance, _ = tracker.update_estimate(k * FRAME_S, fix)
        error = published - position
        if tracker.initialised:
            outside += error @ np.linalg.solve(covariance, error) > CHI2_999_3D
        if k >= EVENT and (not tracker.initialised or np.linalg.norm(error) > 0.01):
            last_off = k
    return last_off - EVENT, outside


@pytest.mark.parametrize('seed', [0, 1])
def test_a_kidnapped_base_is_reacquired_within_a_second(seed):
    # The old track refuses the fixes 1.8 m away and coasts, covering them; a track started
    # on them is confirmed and outscores it 17 frames (0.7 s) on.
    frames, outside = _drive('kidnap', seed)
    assert frames <= 25
    assert outside == 0


@pytest.mark.parametrize('seed', [0, 1])
def test_a_base_pushed_sideways_is_reacquired_after_the_push(seed):
    # Held to the heading, every track fights the push (the fixes leave their gates within a
    # few frames) and the published one coasts on, up to 30 cm behind, covering the fixes it
    # refuses; the track that starts once the push ends is published 33-35 frames after it
    # began (the push lasts 25).
    frames, outside = _drive('push', seed)
    assert frames <= 40
    assert outside == 0
