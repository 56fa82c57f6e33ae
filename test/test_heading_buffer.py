from echoloc_ros.nodes.localizer import HeadingBuffer


def test_heading_nearest_to_stamp_within_tolerance():
    buf = HeadingBuffer(horizon_s=1.0)
    for i in range(30):
        buf.add(0.04 * i, 0.01 * i, 1e-4)
    assert buf.at(0.40, tolerance_s=0.01) == (0.01 * 10, 1e-4)
    assert buf.at(0.41, tolerance_s=0.1)[0] == 0.01 * 10
    assert buf.at(5.0, tolerance_s=0.1) is None
    # Only the last horizon_s of headings are kept.
    assert buf.at(0.0, tolerance_s=0.01) is None


def test_out_of_order_headings_are_sorted():
    buf = HeadingBuffer()
    buf.add(2.0, 2.0, 0.0)
    buf.add(1.0, 1.0, 0.0)
    assert buf.at(1.0, 0.01) == (1.0, 0.0)
