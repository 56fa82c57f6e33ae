"""The tracked pose over DDS across gaps in the frames: never outside its covariance, back
within 2 s, and an ERROR (``/health`` 503) while there is no pose to trust."""
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from scipy import stats

from echoloc.msg import EchoFrame
from echoloc_ros.ros import conversions
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator
from echoloc_ros.ros.diagnostics import level_of
from echoloc_ros.ros.graph import GRAPH
from echoloc_ros.ros.process_graph import NodeProcesses
from ros_testing import wait_for
from test_metrics_graph import _free_port, _get, _serve, _stop

TRUTH_M = np.array([2.0, 1.5, 0.3])
YAW_RAD = 0.3
FRAME_PERIOD_S = 0.04
# An honest covariance has 1 pose in 1000 outside its 99.9 % ellipsoid; none in this short
# run may be outside the 99.9999 % one.
CHI2_999_3D = float(stats.chi2.ppf(0.999, 3))
CHI2_999999_3D = float(stats.chi2.ppf(0.999999, 3))


def _frame(samples: np.ndarray, seq: int, t_s: float) -> EchoFrame:
    from builtin_interfaces.msg import Time
    sec = int(t_s)
    stamp = Time(sec=sec, nanosec=int(round((t_s - sec) * 1e9)))
    return conversions.echo_frame_msg(samples, stamp, 'echoloc_array', seq,
                                      load_array('square_4sensor'), Chirp(), 250e3)


def _localization(recorder):
    return [s for _, m in recorder.get('/diagnostics') for s in m.status
            if s.name == 'localizer: Localization']


def test_gaps_of_10_and_300_s_never_publish_a_wrong_pose(ros_env, recorder, tmp_path):
    sim = EchoSimulator(load_room('default_room'), load_array('square_4sensor'), Chirp(),
                        fs_hz=250e3)
    rng = np.random.default_rng(7)
    frames = [sim.simulate(TRUTH_M, YAW_RAD, rng=rng) for _ in range(8)]
    recorder.subscribe(PoseWithCovarianceStamped, '/echoloc/pose',
                       QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
    recorder.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=200))
    pub = recorder.publisher(EchoFrame, '/echoloc/echoes', QoSProfile(depth=50))
    specs = tuple(s for s in GRAPH if s.name in ('echo_processor', 'localizer'))
    overrides = {'localizer': {'heading_source': 'fixed', 'fixed_yaw_rad': YAW_RAD,
                               'publish_markers': False},
                 'echo_processor': {'publish_ranges': False}}
    port = _free_port()
    server = _serve(ros_env, port)
    seq = 0
    resumes_s = []

    def run(start_s: float, n: int) -> None:
        nonlocal seq
        for k in range(n):
            pub.publish(_frame(frames[seq % len(frames)], seq, start_s + k * FRAME_PERIOD_S))
            seq += 1
            # About half the stamped rate: the two nodes share a small CPU with the others.
            time.sleep(2 * FRAME_PERIOD_S)

    try:
        with NodeProcesses(specs, env=ros_env, log_dir=tmp_path, overrides=overrides) as graph:
            # Until the first pose: discovery, then a track confirmed.
            t_s = 1000.0
            assert wait_for(lambda: run(t_s, 1) or recorder.get('/echoloc/pose'),
                            timeout_s=60.0), f'no pose; logs in {tmp_path}'
            t_s += seq * FRAME_PERIOD_S
            run(t_s, 40)
            for gap_s in (10.0, 300.0):
                # The frames stop (an unplugged array): nothing is published, and once the
                # last pose is older than tracker_max_coast_s the localizer says so.
                assert wait_for(lambda: any(
                    level_of(s) == 2 and 'no pose for' in s.message
                    for s in _localization(recorder)[-1:]),
                    timeout_s=15.0), [s.message for s in _localization(recorder)[-3:]]
                code, body = _get(f'http://127.0.0.1:{port}/health')
                assert code == 503, body
                t_s += 40 * FRAME_PERIOD_S + gap_s
                resumes_s.append(t_s)
                run(t_s, 75)
            assert wait_for(lambda: _localization(recorder)
                            and level_of(_localization(recorder)[-1]) <= 1, timeout_s=10.0)
            assert not graph.exited()
    finally:
        _stop(server)

    poses = [m for _, m in recorder.get('/echoloc/pose')]
    nees, back = [], {r: [] for r in resumes_s}
    for msg in poses:
        t_s = conversions.stamp_to_s(msg.header.stamp)
        p = msg.pose.pose.position
        error = np.array([p.x, p.y, p.z]) - TRUTH_M
        cov = np.array(msg.pose.covariance).reshape(6, 6)[:3, :3]
        nees.append(float(error @ np.linalg.solve(cov, error)))
        for resume_s in resumes_s:
            if 0.0 <= t_s - resume_s:
                back[resume_s].append((t_s - resume_s, float(np.linalg.norm(error))))
    assert len(poses) >= 100
    assert max(nees) <= CHI2_999999_3D, max(nees)
    assert np.mean(np.array(nees) > CHI2_999_3D) <= 0.01
    for resume_s, after in back.items():
        after = [a for a in after if a[0] < 300.0]
        assert after and after[0][0] <= 0.5, (resume_s, after[:3])
        assert all(err < 0.01 for dt, err in after if dt >= 2.0), after
