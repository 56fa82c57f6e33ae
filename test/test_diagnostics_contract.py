"""The same diagnostics checks against the real diagnostic_updater and echoloc's fallback.

A ROS 2 install has the real package (rosdep installs it) and the nodes use it; the ROS 2 wheels
do not, and the fallback stands in. Each check runs against both: in this process through each
module's own Updater, and as real node processes whose diagnostic_updater is chosen by
``ECHOLOC_DIAGNOSTIC_UPDATER``. The real one is tested where it is importable (a ROS install, or
this project's underlay: ``bash ../shared/ros-underlay/build.sh build/underlay`` then
``source build/underlay/setup.bash``) and skipped, saying so, where it is not.
"""
import importlib
import importlib.util
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile

from parameters_testing import set_parameters
from ros_testing import wait_for
from echoloc_ros.ros.diagnostics import ERROR, OK, level_of
from echoloc_ros.ros.graph import GRAPH
from echoloc_ros.ros.process_graph import NodeProcesses

NOT_IMPORTABLE = ('the real diagnostic_updater is not importable here: it comes with a ROS 2 '
                  'install; for this project, bash ../shared/ros-underlay/build.sh '
                  'build/underlay && source build/underlay/setup.bash')
# Each node's tasks and hardware id, as every implementation must publish them.
EXPECTED = {
    'driver': ({'Frame rate', 'Receiver channels', 'Link'}, 'sim:square_4sensor'),
    'echo_processor': ({'Feature rate', 'Frames'}, 'echo_processor'),
    'localizer': ({'Pose rate', 'Localization'}, 'localizer:default_room'),
    'furniture_survey': ({'Furniture survey'}, 'furniture_survey:default_room'),
}


def _real_importable() -> bool:
    return importlib.util.find_spec('diagnostic_updater') is not None


@pytest.fixture(params=['upstream', 'fallback'])
def implementation(request):
    """The diagnostic_updater module under test (the real one, or echoloc's fallback)."""
    if request.param == 'upstream':
        if not _real_importable():
            pytest.skip(NOT_IMPORTABLE)
        return importlib.import_module('diagnostic_updater')
    return importlib.import_module('echoloc_ros.ros.diagnostic_fallback')


@pytest.fixture
def updater_node(ros_env, recorder, request):
    import rclpy
    node = rclpy.create_node(f'contract_{request.node.callspec.id}')
    recorder.executor.add_node(node)
    yield node
    recorder.executor.remove_node(node)
    node.destroy_node()


def _statuses(recorder, name: str) -> list:
    return [s for _, m in recorder.get('/diagnostics') for s in m.status if s.name == name]


def test_updater_announces_tasks_and_presets_an_error(implementation, updater_node, recorder):
    recorder.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=100))
    updater = implementation.Updater(updater_node, period=0.2)
    assert wait_for(lambda: updater.publisher.get_subscription_count() > 0, timeout_s=10.0)
    assert updater_node.get_parameter('diagnostic_updater.period').value == 0.2
    updater.setHardwareID('hw-1')

    def fine(stat):
        stat.summary(OK, 'fine')
        stat.add('count', '3')
        return stat

    updater.add('silent', lambda stat: stat)
    updater.add('fine', fine)
    name = updater_node.get_name()
    assert wait_for(lambda: len(_statuses(recorder, f'{name}: silent')) >= 3, timeout_s=10.0)
    silent = _statuses(recorder, f'{name}: silent')
    # Adding a task announces it at once, OK and without the hardware id.
    assert (level_of(silent[0]), silent[0].message, silent[0].hardware_id) == (
        0, 'Node starting up', '')
    # A task that sets no summary is an error, not a silent OK.
    assert (level_of(silent[-1]), silent[-1].message, silent[-1].hardware_id) == (
        2, 'No message was set', 'hw-1')
    last_fine = _statuses(recorder, f'{name}: fine')[-1]
    assert (level_of(last_fine), last_fine.message) == (0, 'fine')
    assert [(v.key, v.value) for v in last_fine.values] == [('count', '3')]


def test_a_value_that_is_not_a_string_cannot_be_published(implementation, updater_node):
    """Upstream stores the value and its publish fails; the fallback refuses it at add. Either
    way the update raises TypeError: a node that passes an int dies on both, in every test."""
    updater = implementation.Updater(updater_node, period=5.0)

    def counts(stat):
        stat.summary(OK, 'fine')
        stat.add('frames', 25)
        return stat

    updater.add('counts', counts)
    with pytest.raises(TypeError):
        updater.force_update()


def test_frequency_status_without_events_is_an_error(implementation):
    task = implementation.FrequencyStatus(implementation.FrequencyStatusParam(
        {'min': 10.0, 'max': 10.0}, 0.1, 2))
    stat = task.run(implementation.DiagnosticStatusWrapper())
    assert (stat.level, stat.message) == (ERROR, 'No events recorded.')
    assert all(isinstance(v.value, str) for v in stat.values)


@pytest.fixture(params=['upstream', 'fallback'])
def graph_diagnostics(request, ros_env, recorder, tmp_path):
    """The four nodes running with one implementation; /diagnostics recorded."""
    env = dict(ros_env)
    if request.param == 'upstream':
        if not _real_importable():
            pytest.skip(NOT_IMPORTABLE)
        env.pop('ECHOLOC_DIAGNOSTIC_UPDATER', None)
    else:
        env['ECHOLOC_DIAGNOSTIC_UPDATER'] = 'fallback'
    recorder.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=500))
    with NodeProcesses(GRAPH, env=env, log_dir=tmp_path) as graph:
        yield graph, recorder, tmp_path


def test_every_node_reports_through_either_implementation(graph_diagnostics):
    graph, recorder, log_dir = graph_diagnostics

    def names():
        return {s.name for _, m in recorder.get('/diagnostics') for s in m.status}

    expected = {f'{node}: {task}' for node, (tasks, _) in EXPECTED.items() for task in tasks}
    assert wait_for(lambda: expected <= names(), timeout_s=40.0), (
        f'missing {expected - names()}; logs in {log_dir}')
    # Ten more rounds of every task (about ten seconds): no node may die on its diagnostics.
    heard = {name: len(_statuses(recorder, name)) for name in expected}
    assert wait_for(lambda: graph.exited() or all(
        len(_statuses(recorder, name)) >= n + 10 for name, n in heard.items()),
        timeout_s=60.0), f'logs in {log_dir}'
    assert not graph.exited(), f'{graph.exited()}; logs in {log_dir}'
    for node, (tasks, hardware_id) in EXPECTED.items():
        for task in tasks:
            last = _statuses(recorder, f'{node}: {task}')[-1]
            assert last.hardware_id == hardware_id, (node, task, last.hardware_id)
            assert last.message not in ('', 'No message was set'), (node, task)
    for name in ('driver: Link', 'driver: Receiver channels', 'echo_processor: Frames',
                 'furniture_survey: Furniture survey'):
        assert level_of(_statuses(recorder, name)[-1]) == 0, _statuses(recorder, name)[-1]


def test_diagnostic_period_applies_live(graph_diagnostics):
    graph, recorder, log_dir = graph_diagnostics

    def driver_times():
        return [t for t, m in recorder.get('/diagnostics')
                if any(s.name == 'driver: Link' for s in m.status)]

    assert wait_for(lambda: len(driver_times()) >= 2, timeout_s=40.0), f'logs in {log_dir}'
    refused = set_parameters(recorder.node, 'driver',
                             [Parameter('diagnostic_updater.period', value=-1.0)])
    assert not refused[0].successful and 'expected a period' in refused[0].reason
    done = set_parameters(recorder.node, 'driver',
                          [Parameter('diagnostic_updater.period', value=2.5)])
    assert done[0].successful, done[0].reason
    changed = time.time()
    assert wait_for(lambda: len([t for t in driver_times() if t > changed]) >= 3,
                    timeout_s=20.0)
    after = [t for t in driver_times() if t > changed]
    # A timer never fires early: at 2.5 s every gap is over 2 s (it was 0.5 s).
    assert min(b - a for a, b in zip(after[1:], after[2:])) > 2.0, after
