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
    """

    name: str
    executable: str
    module: str


GRAPH = (
    NodeSpec('driver', 'driver', 'echoloc_ros.nodes.driver'),
    NodeSpec('echo_processor', 'echo_processor', 'echoloc_ros.nodes.echo_processor'),
    NodeSpec('localizer', 'localizer', 'echoloc_ros.nodes.localizer'),
    NodeSpec('furniture_survey', 'furniture_survey', 'echoloc_ros.nodes.furniture_survey'),
)

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
