"""The localizer node's diagnostic tasks as functions over a small state object (the
cpu_monitor pattern): testable with a status wrapper, without a node."""

import time
from dataclasses import dataclass, field

import numpy as np

from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.pipeline import DOUBTED_WITHHELD, NO_CONFIRMED_TRACK, PipelineCounts
from echoloc_ros.core.track_search import REFUSAL_REASONS, SKIP_REASONS, TrackSearch
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.ros.diagnostics import ERROR, OK, WARN

# The Localization diagnostic warns when the published track has taken no fix for this long.
COASTING_WARN_S = 1.0
# heading_source auto: the IMU is the source while it has given an accepted heading this
# recently (s of wall time), the echoes otherwise. Refusals for longer than this are an ERROR.
IMU_FRESH_S = 1.0


# The causes of a frame localized (or spent acquiring the heading) without a published pose,
# beyond the frames dropped, failed and without heading (the pipeline's
# :attr:`~echoloc_ros.core.pipeline.FrameResult.unpublished` among them).
UNPOSED_CAUSES = (NO_CONFIRMED_TRACK, 'off the echo heading track', 'acquiring the heading',
                  DOUBTED_WITHHELD)


@dataclass
class LocalizerState:
    """What the localizer's diagnostics read, as the node holds it.

    :ivar method: the method in use (``'physics'`` or ``'nn'``).
    :ivar counts: the pipeline's running totals.
    :ivar tracker: the tracker when the node tracks, else ``None``.
    :ivar latency_ms: per-frame latencies since the last report, ms.
    :ivar target_latency_ms: latency p95 above which the report warns, ms.
    :ivar frames_in: feature messages received.
    :ivar frames_failed: frames the localizer could not use.
    :ivar no_heading: frames skipped for want of a heading.
    :ivar frames_dropped: frames never localized, overtaken by a newer one here or upstream
        (gaps in the features' seq).
    :ivar poses_published: frames whose pose was published.
    :ivar unposed: frames localized (or spent acquiring the heading) whose pose was not
        published, by cause.
    :ivar seq_accounted: the newest seq up to which every frame is decided: published, or
        counted in one of the counts of frames without a pose (``None`` before the first).
    :ivar rooms_taken: rooms taken up from the furniture survey.
    :ivar rooms_refused: rooms offered that were not this one.
    :ivar pose_age_s: time since the last pose published, s (``None`` before the first).
    :ivar max_coast_s: a pose older than this is stale (``tracker_max_coast_s``), s.
    :ivar last_error: why the last frame failed ('' if none did).
    :ivar room_error: why the last room offered was refused ('' if it was taken).
    :ivar last_estimate: the last fix, ``None`` before the first.
    :ivar model_info: the network in use, in words ('' for physics).
    :ivar model_error: why the network asked for is not in use ('' if it is).
    :ivar last_inference_s: the network's time on the last frame, s.
    :ivar device: where the network runs (``'cpu'`` or ``'cuda'``; physics: ``'cpu'``).
    :ivar track_search: the track search when it is on (``track_search``), else ``None``.
    """

    method: str
    counts: PipelineCounts = field(default_factory=PipelineCounts)
    tracker: PoseTracker | None = None
    latency_ms: list[float] = field(default_factory=list)
    target_latency_ms: float = 40.0
    frames_in: int = 0
    frames_failed: int = 0
    no_heading: int = 0
    frames_dropped: int = 0
    poses_published: int = 0
    unposed: dict = field(default_factory=dict)
    seq_accounted: int | None = None
    rooms_taken: int = 0
    rooms_refused: int = 0
    pose_age_s: float | None = None
    max_coast_s: float = 2.0
    last_error: str = ''
    room_error: str = ''
    last_estimate: Estimate | None = None
    model_info: str = ''
    model_error: str = ''
    last_inference_s: float = 0.0
    device: str = 'cpu'
    track_search: TrackSearch | None = None


def node_state(node, latency_ms: list[float] | None = None) -> LocalizerState:
    """What the localizer ``node``'s diagnostics read now, with ``latency_ms`` (none if not
    given)."""
    return LocalizerState(
        method=node.active_method, counts=node.pipeline.counts,
        tracker=node.tracker if node.tracking else None, latency_ms=latency_ms or [],
        target_latency_ms=node.target_latency_ms, frames_in=node.frames_in,
        frames_failed=node.frames_failed, no_heading=node.no_heading,
        frames_dropped=node.frames_dropped, poses_published=node.poses_published,
        unposed=dict(node.unposed), seq_accounted=None if node.last_seq is None
        else node.last_seq - len(node.waiting),
        rooms_taken=node.rooms_taken, rooms_refused=node.rooms_refused,
        pose_age_s=None if node.last_pose_monotonic_s is None
        else time.monotonic() - node.last_pose_monotonic_s,
        max_coast_s=node.tracker.max_coast_s, last_error=node.last_error,
        room_error=node.room_error, last_estimate=node.last_estimate,
        model_info=node.model_info, model_error=node.model_error,
        last_inference_s=node.last_inference_s, device=node.pipeline.device,
        track_search=node.pipeline.track_search if node.tracking else None)


def frames_without_pose(state: LocalizerState) -> int:
    """Every frame up to ``seq_accounted`` that got no pose: dropped (overtaken here or lost
    upstream), failed, without heading, or one of :data:`UNPOSED_CAUSES`."""
    return (state.frames_dropped + state.frames_failed + state.no_heading
            + sum(state.unposed.values()))


def localization_status(stat, state: LocalizerState):
    """The Localization task: ERROR before the first fix if frames failed (WARN if none
    came), when the track is lost or the last pose is stale; WARN while no track is confirmed,
    on latency above target, a refused room or a coasting track; else OK. With the counts, the
    tracker's state, the latency and the last fix's confidence.

    :param stat: a ``DiagnosticStatusWrapper``.
    """
    latency = state.latency_ms
    p95 = float(np.percentile(latency, 95)) if latency else 0.0
    tracker = state.tracker
    if state.last_estimate is None:
        stat.summary(ERROR if state.frames_failed else WARN, state.last_error or 'no pose yet')
    elif tracker is not None and tracker.lost:
        stat.summary(ERROR, f'pose lost: no fix for over {tracker.max_coast_s:g} s '
                     '(tracker_max_coast_s); no pose is published until fresh fixes '
                     'confirm a new track')
    elif state.pose_age_s is not None and state.pose_age_s > state.max_coast_s:
        stat.summary(ERROR, f'no pose for {state.pose_age_s:.1f} s: the last one published '
                     'is stale')
    elif tracker is not None and not tracker.initialised:
        stat.summary(WARN, 'acquiring: no track confirmed yet, no pose published')
    elif p95 > state.target_latency_ms:
        stat.summary(WARN, f'latency p95 {p95:.1f} ms above target '
                     f'{state.target_latency_ms:g} ms')
    elif state.room_error:
        stat.summary(WARN, state.room_error)
    elif tracker is not None and tracker.coasting_s > COASTING_WARN_S:
        stat.summary(WARN, f'pose coasting: no fix has agreed with the track for '
                     f'{tracker.coasting_s:.1f} s')
    else:
        stat.summary(OK, f'localizing ({state.method})')
    stat.add('method', state.method)
    stat.add('frames', str(state.frames_in))
    stat.add('frames failed', str(state.frames_failed))
    stat.add('frames dropped (overtaken)', str(state.frames_dropped))
    stat.add('frames without heading', str(state.no_heading))
    for cause in UNPOSED_CAUSES:
        stat.add(f'frames without pose: {cause}', str(state.unposed.get(cause, 0)))
    stat.add('frames without pose', str(frames_without_pose(state)))
    stat.add('poses published', str(state.poses_published))
    stat.add('seq accounted', '' if state.seq_accounted is None else str(state.seq_accounted))
    stat.add('estimates gated by tracker', str(state.counts.gated))
    stat.add('fixes not published (no confirmed track)', str(state.counts.unvouched))
    stat.add('room updates taken', str(state.rooms_taken))
    stat.add('room updates refused', str(state.rooms_refused))
    if tracker is not None:
        stat.add('tracks held', str(tracker.n_tracks))
        stat.add('track switches', str(tracker.switches))
        stat.add('tracks lost (tracker_max_coast_s)', str(tracker.losses))
        stat.add('coasting (s)', f'{tracker.coasting_s:.2f}')
    track_search_status(stat, state.track_search)
    if latency:
        stat.add('latency p50 (ms)', f'{np.percentile(latency, 50):.2f}')
        stat.add('latency p95 (ms)', f'{p95:.2f}')
    if state.last_estimate is not None:
        stat.add('confidence', f'{state.last_estimate.confidence:.2f}')
        stat.add('speed of sound (m/s)', f'{state.last_estimate.speed_of_sound_mps:.2f}')
    return stat


def track_search_status(stat, search: TrackSearch | None) -> None:
    """The Localization task's counts of local fixes (of them, those whose fit left echoes
    unexplained) and full searches (0 with the track search off), and of the full searches by
    why no local fix stood in: not tried
    (:data:`SKIP_REASONS`) or refused (:data:`REFUSAL_REASONS`)."""
    stat.add('track search', 'off' if search is None else
             f'on (full search every {search.period_s:g} s)')
    counts = None if search is None else search.counts
    stat.add('local fixes', str(0 if counts is None else counts.local))
    stat.add('local fixes with echoes unexplained',
             str(0 if counts is None else counts.unexplained))
    stat.add('local fixes the period\'s check put first',
             str(0 if counts is None else counts.verified))
    stat.add('full searches', str(0 if counts is None else counts.full))
    for reason in REFUSAL_REASONS:
        stat.add(f'local fixes refused: {reason}',
                 str(0 if counts is None else counts.refused[reason]))
    for reason in SKIP_REASONS:
        stat.add(f'full searches untried: {reason}',
                 str(0 if counts is None else counts.skipped[reason]))


def heading_status(node) -> tuple[bytes, str]:
    """The heading's part of the Localization diagnostic: level and words, from the
    localizer ``node``'s heading state."""
    now = time.monotonic()
    mode = node.heading_mode()
    since = node.imu_refused_since_mono
    if since is not None and now - since > IMU_FRESH_S and now - node.imu_refused_mono < 1.0:
        return ERROR, (f'heading source bad: every heading on imu/data refused for '
                       f'{now - since:.1f} s (last: {node.last_refusal})'
                       + ('; heading from the echoes' if mode == 'echoes' else ''))
    if node.heading_source == 'imu' and now - node.imu_accepted_mono > IMU_FRESH_S:
        silent_s = now - max(node.imu_accepted_mono, node.started_mono)
        return ERROR, (f'no heading on imu/data for {silent_s:.1f} s (heading_source imu; '
                       'auto would take it from the echoes)')
    if mode != 'echoes':
        return OK, ''
    where = 'no heading on imu/data: ' if node.heading_source == 'auto' else ''
    if not node.echo_heading.locked:
        return WARN, f'{where}acquiring the heading from the echoes'
    mirror = node.echo_heading.mirror_probability
    if mirror > 0.01:
        return WARN, (f'{where}heading from the echoes, {100 * mirror:.0f} % likely to be '
                      'half a turn off with the pose mirrored through the room\'s centre '
                      '(the room is symmetric; an IMU heading settles it); the covariance '
                      'covers both')
    return (WARN if where else OK), f'{where}heading from the echoes'


def heading_fields(stat, node):
    """The heading's values in the Localization diagnostic, from the localizer ``node``."""
    stat.add('heading from', node.heading_mode())
    stat.add('heading acquisitions from the echoes', str(node.echo_heading.acquisitions))
    stat.add('fixes off the echo heading track (not published)',
             str(node.echo_heading.not_followed))
    stat.add('headings refused', str(sum(node.headings_refused.values())))
    for reason, count in sorted(node.headings_refused.items()):
        stat.add(f'headings refused: {reason}', str(count))
    return stat


def model_status(stat, state: LocalizerState):
    """The Neural model task: ERROR with the reason when the network asked for could not be
    used (physics runs instead), else OK naming it; with the wide search's counts.

    :param stat: a ``DiagnosticStatusWrapper``.
    """
    if state.model_error:
        stat.summary(ERROR, state.model_error)
    else:
        stat.summary(OK, f'using {state.model_info}')
    counts = state.counts
    stat.add('method in use', state.method)
    stat.add('device', state.device)
    stat.add('network inference (ms)', f'{1e3 * state.last_inference_s:.2f}')
    stat.add('frames searched widely', str(counts.wide_searches))
    stat.add('wide searches kept', str(counts.wide_kept))
    stat.add('doubted frames not searched (wide_search_max_hz)', str(counts.wide_skipped))
    return stat
