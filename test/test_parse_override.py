"""Parameter overrides as text, read alike by bringup.launch.py and `echoloc bringup --set`."""
import pytest

from echoloc_ros.ros.graph import parse_override


def test_values_are_read_as_yaml():
    assert parse_override('localizer', 'tracking', 'false') == {'tracking': False}
    assert parse_override('driver', 'port', '/dev/ttyUSB0') == {'port': '/dev/ttyUSB0'}
    assert parse_override('driver', 'baudrate', '115200') == {'baudrate': 115200}


def test_a_whole_number_for_a_float_parameter_is_a_float():
    value = parse_override('driver', 'rate_hz', '20')['rate_hz']
    assert value == 20.0 and isinstance(value, float)
    # An integer parameter stays an integer.
    assert isinstance(parse_override('driver', 'sim_seed', '3')['sim_seed'], int)


def test_an_unknown_node_is_named_with_the_nodes_there_are():
    with pytest.raises(ValueError, match="no node 'localiser'; expected one of driver, "):
        parse_override('localiser', 'tracking', 'false')
