"""The air's temperature from a thermometer: a reading checked, its doubt floored, its age.

The speed of sound is 0.18 % per degC, and the room's scale a calibration measures is only as
good as the temperature it is told: a sensor_msgs/Temperature reading (the localizer node's
``temperature_topic``) replaces the room file's guess where it is fresh. A reading that is
not a number, or outside the air a room can hold, is refused with its value named.
"""

from dataclasses import dataclass

import numpy as np

# Air a room can hold, degC (as a room file's temperature_c).
MIN_AIR_C = -30.0
MAX_AIR_C = 50.0
# The least doubt a reading is taken with (one standard deviation, degC): a sensor that
# states a variance of 0 still reads the air near it, not the whole path's.
MIN_STD_C = 0.1
# A sensor that states no variance (0 means unknown in sensor_msgs/Temperature): a
# thermistor's usual doubt, degC.
UNKNOWN_STD_C = 0.5


@dataclass(frozen=True)
class Reading:
    """One thermometer reading, checked.

    :ivar temperature_c: the air's temperature, degC.
    :ivar std_c: its standard deviation, degC (at least :data:`MIN_STD_C`).
    :ivar t_s: when it was taken, s (the message's stamp, the caller's clock).
    """

    temperature_c: float
    std_c: float
    t_s: float


def checked_reading(temperature_c: float, variance_c2: float, t_s: float) -> Reading:
    """A reading from a sensor_msgs/Temperature's ``temperature`` and ``variance``.

    :param variance_c2: the sensor's variance, degC^2 (0: unknown, :data:`UNKNOWN_STD_C`).
    :raises ValueError: a temperature that is not a finite number within
        [:data:`MIN_AIR_C`, :data:`MAX_AIR_C`], or a variance that is negative or not finite,
        naming the value.
    """
    temperature_c, variance_c2 = float(temperature_c), float(variance_c2)
    if not (np.isfinite(temperature_c) and MIN_AIR_C <= temperature_c <= MAX_AIR_C):
        raise ValueError(f'temperature reading {temperature_c} degC is not air a room holds; '
                         f'expected a finite number in [{MIN_AIR_C}, {MAX_AIR_C}] degC')
    if not (np.isfinite(variance_c2) and variance_c2 >= 0):
        raise ValueError(f'temperature variance {variance_c2} degC^2 is not a variance; '
                         'expected a finite number >= 0 (0: unknown)')
    std = UNKNOWN_STD_C if variance_c2 == 0 else max(float(np.sqrt(variance_c2)), MIN_STD_C)
    return Reading(temperature_c, std, float(t_s))


def thermometer_draw_c(true_c: float, std_c: float, seed: int) -> float:
    """A simulated thermometer's reading of air at ``true_c``: normal about it with standard
    deviation ``std_c`` (degC), drawn from ``seed`` (the model-error seed: one reading per
    world, held for the whole run, as a thermometer's error is).

    :raises ValueError: ``std_c`` negative or not finite.
    """
    if not (np.isfinite(std_c) and std_c >= 0):
        raise ValueError(f'thermometer std {std_c} degC: expected a finite number >= 0')
    return float(true_c + std_c * np.random.default_rng([int(seed), 29]).standard_normal())
