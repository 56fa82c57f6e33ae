"""Propagation of sound in air: speed of sound and atmospheric absorption (ISO 9613-1)."""

from functools import lru_cache

import numpy as np

# ISO 9613-1:1993 reference values.
_REFERENCE_PRESSURE_KPA = 101.325
_REFERENCE_TEMPERATURE_K = 293.15
_TRIPLE_POINT_K = 273.16


def speed_of_sound_mps(temperature_c: float | np.ndarray) -> float | np.ndarray:
    """Speed of sound in dry air, linearised around 0 degC.

    :param temperature_c: air temperature in degC.
    :return: speed of sound in m/s (331.3 + 0.606 T).
    """
    return 331.3 + 0.606 * temperature_c


def temperature_from_speed_c(speed_mps: float) -> float:
    """Invert :func:`speed_of_sound_mps`.

    :param speed_mps: speed of sound in m/s.
    :return: air temperature in degC.
    """
    return (float(speed_mps) - 331.3) / 0.606


def air_absorption_db_per_m(freq_hz: float | np.ndarray, temperature_c: float,
                            humidity_pct: float,
                            pressure_kpa: float = _REFERENCE_PRESSURE_KPA) -> float | np.ndarray:
    """Pure-tone atmospheric absorption coefficient after ISO 9613-1:1993, equations (3)-(5), B.1.

    :param freq_hz: frequency in Hz (scalar or array).
    :param temperature_c: air temperature in degC.
    :param humidity_pct: relative humidity in percent (0-100).
    :param pressure_kpa: atmospheric pressure in kPa.
    :return: attenuation in dB/m, same shape as ``freq_hz``.
    """
    if isinstance(freq_hz, float):
        # One tone (the localizer's carrier, every frame): computed once per air.
        return _tone_absorption(freq_hz, float(temperature_c), float(humidity_pct),
                                float(pressure_kpa))
    return _absorption(freq_hz, temperature_c, humidity_pct, pressure_kpa)


@lru_cache(maxsize=64)
def _tone_absorption(freq_hz: float, temperature_c: float, humidity_pct: float,
                     pressure_kpa: float) -> float:
    """:func:`air_absorption_db_per_m` of one frequency, kept for the last airs asked for
    (its twenty numpy scalar operations cost a tenth of the localizer's frame)."""
    return _absorption(freq_hz, temperature_c, humidity_pct, pressure_kpa)


def _absorption(freq_hz: float | np.ndarray, temperature_c: float, humidity_pct: float,
                pressure_kpa: float) -> float | np.ndarray:
    """:func:`air_absorption_db_per_m`, computed."""
    if not 0.0 <= humidity_pct <= 100.0:
        raise ValueError(f'humidity_pct must be in [0, 100], got {humidity_pct}')
    if not -60.0 <= temperature_c <= 60.0:
        raise ValueError(f'temperature_c must be in [-60, 60] degC, got {temperature_c}')
    if pressure_kpa <= 0.0:
        raise ValueError(f'pressure_kpa must be positive, got {pressure_kpa}')
    f = np.asarray(freq_hz, dtype=float)
    t_k = temperature_c + 273.15
    p_rel = pressure_kpa / _REFERENCE_PRESSURE_KPA
    t_rel = t_k / _REFERENCE_TEMPERATURE_K
    # Molar concentration of water vapour from relative humidity (Annex B).
    c_sat = -6.8346 * (_TRIPLE_POINT_K / t_k) ** 1.261 + 4.6151
    h = humidity_pct * 10.0 ** c_sat / p_rel
    fr_o = p_rel * (24.0 + 4.04e4 * h * (0.02 + h) / (0.391 + h))
    fr_n = p_rel * t_rel ** -0.5 * (
        9.0 + 280.0 * h * np.exp(-4.170 * (t_rel ** (-1.0 / 3.0) - 1.0)))
    alpha = 8.686 * f ** 2 * (
        1.84e-11 / p_rel * t_rel ** 0.5
        + t_rel ** -2.5 * (0.01275 * np.exp(-2239.1 / t_k) / (fr_o + f ** 2 / fr_o)
                           + 0.1068 * np.exp(-3352.0 / t_k) / (fr_n + f ** 2 / fr_n)))
    return float(alpha) if alpha.ndim == 0 else alpha
