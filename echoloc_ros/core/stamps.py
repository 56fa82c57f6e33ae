"""Messages paired by acquisition stamp, as ROS's message_filters pair them.

message_filters is not in the plain ROS 2 wheels this package installs from, so the two
pairings echoloc needs are here, once: :class:`StampBuffer` (the value nearest a stamp within a
tolerance, e.g. the heading of a frame) and :class:`StampPairs` (two streams whose messages share
exact stamps, e.g. a pose and the ground truth of its frame).
"""
from __future__ import annotations

import bisect
import collections
from typing import Any, Hashable


class StampBuffer:
    """Recent values by stamp, so each frame gets the value at its own acquisition time."""

    def __init__(self, horizon_s: float = 2.0):
        """:param horizon_s: values older than this before the newest one are forgotten."""
        self.horizon_s = horizon_s
        self.times: list[float] = []
        self.values: list[Any] = []

    def add(self, t_s: float, value: Any) -> None:
        """Keep ``value`` stamped ``t_s`` (stamps may come out of order)."""
        i = bisect.bisect(self.times, t_s)
        self.times.insert(i, t_s)
        self.values.insert(i, value)
        cut = bisect.bisect(self.times, self.times[-1] - self.horizon_s)
        del self.times[:cut], self.values[:cut]

    def drop_outside(self, lo_s: float, hi_s: float) -> int:
        """Forget the values stamped outside [lo_s, hi_s]; return how many."""
        lo, hi = bisect.bisect_left(self.times, lo_s), bisect.bisect_right(self.times, hi_s)
        dropped = len(self.times) - (hi - lo)
        self.times, self.values = self.times[lo:hi], self.values[lo:hi]
        return dropped

    def latest_s(self) -> float:
        """Stamp of the newest value, -inf if none."""
        return self.times[-1] if self.times else float('-inf')

    def at(self, t_s: float, tolerance_s: float) -> Any | None:
        """The value stamped nearest ``t_s``, or None if none is within ``tolerance_s``."""
        if not self.times:
            return None
        i = bisect.bisect(self.times, t_s)
        best = min((j for j in (i - 1, i) if 0 <= j < len(self.times)),
                   key=lambda j: abs(self.times[j] - t_s))
        if abs(self.times[best] - t_s) > tolerance_s:
            return None
        return self.values[best]


class StampPairs:
    """Two streams keyed by exact stamp: each pair comes out as soon as both halves are in.

    A half whose partner never comes (a frame the localizer dropped, a pose without truth) is
    forgotten once ``capacity`` newer halves of its stream wait, so memory stays bounded.
    """

    def __init__(self, capacity: int = 256):
        if capacity < 1:
            raise ValueError(f'capacity must be at least 1, got {capacity}')
        self.capacity = capacity
        self._waiting = (collections.OrderedDict(), collections.OrderedDict())

    def add(self, side: int, stamp: Hashable, value: Any) -> tuple[Any, Any] | None:
        """Offer one half; return ``(first, second)`` if its partner was waiting, else None.

        :param side: 0 for the first stream, 1 for the second.
        :param stamp: the acquisition stamp, any exact key such as ``(sec, nanosec)``.
        """
        partner = self._waiting[1 - side].pop(stamp, None)
        if partner is not None:
            return (value, partner) if side == 0 else (partner, value)
        own = self._waiting[side]
        own[stamp] = value
        own.move_to_end(stamp)
        while len(own) > self.capacity:
            own.popitem(last=False)
        return None

    def waiting(self, side: int) -> int:
        """How many halves of stream ``side`` wait for their partner."""
        return len(self._waiting[side])


def paired(first: dict, second: dict) -> list[tuple[Hashable, Any, Any]]:
    """``(stamp, first[stamp], second[stamp])`` for every stamp in both, in stamp order."""
    return [(stamp, first[stamp], second[stamp]) for stamp in sorted(first.keys() & second.keys())]
