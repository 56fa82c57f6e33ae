"""Shared fixtures: the default room, array and ping, built once per test session."""

import pytest

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator

FS_HZ = 250e3


@pytest.fixture(scope='session')
def room():
    return load_room('default_room')


@pytest.fixture(scope='session')
def array():
    return load_array('square_4sensor')


@pytest.fixture(scope='session')
def chirp():
    return Chirp()


@pytest.fixture(scope='session')
def simulator(room, array, chirp):
    return EchoSimulator(room, array, chirp, FS_HZ)


@pytest.fixture(scope='session')
def processor(array, chirp):
    return EchoProcessor(chirp, FS_HZ, array=array)
