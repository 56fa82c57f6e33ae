"""rviz markers: the 95 % ellipsoid from a known covariance, the room outline, the PNG view."""
import numpy as np
import pytest

pytest.importorskip('visualization_msgs.msg')

from builtin_interfaces.msg import Time  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from echoloc_ros.core.room import load_room  # noqa: E402
from echoloc_ros.ros.markers import (  # noqa: E402
    CHI2_3DOF_95, NS_COVARIANCE, NS_ECHOES, NS_FURNITURE, NS_WALLS, estimate_markers,
    marker_array, room_markers)
from echoloc_ros.offline.render import quaternion_to_rotation, render_markers_png  # noqa: E402

STAMP = Time(sec=12, nanosec=345)
RECEIVERS = np.array([[0.05, 0.05, 0.0], [-0.05, 0.05, 0.0], [-0.05, -0.05, 0.0],
                      [0.05, -0.05, 0.0]])


def _rz(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _estimate(covariance, echo_points=np.zeros((0, 3))):
    position = np.array([3.0, 2.0, 0.3])
    markers = estimate_markers(position, 0.4, covariance, position + RECEIVERS, echo_points,
                               'map', STAMP)
    return {(m.ns, m.id): m for m in markers}


def _scale(marker: Marker) -> np.ndarray:
    return np.array([marker.scale.x, marker.scale.y, marker.scale.z])


def test_ellipsoid_axes_are_the_95_percent_quantile_of_each_eigenvalue():
    variances = np.array([4e-4, 1e-4, 9e-6])   # sigma 2 cm, 1 cm, 3 mm along x, y, z
    ellipsoid = _estimate(np.diag(variances))[(NS_COVARIANCE, 0)]
    assert ellipsoid.type == Marker.SPHERE
    rotation = quaternion_to_rotation(ellipsoid.pose.orientation)
    # Each full axis, wherever the eigen-decomposition put it, lies along its covariance axis.
    axis_lengths = np.abs(rotation) @ _scale(ellipsoid)
    np.testing.assert_allclose(axis_lengths, 2 * np.sqrt(CHI2_3DOF_95 * variances), rtol=1e-9)
    # The same numbers by hand: 2 sqrt(7.815 * 9e-6), 2 sqrt(7.815 * 1e-4), 2 sqrt(7.815 * 4e-4).
    np.testing.assert_allclose(np.sort(_scale(ellipsoid)), [0.0167732, 0.0559106, 0.1118213],
                               atol=1e-7)


def test_ellipsoid_orientation_follows_a_rotated_covariance():
    angle = np.radians(30.0)
    rotation_true = _rz(angle)
    variances = np.array([9e-4, 1e-4, 4e-6])
    covariance = rotation_true @ np.diag(variances) @ rotation_true.T
    ellipsoid = _estimate(covariance)[(NS_COVARIANCE, 0)]
    rotation = quaternion_to_rotation(ellipsoid.pose.orientation)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    # The marker's shape matrix R diag(scale/2)^2 R^T is the covariance scaled by chi2.
    shape = rotation @ np.diag((_scale(ellipsoid) / 2) ** 2) @ rotation.T
    np.testing.assert_allclose(shape, CHI2_3DOF_95 * covariance, atol=1e-12)
    # Its longest axis points 30 deg from x in the floor plane.
    longest = rotation[:, np.argmax(_scale(ellipsoid))]
    assert np.degrees(np.arctan2(longest[1], longest[0])) % 180 == pytest.approx(30.0)


def test_estimate_markers_have_stable_ids_and_echo_paths():
    echo_points = np.array([[6.0, 2.0, 0.3], [0.0, 2.0, 0.3], [3.0, 2.0, 0.0]])
    first = _estimate(np.eye(3) * 1e-4, echo_points)
    second = _estimate(np.eye(3) * 4e-4)
    assert set(first) == set(second)
    assert len(first) == 1 + len(RECEIVERS) + 1 + 1
    paths = first[(NS_ECHOES, 0)]
    assert paths.type == Marker.LINE_LIST and len(paths.points) == 2 * len(echo_points)
    assert (paths.points[1].x, paths.points[1].y) == (6.0, 2.0)
    # No echoes this time: the old paths are deleted rather than left behind.
    assert second[(NS_ECHOES, 0)].action == Marker.DELETE
    arrow = first[('estimate/array', 0)]
    assert 2 * np.arctan2(arrow.pose.orientation.z, arrow.pose.orientation.w) == \
        pytest.approx(0.4)
    assert all(m.header.frame_id == 'map' and m.header.stamp == STAMP for m in first.values())
    with pytest.raises(ValueError, match='covariance'):
        _estimate(np.full((3, 3), np.nan))


def test_room_outline_and_furniture():
    room = load_room('furnished_room')
    markers = room_markers(room, 'map', STAMP)
    walls = [m for m in markers if m.ns == NS_WALLS]
    assert len(walls) == 1 and walls[0].type == Marker.LINE_LIST
    k = len(room.vertices_m)
    # Floor and ceiling polygons (k segments each) plus k vertical edges, 2 points a segment.
    assert len(walls[0].points) == 6 * k == 24
    heights = {p.z for p in walls[0].points}
    assert heights == {0.0, room.height_m}
    cubes = [m for m in markers if m.ns == NS_FURNITURE]
    assert [m.id for m in cubes] == list(range(len(room.furniture))) and len(cubes) == 4
    sofa = next(m for m in cubes if m.text == 'sofa')
    assert (sofa.pose.position.x, sofa.scale.x, sofa.scale.z) == pytest.approx((3.5, 2.0, 0.85))
    assert all(0 < m.color.a < 1 for m in cubes)
    assert len(marker_array(markers, _estimate(np.eye(3) * 1e-4).values()).markers) == \
        len(markers) + 7


def test_l_shaped_room_outline_has_six_points_per_wall():
    room = load_room('l_shaped_room')
    walls = room_markers(room, 'map', STAMP)[0]
    assert len(walls.points) == 6 * len(room.vertices_m)


def test_render_writes_a_png_of_both_views(tmp_path):
    room = load_room('furnished_room')
    markers = room_markers(room, 'map', STAMP) + list(
        _estimate(np.eye(3) * 1e-3, np.array([[6.0, 2.0, 0.3]])).values())
    path = render_markers_png(markers, tmp_path / 'view.png', title='test')
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    width, height = int.from_bytes(data[16:20], 'big'), int.from_bytes(data[20:24], 'big')
    assert (width, height) == (1210, 605)


def test_rviz_config_shows_the_echoloc_topics_in_map():
    import yaml

    from echoloc_ros.core.paths import config_dir
    config = yaml.safe_load((config_dir() / 'echoloc.rviz').read_text())
    manager = config['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == 'map'
    displays = {d['Class']: d for d in manager['Displays'] if d['Class'].endswith('Grid')}
    topics = {d['Topic']['Value']: d['Class'] for d in manager['Displays'] if 'Topic' in d}
    assert displays['rviz_default_plugins/Grid']['Reference Frame'] == '<Fixed Frame>'
    assert topics == {
        '/echoloc/pose': 'rviz_default_plugins/PoseWithCovariance',
        '/echoloc/ground_truth': 'rviz_default_plugins/Pose',
        '/echoloc/markers': 'rviz_default_plugins/MarkerArray',
        **{f'/echoloc/range_{i}': 'rviz_default_plugins/Range' for i in range(4)}}
    assert all(c['Class'].startswith('rviz_common/') for c in config['Panels'])
