"""`echoloc bench`: per-stage latency in-process, then the real graph across processes."""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message
from threadpoolctl import threadpool_limits

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.core.warm_up import warm_processor
from echoloc_ros.sim.sim_array import SimulatedArray
from echoloc_ros.sim.simulator import Scenario
from echoloc_ros.ros import conversions
from echoloc_ros.ros.bag import BagWriter
from echoloc_ros.ros.graph import ONE_PROCESS, ONE_PROCESS_DEFAULT, graph_specs
from echoloc_ros.ros.listener import GraphListener, Spinner
from echoloc_ros.ros.process_graph import NodeProcesses, die_with_parent, isolated_ros_env


def _percentiles_ms(seconds: list[float], levels: tuple[int, ...] = (50, 95)) -> dict:
    ms = 1e3 * np.asarray(seconds)
    return {f'p{q}': round(float(np.percentile(ms, q)), 3) for q in levels}


def bench_stages(n_frames: int = 100, room: str = 'default_room',
                 array: str = 'square_4sensor', seed: int = 0, method: str = 'physics',
                 optimization_level: str = 'balanced', device: str = 'cpu',
                 track_search: bool = True) -> dict:
    """Latency of simulate, process and localize, one frame at a time on this thread (for
    ``nn`` also of the network's forward pass alone): wall time (``*_ms``) and this process's
    CPU time (``*_cpu_ms``, which other work on the machine does not inflate).

    Localize is :meth:`Pipeline.step` as the localizer node runs it: its fixes feed the node's
    tracker (:class:`PoseTracker` with its defaults and the room's volume) and, with
    ``track_search``, a frame the track predicts well is fixed locally
    (:class:`~echoloc_ros.core.track_search.TrackSearch`); the JSON says so (``pipeline``)
    and counts the local fixes and full searches (``local_fixes``, ``full_searches``, why).

    :param device: where the network runs (``nn``): ``'cpu'`` or ``'cuda'``; the result
        names the device that ran it.
    :raises ValueError: ``device`` not usable (no CUDA), or an unusable model.
    """
    room_cfg, array_cfg, chirp, fs_hz = load_room(room), load_array(array), Chirp(), 250e3
    sim = SimulatedArray(room_cfg, array_cfg, chirp, fs_hz, Scenario(snr_db=20.0, seed=seed),
                         seed=seed)
    processor = EchoProcessor(chirp, fs_hz, array=array_cfg)
    pipeline = make_pipeline(method, room_cfg, array_cfg, chirp, fs_hz, processor,
                             optimization_level, device=device,
                             tracker=PoseTracker(room_volume_m3=room_cfg.volume_m3),
                             track_search=track_search)
    times = {'simulate': [], 'process': [], 'localize': []}
    cpu = {'process': [], 'localize': []}
    local = []
    if method == 'nn':
        times['inference'] = []
    errors = []
    # As the nodes hold BLAS to num_threads (1: nodes/common.py). Unlimited, the simulator's
    # large products leave BLAS threads spinning into the next stage, and this process's CPU
    # time counts them: localize read 8 ms a frame where it costs 3.7 on one thread.
    limits = threadpool_limits(limits=1)
    # As the nodes do at start-up (warm_up): the first frame does not load the code.
    warm_processor(processor, calibration=False)
    pipeline.warm_up()
    for i in range(n_frames):
        t0 = time.perf_counter()
        frame = sim.acquire(0.04 * i)
        t1, c1 = time.perf_counter(), time.process_time()
        features = processor.process(frame.samples)
        t2, c2 = time.perf_counter(), time.process_time()
        result = pipeline.step(0.04 * i, features, frame.measured_yaw_rad,
                               temperature_c=room_cfg.temperature_c)
        fix = result.fix
        local.append(result.local)
        t3, c3 = time.perf_counter(), time.process_time()
        times['simulate'].append(t1 - t0)
        times['process'].append(t2 - t1)
        times['localize'].append(t3 - t2)
        cpu['process'].append(c2 - c1)
        cpu['localize'].append(c3 - c2)
        if method == 'nn':
            times['inference'].append(fix.inference_s)
        errors.append(np.linalg.norm(fix.estimate.position_m - frame.position_m))
    limits.restore_original_limits()
    return {'bench': 'stages', 'method': method, 'level': optimization_level, 'room': room,
            'device': pipeline.device, 'frames': n_frames,
            'pipeline': f'tracked, track_search {"on" if track_search else "off"} (as the node)',
            **(pipeline.track_search.counts.as_dict() if pipeline.track_search else {}),
            **{f'{stage}_ms': _percentiles_ms(t) for stage, t in times.items()},
            **{f'{stage}_cpu_ms': _percentiles_ms(t, (50, 95, 99)) for stage, t in cpu.items()},
            # Localize split by the frames' searches (None where none was of that kind).
            **{f'localize_{kind}_cpu_ms': _percentiles_ms(t, (50, 95, 99)) if t else None
               for kind, t in (('local', [c for c, k in zip(cpu['localize'], local) if k]),
                               ('full', [c for c, k in zip(cpu['localize'], local) if not k]))},
            'median_error_cm': round(100 * float(np.median(errors)), 3)}


# What a replayed graph bench records beyond its window: the graph's start-up to its first
# pose, the settling and the diagnostics read around the window, s.
REPLAY_LEAD_S = 20.0


def record_sim_drive(path: Path, duration_s: float, room: str = 'default_room',
                     array: str = 'square_4sensor', rate_hz: float = 25.0,
                     seed: int = 0) -> int:
    """Record the simulated array's drive as the ``sim`` driver publishes it with its shipped
    parameters (20 dB, the default path and heading noise): the echoes, the heading on
    ``imu/data`` and the ground truth, stamped from now at ``rate_hz``, in the layout the
    ``replay`` driver plays (:func:`bench_graph` with ``driver='replay'``).

    :param path: the recording directory to create (must not exist).
    :return: the frames recorded.
    """
    room_cfg, array_cfg, chirp, fs_hz = load_room(room), load_array(array), Chirp(), 250e3
    sim = SimulatedArray(room_cfg, array_cfg, chirp, fs_hz, Scenario(snr_db=20.0, seed=seed),
                         seed=seed)
    topics = (('/imu/data', 'sensor_msgs/msg/Imu'),
              ('/echoloc/ground_truth', 'geometry_msgs/msg/PoseStamped'),
              ('/echoloc/echoes', 'echoloc/msg/EchoFrame'))
    bag = BagWriter(path)
    for topic, msgtype in topics:
        bag.add_topic(topic, msgtype)
    start_ns, n_frames = time.time_ns(), int(np.ceil(duration_s * rate_hz))
    for seq in range(n_frames):
        t_ns = start_ns + round(1e9 * seq / rate_hz)
        stamp = Time(sec=t_ns // 10 ** 9, nanosec=t_ns % 10 ** 9)
        frame = sim.acquire(seq / rate_hz)
        messages = (
            conversions.imu_msg(frame.measured_yaw_rad, sim.heading_noise_rad ** 2, stamp,
                                'echoloc_array'),
            conversions.pose_stamped_msg(frame.position_m, frame.yaw_rad, stamp, 'map'),
            conversions.echo_frame_msg(frame.samples, stamp, 'echoloc_array', seq, array_cfg,
                                       chirp, fs_hz, room_cfg.temperature_c))
        # The heading before its frame, as the sim driver sends them.
        for offset_ns, ((topic, _), msg) in enumerate(zip(topics, messages)):
            bag.write(topic, t_ns + offset_ns, serialize_message(msg))
    bag.close()
    return n_frames


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, s (``/proc/<pid>/stat``)."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces), from field 3: utime and stime
    # are fields 14 and 15.
    fields = stat[stat.rindex(')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _spinners(n: int) -> list[subprocess.Popen]:
    """``n`` processes that each keep a core busy (a pure Python loop) until stopped."""
    return [subprocess.Popen([sys.executable, '-c', 'while True: pass'],
                             preexec_fn=die_with_parent) for _ in range(n)]


def _diagnostic_value(status, key: str) -> str | None:
    for value in status.values if status is not None else ():
        if value.key == key:
            return value.value
    return None


# The localizer's counts of the frames it got no pose for, by cause, in its Localization
# diagnostic (keys), and the names they take in the bench's JSON.
LOCALIZER_CAUSES = (('frames dropped (overtaken)', 'dropped'), ('frames failed', 'failed'),
                    ('frames without heading', 'no_heading'),
                    ('frames without pose: no confirmed track', 'no_confirmed_track'),
                    ('frames without pose: off the echo heading track', 'off_echo_heading'),
                    ('frames without pose: acquiring the heading', 'acquiring_heading'))


# The localizer's counts of local fixes and full searches (its Localization diagnostic's keys)
# and their names in the bench's JSON.
SEARCH_COUNTS = (('local fixes', 'local'), ('full searches', 'full'))


def _count(status, key: str) -> int | None:
    value = _diagnostic_value(status, key)
    return None if value in (None, '') else int(value)


def _ledger(listener: GraphListener, timeout_s: float = 3.0) -> dict | None:
    """The localizer's counts of frames without a pose, by cause, and the seq up to which
    they are complete, from its next Localization diagnostic (sent every second; the last one
    if none comes within ``timeout_s``), with the echo processor's frames not forwarded from
    its newest Frames diagnostic (waited for as long). ``None`` where either node has not reported
    them by then."""
    def latest(suffix: str):
        with listener.lock:
            return next((v for k, v in listener.heard.diagnostics.items()
                         if k.endswith(suffix)), None)
    last = latest('Localization')
    deadline = time.monotonic() + timeout_s
    status, frames = last, latest('echo_processor: Frames')
    # Both nodes report once a second: a window that starts before the echo processor's first
    # Frames diagnostic has been heard waits for it too (it was read as missing: no ledger).
    while (status is last or frames is None) and time.monotonic() < deadline:
        time.sleep(0.02)
        status, frames = latest('Localization'), latest('echo_processor: Frames')
    ledger = {name: _count(status, key) for key, name in LOCALIZER_CAUSES}
    ledger.update(seq=_count(status, 'seq accounted'), poses=_count(status, 'poses published'),
                  echo_processor=_count(frames, 'frames not forwarded'))
    if None in ledger.values():
        return None
    # The track search's split (a localizer without it counts none).
    ledger.update({name: _count(status, key) or 0 for key, name in SEARCH_COUNTS})
    return ledger


def _accounted(heard, start: dict | None, end: dict | None) -> dict | None:
    """The frames of seq after ``start``'s ``seq`` up to ``end``'s, which the localizer's
    counts cover exactly: how many, those with a pose heard here, and the growth of each
    count. ``None`` where a ledger is missing (a node that does not report them)."""
    if start is None or end is None:
        return None
    seqs = range(start['seq'] + 1, end['seq'] + 1)
    in_range = {k for k, v in heard.frames.items() if v[1] in seqs}
    posed = sum(k in heard.poses for k in in_range)
    if in_range:
        # A pose of a frame this listener did not hear (best effort): by its stamp.
        first, last = min(in_range), max(in_range)
        posed += sum(first <= k <= last and k not in heard.frames for k in heard.poses)
    return {'frames': len(seqs), 'posed': posed,
            'counted': {name: end[name] - start[name] for name in end if name != 'seq'}}


def _wait_for_pose(listener: GraphListener, graph: NodeProcesses, timeout_s: float,
                   log_dir: Path) -> None:
    """Until the graph's first pose, or ``RuntimeError`` naming the logs."""
    deadline = time.monotonic() + timeout_s
    while not listener.pose_stamps():
        if time.monotonic() > deadline or graph.exited():
            raise RuntimeError(f'no pose within {timeout_s} s; node logs in {log_dir} '
                               f'(exited: {graph.exited()})')
        time.sleep(0.1)


def _measure(listener: GraphListener, pids: dict[str, int], duration_s: float) -> dict:
    """What the listener heard and each node process used over ``duration_s`` from the next
    localizer diagnostic, and the frames without a pose that its counts cover from then to
    the next one after the window (:func:`_accounted`)."""
    ledger_start = _ledger(listener)
    cpu_start = {name: _cpu_s(pid) for name, pid in pids.items()}
    start = time.time()
    time.sleep(duration_s)
    end = time.time()
    cpu_end = {name: _cpu_s(pid) for name, pid in pids.items()}
    rss = {name: _peak_rss_mb(pid) for name, pid in pids.items()}
    ledger_end = _ledger(listener)
    # The poses of the frames that ledger covers were sent before it: let them arrive.
    time.sleep(0.5)
    with listener.lock:
        heard = listener.heard
        frames = {k: v for k, v in heard.frames.items() if start <= v[0] < end}
        poses = {k: v for k, v in heard.poses.items() if start <= v[0] < end}
        # A frame of the window whose pose arrives just after it (heard by now: the dropped
        # count above waited for the next diagnostic) has a pose, not a drop.
        answered = {k: heard.poses[k] for k in frames if k in heard.poses}
        sent = {k: (heard.sent.get(('frame', k)), heard.sent.get(('pose', k)))
                for k in answered}
        model = next((v for k, v in heard.diagnostics.items()
                      if k.endswith('Neural model')), None)
        accounted = _accounted(heard, ledger_start, ledger_end)
    cpu_s = {name: None if None in (cpu_end[name], cpu_start[name])
             else cpu_end[name] - cpu_start[name] for name in pids}
    return {'start': start, 'end': end, 'cpu_s': cpu_s, 'rss': rss, 'frames': frames,
            'poses': poses, 'answered': answered, 'sent': sent, 'model': model,
            'accounted': accounted}


def _graph_result(window: dict, errors: np.ndarray, method: str, room: str | None,
                  contention: int, duration_s: float) -> dict:
    """The JSON of :func:`bench_graph` from a measured window."""
    start, end, frames, poses = window['start'], window['end'], window['frames'], window['poses']
    answered, sent = window['answered'], window['sent']
    # Each answered frame: when heard, frame to pose as heard here, and as sent (the pose's
    # publication after the frame's, by their DDS source timestamps), where both are known.
    matched = sorted((frames[k][0], answered[k][0] - frames[k][0],
                      None if None in sent.get(k, (None,)) else sent[k][1] - sent[k][0])
                     for k in answered)
    stamp_latency = [v[0] - (k[0] + 1e-9 * k[1]) for k, v in poses.items()]
    seqs = sorted(v[1] for v in frames.values())
    published = (seqs[-1] - seqs[0] + 1) if seqs else 0
    heard_latency = [d for _, d, _ in matched]
    by_sender = matched and all(d is not None for _, _, d in matched)
    matched = [(t, d_sent if by_sender else d) for t, d, d_sent in matched]
    latency = [d for _, d in matched]
    first = [d for t, d in matched if t < start + 10.0]
    last = [d for t, d in matched if t >= end - 10.0]
    growth = (round(1e3 * float(np.median(last) - np.median(first)), 3)
              if first and last and duration_s >= 20.0 else None)
    cpu_s = window['cpu_s']
    # The localizer's process: its own, or the one it shares with the echo processor.
    localizer_s = cpu_s.get('localizer', cpu_s.get(ONE_PROCESS.name))
    processing = [cpu_s.get(name) for name in ('echo_processor', 'localizer', ONE_PROCESS.name)
                  if name in cpu_s]
    return {
        'bench': 'graph', 'method': method, 'room': room,
        'device': _diagnostic_value(window['model'], 'device') if method == 'nn' else 'cpu',
        'contention': contention, 'duration_s': round(end - start, 2),
        'pose_rate_hz': round(len(poses) / (end - start), 2),
        'frame_rate_hz': round(len(frames) / (end - start), 2),
        'cpu_ms_per_frame': {name: round(1e3 * used / published, 3)
                             if published and used is not None else None
                             for name, used in cpu_s.items()},
        'localizer_cpu_ms_per_pose': (round(1e3 * localizer_s / len(poses), 3)
                                      if poses and localizer_s is not None else None),
        # What the budget counts: echo_processor + localizer, in one process or two.
        'processing_cpu_ms_per_frame': (round(1e3 * sum(processing) / published, 3)
                                        if published and None not in processing else None),
        # The same per pose published: fairer where one graph drops more frames unprocessed.
        'processing_cpu_ms_per_pose': (round(1e3 * sum(processing) / len(poses), 3)
                                       if poses and None not in processing else None),
        'frame_to_pose_ms': _percentiles_ms(latency) if latency else None,
        # 'sent': from the frame's publication to its pose's (the publishers' clocks), which
        # this listener's share of the CPU does not shorten; 'heard': arrivals here.
        'frame_to_pose_clock': ('sent' if by_sender else 'heard') if latency else None,
        'frame_to_pose_heard_ms': _percentiles_ms(heard_latency) if heard_latency else None,
        'stamp_to_pose_ms': _percentiles_ms(stamp_latency) if stamp_latency else None,
        'latency_growth_ms': growth,
        'fixes': (None if window['accounted'] is None else
                  {name: window['accounted']['counted'][name] for _, name in SEARCH_COUNTS}),
        'frames_published': published,
        'frames_lost_before_listener': published - len(frames),
        **_without_pose(window['accounted']),
        'median_error_cm': round(100 * float(np.median(errors)), 3) if len(errors) else None,
        'peak_rss_mb': window['rss'],
    }


def _without_pose(accounted: dict | None) -> dict:
    """The frames without a pose of the accounted seqs (:func:`_accounted`: from the
    localizer's first Localization diagnostic in the window to its first after it,
    ``frames_accounted``), as this listener heard them (``frames_without_pose``) and as the
    nodes counted them (``frames_without_pose_counted``, the sum of
    ``frames_without_pose_by_cause``: dropped by the echo processor (frames it never got,
    rejected or withheld) and by the localizer (overtaken), failed, without heading, no
    confirmed track, off the echo heading track, acquiring the heading); the two agree where
    every frame is counted. ``poses_lost_before_listener``: poses the localizer counts as
    published that this listener did not hear. The echo processor's frames not forwarded
    are among the localizer's dropped (a gap in the features' seq), counted at its own report
    (within a second of the localizer's), so the two nodes' split may differ by the frames
    between the reports."""
    if accounted is None:
        return {'frames_accounted': None, 'frames_without_pose': None,
                'frames_without_pose_counted': None, 'frames_without_pose_by_cause': None,
                'poses_lost_before_listener': None,
                'frames_dropped_by_echo_processor': None, 'frames_dropped_by_localizer': None}
    counted = accounted['counted']
    # The echo processor's count is read at its own report, up to a second off the
    # localizer's: a frame it lost may not yet be among the localizer's dropped (a negative
    # split, r32-61). The total is exact; the processor's share is bounded by it.
    upstream = min(counted.pop('echo_processor'), counted['dropped'])
    published = counted.pop('poses')
    causes = {'dropped_by_echo_processor': upstream,
              'dropped_by_localizer': counted['dropped'] - upstream,
              **{name: counted[name] for _, name in LOCALIZER_CAUSES if name != 'dropped'}}
    return {'frames_accounted': accounted['frames'],
            'frames_without_pose': accounted['frames'] - accounted['posed'],
            'frames_without_pose_counted': sum(causes.values()),
            # Published by the localizer, not heard here (where frames_without_pose exceeds
            # the count): the listener's loss, not the graph's.
            'poses_lost_before_listener': published - accounted['posed'],
            'frames_without_pose_by_cause': causes,
            'frames_dropped_by_echo_processor': upstream,
            'frames_dropped_by_localizer': counted['dropped'] - upstream}


def bench_graph(duration_s: float = 20.0, params_file: Path | None = None,
                startup_timeout_s: float = 30.0, method: str = 'physics', contention: int = 0,
                device: str = 'cpu', room: str | None = None, driver: str = 'sim',
                one_process: bool = ONE_PROCESS_DEFAULT, track_search: bool = True) -> dict:
    """Run the graph's nodes as processes and measure what a subscriber sees, and the CPU time
    each node process used per frame over the measured window (``/proc/<pid>/stat``).

    :param contention: this many processes each keep a core busy (pure Python loops, started
        once the graph localizes, stopped at the end) while the graph is measured.
    :param device: the localizer's ``device`` parameter (where the nn runs).
    :param room: the room of every node (``None``: the parameter file's).
    :param driver: ``'sim'``: the driver simulates each frame as it goes (about 10 ms of CPU a
        frame on the same cores as the nodes, which a real array does not cost); ``'replay'``:
        the driver plays a recording of the same drive (:func:`record_sim_drive`, made first,
        the window plus ``REPLAY_LEAD_S``), so the nodes share the CPU and its caches with
        little else. ``stamp_to_pose_ms`` is then ``None`` (the stamps are the recording's).
    :param one_process: the echo processor and the localizer in one process
        (:data:`~echoloc_ros.ros.graph.ONE_PROCESS`, ``cpu_ms_per_frame`` names it), as
        ``echoloc bringup`` runs them by default; ``False``: each a process of its own.
    :param track_search: the localizer's; ``fixes``: its local fixes and full searches.

    ``cpu_ms_per_frame`` divides each node's CPU time by the frames the driver published in
    the window; ``localizer_cpu_ms_per_pose`` divides the localizer's by the poses it
    published (fewer when frames are dropped).

    Frames without a pose, by cause, over the seqs the nodes' counts cover: :func:`_accounted`
    and :func:`_without_pose`.

    Latencies: ``frame_to_pose_ms`` from the raw frame's publication by the driver to its pose's
    by the localizer, by the DDS source timestamps of both (``frame_to_pose_clock``:
    ``'sent'``; where the middleware gives none, ``'heard'``: their arrivals at this listener,
    which a listener starved of CPU under contention hears together, reading too little;
    that figure is ``frame_to_pose_heard_ms`` always), so without the echo window, which a
    real array spends before it sends the frame (the simulator sends at once);
    ``stamp_to_pose_ms`` from the frame's stamp (the simulator's tick, before it computes the
    frame) to the pose's arrival. ``latency_growth_ms``: the median frame-to-pose latency of
    the last 10 s minus that of the first 10 s.
    """
    if driver not in ('sim', 'replay'):
        raise ValueError(f"driver must be 'sim' or 'replay', got {driver!r}")
    domain_id = random.randint(1, 100)
    log_dir = Path(tempfile.mkdtemp(prefix='echoloc-bench-'))
    env = isolated_ros_env(domain_id, log_dir)
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                           'ROS_LOG_DIR')})
    rclpy.init()
    listener = GraphListener('echoloc_bench', frames=True)
    overrides = {'localizer': {'method': method, 'device': device, 'track_search': track_search}}
    if room is not None:
        for node in ('driver', 'localizer', 'furniture_survey'):
            overrides.setdefault(node, {})['room'] = room
    if driver == 'replay':
        recording = log_dir / 'drive'
        record_sim_drive(recording, duration_s + REPLAY_LEAD_S, room or 'default_room')
        overrides.setdefault('driver', {}).update(backend='replay',
                                                  replay_file=str(recording))
    graph = NodeProcesses(specs=graph_specs(one_process), params_file=params_file, env=env,
                          log_dir=log_dir, overrides=overrides)
    busy: list[subprocess.Popen] = []
    try:
        with Spinner(listener), graph:
            _wait_for_pose(listener, graph, startup_timeout_s, log_dir)
            busy = _spinners(contention)
            # Let the spinners and the graph settle before measuring.
            time.sleep(2.0 if contention else 0.0)
            window = _measure(listener, graph.pids(), duration_s)
        errors = listener.errors_m(since_s=window['start'])
    finally:
        for p in busy:
            p.terminate()
        for p in busy:
            p.wait()
        if driver == 'replay':
            shutil.rmtree(log_dir / 'drive', ignore_errors=True)
        listener.destroy_node()
        rclpy.try_shutdown()
    result = _graph_result(window, errors, method, room, contention, duration_s)
    if driver == 'replay':
        result['stamp_to_pose_ms'] = None
    return {**result, 'driver': driver, 'one_process': one_process}
