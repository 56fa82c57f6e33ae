"""What every localizer offers (:class:`Localizer`) and what one call returns (:class:`Fix`).

The physics localizer and the neural one both implement :class:`Localizer`; the pipeline
(:mod:`echoloc_ros.core.pipeline`) drives either through it, so that the node and the
evaluations run the same code.
"""

from dataclasses import dataclass
from typing import Protocol

from echoloc_ros.core.echo_processing import EchoFeatures
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.room import Room


@dataclass(frozen=True)
class Fix:
    """One call of :meth:`Localizer.fix`: the estimate and how it was reached.

    :ivar estimate: the position fix.
    :ivar doubted: a learned ranker doubted the first proposal (always false for physics).
    :ivar wide: the frame was proposed again by the wide search.
    :ivar wide_kept: the wide search's proposal was the one fixed from.
    :ivar inference_s: time the network's forward passes took, s (0 for physics).
    """

    estimate: Estimate
    doubted: bool = False
    wide: bool = False
    wide_kept: bool = False
    inference_s: float = 0.0


class Localizer(Protocol):
    """A localizer for one room: one frame of echo features and a heading in, a fix out."""

    room: Room
    #: whether the localizer searches again, widely, the frames it doubts.
    wide_search: bool

    def fix(self, features: EchoFeatures, yaw_rad: float, temperature_c: float | None = None,
            yaw_std_rad: float | None = None, wide_search_allowed: bool = True,
            tilt_rad: tuple[float, float] | None = None) -> Fix:
        """Localize one frame.

        :param features: output of :meth:`EchoProcessor.process` for the frame.
        :param yaw_rad: heading of the array given by the robot, rad.
        :param temperature_c: assumed air temperature, degC; ``None``: the room file's.
        :param yaw_std_rad: standard deviation of ``yaw_rad``'s error, rad; ``None``: the
            localizer's default prior; 0: exact.
        :param wide_search_allowed: a doubted frame may be searched widely now (a caller out
            of time for it, such as a node behind its frame rate, says no).
        :param tilt_rad: the array's roll and pitch (an IMU's), rad; ``None``: level.
        :raises ValueError: a frame or heading the localizer cannot use.
        """

    def with_room(self, room: Room) -> 'Localizer':
        """The same localizer for ``room`` as it stands now (its furniture moved)."""
