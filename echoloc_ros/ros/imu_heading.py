"""Which IMU headings (sensor_msgs/Imu orientations) the localizer may use."""
import math

from sensor_msgs.msg import Imu

from echoloc_ros.ros import conversions
from echoloc_ros.ros.cdr import ImuOrientationView

# A heading stamped further than this from the newest frame is refused: one message stamped far
# ahead would otherwise push every real heading out of the buffer (HeadingBuffer's horizon is
# twice this) and stop the poses until the clock caught up with it.
HEADING_STAMP_MAX_S = 2.0
# A heading whose quaternion's norm is further than this from 1 is refused, not normalised: a
# sender that gets the norm wrong has likely got the rest wrong too.
QUATERNION_NORM_TOLERANCE = 1e-3


def heading_refusal(msg: 'Imu | ImuOrientationView', reference_s: float | None
                    ) -> tuple[str, str] | None:
    """Why a heading message must not be used, as (reason, detail), or None if it may.

    Checked with plain floats, not numpy: on the node's main thread, numpy's calls on four
    values cost as much as the node's whole rest of the message (0.07 ms a heading live).

    :param reference_s: stamp of the newest frame, s; None before the first frame (the stamp is
        then checked when the first frame arrives, :meth:`StampBuffer.drop_outside`).
    """
    q = msg.orientation
    quaternion = [float(q.x), float(q.y), float(q.z), float(q.w)]
    covariance = [float(value) for value in msg.orientation_covariance]
    if not all(map(math.isfinite, quaternion)):
        return 'non-finite quaternion', f'orientation {quaternion}'
    norm = math.sqrt(math.fsum(value * value for value in quaternion))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        return 'non-unit quaternion', (f'|q| = {norm:.6f}, expected 1 +- '
                                       f'{QUATERNION_NORM_TOLERANCE:g}')
    if not all(map(math.isfinite, covariance)):
        return 'non-finite covariance', f'orientation_covariance {covariance}'
    if covariance[0] == -1.0:
        return 'no orientation', 'orientation_covariance[0] = -1: the sender has no orientation'
    stamp_s = conversions.stamp_to_s(msg.header.stamp)
    if reference_s is not None and abs(stamp_s - reference_s) > HEADING_STAMP_MAX_S:
        return 'stamp far from frames', (f'stamped {stamp_s - reference_s:+.3f} s from the '
                                         f'newest frame, at most +-{HEADING_STAMP_MAX_S:g} s')
    return None
