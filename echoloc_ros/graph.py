"""The one description of echoloc's node graph.

``launch/bringup.launch.py`` (real ROS installs) and ``echoloc bringup`` (anywhere, including the
ROS 2 wheels, which have no launch) both build the graph from ``GRAPH``, so they cannot drift.
"""
from dataclasses import dataclass
from pathlib import Path

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
