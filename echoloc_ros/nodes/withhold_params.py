"""The localizer node's ``withhold_doubted`` parameter (issue 19): with ``tracking`` false, a
fix the localizer cannot tell from a rival is not published
(:attr:`~echoloc_ros.core.pipeline.Pipeline.withhold_doubted`). Applies live."""

from echoloc_ros.core.pipeline import Pipeline
from echoloc_ros.core.withhold import WITHHOLD_DOUBTED
from echoloc_ros.nodes.common import declare


def declare_withhold_doubted(node, pipeline: Pipeline) -> None:
    """Declare ``withhold_doubted`` on ``node`` and apply it to ``pipeline``."""
    def set_on(on: bool) -> None:
        pipeline.withhold_doubted = bool(on)

    set_on(declare(node, 'withhold_doubted', WITHHOLD_DOUBTED, 'with tracking false: a fix the '
                   'localizer cannot tell from a rival (confidence 0: its echoes unexplained, '
                   'or a place apart explains them as well; its covariance holds the whole '
                   'room) is not published on echoloc/pose, and is counted (frames without '
                   'pose: doubted fix withheld); with tracking the tracker takes it by its '
                   'covariance', on_set=set_on))
