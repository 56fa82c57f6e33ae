"""The one description of echoloc's node graph.

``launch/bringup.launch.py`` (real ROS installs) and ``echoloc bringup`` (anywhere, including the
ROS 2 wheels, which have no launch) both build the graph from ``GRAPH``, so they cannot drift.
"""
from dataclasses import dataclass
from pathlib import Path

import yaml

from echoloc_ros.core.paths import config_dir


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    :param name: node name, also its section in the parameter file.
    :param executable: ``lib/echoloc/<executable>`` for launch; pip installs it as
        ``echoloc_<executable>``.
    :param module: Python module whose ``main()`` runs the node.
    :param nodes: the nodes the process runs when it runs several (each reads its own section
        of the parameter file); empty: the one node ``name``.
    """

    name: str
    executable: str
    module: str
    nodes: tuple[str, ...] = ()

    @property
    def node_names(self) -> tuple[str, ...]:
        """The nodes this process runs."""
        return self.nodes or (self.name,)


GRAPH = (
    NodeSpec('driver', 'driver', 'echoloc_ros.nodes.driver'),
    NodeSpec('echo_processor', 'echo_processor', 'echoloc_ros.nodes.echo_processor'),
    NodeSpec('localizer', 'localizer', 'echoloc_ros.nodes.localizer'),
    NodeSpec('furniture_survey', 'furniture_survey', 'echoloc_ros.nodes.furniture_survey'),
)

# The echo processor and the localizer in one process (``echoloc bringup``, ``one_process:=true``
# by default): the same two nodes, topics and parameters, but each frame's features pass to the
# localizer in the process, without a DDS hop (docs/results.md, issue 20).
ONE_PROCESS = NodeSpec('echo_localizer', 'echo_localizer', 'echoloc_ros.nodes.echo_localizer',
                       nodes=('echo_processor', 'localizer'))
# Whether bringup (both), the launch file and the bench run ONE_PROCESS unless told otherwise:
# 1.4 ms of CPU a frame less than two processes (docs/results.md, issue 20, r35-91). A crash of
# either node stops both (bringup stops the whole graph at any node's exit anyway); `ros2 run`
# of each node's own executable still works.
ONE_PROCESS_DEFAULT = True


def graph_specs(one_process: bool = ONE_PROCESS_DEFAULT) -> tuple[NodeSpec, ...]:
    """The graph's processes: with ``one_process`` the echo processor and the localizer as the
    one process ``ONE_PROCESS``, else ``GRAPH`` (each node a process)."""
    if not one_process:
        return GRAPH
    specs = [s for s in GRAPH if s.name not in ONE_PROCESS.nodes]
    specs.insert(1, ONE_PROCESS)
    return tuple(specs)


PARAMS_FILE = 'echoloc.yaml'


def default_params_file() -> Path:
    """The parameter file the graph starts with unless told otherwise."""
    return config_dir() / PARAMS_FILE


def parse_override(node: str, name: str, text: str) -> dict:
    """One parameter override given as text (``echoloc bringup --set``, a launch argument).

    The text is read as YAML, as ``--ros-args -p`` reads it; a whole number for a parameter
    whose value in the package's parameter file is a float becomes a float, so that
    ``rate_hz:=20`` is not refused as an integer.

    :param node: a node of ``GRAPH``.
    :param name: the parameter.
    :param text: its value as written.
    :return: ``{name: value}``.
    """
    names = [spec.name for spec in GRAPH]
    if node not in names:
        raise ValueError(f'parameter {node}.{name}: no node {node!r}; expected one of '
                         f'{", ".join(names)}')
    value = yaml.safe_load(text)
    defaults = yaml.safe_load(default_params_file().read_text())
    default = defaults.get(node, {}).get('ros__parameters', {}).get(name)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return {name: value}
