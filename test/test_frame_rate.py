import numpy as np

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.frame_rate import echo_window_s, max_frame_rate_hz, room_diameter_m
from echoloc_ros.core.room import room_from_dict


def _shoebox(w, l_, h):
    return room_from_dict({'name': 'box', 'plan': {'shoebox': {'width_m': w, 'length_m': l_}},
                           'height_m': h, 'materials': {'walls': 'brick', 'floor': 'vinyl',
                                                        'ceiling': 'painted_plaster'}})


def test_rate_of_a_known_shoebox():
    room, chirp = _shoebox(9.0, 7.0, 3.5), Chirp()
    diameter = np.sqrt(9.0**2 + 7.0**2 + 3.5**2)
    assert np.isclose(room_diameter_m(room), diameter)
    window = 2 * diameter / speed_of_sound_mps(10.0) + chirp.duration_s
    assert np.isclose(echo_window_s(room, chirp), window)
    assert np.isclose(max_frame_rate_hz(room, chirp), 1 / window)
    # A large hall cannot chirp at 25 Hz with one chirp in flight; a small office can.
    assert max_frame_rate_hz(room, chirp) < 25.0
    assert max_frame_rate_hz(_shoebox(3.5, 3.0, 2.5), chirp) > 25.0
