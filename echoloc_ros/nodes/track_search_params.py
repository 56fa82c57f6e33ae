"""The localizer node's track-search parameters (issue 20): whether a frame may be fixed locally
from the track's prediction (:class:`~echoloc_ros.core.track_search.TrackSearch`), and how
often the full search runs whatever the track says. Both apply live."""

from echoloc_ros.core.pipeline import Pipeline
from echoloc_ros.core.track_search import FULL_SEARCH_PERIOD_S, TrackSearch
from echoloc_ros.nodes.common import declare


def declare_track_search(node, pipeline: Pipeline) -> TrackSearch:
    """Declare ``track_search`` and ``full_search_period_s`` on ``node`` and apply them to
    ``pipeline`` (its :attr:`Pipeline.track_search` is ``None`` while ``track_search`` is
    false); return the track search, whose counts the diagnostics report."""
    search = pipeline.track_search or TrackSearch()

    def set_on(on: bool) -> None:
        # Switched on again, the next frame gets the full search (the track search forgets
        # the last frame).
        search.reset()
        pipeline.track_search = search if on else None

    def set_period(period_s: float) -> None:
        search.period_s = float(period_s)

    search.period_s = float(declare(
        node, 'full_search_period_s', FULL_SEARCH_PERIOD_S, 'with track_search: the full '
        'search\'s candidates check the track at least this often, whatever it predicts, so '
        'that a wrong track cannot lock in (the full search where they put another place '
        'first) [s]; 0: the full search every frame', min_value=0.0, max_value=60.0,
        on_set=set_period))
    set_on(declare(node, 'track_search', True, 'while a confirmed track holds, fix each frame '
                   'locally from its prediction (refined and finished as the full search '
                   'finishes a fix, taken only where every check passes); the full search on '
                   'the other frames and periodically; false: the full search every frame',
                   on_set=set_on))
    return search
