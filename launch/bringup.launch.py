"""Bring up echoloc on a ROS 2 install: `ros2 launch echoloc bringup.launch.py`.

The nodes come from echoloc_ros.graph.GRAPH, the same description `echoloc bringup` uses.
Arguments: params_file (default: the package's config/echoloc.yaml), backend (sim | serial |
replay), rviz (true starts rviz2 with config/echoloc.rviz).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from echoloc_ros.graph import GRAPH, PARAMS_FILE


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory('echoloc')
    params_file = LaunchConfiguration('params_file')
    nodes = []
    for spec in GRAPH:
        parameters = [params_file]
        if spec.name == 'driver':
            parameters.append({'backend': LaunchConfiguration('backend')})
        if spec.name == 'localizer':
            parameters.append({'method': LaunchConfiguration('method')})
        nodes.append(Node(package='echoloc', executable=spec.executable, name=spec.name,
                          parameters=parameters, output='screen', emulate_tty=True))
    rviz = Node(package='rviz2', executable='rviz2', name='rviz2',
                arguments=['-d', os.path.join(share, 'config', 'echoloc.rviz')],
                condition=IfCondition(LaunchConfiguration('rviz')))
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config',
                                                                        PARAMS_FILE),
                              description='parameter file of all echoloc nodes'),
        DeclareLaunchArgument('backend', default_value='sim',
                              description='driver backend: sim, serial or replay'),
        DeclareLaunchArgument('method', default_value='physics',
                              description='localizer method: physics or nn'),
        DeclareLaunchArgument('rviz', default_value='false', description='start rviz2'),
        *nodes,
        rviz,
    ])
