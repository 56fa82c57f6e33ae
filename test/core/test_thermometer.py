"""A thermometer's reading: checked (NaN and air no room holds named), its doubt floored, and
the simulated one drawn about the truth, one reading per world."""
import numpy as np
import pytest

from echoloc_ros.core.thermometer import (MIN_STD_C, UNKNOWN_STD_C, checked_reading,
                                          thermometer_draw_c)


def test_a_reading_is_taken_with_its_doubt_floored():
    reading = checked_reading(23.5, 0.04, 12.0)
    assert (reading.temperature_c, reading.std_c, reading.t_s) == (23.5, pytest.approx(0.2),
                                                                   12.0)
    assert checked_reading(23.5, 1e-6, 0.0).std_c == MIN_STD_C
    # sensor_msgs/Temperature: a variance of 0 is unknown.
    assert checked_reading(23.5, 0.0, 0.0).std_c == UNKNOWN_STD_C


@pytest.mark.parametrize('value, named', [(float('nan'), 'nan'), (80.0, '80.0'),
                                          (-45.0, '-45.0'), (float('inf'), 'inf')])
def test_a_bad_reading_is_named(value, named):
    with pytest.raises(ValueError, match=rf'temperature reading {named} degC is not air a room '
                                         r'holds; expected a finite number in \[-30.0, 50.0\]'):
        checked_reading(value, 0.01, 0.0)


def test_a_bad_variance_is_named():
    for bad in (-0.1, float('nan')):
        with pytest.raises(ValueError, match=rf'temperature variance {bad} degC\^2 is not a '
                                             'variance'):
            checked_reading(20.0, bad, 0.0)


def test_the_simulated_reading_scatters_about_the_truth_by_its_std():
    draws = np.array([thermometer_draw_c(25.0, 0.5, seed) for seed in range(400)])
    assert thermometer_draw_c(25.0, 0.5, 7) == thermometer_draw_c(25.0, 0.5, 7)
    assert thermometer_draw_c(25.0, 0.0, 7) == 25.0
    # 400 draws: the mean within 4 standard errors, the spread within 15 %.
    assert abs(draws.mean() - 25.0) < 4 * 0.5 / 20
    assert draws.std() == pytest.approx(0.5, rel=0.15)
    with pytest.raises(ValueError, match='thermometer std -1.0 degC'):
        thermometer_draw_c(25.0, -1.0, 0)
