"""The fixed costs of a frame (the echo processor, the localizer's frame) in their faster
forms compute what the slower ones did, to the bit: each against the form it replaced,
written out here."""

import numpy as np
from scipy import fft as sfft

from echoloc_ros.core.echo_processing import DIRECT_RESIDUAL_S, EchoProcessor
from echoloc_ros.core.physics.config import UPSAMPLE
from echoloc_ros.core.physics.matched_filter import upsample

from dev_frames_testing import posed_frames

FS_HZ = 250e3


def _baseband_as_before(processor: EchoProcessor, samples: np.ndarray) -> np.ndarray:
    """The baseband before the direct arrival's removal, as process() made it before: the
    cast and centred frame padded by the transform, the carrier's bins gathered."""
    n_fft, weights, runs, n_bins, correction = processor._plan(samples.shape[1])
    order = np.concatenate([np.arange(first, stop) for first, stop, _ in runs])
    x = samples.astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    spectrum = sfft.rfft(x, n_fft, axis=1)
    return sfft.ifft(spectrum[:, order] * weights, axis=1)[:, :n_bins] * correction


def _residual_db_as_before(processor: EchoProcessor, envelope, times, direct_tof,
                           direct_amp) -> float:
    """The direct arrival's residual over the whole window, as before."""
    heard = np.isfinite(direct_tof) & (direct_amp > 0)
    if not np.any(heard):
        return float('nan')
    tof = np.where(heard, direct_tof, 0.0)
    near = (times[None] < tof[:, None] + DIRECT_RESIDUAL_S) & heard[:, None]
    residual = np.max(np.where(near, envelope, 0.0), axis=1)
    peak = np.where(heard, direct_amp * processor._g_peak, 1.0)
    return float(20.0 * np.log10(max(np.max(residual[heard] / peak[heard]), 1e-12)))


def test_the_transforms_input_and_bins_are_the_gathered_ones(room, simulator, chirp, array):
    """The kept buffer is filled anew by each frame: a frame processed after another (of
    another length too) gives the gathered baseband of its own, to the bit."""
    processor = EchoProcessor(chirp, FS_HZ, array=array)
    frames = posed_frames(room, simulator, 3, 20.0, 41)
    short = frames[0][0][:, :-700]
    for samples in (frames[0][0], frames[1][0], short, frames[2][0], frames[0][0]):
        n_fft = processor._plan(samples.shape[1])[0]
        padded = processor._padded(samples, n_fft)
        x = samples.astype(np.float32)
        x -= x.mean(axis=1, keepdims=True)
        assert np.array_equal(padded[:, :samples.shape[1]], x)
        assert not padded[:, samples.shape[1]:].any()
        features = processor.process(samples, first_echo=False)
        # Undo the direct arrival's removal where it was made: the rest is the transform's.
        expected = _baseband_as_before(processor, samples)
        removed = expected != features.baseband
        assert removed.any() and removed[:, 400:].sum() == 0
        times = features.times_s
        assert (processor._direct_residual_db(features.envelope, times, features.direct_tof_s,
                                              features.direct_amplitude)
                == _residual_db_as_before(processor, features.envelope, times,
                                          features.direct_tof_s, features.direct_amplitude))


def test_the_direct_residual_over_the_first_bins_is_the_whole_windows(processor):
    """Delays anywhere in the window, channels not heard, none heard: the same as over every
    bin."""
    rng = np.random.default_rng(3)
    times = np.arange(2400) * 16e-6
    envelope = rng.random((4, 2400)).astype(np.float32)
    for tof, amp in ((np.array([0.3e-3, 0.31e-3, 0.29e-3, 0.3e-3]), np.ones(4)),
                     (np.array([np.nan, 0.3e-3, 30e-3, 0.3e-3]), np.array([1.0, 0.0, 2.0, 3.0])),
                     (np.array([-1.0, 0.0, 0.1e-3, 0.04]), np.full(4, 0.5)),
                     (np.full(4, np.nan), np.zeros(4))):
        got = processor._direct_residual_db(envelope, times, tof, amp)
        expected = _residual_db_as_before(processor, envelope, times, tof, amp)
        assert got == expected or (np.isnan(got) and np.isnan(expected))


def _upsample_as_before(baseband: np.ndarray) -> np.ndarray:
    n_ch, n_bins = baseband.shape
    n_fft = sfft.next_fast_len(n_bins + 32)
    spectrum = sfft.fft(baseband.astype(np.complex64), n_fft, axis=1)
    padded = np.zeros((n_ch, UPSAMPLE * n_fft), dtype=np.complex64)
    half = n_fft // 2
    padded[:, :half] = spectrum[:, :half]
    padded[:, -(n_fft - half):] = spectrum[:, half:]
    return sfft.ifft(padded, axis=1)[:, :UPSAMPLE * n_bins] * UPSAMPLE


def test_the_upsampling_in_kept_buffers_is_the_padded_ones(room, simulator, processor):
    frames = posed_frames(room, simulator, 2, 10.0, 42)
    basebands = [processor.process(samples, first_echo=False).baseband for samples, _ in frames]
    # Another shape between two of one shape: the buffers follow the shape asked for.
    for baseband in (basebands[0], basebands[1][:3], basebands[1][:, :1500], basebands[1],
                     basebands[0]):
        got = upsample(baseband)
        assert got.dtype == np.complex64 and got.flags.c_contiguous
        assert got.tobytes() == _upsample_as_before(baseband).tobytes()
