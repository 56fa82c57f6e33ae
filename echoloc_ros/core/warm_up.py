"""Synthetic frames that warm a node's code before its first real frame.

A process pays for its compiled code when it first runs it (numba loads each kernel from its
cache, torch and scipy build their plans and tables, the echo processor builds its reference
for the chirp and sample rate): 0.3 s of a node's first frame at low load, over a second on a
busy CPU, during which the frames behind it are overtaken and dropped. The nodes run a frame
made here through the same code at start-up instead (``warm_up``: the echo processor's
:meth:`~echoloc_ros.core.echo_processing.EchoProcessor.process`, the localizer's
:meth:`~echoloc_ros.core.pipeline.Pipeline.warm_up`).

The frame is the ping through the array's transducers at the direct path's delays and at the
delays of the room's first- and second-order echoes from a pose in the room, as the physics
model predicts them, with seeded noise: enough like a real frame that the search, the fits and
the network run the paths a real frame takes. Nothing of it is kept: its results are thrown
away and the state it touched reset, so a warmed node's outputs for the real frames are those
of a cold one, to the bit (test/core/test_warm_up.py).
"""

import numpy as np
from scipy import fft as sfft

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.array_calibration import ArrayCalibration
from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor
from echoloc_ros.core.frame_rate import echo_window_s

# The direct arrival's peak at this fraction of int16 full scale (a front end's fixed gain).
DIRECT_PEAK_COUNTS = 16000.0
# Noise standard deviation relative to the strongest echo's peak, in the raw samples.
NOISE_RELATIVE = 0.05
# A processor that knows no room warms with a frame this long (a 6 m room's window), s.
DEFAULT_WINDOW_S = 0.04
# The height the localizer's synthetic frame is heard from, m (a robot's array).
HEIGHT_M = 0.3


def synthetic_samples(processor: EchoProcessor, n_samples: int, delays_s: np.ndarray,
                      amplitudes: np.ndarray, seed: int = 0) -> np.ndarray:
    """A frame in which the processor's ping, through its array's transducers, arrives at
    ``delays_s`` with ``amplitudes`` on each channel, plus seeded Gaussian noise.

    :param n_samples: samples per channel, from emission.
    :param delays_s: ``(n_channels, n_paths)``, s; path 0 is the direct one.
    :param amplitudes: ``(n_channels, n_paths)``, relative; the direct path's peak is scaled
        to :data:`DIRECT_PEAK_COUNTS`.
    :return: int16 ``(n_channels, n_samples)``.
    """
    fs_hz = processor.fs_hz
    ping = processor.chirp.samples(fs_hz)
    n_fft = sfft.next_fast_len(n_samples + ping.size)
    freq = np.fft.rfftfreq(n_fft, 1.0 / fs_hz)
    reference = np.fft.rfft(ping, n_fft)
    if processor.array is not None:
        reference = reference * processor.array.transducer_response(freq) ** 2
    phases = np.exp(-2j * np.pi * freq[None, None] * delays_s[..., None])
    spectrum = reference * np.sum(amplitudes[..., None] * phases, axis=1)
    clean = np.fft.irfft(spectrum, n_fft, axis=1)[:, :n_samples]
    direct = np.fft.irfft(reference * phases[:, 0] * amplitudes[:, :1], n_fft, axis=1)
    clean *= DIRECT_PEAK_COUNTS / np.max(np.abs(direct))
    # Without echoes, noise 60 dB under the direct peak.
    echoes = np.max(np.abs(amplitudes[:, 1:]), initial=0.02) / np.max(np.abs(amplitudes[:, 0]))
    noise_std = NOISE_RELATIVE * echoes * DIRECT_PEAK_COUNTS
    noisy = clean + np.random.default_rng(seed).normal(0.0, noise_std, clean.shape)
    return np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)


def direct_delays_s(processor: EchoProcessor, temperature_c: float = 20.0) -> np.ndarray:
    """The emitter-to-receiver path's delay per channel ``(n_channels,)``, s (1 ms when the
    processor knows no array: its one channel)."""
    if processor.array is None:
        return np.array([1e-3])
    array = processor.array
    distance_m = np.linalg.norm(array.receivers_m - array.emitter_m, axis=1)
    return distance_m / speed_of_sound_mps(temperature_c)


def processor_frame(processor: EchoProcessor, window_s: float = DEFAULT_WINDOW_S,
                    seed: int = 0) -> np.ndarray:
    """A frame for warming ``processor``: the direct path and one echo from a surface 1 m
    away, ``window_s`` long; int16 ``(n_channels, n_samples)``."""
    direct = direct_delays_s(processor)
    echo = direct + 2.0 / speed_of_sound_mps(20.0)
    delays = np.column_stack([direct, echo])
    amplitudes = np.column_stack([np.ones_like(direct), np.full_like(direct, 0.02)])
    n_samples = max(int(np.ceil(window_s * processor.fs_hz)), processor.min_samples)
    return synthetic_samples(processor, n_samples, delays, amplitudes, seed)


def warm_processor(processor: EchoProcessor, calibration: bool = True,
                   window_s: float = DEFAULT_WINDOW_S) -> EchoFeatures:
    """Run :func:`processor_frame`'s frame through ``processor``, and (``calibration``) the
    array calibration's equaliser on it (the processor's first self-calibration loads its
    code too: 0.17 s of CPU, a second of frames later): nothing is kept, the processor's
    calibration is left as it was.

    :return: the frame's features.
    """
    samples = processor_frame(processor, window_s)
    features = processor.process(samples)
    if calibration and processor.array is not None:
        measured = ArrayCalibration(samples[:, :processor.calibration_window], processor.fs_hz, 1)
        measured.equaliser(np.linspace(processor.chirp.f0_hz, processor.chirp.f1_hz, 64),
                           processor.chirp, processor.array)
    return features


def room_features(physics, seed: int = 0) -> tuple[EchoFeatures, float]:
    """Features of a frame heard in the physics localizer's room, from the middle of its plan
    at :data:`HEIGHT_M` with heading 0: the direct path and the room's echoes as the model
    predicts them (furniture left out), processed by the localizer's processor.

    :param physics: a :class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`.
    :return: the features and the room's temperature they were made at (degC).
    """
    processor, room, array = physics.processor, physics.room, physics.array
    temperature_c = room.temperature_c
    n_samples = int(np.ceil(echo_window_s(room, physics.chirp) * processor.fs_hz))
    direct = direct_delays_s(processor, temperature_c)
    # The frame's shape and direct arrival first: the model reads its echoes off a frame.
    bare = processor.process(synthetic_samples(
        processor, n_samples, direct[:, None], np.ones((direct.size, 1)), seed))
    fr = physics.frame(bare, 0.0, temperature_c)
    centre = np.append(room.vertices_m.mean(axis=0), min(HEIGHT_M, physics.z_range_m[1]))
    emitter_m, _ = array.to_world(centre, 0.0)
    tau, amp, heard = physics.room_echoes(fr, np.array([[*emitter_m, 1.0, 0.0]]))
    tau, amp = tau[0][heard[0]].T, amp[0][heard[0]].T                      # (n, P)
    distance_m = np.linalg.norm(array.receivers_m - array.emitter_m, axis=1)
    delays = np.column_stack([direct, tau])
    amplitudes = np.column_stack([1.0 / distance_m, amp])
    samples = synthetic_samples(processor, n_samples, delays, amplitudes, seed)
    return processor.process(samples), temperature_c
