"""Accuracy and latency of the physics localizer on simulated frames."""

import time

import numpy as np
from scipy import stats

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics_localizer import PhysicsLocalizer
from echoloc_ros.core.room import Room
from echoloc_ros.core.simulator import EchoSimulator, Scenario


def error_metrics(errors_m: np.ndarray, inside_95: np.ndarray) -> dict[str, float]:
    """Summary of position errors.

    :param errors_m: Euclidean position errors ``(n,)``, m.
    :param inside_95: whether each truth lay inside the estimate's 95 % ellipsoid ``(n,)``.
    :return: ``median_cm``, ``p95_cm``, ``mean_cm``, ``success_rate_5cm``, ``gross_rate_10cm``,
        ``coverage_95``.
    """
    errors_cm = 100.0 * np.asarray(errors_m, dtype=float)
    return {
        'median_cm': float(np.median(errors_cm)),
        'p95_cm': float(np.percentile(errors_cm, 95)),
        'mean_cm': float(np.mean(errors_cm)),
        'success_rate_5cm': float(np.mean(errors_cm <= 5.0)),
        'gross_rate_10cm': float(np.mean(errors_cm > 10.0)),
        'coverage_95': float(np.mean(inside_95)),
    }


def evaluate_physics(room: Room, array: ArrayGeometry, chirp: Chirp, scenario: Scenario,
                     n: int, seed: int, fs_hz: float = 250e3,
                     assumed_temperature_c: float | None = None,
                     margin_m: float = 0.4,
                     z_range_m: tuple[float, float] = (0.2, 1.2)) -> dict[str, float]:
    """Localize ``n`` random poses and summarise accuracy, honesty and latency.

    Poses are uniform in the room at least ``margin_m`` from walls and furniture, height
    uniform in ``z_range_m``, yaw uniform in [-pi, pi); the yaw is given to the localizer.

    :param room: the room (its file's temperature is what the localizer assumes unless
        ``assumed_temperature_c`` says otherwise; ``scenario.temperature_c`` is the truth).
    :param array: the array.
    :param chirp: the ping.
    :param scenario: SNR, true temperature, gain mismatch, dead channel, clutter.
    :param n: number of poses.
    :param seed: seed of poses and noise.
    :param fs_hz: sampling rate, Hz.
    :param assumed_temperature_c: temperature given to the localizer; ``None`` is the room's.
    :param margin_m: minimum distance of poses from walls and furniture, m.
    :param z_range_m: range of array heights, m.
    :return: :func:`error_metrics` plus ``latency_ms_p50``/``latency_ms_p95`` of the
        localizer and ``simulate_ms_p50``, ``process_ms_p50``, ``n``,
        ``speed_error_mps_median`` and ``confidence_median``.
    """
    if n < 1:
        raise ValueError(f'n must be >= 1, got {n}')
    rng = np.random.default_rng(seed)
    simulator = EchoSimulator(room, array, chirp, fs_hz)
    processor = EchoProcessor(chirp, fs_hz, array=array)
    localizer = PhysicsLocalizer(room, array, chirp, fs_hz, processor=processor)
    chi2_95 = stats.chi2.ppf(0.95, 3)
    true_c = speed_of_sound_mps(room.temperature_c if scenario.temperature_c is None
                                else scenario.temperature_c)
    errors, inside, latency, sim_ms, proc_ms, c_err, confidence = ([] for _ in range(7))
    for _ in range(n):
        position, yaw = room.random_pose(rng, margin_m, z_range_m)
        t0 = time.perf_counter()
        frame = simulator.simulate(position, yaw, scenario, rng)
        t1 = time.perf_counter()
        features = processor.process(frame)
        t2 = time.perf_counter()
        estimate = localizer.localize(features, yaw, assumed_temperature_c)
        t3 = time.perf_counter()
        error = estimate.position_m - position
        errors.append(float(np.linalg.norm(error)))
        inside.append(float(error @ np.linalg.solve(estimate.covariance_m2, error))
                      <= chi2_95)
        sim_ms.append(1e3 * (t1 - t0))
        proc_ms.append(1e3 * (t2 - t1))
        latency.append(1e3 * (t3 - t2))
        c_err.append(abs(estimate.speed_of_sound_mps - true_c))
        confidence.append(estimate.confidence)
    result = error_metrics(np.array(errors), np.array(inside))
    result.update({
        'latency_ms_p50': float(np.percentile(latency, 50)),
        'latency_ms_p95': float(np.percentile(latency, 95)),
        'simulate_ms_p50': float(np.percentile(sim_ms, 50)),
        'simulate_ms_p95': float(np.percentile(sim_ms, 95)),
        'process_ms_p50': float(np.percentile(proc_ms, 50)),
        'process_ms_p95': float(np.percentile(proc_ms, 95)),
        'speed_error_mps_median': float(np.median(c_err)),
        'confidence_median': float(np.median(confidence)),
        'n': n,
    })
    return result
