"""The driver warns when its chirp rate is more than the room supports with one chirp in
flight (a real process, its warning read on /rosout)."""
import yaml
from rcl_interfaces.msg import Log
from rclpy.qos import qos_profile_rosout_default

from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.frame_rate import max_frame_rate_hz
from echoloc_ros.core.room import room_from_dict
from echoloc_ros.ros.graph import GRAPH
from echoloc_ros.ros.process_graph import NodeProcesses
from ros_testing import wait_for

HALL = {'name': 'hall', 'plan': {'shoebox': {'width_m': 9.0, 'length_m': 7.0}},
        'height_m': 3.5, 'materials': {'walls': 'painted_concrete', 'floor': 'vinyl',
                                       'ceiling': 'painted_plaster'}}


def test_a_hall_too_large_for_the_rate_is_warned_of(ros_env, recorder, tmp_path):
    room_file = tmp_path / 'hall.yaml'
    room_file.write_text(yaml.safe_dump(HALL))
    supported_hz = max_frame_rate_hz(room_from_dict(HALL), Chirp())
    assert 17.0 < supported_hz < 19.0
    # Transient local, as rosout publishes: a warning logged at start-up, before discovery,
    # still arrives.
    recorder.subscribe(Log, '/rosout', qos_profile_rosout_default)
    specs = tuple(s for s in GRAPH if s.name == 'driver')
    with NodeProcesses(specs=specs, env=ros_env, log_dir=tmp_path,
                       overrides={'driver': {'room': str(room_file), 'rate_hz': 25.0}}):
        expected = (f'rate_hz=25.0 is more than the {supported_hz:.1f} Hz room \'hall\' '
                    'supports with one chirp in flight')
        assert wait_for(lambda: any(
            m.name == 'driver' and m.level == Log.WARN and m.msg.startswith(expected)
            for _, m in recorder.get('/rosout')), timeout_s=20.0), [
                m.msg for _, m in recorder.get('/rosout')]
