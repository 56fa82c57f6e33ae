"""The air's temperature a node localizes with: a sensor_msgs/Temperature topic where one is
given and fresh, the ``temperature_c`` parameter otherwise (a part of the localizer node)."""
import time

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Temperature

from echoloc_ros.core.thermometer import Reading, checked_reading
from echoloc_ros.nodes.common import RefusalLog, declare
from echoloc_ros.ros.diagnostics import OK, WARN


class TemperatureInput:
    """Declares ``temperature_topic`` and ``temperature_stale_s`` on ``node`` and, with a
    topic, subscribes to it: :meth:`current` is the temperature each frame uses.

    A reading is checked (:func:`~echoloc_ros.core.thermometer.checked_reading`): NaN or air
    no room holds is refused with its value named in an ERROR (counted; the node keeps the
    last good reading). A reading older than ``temperature_stale_s`` (wall time since it
    arrived) is stale: the parameter is used, with a WARN.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.topic = declare(node, 'temperature_topic', '', 'sensor_msgs/Temperature topic of '
                             'the air\'s temperature, used instead of temperature_c while '
                             'fresh (its variance floored at 0.1 degC); empty: off',
                             read_only=True)
        self.stale_s = declare(node, 'temperature_stale_s', 10.0, 'a reading on '
                               'temperature_topic older than this is stale; temperature_c is '
                               'used, with a WARN [s]', read_only=True, min_value=0.1,
                               max_value=3600.0)
        self.reading: Reading | None = None
        self.received_mono: float | None = None
        self.refused = 0
        self.last_refusal = ''
        self.refusals = RefusalLog(node.get_logger())
        self.was_stale = False
        if self.topic:
            node.create_subscription(Temperature, self.topic, self.on_temperature,
                                     qos_profile_sensor_data)

    def on_temperature(self, msg: Temperature) -> None:
        """Take a reading, or refuse it naming the value."""
        stamp = msg.header.stamp
        try:
            reading = checked_reading(msg.temperature, msg.variance,
                                      stamp.sec + 1e-9 * stamp.nanosec)
        except ValueError as exc:
            self.refused += 1
            self.last_refusal = f'{exc} (on {self.topic})'
            self.refusals.error(f'temperature refused: {self.last_refusal}')
            return
        self.reading, self.received_mono = reading, time.monotonic()

    def age_s(self) -> float | None:
        """Seconds since the last reading taken arrived; ``None``: none yet."""
        return None if self.received_mono is None else time.monotonic() - self.received_mono

    def current(self, parameter_c: float) -> tuple[float, str]:
        """The temperature to localize with, degC, and its source: ``'topic'``,
        ``'parameter'`` (no topic) or ``'parameter (stale topic)'`` (WARN logged once per
        stale spell)."""
        if not self.topic:
            return parameter_c, 'parameter'
        age = self.age_s()
        if age is not None and age <= self.stale_s:
            self.was_stale = False
            return self.reading.temperature_c, 'topic'
        if not self.was_stale:
            self.was_stale = True
            what = 'no reading yet' if age is None else f'last reading {age:.1f} s old'
            self.node.get_logger().warning(
                f'temperature on {self.topic} stale ({what}, limit {self.stale_s} s): using '
                f'parameter temperature_c {parameter_c} degC')
        return parameter_c, 'parameter (stale topic)'

    def status(self, parameter_c: float) -> tuple[bytes, str, list[tuple[str, str]]]:
        """The diagnostic's level, message and fields (source, value, std, age, refused)."""
        value, source = self.current(parameter_c)
        fields = [('temperature source', source if not self.topic
                   else f'{source}: {self.topic}'),
                  ('temperature (C)', f'{value:.2f}')]
        if self.reading is not None:
            fields += [('temperature std (C)', f'{self.reading.std_c:.2f}'),
                       ('temperature age (s)', f'{self.age_s():.1f}')]
        if self.refused:
            fields += [('temperatures refused', str(self.refused)),
                       ('last temperature refused', self.last_refusal)]
        if source.endswith('(stale topic)'):
            return WARN, (f'temperature on {self.topic} stale: using temperature_c '
                          f'{parameter_c} degC'), fields
        return OK, '', fields
