"""Fixtures for tests that run real nodes as processes over real DDS (launch_pytest style).

Every test session gets its own ROS domain, discovery limited to this host, and its own log
directory, so parallel runs on one machine cannot hear each other.
"""
import os
import random

import pytest

from ros_testing import TopicRecorder


@pytest.fixture(scope='session')
def ros_env(tmp_path_factory):
    """Environment for node processes; also applied to this process before rclpy.init."""
    from echoloc_ros.ros.process_graph import isolated_ros_env
    domain_id = int(os.environ.get('ECHOLOC_TEST_DOMAIN_ID', random.randint(1, 100)))
    env = isolated_ros_env(domain_id, tmp_path_factory.mktemp('ros_log'))
    for key in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_LOG_DIR'):
        os.environ[key] = env[key]
    import rclpy
    rclpy.init()
    yield env
    rclpy.try_shutdown()


@pytest.fixture
def recorder(ros_env):
    import rclpy
    rec = TopicRecorder(rclpy)
    yield rec
    rec.close()


def pytest_collection_modifyitems(config, items):
    """Mark every test ``ros`` (it runs nodes over DDS: it asks for the ROS environment) or
    ``unit`` (it does not), so that ``make test-fast`` can leave the graph out."""
    for item in items:
        item.add_marker(pytest.mark.ros if 'ros_env' in item.fixturenames else pytest.mark.unit)
