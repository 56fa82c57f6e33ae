"""The emitted ping: linear FM, hyperbolic FM or a Barker-13 phase code, and its design figures."""

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import signal

KINDS = ('lfm', 'hfm', 'barker')
BARKER_13 = np.array([1, 1, 1, 1, 1, -1, -1, 1, 1, -1, 1, -1, 1], dtype=float)
_RECTANGULAR = ('rect', 'rectangular', 'boxcar', 'none')
# Bounds on a chirp (which a frame on the network describes): an array's ping lasts a few
# ms and sweeps tens of kHz; a 1e6 s chirp would be a 2 TiB reference at 250 kHz.
MAX_DURATION_S = 0.1
MAX_FREQUENCY_HZ = 1e6


@dataclass(frozen=True)
class Chirp:
    """An emitted ping.

    ``kind`` is ``'lfm'`` (linear FM from ``f0_hz`` to ``f1_hz``), ``'hfm'`` (hyperbolic FM: the
    period, not the frequency, sweeps linearly, which makes it Doppler tolerant) or ``'barker'``
    (13-chip Barker BPSK on a carrier at the band centre; the chip rate is ``13 / duration_s``, so
    ``f0_hz``/``f1_hz`` only set the carrier). ``window`` is an amplitude taper accepted by
    :func:`scipy.signal.get_window`, or ``'rect'`` for none.
    """

    kind: str = 'lfm'
    f0_hz: float = 35e3
    f1_hz: float = 45e3
    duration_s: float = 2e-3
    window: str = 'hann'

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f'chirp kind must be one of {KINDS}, got {self.kind!r}')
        for field in ('f0_hz', 'f1_hz', 'duration_s'):
            value = getattr(self, field)
            if not np.isfinite(value) or value <= 0.0:
                raise ValueError(f'chirp {field} must be positive and finite, got {value}')
        if self.duration_s > MAX_DURATION_S:
            raise ValueError(f'chirp duration_s must be at most {MAX_DURATION_S} s, got '
                             f'{self.duration_s}')
        if max(self.f0_hz, self.f1_hz) > MAX_FREQUENCY_HZ:
            raise ValueError(f'chirp f0_hz and f1_hz must be at most {MAX_FREQUENCY_HZ:g} Hz, '
                             f'got {self.f0_hz:g}, {self.f1_hz:g}')
        if self.kind == 'hfm' and self.f0_hz == self.f1_hz:
            raise ValueError(f'hfm chirp needs f0_hz != f1_hz, got {self.f0_hz} for both')
        if self.window not in _RECTANGULAR:
            try:
                signal.get_window(self.window, 8)
            except (ValueError, TypeError) as err:
                raise ValueError(f'unknown chirp window {self.window[:80]!r}: '
                                 f'{str(err)[:200]}') from None

    @property
    def center_hz(self) -> float:
        """Carrier (band centre) frequency in Hz."""
        return 0.5 * (self.f0_hz + self.f1_hz)

    @property
    def bandwidth_hz(self) -> float:
        """Swept bandwidth in Hz (for ``'barker'``: the chip rate ``13 / duration_s``)."""
        if self.kind == 'barker':
            return len(BARKER_13) / self.duration_s
        return abs(self.f1_hz - self.f0_hz)

    def n_samples(self, fs_hz: float) -> int:
        """Number of samples of the ping at ``fs_hz``."""
        return int(round(self.duration_s * fs_hz))

    def samples(self, fs_hz: float) -> np.ndarray:
        """The ping sampled at ``fs_hz``.

        :param fs_hz: sampling rate in Hz; every frequency of the ping must lie below Nyquist.
        :return: float64 array of shape ``(n,)``, ``n = round(duration_s * fs_hz)``, peak 1.
        """
        if not np.isfinite(fs_hz) or fs_hz <= 0.0:
            raise ValueError(f'fs_hz must be positive and finite, got {fs_hz}')
        top_hz = max(self.f0_hz, self.f1_hz) + (0.5 * self.bandwidth_hz
                                                 if self.kind == 'barker' else 0.0)
        if top_hz >= 0.5 * fs_hz:
            raise ValueError(f'chirp reaches {top_hz:.0f} Hz, at or above Nyquist '
                             f'{0.5 * fs_hz:.0f} Hz for fs_hz={fs_hz}')
        n = self.n_samples(fs_hz)
        if n < 16:
            raise ValueError(f'chirp of {self.duration_s} s has only {n} samples at '
                             f'fs_hz={fs_hz}; need at least 16')
        t = np.arange(n) / fs_hz
        duration = n / fs_hz
        if self.kind == 'lfm':
            rate = (self.f1_hz - self.f0_hz) / duration
            phase = 2 * np.pi * (self.f0_hz * t + 0.5 * rate * t ** 2)
            wave = np.cos(phase)
        elif self.kind == 'hfm':
            # f(t) = f0 f1 T / (f1 T - (f1 - f0) t): the period falls linearly in time.
            k = (self.f1_hz - self.f0_hz) / (self.f1_hz * duration)
            phase = -2 * np.pi * self.f0_hz / k * np.log1p(-k * t)
            wave = np.cos(phase)
        else:
            chip = np.minimum((t / duration * len(BARKER_13)).astype(int), len(BARKER_13) - 1)
            wave = BARKER_13[chip] * np.cos(2 * np.pi * self.center_hz * t)
        if self.window not in _RECTANGULAR:
            wave = wave * signal.get_window(self.window, n, fftbins=False)
        return wave / np.max(np.abs(wave))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for YAML, parameters and checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> 'Chirp':
        """Build from :meth:`to_dict` output; unknown keys raise ValueError."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f'unknown chirp fields {sorted(unknown)}; expected a subset of '
                             f'{sorted(cls.__dataclass_fields__)}')
        return cls(**data)


def design_figures(chirp: Chirp, fs_hz: float, speed_of_sound_mps: float) -> dict[str, float]:
    """Figures of merit of a ping.

    :param chirp: the ping.
    :param fs_hz: sampling rate in Hz.
    :param speed_of_sound_mps: speed of sound in m/s.
    :return: ``range_resolution_m`` (c / 2B), ``time_bandwidth``, ``rms_bandwidth_hz`` (about the
        spectral centroid, as in the delay Cramer-Rao bound), ``mainlobe_width_s`` (-3 dB width of
        the autocorrelation envelope) and ``peak_sidelobe_db`` (highest autocorrelation-envelope
        sidelobe outside the main lobe, relative to the peak; negative).
    """
    wave = chirp.samples(fs_hz)
    n_fft = 2 * wave.size
    upsample = 4
    power = np.abs(np.fft.fft(wave, n_fft)) ** 2
    freq = np.fft.fftfreq(n_fft, 1.0 / fs_hz)
    positive = freq > 0
    centroid = np.sum(freq[positive] * power[positive]) / np.sum(power[positive])
    rms_bw = np.sqrt(np.sum((freq[positive] - centroid) ** 2 * power[positive])
                     / np.sum(power[positive]))
    # Autocorrelation envelope from the one-sided (analytic) power spectrum, upsampled by padding.
    analytic = np.zeros(upsample * n_fft, dtype=complex)
    analytic[:n_fft // 2] = np.where(positive[:n_fft // 2], 2.0 * power[:n_fft // 2], 0.0)
    envelope = np.abs(np.fft.ifft(analytic))[:upsample * n_fft // 2]
    envelope /= envelope[0]
    rising = np.flatnonzero(np.diff(envelope) > 0)
    edge = int(rising[0]) if rising.size else envelope.size - 1
    sidelobe = float(np.max(envelope[edge:]))
    half_width_s = np.flatnonzero(envelope < np.sqrt(0.5))[0] / (upsample * fs_hz)
    return {
        'range_resolution_m': speed_of_sound_mps / (2.0 * chirp.bandwidth_hz),
        'time_bandwidth': chirp.duration_s * chirp.bandwidth_hz,
        'rms_bandwidth_hz': float(rms_bw),
        'mainlobe_width_s': float(2.0 * half_width_s),
        'peak_sidelobe_db': float(20.0 * np.log10(max(sidelobe, 1e-12))),
    }
