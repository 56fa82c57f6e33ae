"""`echoloc bench`: per-stage latency in-process, then the real graph across processes."""
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.pipeline import make_pipeline
from echoloc_ros.core.room import load_room
from echoloc_ros.core.sim_array import SimulatedArray
from echoloc_ros.core.simulator import Scenario
from echoloc_ros.listener import GraphListener, Spinner
from echoloc_ros.process_graph import NodeProcesses, isolated_ros_env


def _percentiles_ms(seconds: list[float]) -> dict:
    ms = 1e3 * np.asarray(seconds)
    return {'p50': round(float(np.percentile(ms, 50)), 3),
            'p95': round(float(np.percentile(ms, 95)), 3)}


def bench_stages(n_frames: int = 100, room: str = 'default_room',
                 array: str = 'square_4sensor', seed: int = 0, method: str = 'physics',
                 optimization_level: str = 'balanced') -> dict:
    """Latency of simulate, process and localize, one frame at a time on this thread (for
    ``nn`` also of the network's forward pass alone)."""
    room_cfg, array_cfg, chirp, fs_hz = load_room(room), load_array(array), Chirp(), 250e3
    sim = SimulatedArray(room_cfg, array_cfg, chirp, fs_hz, Scenario(snr_db=20.0, seed=seed),
                         seed=seed)
    processor = EchoProcessor(chirp, fs_hz, array=array_cfg)
    pipeline = make_pipeline(method, room_cfg, array_cfg, chirp, fs_hz, processor,
                             optimization_level)
    times = {'simulate': [], 'process': [], 'localize': []}
    if method == 'nn':
        times['inference'] = []
    errors = []
    for i in range(n_frames):
        t0 = time.perf_counter()
        frame = sim.acquire(0.04 * i)
        t1 = time.perf_counter()
        features = processor.process(frame.samples)
        t2 = time.perf_counter()
        fix = pipeline.step(0.04 * i, features, frame.measured_yaw_rad,
                            temperature_c=room_cfg.temperature_c).fix
        t3 = time.perf_counter()
        times['simulate'].append(t1 - t0)
        times['process'].append(t2 - t1)
        times['localize'].append(t3 - t2)
        if method == 'nn':
            times['inference'].append(fix.inference_s)
        errors.append(np.linalg.norm(fix.estimate.position_m - frame.position_m))
    return {'bench': 'stages', 'method': method, 'level': optimization_level,
            'frames': n_frames,
            **{f'{stage}_ms': _percentiles_ms(t) for stage, t in times.items()},
            'median_error_cm': round(100 * float(np.median(errors)), 3)}


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def bench_graph(duration_s: float = 20.0, params_file: Path | None = None,
                startup_timeout_s: float = 30.0, method: str = 'physics') -> dict:
    """Run the graph's nodes as processes and measure what a subscriber sees."""
    domain_id = random.randint(1, 100)
    log_dir = Path(tempfile.mkdtemp(prefix='echoloc-bench-'))
    env = isolated_ros_env(domain_id, log_dir)
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                           'ROS_LOG_DIR')})
    rclpy.init()
    listener = GraphListener('echoloc_bench', frames=True)
    graph = NodeProcesses(params_file=params_file, env=env, log_dir=log_dir,
                          overrides={'localizer': {'method': method}})
    try:
        with Spinner(listener), graph:
            deadline = time.monotonic() + startup_timeout_s
            while not listener.pose_stamps():
                if time.monotonic() > deadline or graph.exited():
                    raise RuntimeError(f'no pose within {startup_timeout_s} s; node logs in '
                                       f'{log_dir} (exited: {graph.exited()})')
                time.sleep(0.1)
            start = time.time()
            time.sleep(duration_s)
            end = time.time()
            rss = {name: _peak_rss_mb(pid) for name, pid in graph.pids().items()}
            with listener.lock:
                heard = listener.heard
                frames = {k: v for k, v in heard.frames.items() if start <= v[0] < end}
                poses = {k: v for k, v in heard.poses.items() if start <= v[0] < end}
                matched = [poses[k][0] - frames[k][0] for k in frames if k in poses]
                stamp_latency = [v[0] - (k[0] + 1e-9 * k[1]) for k, v in poses.items()]
                seqs = sorted(v[1] for v in frames.values())
        errors = listener.errors_m(since_s=start)
    finally:
        listener.destroy_node()
        rclpy.try_shutdown()
    published = (seqs[-1] - seqs[0] + 1) if seqs else 0
    return {
        'bench': 'graph', 'method': method, 'duration_s': round(end - start, 2),
        'pose_rate_hz': round(len(poses) / (end - start), 2),
        'frame_rate_hz': round(len(frames) / (end - start), 2),
        'frame_to_pose_ms': _percentiles_ms(matched) if matched else None,
        'stamp_to_pose_ms': _percentiles_ms(stamp_latency) if stamp_latency else None,
        'frames_published': published,
        'frames_without_pose': len(frames) - len(matched),
        'frames_lost_before_listener': published - len(frames),
        'median_error_cm': round(100 * float(np.median(errors)), 3) if len(errors) else None,
        'peak_rss_mb': rss,
    }
