"""The localizer's diagnostic tasks called with a status wrapper, as cpu_monitor's tests do."""
import numpy as np

from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.core.pipeline import PipelineCounts
from echoloc_ros.core.track_search import TrackSearch
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.ros.diagnostics import ERROR, OK, WARN, DiagnosticStatusWrapper
from echoloc_ros.nodes.localizer_status import (LocalizerState, localization_status,
                                                model_status)

FIX = Estimate(position_m=np.array([1.0, 2.0, 0.3]), covariance_m2=1e-6 * np.eye(3),
               speed_of_sound_mps=343.4, confidence=0.97, score=0.0, n_echoes=12)


def _values(stat) -> dict[str, str]:
    return {kv.key: kv.value for kv in stat.values}


def test_no_pose_yet_warns_and_failed_frames_are_an_error():
    stat = localization_status(DiagnosticStatusWrapper(), LocalizerState('physics'))
    assert (stat.level, stat.message) == (WARN, 'no pose yet')
    failed = LocalizerState('physics', frames_in=3, frames_failed=3,
                            last_error='frame seq=2: features have 3 channels, array has 4')
    stat = localization_status(DiagnosticStatusWrapper(), failed)
    assert (stat.level, stat.message) == (ERROR, failed.last_error)
    assert _values(stat)['frames failed'] == '3'


def test_localizing_reports_counts_tracker_and_latency():
    tracker = PoseTracker()
    for k in range(5):
        tracker.update(0.04 * k, FIX.position_m, FIX.covariance_m2)
    state = LocalizerState('nn', counts=PipelineCounts(frames=5, gated=1), tracker=tracker,
                           latency_ms=[10.0, 12.0, 30.0], frames_in=6, no_heading=1,
                           last_estimate=FIX)
    stat = localization_status(DiagnosticStatusWrapper(), state)
    assert (stat.level, stat.message) == (OK, 'localizing (nn)')
    values = _values(stat)
    assert values['frames'] == '6' and values['frames without heading'] == '1'
    assert values['estimates gated by tracker'] == '1'
    assert values['tracks held'] == '1' and values['track switches'] == '0'
    assert values['latency p50 (ms)'] == '12.00'
    assert values['confidence'] == '0.97' and values['speed of sound (m/s)'] == '343.40'


def test_slow_frames_a_refused_room_and_a_coasting_track_warn():
    slow = LocalizerState('physics', latency_ms=[50.0] * 20, target_latency_ms=40.0,
                          last_estimate=FIX)
    stat = localization_status(DiagnosticStatusWrapper(), slow)
    assert (stat.level, stat.message) == (WARN, 'latency p95 50.0 ms above target 40 ms')
    refused = LocalizerState('physics', room_error='room on echoloc/room refused: another',
                             last_estimate=FIX)
    stat = localization_status(DiagnosticStatusWrapper(), refused)
    assert (stat.level, stat.message) == (WARN, refused.room_error)
    # A confirmed track, then 2 s of fixes scattered metres away, none of which it takes.
    tracker = PoseTracker()
    for k in range(5):
        tracker.update(0.04 * k, FIX.position_m, FIX.covariance_m2)
    rng = np.random.default_rng(0)
    for k in range(50):
        away = FIX.position_m + rng.uniform(-3.0, 3.0, 3) * [1.0, 1.0, 0.1] + [6.0, 0.0, 0.0]
        tracker.update(0.2 + 0.04 * k, away, FIX.covariance_m2)
    assert tracker.coasting_s > 1.0
    coasting = LocalizerState('physics', tracker=tracker, last_estimate=FIX)
    stat = localization_status(DiagnosticStatusWrapper(), coasting)
    assert stat.level == WARN and stat.message.startswith('pose coasting: no fix has agreed')


def test_model_status_names_the_model_or_the_reason_it_is_not_used():
    counts = PipelineCounts(frames=40, wide_searches=4, wide_kept=1, wide_skipped=2)
    stat = model_status(DiagnosticStatusWrapper(), LocalizerState(
        'nn', counts=counts, model_info='models/default_room.pt (balanced, cpu)',
        last_inference_s=0.0015))
    assert (stat.level, stat.message) == (OK, 'using models/default_room.pt (balanced, cpu)')
    values = _values(stat)
    assert values['network inference (ms)'] == '1.50'
    assert values['frames searched widely'] == '4' and values['wide searches kept'] == '1'
    assert values['doubted frames not searched (wide_search_max_hz)'] == '2'
    error = "model_path '/x.pt' unusable: /x.pt does not exist; using physics"
    stat = model_status(DiagnosticStatusWrapper(), LocalizerState('physics', model_error=error))
    assert (stat.level, stat.message) == (ERROR, error)
    assert _values(stat)['method in use'] == 'physics'


def test_the_track_search_split_is_reported_by_reason():
    # Off (no track search): every count reads 0 and the mode says so.
    stat = localization_status(DiagnosticStatusWrapper(), LocalizerState('physics',
                                                                         last_estimate=FIX))
    values = _values(stat)
    assert values['track search'] == 'off'
    assert values['local fixes'] == '0' and values['full searches'] == '0'
    assert values['local fixes with echoes unexplained'] == '0'
    search = TrackSearch(period_s=2.0)
    search.counts.local, search.counts.full, search.counts.unexplained = 40, 7, 5
    search.counts.verified = 2
    search.counts.skipped.update({'no_track': 3, 'period': 2})
    search.counts.refused.update({'outside_gate': 1, 'doubtful': 1})
    stat = localization_status(DiagnosticStatusWrapper(), LocalizerState(
        'physics', last_estimate=FIX, track_search=search))
    values = _values(stat)
    assert values['track search'] == 'on (full search every 2 s)'
    assert values['local fixes'] == '40' and values['full searches'] == '7'
    assert values['local fixes with echoes unexplained'] == '5'
    assert values["local fixes the period's check put first"] == '2'
    assert values['full searches untried: no_track'] == '3'
    assert values['full searches untried: period'] == '2'
    assert values['local fixes refused: outside_gate'] == '1'
    assert values['local fixes refused: doubtful'] == '1'
    assert values['local fixes refused: evidence'] == '0'
