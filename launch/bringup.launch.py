"""Bring up echoloc on a ROS 2 install: `ros2 launch echoloc bringup.launch.py`.

The nodes come from echoloc_ros.ros.graph.GRAPH, the same description `echoloc bringup` uses.
Arguments (`ros2 launch echoloc bringup.launch.py --show-args`): params_file (default: the
package's config/echoloc.yaml), backend (sim | serial | replay), port and baudrate (serial),
method (physics | nn), rviz (true starts rviz2 with config/echoloc.rviz; an error, before any
node starts, where rviz2 is not installed), one_process (true, the default: echo_processor and
localizer in one process, the executable echo_localizer, the same nodes, parameters and topics,
1.4 ms less CPU a frame; false: each node a process of its own).
Any other parameter is set as NODE.PARAM:=VALUE (value read as YAML), e.g.
`localizer.tracking:=false`, as `echoloc bringup --set` does.
"""
import os
import tempfile

import yaml
from ament_index_python.packages import get_package_prefix, get_package_share_directory
from ament_index_python.packages import PackageNotFoundError
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node

from echoloc_ros.ros.graph import ONE_PROCESS_DEFAULT, PARAMS_FILE, graph_specs, parse_override

# Launch arguments that set one node's parameter. Their default, '', leaves params_file's value,
# or the node's own where the file has none (sim, physics, /dev/ttyACM0 at 115200 baud).
NODE_ARGUMENTS = {
    'backend': ('driver', 'driver backend: sim, serial or replay'),
    'port': ('driver', 'serial: device path of the array'),
    'baudrate': ('driver', 'serial: baud rate (ignored by USB CDC)'),
    'method': ('localizer', 'localizer method: physics or nn'),
}


def _nodes(context: LaunchContext) -> list:
    config = context.launch_configurations
    share = get_package_share_directory('echoloc')
    if config['rviz'].lower() == 'true':
        # Checked before any node exists: a failed rviz2 must not leave the graph running.
        try:
            get_package_prefix('rviz2')
        except PackageNotFoundError:
            raise RuntimeError('rviz:=true but rviz2 is not installed (sudo apt install '
                               'ros-$ROS_DISTRO-rviz2), or start without rviz:=true') from None
    overrides: dict[str, dict] = {}
    for argument, (node, _) in NODE_ARGUMENTS.items():
        if config[argument] != '':
            overrides.setdefault(node, {}).update(parse_override(node, argument,
                                                                 config[argument]))
    for key, value in config.items():
        node, dot, name = key.partition('.')
        if dot:
            overrides.setdefault(node, {}).update(parse_override(node, name, value))
    actions = []
    for spec in graph_specs(config['one_process'].lower() == 'true'):
        if not spec.nodes:
            actions.append(Node(package='echoloc', executable=spec.executable, name=spec.name,
                                parameters=[config['params_file'],
                                            overrides.get(spec.name, {})],
                                output='screen', emulate_tty=True))
            continue
        # Several nodes in one process: a dict of parameters would set every node's, so each
        # node's overrides go in its own section of a parameter file.
        parameters = [config['params_file']]
        sections = {node: {'ros__parameters': overrides[node]} for node in spec.nodes
                    if overrides.get(node)}
        if sections:
            with tempfile.NamedTemporaryFile('w', prefix=f'echoloc-{spec.name}-',
                                             suffix='.yaml', delete=False) as out:
                yaml.safe_dump(sections, out)
            parameters.append(out.name)
        actions.append(Node(package='echoloc', executable=spec.executable,
                            parameters=parameters, output='screen', emulate_tty=True))
    if config['rviz'].lower() == 'true':
        actions.append(Node(package='rviz2', executable='rviz2', name='rviz2',
                            arguments=['-d', os.path.join(share, 'config', 'echoloc.rviz')]))
    return actions


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory('echoloc')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config',
                                                                        PARAMS_FILE),
                              description='parameter file of all echoloc nodes'),
        *[DeclareLaunchArgument(name, default_value='', description=f'{description} '
                                '(default: the parameter file\'s)')
          for name, (_, description) in NODE_ARGUMENTS.items()],
        DeclareLaunchArgument('rviz', default_value='false', description='start rviz2'),
        DeclareLaunchArgument('one_process', default_value=str(ONE_PROCESS_DEFAULT).lower(),
                              description='run echo_processor and localizer in one process '
                              '(less CPU a frame; the same nodes and topics); false: each '
                              'node a process of its own'),
        OpaqueFunction(function=_nodes),
    ])
