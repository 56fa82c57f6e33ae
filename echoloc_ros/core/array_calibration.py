"""Array self-calibration from the frames themselves: the measured direct coupling.

The direct emitter-to-receiver arrival depends on the array, not on its pose: the same samples
open every frame, while the room's echoes move from frame to frame as the array moves. The
median over frames of the first ``window`` samples of each channel is therefore the direct
arrival as the real transducers, channel gains and delays shape it. Subtracting that measured
template (instead of the modelled one) leaves no residual that could pass for an echo, and
comparing its spectrum with the modelled direct arrival gives each channel's equaliser to the
array file's nominal response (:meth:`ArrayCalibration.equaliser`), so the matched filter and
the localizer's point response stay the nominal ones. Echoes inside the window (the floor at
under ~0.4 m) only leave the median when the array's height changes between frames.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from scipy import fft as sfft
from scipy import optimize, signal

from echoloc_ros.core.acoustics import speed_of_sound_mps
from echoloc_ros.core.array_geometry import ArrayGeometry, resonator_response
from echoloc_ros.core.chirp import Chirp

# The direct arrival lasts the ping plus the transducers' ringing; this margin covers the
# ringing of a resonator 9 kHz wide (time constant 35 us) to below -50 dB.
RING_MARGIN_S = 0.4e-3
# The measured response is taken from this long before to this long after its peak: the
# transducers' ringing, not the floor echo of an array 0.12 m or more above the floor.
DIRECT_GATE_S = (0.3e-3, 0.45e-3)
# Regularisation of the division by the nominal direct arrival, relative to its peak power.
NOMINAL_FLOOR = 1e-6
# Regularisation of the equaliser's division, relative to the template's peak power per bin.
EQUALISER_FLOOR = 1e-5
# Speed of sound assumed for the direct paths' few centimetres (10 degC off moves them 0.1 um).
DIRECT_C_MPS = speed_of_sound_mps(20.0)


def window_samples(chirp: Chirp, fs_hz: float, direct_search_s: float) -> int:
    """Samples from emission that hold the whole direct arrival."""
    return int(np.ceil((direct_search_s + chirp.duration_s + RING_MARGIN_S) * fs_hz))


@dataclass
class ArrayCalibration:
    """The measured direct coupling of every channel.

    :ivar template: the direct arrival, counts, from emission ``(n_channels, window)``.
    :ivar fs_hz: sampling rate of the template, Hz.
    :ivar n_frames: frames the median was taken over.
    """

    template: np.ndarray
    fs_hz: float
    n_frames: int

    def __post_init__(self) -> None:
        self.template = np.asarray(self.template, dtype=float)
        if self.template.ndim != 2 or not np.all(np.isfinite(self.template)):
            raise ValueError(f'calibration template must be finite (n_channels, n_samples), '
                             f'got shape {self.template.shape}')

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return self.template.shape[0]

    def equaliser(self, freq_hz: np.ndarray, chirp: Chirp, array: ArrayGeometry
                  ) -> np.ndarray:
        """Per-channel filter that maps each channel's measured response onto the array file's
        nominal one ``(n_channels, n_freq)``: nominal over measured, regularised, with the
        channels' common gain kept.

        :param freq_hz: frequencies (positive), Hz.
        """
        measured = self.response(freq_hz, chirp, array)
        distance = np.linalg.norm(array.receivers_m - array.emitter_m, axis=1)
        expected = _band_weight(freq_hz, chirp)[None] * np.exp(
            -2j * np.pi * freq_hz[None] * (distance / DIRECT_C_MPS)[:, None])
        power = np.abs(measured) ** 2
        ratio = np.sqrt(np.sum(power, axis=1) / np.sum(np.abs(expected) ** 2, axis=1))
        floor = EQUALISER_FLOOR * power.max(axis=1, keepdims=True)
        return np.median(ratio) * expected * np.conj(measured) / (power + floor)

    def response(self, freq_hz: np.ndarray, chirp: Chirp, array: ArrayGeometry) -> np.ndarray:
        """Each channel's direct arrival relative to the nominal one (the ping through two
        nominal transducers), weighted by a smooth band ``(n_channels, n_freq)``.

        The ratio is a near impulse at the direct path's delay, so it is gated in time
        (``DIRECT_GATE_S`` around its peak): an echo that arrives at the same time in every
        frame (the floor, for an array driven at constant height) stays out of it.
        """
        n_fft = sfft.next_fast_len(2 * self.template.shape[1])
        grid = np.fft.rfftfreq(n_fft, 1.0 / self.fs_hz)
        nominal = np.fft.rfft(chirp.samples(self.fs_hz), n_fft) * array.transducer_response(
            grid) ** 2
        inverse = np.conj(nominal) / (np.abs(nominal) ** 2
                                      + NOMINAL_FLOOR * np.max(np.abs(nominal)) ** 2)
        impulse = np.fft.irfft(np.fft.rfft(self.template, n_fft, axis=1) * inverse
                               * _band_weight(grid, chirp), n_fft, axis=1)
        peak = np.argmax(np.abs(signal.hilbert(impulse, axis=1)), axis=1)
        before, after = (int(g * self.fs_hz) for g in DIRECT_GATE_S)
        taper = signal.windows.tukey(before + after, 0.3)
        # One window of lags for all channels (their direct paths differ by a few samples), so
        # the Fourier kernel is computed once.
        lags = np.arange(peak.min() - before, peak.max() + after)
        gate = np.zeros((self.n_channels, lags.size))
        for i, p in enumerate(peak):
            gate[i, p - lags[0] - before:p - lags[0] + after] = taper
        gated = impulse[:, lags % n_fft] * gate
        # Lags past the middle wrap to negative times (a circular deconvolution).
        t = np.where(lags % n_fft >= n_fft // 2, lags % n_fft - n_fft, lags % n_fft)
        # sum_k gated_k z^t_k, z = exp(-2 pi j f / fs), by Horner's rule over each run of
        # consecutive lags (one, unless the window wraps): the lags x frequencies kernel of
        # complex exponentials it replaces took 30 ms of each calibration, this 5 ms.
        z = np.exp(-2j * np.pi * freq_hz / self.fs_hz)
        out = np.zeros((self.n_channels, np.size(freq_hz)), dtype=complex)
        for run in np.split(np.arange(t.size), np.flatnonzero(np.diff(t) != 1) + 1):
            acc = np.zeros_like(out)
            for k in run[::-1]:
                acc *= z
                acc += gated[:, k, None]
            out += acc * np.exp(-2j * np.pi * freq_hz * t[run[0]] / self.fs_hz)
        return out

    def fitted_response(self, chirp: Chirp, array: ArrayGeometry) -> dict[str, np.ndarray]:
        """Effective resonance, bandwidth, delay and gain per channel, fitted to the template as
        the ping through two equal resonators (what the calibration reports).

        :return: ``center_hz``, ``bandwidth_hz``, ``delay_s`` (beyond the drawn geometry) and
            ``gain`` (relative to the channels' median), each ``(n_channels,)``.
        """
        n_fft = 4 * self.template.shape[1]
        freq = np.fft.rfftfreq(n_fft, 1.0 / self.fs_hz)
        band = (freq > chirp.f0_hz) & (freq < chirp.f1_hz) if chirp.f1_hz > chirp.f0_hz else (
            (freq > chirp.f1_hz) & (freq < chirp.f0_hz))
        freq = freq[band]
        ping = np.fft.rfft(chirp.samples(self.fs_hz), n_fft)[band]
        measured = _spectrum_at(self.template, freq, self.fs_hz)
        distance = np.linalg.norm(array.receivers_m - array.emitter_m, axis=1)
        out = {k: np.zeros(self.n_channels) for k in
               ('center_hz', 'bandwidth_hz', 'delay_s', 'gain')}
        for i in range(self.n_channels):
            def residual(p, i=i):
                model = (p[3] * ping * resonator_response(freq, p[0], p[1]) ** 2
                         * np.exp(-2j * np.pi * freq * (distance[i] / DIRECT_C_MPS + p[2])))
                diff = (model - measured[i]) / np.abs(measured[i]).max()
                return np.concatenate([diff.real, diff.imag])
            start = [array.transducer_center_hz, array.transducer_bandwidth_hz, 0.0,
                     np.abs(measured[i]).max() / np.abs(ping).max()]
            fit = optimize.least_squares(residual, start, x_scale=[1e3, 1e3, 1e-6, start[3]])
            for key, value in zip(('center_hz', 'bandwidth_hz', 'delay_s', 'gain'), fit.x):
                out[key][i] = value
        out['gain'] = out['gain'] / np.median(out['gain'])
        return out

    def to_dict(self) -> dict:
        """Plain-dict form (YAML), the inverse of :meth:`from_dict`."""
        return {'fs_hz': self.fs_hz, 'n_frames': self.n_frames,
                'template': np.round(self.template, 2).tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> 'ArrayCalibration':
        """Build from :meth:`to_dict`'s form, naming a missing field."""
        if not isinstance(data, dict):
            raise ValueError(f'array calibration must be a mapping, got {type(data).__name__}')
        missing = {'fs_hz', 'n_frames', 'template'} - set(data)
        if missing:
            raise ValueError(f'array calibration lacks {sorted(missing)}')
        return cls(np.asarray(data['template'], dtype=float), float(data['fs_hz']),
                   int(data['n_frames']))

    def save(self, path: Path, extra: dict | None = None) -> Path:
        """Write the calibration (and ``extra``, e.g. the fitted response) as YAML."""
        path = Path(path)
        path.write_text(yaml.safe_dump({**(extra or {}), **self.to_dict()},
                                       default_flow_style=None, width=99))
        return path

    @classmethod
    def load(cls, path: Path) -> 'ArrayCalibration':
        """Read a file written by :meth:`save`."""
        return cls.from_dict(yaml.safe_load(Path(path).read_text()))


def _band_weight(freq_hz: np.ndarray, chirp: Chirp) -> np.ndarray:
    """A Gaussian over the chirp's band (standard deviation 0.3 of its width): smooth, so the
    measured response stays compact in time."""
    sigma = 0.25 * chirp.bandwidth_hz
    return np.exp(-0.5 * ((freq_hz - chirp.center_hz) / sigma) ** 2)


def _spectrum_at(template: np.ndarray, freq_hz: np.ndarray, fs_hz: float) -> np.ndarray:
    """The template's Fourier transform at ``freq_hz`` ``(n_channels, n_freq)`` (exact, not on
    an rfft grid of the template's own length)."""
    t = np.arange(template.shape[1]) / fs_hz
    return template @ np.exp(-2j * np.pi * t[:, None] * freq_hz[None])


class DirectPathCalibrator:
    """Keeps the array calibration current from the frames as they come.

    :param window: samples of each frame that hold the direct arrival.
    :param min_frames: frames before the first calibration.
    :param max_frames: the median runs over the latest this many frames.
    :param every: after the first (at ``min_frames``), recompute the median every this many
        frames.
    """

    def __init__(self, window: int, fs_hz: float, min_frames: int = 24, max_frames: int = 64,
                 every: int = 8) -> None:
        if not 3 <= min_frames <= max_frames:
            raise ValueError(f'need 3 <= min_frames <= max_frames, got {min_frames}, '
                             f'{max_frames}')
        self.window = int(window)
        self.fs_hz = float(fs_hz)
        self.min_frames = int(min_frames)
        self.max_frames = int(max_frames)
        self.every = int(every)
        self._frames: list[np.ndarray] = []
        self._since = 0
        self.seen = 0

    def add(self, samples: np.ndarray) -> ArrayCalibration | None:
        """Take one frame's first samples; a new calibration when one is due, else ``None``."""
        head = np.asarray(samples[:, :self.window], dtype=np.float32)
        if self._frames and head.shape != self._frames[0].shape:
            # The channel count changed (another array): start again.
            self._frames.clear()
        self._frames.append(head)
        del self._frames[:-self.max_frames]
        self.seen += 1
        self._since += 1
        first = len(self._frames) == self.min_frames and self._since == self.seen
        if len(self._frames) < self.min_frames or (self._since < self.every and not first):
            return None
        self._since = 0
        template = np.median(np.stack(self._frames), axis=0)
        return ArrayCalibration(template, self.fs_hz, len(self._frames))
