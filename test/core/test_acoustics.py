"""Speed of sound and ISO 9613-1 air absorption against published values."""

import numpy as np
import pytest

from echoloc_ros.core.acoustics import (air_absorption_db_per_m, speed_of_sound_mps,
                                        temperature_from_speed_c)


def test_speed_of_sound_linear_law():
    assert speed_of_sound_mps(0.0) == pytest.approx(331.3)
    assert speed_of_sound_mps(20.0) == pytest.approx(343.42)
    # +0.18 % per degree around room temperature.
    assert speed_of_sound_mps(21.0) / speed_of_sound_mps(20.0) - 1 == pytest.approx(
        0.00176, abs=1e-5)
    assert temperature_from_speed_c(speed_of_sound_mps(27.5)) == pytest.approx(27.5)


def test_iso9613_at_40khz_matches_design_value():
    # DESIGN.md: 1.32 dB/m at 40 kHz, 20 degC, 50 % RH (pyroomacoustics extrapolates ~0.15).
    assert air_absorption_db_per_m(40e3, 20.0, 50.0) == pytest.approx(1.32, abs=0.01)


def test_iso9613_table_value_at_1khz():
    # ISO 9613-1:1993 Table 1: 4.66 dB/km at 1 kHz, 20 degC, 50 % RH, 101.325 kPa.
    assert air_absorption_db_per_m(1e3, 20.0, 50.0) * 1e3 == pytest.approx(4.66, abs=0.01)


def test_absorption_grows_with_frequency_and_vectorises():
    freq = np.array([20e3, 30e3, 40e3, 50e3])
    alpha = air_absorption_db_per_m(freq, 20.0, 50.0)
    assert alpha.shape == (4,)
    assert np.all(np.diff(alpha) > 0)
    assert alpha[2] == pytest.approx(air_absorption_db_per_m(40e3, 20.0, 50.0))


def test_dry_air_absorbs_less_at_40khz_than_humid():
    # Oxygen relaxation: at 40 kHz absorption rises with humidity from dry air.
    assert air_absorption_db_per_m(40e3, 20.0, 10.0) < air_absorption_db_per_m(40e3, 20.0, 50.0)


@pytest.mark.parametrize('kwargs, bad', [
    (dict(humidity_pct=120.0, temperature_c=20.0), '120'),
    (dict(humidity_pct=50.0, temperature_c=90.0), '90'),
])
def test_bad_air_raises_naming_value(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        air_absorption_db_per_m(40e3, **kwargs)
