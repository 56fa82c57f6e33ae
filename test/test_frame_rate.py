import numpy as np

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.frame_rate import echo_window_s, longest_echo_m, max_frame_rate_hz
from echoloc_ros.core.room import load_room, room_from_dict


def _room(plan, h=3.0):
    return room_from_dict({'name': 'box', 'plan': plan, 'height_m': h,
                           'materials': {'walls': 'brick', 'floor': 'vinyl',
                                         'ceiling': 'painted_plaster'}})


def _shoebox(w, l_, h):
    return _room({'shoebox': {'width_m': w, 'length_m': l_}}, h)


def test_rate_of_a_known_shoebox():
    room, chirp = _shoebox(9.0, 7.0, 3.5), Chirp()
    # The farthest first-order echo: the far wall of the long axis, from the opposite wall.
    assert np.isclose(longest_echo_m(room), 9.0)
    window = 2 * 9.0 / speed_of_sound_mps(10.0) + chirp.duration_s
    assert np.isclose(echo_window_s(room, chirp), window)
    assert np.isclose(max_frame_rate_hz(room, chirp), 1 / window)
    # A large hall cannot chirp at 25 Hz with one chirp in flight; a small office, and the
    # default room (the 25 Hz the driver runs at), can.
    assert max_frame_rate_hz(room, chirp) < 25.0
    assert max_frame_rate_hz(_shoebox(3.5, 3.0, 2.5), chirp) > 25.0
    assert 25.0 < max_frame_rate_hz(load_room('default_room'), chirp) < 27.0


def test_a_diagonal_wall_echoes_from_farther_than_the_plan_is_wide():
    # 8 x 6 m with the north-east corner cut from (8, 4) to (6, 6): from the south-west
    # corner the diagonal wall's foot is its end (6, 6): 12 / sqrt(2) m, more than 8.
    room = _room({'polygon': [[0, 0], [8, 0], [8, 4], [6, 6], [0, 6]]})
    assert np.isclose(longest_echo_m(room), 12 / np.sqrt(2))
    # An L: a wing's far wall is heard only from the wing (not across the notch).
    ell = _room({'polygon': [[0, 0], [6, 0], [6, 2.5], [3, 2.5], [3, 5], [0, 5]]})
    assert np.isclose(longest_echo_m(ell), 6.0)
