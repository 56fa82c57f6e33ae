"""The localizer node with method nn: the shipped model in the live graph, and the fallback to
physics (with an ERROR diagnostic) when the model cannot be used."""
import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy

from ros_testing import TopicRecorder, wait_for
from echoloc_ros.core.paths import default_model_path
from echoloc_ros.core.stamps import paired
from echoloc_ros.ros import conversions
from echoloc_ros.ros.graph import default_params_file
from echoloc_ros.ros.process_graph import NodeProcesses

POSES = 40
# The shipped wide-search budget (searches a second).
WIDE_SEARCH_MAX_HZ = yaml.safe_load(default_params_file().read_text())['localizer'][
    'ros__parameters']['wide_search_max_hz']


def _run(ros_env, log_dir, localizer_params):
    import rclpy
    rec = TopicRecorder(rclpy)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    rec.subscribe(PoseWithCovarianceStamped, '/echoloc/pose', reliable)
    rec.subscribe(PoseStamped, '/echoloc/ground_truth', reliable)
    rec.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=100))
    graph = NodeProcesses(env=ros_env, log_dir=log_dir,
                          overrides={'localizer': localizer_params})
    try:
        graph.start()
        # Count poses matched to the driver's ground truth: the two publishers are discovered
        # at different moments, so early poses may have no truth to compare with.
        got = wait_for(lambda: len(_errors(rec)) >= POSES, timeout_s=90.0)
        assert got, (f'fewer than {POSES} poses with ground truth in 90 s '
                     f'({len(rec.get("/echoloc/pose"))} poses); logs in {log_dir}: '
                     f'{graph.exited()}')
        assert wait_for(lambda: _model_status(rec) is not None, timeout_s=10.0)
        alive = not graph.exited()
    finally:
        graph.stop()
        rec.close()
    assert alive, f'a node exited; logs in {log_dir}'
    return rec


def _model_status(rec) -> DiagnosticStatus | None:
    statuses = [s for _, m in rec.get('/diagnostics') for s in m.status
                if s.name == 'localizer: Neural model' and s.message != 'Node starting up']
    return statuses[-1] if statuses else None


def _model_status_time(rec) -> float:
    """When the last Neural model status was received (``time.time()``)."""
    return [t for t, m in rec.get('/diagnostics')
            if any(s.name == 'localizer: Neural model' for s in m.status)][-1]


def _errors(rec) -> np.ndarray:
    def by_stamp(topic: str) -> dict:
        return {conversions.stamp_key(m.header.stamp): m for _, m in rec.get(topic)}
    errors = []
    for _, pose, truth in paired(by_stamp('/echoloc/pose'), by_stamp('/echoloc/ground_truth')):
        p, t = pose.pose.pose.position, truth.pose.position
        errors.append(np.linalg.norm([p.x - t.x, p.y - t.y, p.z - t.z]))
    return np.array(errors)


def test_missing_model_falls_back_to_physics_with_an_error(ros_env, tmp_path):
    missing = tmp_path / 'no_such_model.pt'
    rec = _run(ros_env, tmp_path, {'method': 'nn', 'model_path': str(missing)})
    status = _model_status(rec)
    assert status.level == DiagnosticStatus.ERROR, (status.level, status.message)
    assert str(missing) in status.message and 'using physics' in status.message, status.message
    errors = _errors(rec)
    assert np.median(errors) <= 0.05, f'median error {100 * np.median(errors):.2f} cm'


@pytest.mark.skipif(not default_model_path('default_room').is_file(),
                    reason='no shipped model for the default room')
def test_shipped_model_localizes_live(ros_env, tmp_path):
    rec = _run(ros_env, tmp_path, {'method': 'nn'})
    status = _model_status(rec)
    assert status.level == DiagnosticStatus.OK, status.message
    assert 'default_room.pt' in status.message and 'wide search on' in status.message
    values = {kv.key: kv.value for kv in status.values}
    searched = int(values['frames searched widely'])
    assert int(values['wide searches kept']) <= searched, values
    # The budget (wide_search_max_hz, 1 a second in the shipped parameters) holds: no more
    # wide searches than seconds of localizing, plus the one a budget starts with.
    localizing_s = _model_status_time(rec) - rec.get('/echoloc/pose')[0][0]
    assert searched <= WIDE_SEARCH_MAX_HZ * localizing_s + 1, (values, localizing_s)
    errors = _errors(rec)
    assert np.median(errors) <= 0.015, f'median error {100 * np.median(errors):.2f} cm'


def test_a_checkpoint_that_is_not_one_falls_back_to_physics_naming_why(ros_env, tmp_path):
    """An int, a bare tensor and a state_dict of other weights: each localizer says why with an
    ERROR and runs the physics method instead of crashing."""
    import torch

    from echoloc_ros.ros.graph import NodeSpec
    good = torch.load(default_model_path('default_room'), weights_only=True) \
        if default_model_path('default_room').is_file() else None
    cases = {'int': (5, 'holds a int, not a dict'),
             'tensor': (torch.zeros(3), 'holds a Tensor, not a dict')}
    if good is not None:
        cases['weights'] = ({**good, 'state_dict': {'x.weight': torch.zeros(2)}},
                            'do not make a candidate ranker')
    specs, overrides = [], {}
    for name, (content, _) in cases.items():
        path = tmp_path / f'{name}.pt'
        torch.save(content, path)
        specs.append(NodeSpec(f'localizer_{name}', 'localizer', 'echoloc_ros.nodes.localizer'))
        overrides[f'localizer_{name}'] = {'method': 'nn', 'model_path': str(path)}
    import rclpy
    rec = TopicRecorder(rclpy)
    rec.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=100))

    def status(name):
        # Past diagnostic_updater's 'Node starting up' announcement of the task.
        found = [s for _, m in rec.get('/diagnostics') for s in m.status
                 if s.name == f'localizer_{name}: Neural model'
                 and s.message != 'Node starting up']
        return found[-1] if found else None

    try:
        with NodeProcesses(tuple(specs), env=ros_env, log_dir=tmp_path,
                           overrides=overrides) as graph:
            assert wait_for(lambda: all(status(n) for n in cases), timeout_s=60.0), \
                f'no model status; logs in {tmp_path}'
            assert not graph.exited()
    finally:
        rec.close()
    for name, (_, reason) in cases.items():
        s = status(name)
        assert s.level == DiagnosticStatus.ERROR and reason in s.message, s.message
        assert 'using physics' in s.message
        assert {kv.key: kv.value for kv in s.values}['method in use'] == 'physics'
