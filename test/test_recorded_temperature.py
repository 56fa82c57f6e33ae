"""`echoloc calibrate-room --temperature-topic`: a recording's sensor_msgs/Temperature
messages give the air's temperature and its doubt (a NaN among them refused and counted); a
topic with none that can be taken is named."""
import subprocess
import sys

import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Temperature

from echoloc_ros.cli.calibrate import recorded_temperature
from echoloc_ros.ros.bag import BagWriter

TOPIC = '/air/temperature'


def write_readings(path, readings):
    bag = BagWriter(path)
    bag.add_topic(TOPIC, 'sensor_msgs/msg/Temperature')
    for k, (value, variance) in enumerate(readings):
        msg = Temperature()
        msg.temperature, msg.variance = value, variance
        bag.write(TOPIC, int(k * 1e9), serialize_message(msg))
    bag.close()


def test_the_readings_give_the_temperature_and_its_doubt(tmp_path):
    write_readings(tmp_path / 'steady', [(22.0, 0.04), (22.2, 0.04), (float('nan'), 0.04),
                                         (22.1, 0.04)])
    mean, std, summary = recorded_temperature(tmp_path / 'steady', TOPIC)
    assert mean == pytest.approx(22.1)
    # The stated 0.2 degC is larger than the readings' spread (0.08).
    assert std == pytest.approx(0.2)
    assert summary['readings'] == 3 and summary['refused'] == 1
    assert 'temperature reading nan degC' in summary['last_refused']
    # Air that warmed 2 degC over the drive: the spread is the doubt.
    write_readings(tmp_path / 'warming', [(21.0, 0.01), (23.0, 0.01)])
    assert recorded_temperature(tmp_path / 'warming', TOPIC)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"no temperature reading on '/elsewhere'"):
        recorded_temperature(tmp_path / 'steady', '/elsewhere')


def test_calibrate_room_names_a_topic_without_readings(tmp_path):
    write_readings(tmp_path / 'bad', [(float('nan'), 0.0), (99.0, 0.0)])
    run = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'calibrate-room',
                          str(tmp_path / 'bad'), '--out', str(tmp_path / 'x.yaml'),
                          '--temperature-topic', TOPIC], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode != 0
    assert (f"no temperature reading on '{TOPIC}' in the recording could be taken (2 refused: "
            'temperature reading 99.0 degC') in run.stderr, run.stderr
    both = subprocess.run([sys.executable, '-m', 'echoloc_ros.cli', 'calibrate-room',
                           str(tmp_path / 'bad'), '--out', str(tmp_path / 'x.yaml'),
                           '--temperature-topic', TOPIC, '--temperature-c', '21'],
                          capture_output=True, text=True, timeout=120)
    assert both.returncode != 0 and 'exclude each other' in both.stderr
    assert not (tmp_path / 'x.yaml').exists()
