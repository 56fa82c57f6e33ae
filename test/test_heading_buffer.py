from echoloc_ros.core.stamps import StampBuffer


def test_heading_nearest_to_stamp_within_tolerance():
    buf = StampBuffer(horizon_s=1.0)
    for i in range(30):
        buf.add(0.04 * i, (0.01 * i, 1e-4))
    assert buf.at(0.40, tolerance_s=0.01) == (0.01 * 10, 1e-4)
    assert buf.at(0.41, tolerance_s=0.1)[0] == 0.01 * 10
    assert buf.at(5.0, tolerance_s=0.1) is None
    # Only the last horizon_s of headings are kept.
    assert buf.at(0.0, tolerance_s=0.01) is None


def test_out_of_order_headings_are_sorted():
    buf = StampBuffer()
    buf.add(2.0, (2.0, 0.0))
    buf.add(1.0, (1.0, 0.0))
    assert buf.at(1.0, 0.01) == (1.0, 0.0)


def _imu(stamp_s: float, q=(0.0, 0.0, 0.0, 1.0), yaw_var: float = 1e-4):
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Imu
    msg = Imu()
    msg.header.stamp = Time(sec=int(stamp_s), nanosec=int(round(stamp_s % 1 * 1e9)))
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = q
    msg.orientation_covariance = [1e6, 0.0, 0.0, 0.0, 1e6, 0.0, 0.0, 0.0, yaw_var]
    return msg


def test_headings_refused_with_a_named_reason():
    from echoloc_ros.ros.imu_heading import heading_refusal
    assert heading_refusal(_imu(100.0), 100.5) is None
    assert heading_refusal(_imu(100.0, q=(0.0, 0.0, 0.6, 0.8)), None) is None
    cases = {
        'non-unit quaternion': _imu(100.0, q=(0.0, 0.0, 0.0, 1.01)),
        'non-finite quaternion': _imu(100.0, q=(0.0, 0.0, float('nan'), 1.0)),
        'non-finite covariance': _imu(100.0, yaw_var=float('nan')),
        'stamp far from frames': _imu(130.0),
    }
    for reason, msg in cases.items():
        assert heading_refusal(msg, 100.0)[0] == reason
    assert '|q| = 1.010000' in heading_refusal(cases['non-unit quaternion'], 100.0)[1]
    assert '+30.000 s' in heading_refusal(cases['stamp far from frames'], 100.0)[1]
    no_orientation = _imu(100.0)
    no_orientation.orientation_covariance[0] = -1.0
    assert heading_refusal(no_orientation, 100.0)[0] == 'no orientation'


def test_headings_far_from_the_first_frame_are_dropped():
    """One heading stamped 30 s ahead before any frame: once the first frame shows it far off,
    it goes, and the real headings are kept again (it would push every one of them out)."""
    buf = StampBuffer(horizon_s=4.0)
    buf.add(130.0, (0.2, 1e-4))
    buf.add(100.0, (0.1, 1e-4))
    assert buf.at(100.0, 0.1) is None
    assert buf.drop_outside(98.0, 102.0) == 1
    buf.add(100.04, (0.1, 1e-4))
    assert buf.latest_s() == 100.04 and buf.at(100.04, 0.01) == (0.1, 1e-4)


def test_roll_and_pitch_read_from_the_imu_orientation():
    import numpy as np
    from geometry_msgs.msg import Quaternion
    from scipy.spatial.transform import Rotation

    from echoloc_ros.ros.conversions import quaternion_to_roll_pitch
    from echoloc_ros.core.array_geometry import tilt_matrix, yaw_matrix
    for roll, pitch, yaw in ((0.02, -0.05, 1.0), (-0.04, 0.03, -2.5), (0.0, 0.0, 3.0)):
        x, y, z, w = Rotation.from_matrix(yaw_matrix(yaw) @ tilt_matrix(roll, pitch)).as_quat()
        np.testing.assert_allclose(quaternion_to_roll_pitch(Quaternion(x=x, y=y, z=z, w=w)),
                                   (roll, pitch), atol=1e-12)
