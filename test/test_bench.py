"""echoloc bench's measurements: CPU time read from /proc, the busy processes of a contention
run, and the device the network ran on."""
import os
import time

import numpy as np
import pytest
import torch

from echoloc_ros.offline import bench
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.paths import default_model_path
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.ros.bag import read_messages
from echoloc_ros.ros.conversions import echo_frame_samples, stamp_to_s
from echoloc_ros.ros.listener import Heard
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import Scenario
from ros_testing import wait_for


def test_cpu_time_of_a_process_counts_its_work_not_its_sleep():
    before = bench._cpu_s(os.getpid())
    time.sleep(0.3)
    slept = bench._cpu_s(os.getpid()) - before
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    worked = bench._cpu_s(os.getpid()) - before - slept
    assert slept < 0.1 and 0.25 <= worked < 1.0
    assert bench._cpu_s(2 ** 22 + 12345) is None


def test_contention_processes_each_keep_a_core_busy_until_stopped():
    busy = bench._spinners(2)
    try:
        # However busy the machine, each spinner keeps using CPU while it runs.
        assert wait_for(lambda: all(bench._cpu_s(p.pid) >= 0.2 for p in busy), timeout_s=30.0)
        assert all(p.poll() is None for p in busy)
    finally:
        for p in busy:
            p.terminate()
        for p in busy:
            p.wait(timeout=5.0)
    assert all(p.returncode is not None for p in busy)


def test_nn_on_cuda_runs_there_or_says_clearly_why_not():
    room, array = load_room('default_room'), load_array('square_4sensor')
    if not default_model_path(room.name).is_file():
        pytest.skip('no shipped model for the default room')
    if torch.cuda.is_available():
        assert bench.bench_stages(3, method='nn', device='cuda')['device'] == 'cuda'
        return
    with pytest.raises(ValueError, match='device cuda requested but torch sees no CUDA'):
        bench.bench_stages(3, method='nn', device='cuda')
    # The node's pipeline falls back to physics on the CPU and says why.
    pipeline = make_pipeline('nn', room, array, Chirp(), device='cuda', fallback=True)
    assert (pipeline.method, pipeline.device) == ('physics', 'cpu')
    assert 'no CUDA' in pipeline.model_error
    assert make_pipeline('nn', room, array, Chirp()).device == 'cpu'


def test_the_recorded_drive_is_the_sim_drivers_frames_heading_and_truth(tmp_path):
    n = bench.record_sim_drive(tmp_path / 'drive', 0.5)
    assert n == 13
    messages = list(read_messages(tmp_path / 'drive'))
    topics = [topic for topic, _, _ in messages]
    # Per frame: the heading, the truth, then the echoes, all with the frame's stamp.
    assert topics == ['/imu/data', '/echoloc/ground_truth', '/echoloc/echoes'] * n
    frames = [msg for topic, _, msg in messages if topic == '/echoloc/echoes']
    assert [f.seq for f in frames] == list(range(n))
    stamps = np.array([stamp_to_s(msg.header.stamp) for _, _, msg in messages]).reshape(n, 3)
    assert np.all(stamps == stamps[:, :1])
    assert np.allclose(np.diff(stamps[:, 0]), 0.04, atol=1e-6)
    # The frames the simulator gives for the same seed, in turn, bit for bit.
    room, array, chirp = load_room('default_room'), load_array('square_4sensor'), Chirp()
    sim = SimulatedArray(room, array, chirp, 250e3, Scenario(snr_db=20.0, seed=0), seed=0)
    for i in range(n):
        frame = sim.acquire(i * 0.04)
        assert np.array_equal(echo_frame_samples(frames[i]), frame.samples)
        truth = messages[3 * i + 1][2].pose.position
        assert np.allclose([truth.x, truth.y, truth.z], frame.position_m, atol=1e-12)


def test_an_unknown_driver_is_refused_naming_it():
    with pytest.raises(ValueError, match="driver must be 'sim' or 'replay', got 'serial'"):
        bench.bench_graph(1.0, driver='serial')


def _ledger(seq: int, dropped: int = 0, echo_processor: int = 0, **causes) -> dict:
    """A ledger as bench._ledger reads it from the two nodes' diagnostics."""
    return {**{name: causes.get(name, 0) for _, name in bench.LOCALIZER_CAUSES},
            'dropped': dropped, 'seq': seq, 'echo_processor': echo_processor,
            'poses': causes.get('poses', 0)}


def test_frames_without_pose_are_those_of_the_seqs_the_counts_cover():
    """The counts cover the seqs after the first ledger's up to the second's: a frame of those
    whose pose is heard after the window has a pose; a frame before them (seq 5) or after them
    (seq 10, counted later) is not accounted; a pose whose frame this listener missed (seq 8)
    is found by its stamp."""
    frames = {(0, 5): (9.9, 5), (1, 0): (19.99, 6), (2, 0): (19.995, 7), (4, 0): (20.1, 9),
              (5, 0): (20.2, 10)}
    heard = Heard(frames=frames, poses={(1, 0): (20.01,), (3, 0): (20.05,), (5, 0): (20.3,)})
    accounted = bench._accounted(heard, _ledger(5, dropped=3, echo_processor=1),
                                 _ledger(9, dropped=4, echo_processor=1, no_confirmed_track=1,
                                         poses=2))
    assert accounted['frames'] == 4 and accounted['posed'] == 2
    result = bench._without_pose(accounted)
    assert result['frames_without_pose'] == 2
    assert result['frames_without_pose_counted'] == 2
    assert result['poses_lost_before_listener'] == 0
    assert result['frames_without_pose_by_cause'] == {
        'dropped_by_echo_processor': 0, 'dropped_by_localizer': 1, 'failed': 0,
        'no_heading': 0, 'no_confirmed_track': 1, 'off_echo_heading': 0,
        'acquiring_heading': 0}
    assert bench._accounted(heard, None, _ledger(9)) is None
    assert bench._without_pose(None)['frames_without_pose'] is None


def test_a_processor_count_read_ahead_of_the_localizers_splits_no_frame_negative():
    """The echo processor reported two lost frames that the localizer's report has not yet
    counted as dropped (its report is read up to a second apart): the split between the nodes
    is bounded by the total, which stays the localizer's count (was -2 dropped by the
    localizer)."""
    frames = {(0, 5): (9.9, 5), (1, 0): (19.99, 6), (2, 0): (19.995, 7)}
    heard = Heard(frames=frames, poses={(1, 0): (20.01,), (2, 0): (20.02,)})
    accounted = bench._accounted(heard, _ledger(5, dropped=0, echo_processor=0),
                                 _ledger(7, dropped=0, echo_processor=2, poses=2))
    result = bench._without_pose(accounted)
    causes = result['frames_without_pose_by_cause']
    assert causes['dropped_by_localizer'] == 0 and causes['dropped_by_echo_processor'] == 0
    assert result['frames_without_pose_counted'] == result['frames_without_pose'] == 0


def test_the_window_still_times_a_pose_heard_just_after_it():
    frames = {(1, 0): (19.99, 7), (2, 0): (19.995, 8), (0, 5): (10.0, 6)}
    answered = {(1, 0): (20.01, 0), (0, 5): (10.02, 0)}
    poses = {k: v for k, v in answered.items() if 0.0 <= v[0] < 20.0}
    window = {'start': 0.0, 'end': 20.0, 'cpu_s': {}, 'rss': {}, 'frames': frames,
              'poses': poses, 'answered': answered, 'sent': {}, 'model': None,
              'accounted': None}
    result = bench._graph_result(window, np.zeros(0), 'physics', None, 0, 20.0)
    assert result['frames_published'] == 3
    # No source timestamps: the latencies as heard.
    assert result['frame_to_pose_clock'] == 'heard'
    assert result['frame_to_pose_ms']['p50'] == pytest.approx(20.0)
    assert result['frame_to_pose_heard_ms'] == result['frame_to_pose_ms']
    assert result['pose_rate_hz'] == pytest.approx(1 / 20.0)


def test_frame_to_pose_is_read_from_the_publishers_clocks_not_the_listeners():
    """A listener starved of CPU hears a frame late and its pose at once: frame to pose then
    reads what the publishers' source timestamps say, not the 1 ms between the arrivals. The
    CPU of the two nodes, in one process or two, is the issue's processing figure."""
    frames = {(1, 0): (10.030, 1), (2, 0): (10.070, 2)}
    answered = {(1, 0): (10.031, 0), (2, 0): (10.071, 0)}
    sent = {(1, 0): (10.000, 10.025), (2, 0): (10.040, 10.065)}
    window = {'start': 0.0, 'end': 20.0, 'frames': frames, 'poses': answered,
              'answered': answered, 'sent': sent, 'rss': {}, 'model': None,
              'accounted': None}
    for cpu_s in ({'echo_processor': 0.02, 'localizer': 0.06},
                  {'echo_localizer': 0.08}):
        result = bench._graph_result({**window, 'cpu_s': cpu_s}, np.zeros(0), 'physics',
                                     None, 0, 20.0)
        assert result['frame_to_pose_clock'] == 'sent'
        assert result['frame_to_pose_ms']['p50'] == pytest.approx(25.0)
        assert result['frame_to_pose_heard_ms']['p50'] == pytest.approx(1.0)
        assert result['processing_cpu_ms_per_frame'] == pytest.approx(40.0)
        assert result['processing_cpu_ms_per_pose'] == pytest.approx(40.0)
        assert result['localizer_cpu_ms_per_pose'] == pytest.approx(
            1e3 * cpu_s.get('localizer', 0.08) / 2)


def _status(name: str, values: dict):
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
    return DiagnosticStatus(name=name, values=[KeyValue(key=k, value=str(v))
                                               for k, v in values.items()])


def test_ledger_waits_for_the_echo_processors_first_frames_diagnostic():
    """A window that opens after the localizer's first diagnostic but before the echo
    processor's has been heard waits for it, instead of reading no ledger (a ``null`` frame
    accounting in the bench's JSON)."""
    import threading
    from types import SimpleNamespace
    listener = SimpleNamespace(lock=threading.Lock(), heard=Heard())
    counts = {key: 0 for key, _ in bench.LOCALIZER_CAUSES}
    counts.update({'seq accounted': 7, 'poses published': 7})
    listener.heard.diagnostics['localizer: Localization'] = _status('Localization', counts)

    def report_later():
        # The localizer's next report first, the echo processor's first one after it.
        time.sleep(0.2)
        with listener.lock:
            listener.heard.diagnostics['localizer: Localization'] = _status(
                'Localization', {**counts, 'seq accounted': 32, 'local fixes': 20})
        time.sleep(0.5)
        with listener.lock:
            listener.heard.diagnostics['echo_processor: Frames'] = _status(
                'Frames', {'frames not forwarded': 1})
    reporter = threading.Thread(target=report_later)
    reporter.start()
    ledger = bench._ledger(listener, timeout_s=10.0)
    reporter.join()
    assert ledger is not None
    assert ledger['seq'] == 32 and ledger['echo_processor'] == 1 and ledger['local'] == 20
