"""From raw frames to echo features: band-pass, matched filter, complex baseband, time of flight.

Everything runs in the frequency domain of one real FFT per channel: DC removal, a zero-phase
Butterworth band-pass (its squared magnitude, which is what ``sosfiltfilt`` applies, without the
edge transients), the matched filter against the emitted ping (through the transducers when the
array is known), the analytic signal (positive frequencies only), the mix-down by the carrier and
the decimation (an inverse FFT over the bins around the carrier).

The transforms run in single precision: the features are single precision anyway, an int16
frame is exact in float32, and the transforms' rounding (about 1e-7 of the direct arrival,
some 140 dB under it) is far below any frame's noise; they cost half as much as in double.
"""

from collections import OrderedDict
from dataclasses import dataclass, fields

import numpy as np
from scipy import fft as sfft
from scipy import signal

from echoloc_ros.core.array_calibration import ArrayCalibration, window_samples
from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.delay_fit import direct_residual, fit_delays, subtract_echoes
from echoloc_ros.core.first_echo import OverlapSplitter

# The residual of a mismatched direct-path removal lies within this time after the direct
# arrival (0.15-0.25 ms after it for transducers 1 kHz off); the floor echo of an array 0.1 m
# up arrives 0.4 ms after it.
DIRECT_RESIDUAL_S = 0.3e-3
# A frame whose direct-path residual exceeds this (relative to the direct arrival) is not
# explained by the array model or calibration: the residual would pass for an echo. Measured:
# -64..-78 dB with a matching model at 20 dB SNR, -26 dB with transducers 1 kHz off.
DIRECT_RESIDUAL_LIMIT_DB = -45.0
# FFT plans kept per processor, one per frame length: a stream has one length; a peer sending
# every length must not grow memory without bound.
MAX_PLANS = 2


@dataclass
class EchoFeatures:
    """Matched-filter output of one frame.

    ``baseband[i, m]`` is the analytic matched-filter output of channel i at time
    ``t_m = start_s + m * bin_width_s`` after emission, multiplied by ``exp(-j 2 pi carrier_hz
    t_m)``; an echo of delay tau and amplitude A gives ``A exp(-j 2 pi f_c tau) g(t - tau)`` with
    ``g`` the point response (:meth:`EchoProcessor.point_response`, ``g(0)`` close to 1).
    Amplitudes are in input units (counts) per unit of the reference ping.

    :ivar baseband: complex64 ``(n_channels, n_bins)``, direct arrival removed.
    :ivar envelope: float32 ``(n_channels, n_bins)``, ``abs(baseband)``.
    :ivar bin_width_s: time between bins, s.
    :ivar start_s: time of bin 0 after emission, s.
    :ivar carrier_hz: mix-down frequency, Hz.
    :ivar tof_s: first echo after the direct arrival per channel, peak fit; NaN if none (or
        not looked for: :meth:`EchoProcessor.process` with ``first_echo=False``).
    :ivar tof_cfd_s: the same echo by constant fraction (half height on the leading edge,
        corrected by the point response's own offset so it estimates the delay); NaN if none.
    :ivar snr_db: first echo peak power over the noise floor power per channel; NaN if none.
    :ivar noise_floor: rms of the baseband noise per channel (robust, median based); NaN
        where the first echo was not looked for.
    :ivar direct_tof_s: delay of the direct emitter-to-receiver arrival per channel, s.
    :ivar direct_amplitude: magnitude of the direct arrival per channel.
    :ivar direct_residual_db: what is left, after the direct arrival's removal, in the
        ``DIRECT_RESIDUAL_S`` after it, relative to the direct arrival's peak, dB (the largest
        over channels): near the noise when the removal explains the frame.
    """

    baseband: np.ndarray
    envelope: np.ndarray
    bin_width_s: float
    start_s: float
    carrier_hz: float
    tof_s: np.ndarray
    tof_cfd_s: np.ndarray
    snr_db: np.ndarray
    noise_floor: np.ndarray
    direct_tof_s: np.ndarray
    direct_amplitude: np.ndarray
    direct_residual_db: float = float('nan')

    def channels(self, keep: np.ndarray) -> 'EchoFeatures':
        """These features for the channels where ``keep`` (bool ``(n_channels,)``) is true."""
        return EchoFeatures(**{f.name: getattr(self, f.name)[keep]
                               if isinstance(getattr(self, f.name), np.ndarray)
                               else getattr(self, f.name) for f in fields(self)})

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return self.baseband.shape[0]

    @property
    def times_s(self) -> np.ndarray:
        """Time of every bin after emission ``(n_bins,)``."""
        return self.start_s + self.bin_width_s * np.arange(self.baseband.shape[1])


class EchoProcessor:
    """Matched filtering and echo detection for frames of one ping.

    :param chirp: the emitted ping.
    :param fs_hz: sampling rate, Hz.
    :param decimation: output bins per input samples; the baseband rate ``fs / decimation``
        must cover the band around the carrier.
    :param array: when given, the reference is the ping through both transducers, so echo
        delays come out free of the transducers' group delay.
    :param band_margin_hz: band-pass edges lie this far outside [f0, f1].
    :param filter_order: Butterworth order of the band-pass.
    :param remove_direct: fit and subtract the direct arrival and its sidelobes.
    :param direct_search_s: the direct arrival is the strongest peak before this time.
    :param detection_db: first-echo threshold above the noise floor, dB.
    :param relative_db: the first echo is also at most this far below the strongest one, dB.
    """

    def __init__(self, chirp: Chirp, fs_hz: float = 250e3, decimation: int = 4,
                 array: ArrayGeometry | None = None, band_margin_hz: float = 3e3,
                 filter_order: int = 4, remove_direct: bool = True,
                 direct_search_s: float = 1e-3, detection_db: float = 12.0,
                 relative_db: float = 30.0) -> None:
        if decimation < 1 or int(decimation) != decimation:
            raise ValueError(f'decimation must be a positive integer, got {decimation}')
        self.chirp = chirp
        self.fs_hz = float(fs_hz)
        self.decimation = int(decimation)
        self.array = array
        self.remove_direct = remove_direct
        self.direct_search_s = direct_search_s
        self.detection_db = detection_db
        self.relative_db = relative_db
        self.carrier_hz = chirp.center_hz
        half_band = 0.5 * self.fs_hz / self.decimation
        low = min(chirp.f0_hz, chirp.f1_hz) - band_margin_hz
        high = max(chirp.f0_hz, chirp.f1_hz) + band_margin_hz
        if chirp.kind == 'barker':
            low = chirp.center_hz - chirp.bandwidth_hz - band_margin_hz
            high = chirp.center_hz + chirp.bandwidth_hz + band_margin_hz
        if low <= 0 or high >= 0.5 * self.fs_hz:
            raise ValueError(f'band-pass [{low}, {high}] Hz does not fit in (0, '
                             f'{0.5 * self.fs_hz}) Hz')
        if self.carrier_hz - half_band < 0 or self.carrier_hz + half_band > 0.5 * self.fs_hz:
            raise ValueError(f'decimation {decimation} leaves +-{half_band} Hz around the '
                             f'{self.carrier_hz} Hz carrier, outside (0, fs/2)')
        self._sos = signal.butter(filter_order, [low, high], btype='bandpass', fs=self.fs_hz,
                                  output='sos')
        self._ping = chirp.samples(self.fs_hz)
        self.min_samples = 2 * self._ping.size
        self._plans: OrderedDict[int, tuple] = OrderedDict()
        # The forward transform's input of the last frame (:meth:`_padded`), and its shape.
        self._pad = np.zeros((0, 0), dtype=np.float32)
        self._pad_key: tuple = ()
        self.calibration: ArrayCalibration | None = None
        self._calibrated_plans: dict[int, tuple] = {}
        self._delay_grid_dt = None
        self._delay_grid_table: tuple = ()
        self._build_point_response()
        self._overlap = OverlapSplitter(self.point_response, self._cfd_offset_s)

    @property
    def calibration_window(self) -> int:
        """Samples from emission that hold the direct arrival (what calibration measures)."""
        return window_samples(self.chirp, self.fs_hz, self.direct_search_s)

    def set_calibration(self, calibration: ArrayCalibration | None) -> None:
        """Equalise each channel onto the array file's nominal response with a measured direct
        coupling (:mod:`~echoloc_ros.core.array_calibration`); ``None``: no equaliser.

        :raises ValueError: without an array (the equaliser maps onto its nominal response),
            or at a different sampling rate.
        """
        if calibration is not None:
            if self.array is None:
                raise ValueError('array calibration needs the processor\'s array')
            if calibration.fs_hz != self.fs_hz:
                raise ValueError(f'array calibration was measured at {calibration.fs_hz} Hz; '
                                 f'the processor samples at {self.fs_hz} Hz')
            if calibration.n_channels != self.array.n_receivers:
                raise ValueError(f'array calibration has {calibration.n_channels} channels; '
                                 f'array {self.array.name!r} has {self.array.n_receivers}')
        self.calibration = calibration
        self._calibrated_plans.clear()

    # --------------------------------------------------------------------------- reference
    def _reference(self, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
        """One-sided matched-filter weights ``2 conj(R) |H_bp|^2 / E_r`` on an rfft grid."""
        freq = np.fft.rfftfreq(n_fft, 1.0 / self.fs_hz)
        ref = np.fft.rfft(self._ping, n_fft)
        if self.array is not None:
            ref = ref * self.array.transducer_response(freq) ** 2
        energy = np.sum(np.abs(ref) ** 2) / n_fft * 2.0
        _, bp = signal.sosfreqz(self._sos, worN=freq, fs=self.fs_hz)
        weights = 2.0 * np.conj(ref) * np.abs(bp) ** 2 / energy
        weights[0] = 0.0
        return freq, weights

    def _build_point_response(self) -> None:
        """Tabulate g(u), the baseband output for a unit echo at delay 0, on a fine grid."""
        n_ref = 4 * sfft.next_fast_len(self._ping.size + 512)
        freq, weights = self._reference(n_ref)
        ref = np.fft.rfft(self._ping, n_ref)
        if self.array is not None:
            ref = ref * self.array.transducer_response(freq) ** 2
        spectrum = ref * weights
        upsample = 4
        n_fine = upsample * n_ref
        analytic = np.zeros(n_fine, dtype=complex)
        analytic[:spectrum.size] = spectrum
        acf = np.fft.ifft(analytic) * upsample
        step = 1.0 / (upsample * self.fs_hz)
        lags = np.fft.fftfreq(n_fine, 1.0 / n_fine) * step
        order = np.argsort(lags)
        lags, acf = lags[order], acf[order]
        span = self._ping.size / self.fs_hz + 0.5e-3
        keep = np.abs(lags) <= span
        self._g_step = step
        self._g_start = lags[keep][0]
        self._g = acf[keep] * np.exp(-2j * np.pi * self.carrier_hz * lags[keep])
        envelope = np.abs(self._g)
        peak = int(np.argmax(envelope))
        self._g_peak = float(envelope[peak])
        # Half-height leading-edge offset of the point response, for the constant fraction.
        below = np.flatnonzero(envelope[:peak] < 0.5 * envelope[peak])
        i = below[-1]
        frac = (0.5 * envelope[peak] - envelope[i]) / (envelope[i + 1] - envelope[i])
        self._cfd_offset_s = -(lags[keep][i] + frac * step)

    def point_response(self, u_s: np.ndarray, derivative: bool = False) -> np.ndarray:
        """Baseband output g(u) for a unit echo, at offsets ``u_s`` from its delay (any shape).

        Zero beyond the ping's autocorrelation support.

        :param u_s: offsets from the echo's delay, s.
        :param derivative: also return dg/du (from the same table, piecewise constant).
        :return: g(u), or ``(g(u), dg/du)`` when ``derivative`` is set.
        """
        x = (np.asarray(u_s) - self._g_start) / self._g_step
        i = np.floor(x).astype(np.int64)
        frac = x - i
        valid = (i >= 0) & (i < self._g.size - 1)
        # np.clip's result, without its argument handling (a tenth of a call's cost here).
        i = np.minimum(np.maximum(i, 0), self._g.size - 2)
        lo = self._g[i]
        slope = self._g[i + 1] - lo
        value = np.where(valid, lo + slope * frac, 0.0)
        if not derivative:
            return value
        return value, np.where(valid, slope / self._g_step, 0.0)

    @property
    def mainlobe_half_width_s(self) -> float:
        """Half width of the point response at half height (-6 dB), s."""
        return self._cfd_offset_s

    # --------------------------------------------------------------------------- processing
    def _plan(self, n_samples: int) -> tuple:
        """The transforms' layout for frames of ``n_samples``, built once per length: the FFT
        length, the matched filter's weights on the bins around the carrier (in the inverse
        transform's order), those bins as runs of consecutive ones ``((first, stop, at),
        ...)``, the baseband's bins and the residual carrier's correction."""
        if n_samples in self._plans:
            self._plans.move_to_end(n_samples)
        else:
            d = self.decimation
            # A length the real transform is fast at (5-smooth: pocketfft's real transforms
            # have no radix-7 or -11 pass; at 9643 samples 10800 costs 0.7 of 10560).
            n_fft = 2 * d * sfft.next_fast_len(-(-(n_samples + self._ping.size + 256) // (2 * d)),
                                               real=True)
            freq, weights = self._reference(n_fft)
            m = n_fft // d
            k_c = int(round(self.carrier_hz * n_fft / self.fs_hz))
            bins = np.arange(k_c - m // 2, k_c + m // 2)
            residual_hz = self.carrier_hz - k_c * self.fs_hz / n_fft
            n_bins = -(-n_samples // d)
            times = np.arange(n_bins) * d / self.fs_hz
            correction = np.exp(-2j * np.pi * residual_hz * times) / d
            order = bins[np.fft.ifftshift(np.arange(m))]
            # The bins in the inverse transform's order are two runs of consecutive ones (the
            # carrier's upper half, then its lower): read as slices, not gathered.
            starts = np.flatnonzero(np.diff(order, prepend=order[0] - 2) != 1)
            runs = tuple((int(order[a]), int(order[b - 1]) + 1, int(a))
                         for a, b in zip(starts, np.append(starts[1:], m)))
            self._plans[n_samples] = (n_fft, weights[order].astype(np.complex64), runs, n_bins,
                                      correction.astype(np.complex64))
            while len(self._plans) > MAX_PLANS:
                self._plans.popitem(last=False)
        return self._plans[n_samples]

    def _calibrated_weights(self, n_samples: int) -> np.ndarray:
        """Per-channel weights: the matched filter times the calibration's equaliser."""
        if n_samples not in self._calibrated_plans:
            n_fft, weights, runs, _, _ = self._plan(n_samples)
            bins = np.concatenate([np.arange(first, stop) for first, stop, _ in runs])
            equaliser = self.calibration.equaliser(bins * self.fs_hz / n_fft, self.chirp,
                                                   self.array)
            if len(self._calibrated_plans) >= MAX_PLANS:
                self._calibrated_plans.clear()
            self._calibrated_plans[n_samples] = (weights[None] * equaliser).astype(np.complex64)
        return self._calibrated_plans[n_samples]

    def _validate(self, samples: np.ndarray) -> np.ndarray:
        if not isinstance(samples, np.ndarray):
            samples = np.asarray(samples)
        if samples.size == 0:
            raise ValueError(f'samples is empty (shape {samples.shape})')
        if samples.ndim != 2:
            raise ValueError(f'samples must be 2-D (n_channels, n_samples), got ndim '
                             f'{samples.ndim} with shape {samples.shape}')
        if not (np.issubdtype(samples.dtype, np.integer)
                or np.issubdtype(samples.dtype, np.floating)):
            raise ValueError(f'samples must be integer or float, got dtype {samples.dtype}')
        if self.array is not None and samples.shape[0] != self.array.n_receivers:
            raise ValueError(f'{samples.shape[0]} channels, but array {self.array.name!r} has '
                             f'{self.array.n_receivers} receivers')
        if samples.shape[1] < self.min_samples:
            raise ValueError(f'samples has {samples.shape[1]} samples per channel; need at '
                             f'least {self.min_samples} (twice the ping)')
        if np.issubdtype(samples.dtype, np.floating):
            bad = ~np.isfinite(samples)
            if np.any(bad):
                ch, idx = np.argwhere(bad)[0]
                raise ValueError(f'samples contains {samples[ch, idx]} at channel {ch}, '
                                 f'sample {idx}')
        return samples

    def _padded(self, samples: np.ndarray, n_fft: int) -> np.ndarray:
        """``samples`` in single precision, less each channel's mean, zero-padded to ``n_fft``
        ``(n_channels, n_fft)``: the forward transform's input, written into a buffer kept
        from the last frame of the same shape (its padding stays zero), so that neither the
        cast nor the padding allocates and copies a frame-sized array. One frame at a time."""
        n_ch, n = samples.shape
        if self._pad_key != (n_ch, n, n_fft):
            self._pad = np.zeros((n_ch, n_fft), dtype=np.float32)
            self._pad_key = (n_ch, n, n_fft)
        x = self._pad[:, :n]
        # The same values as samples.astype(np.float32), and as its mean taken and removed.
        x[...] = samples
        x -= x.mean(axis=1, keepdims=True)
        return self._pad

    def process(self, samples: np.ndarray, first_echo: bool = True) -> EchoFeatures:
        """Matched-filter one frame.

        :param samples: ``(n_channels, n_samples)`` int16 or float, sample 0 at emission.
        :param first_echo: also find each channel's first echo and noise floor (``tof_s``,
            ``tof_cfd_s``, ``snr_db``, ``noise_floor``: the range sensors' and the features
            message's fields); false leaves them NaN for a reader of the baseband and the
            direct arrival alone (the localizer: about a third of this call's cost). Every
            other field is the same either way, to the bit.
        :return: :class:`EchoFeatures`.
        """
        samples = self._validate(samples)
        n_ch, n_samples = samples.shape
        n_fft, weights, runs, n_bins, correction = self._plan(n_samples)
        if self.calibration is not None:
            if n_ch != self.calibration.n_channels:
                raise ValueError(f'frame has {n_ch} channels; the array calibration has '
                                 f'{self.calibration.n_channels}')
            weights = self._calibrated_weights(n_samples)
        spectrum = sfft.rfft(self._padded(samples, n_fft), axis=1)
        # The bins around the carrier times the weights, slice by slice (the same products as
        # a gather of the bins), and transformed in place.
        band = np.empty((n_ch, weights.shape[-1]), dtype=np.complex64)
        for first, stop, at in runs:
            np.multiply(spectrum[:, first:stop], weights[..., at:at + stop - first],
                        out=band[:, at:at + stop - first])
        baseband = sfft.ifft(band, axis=1, overwrite_x=True)[:, :n_bins] * correction
        dt = self.decimation / self.fs_hz
        times = np.arange(n_bins) * dt
        direct_tof = np.full(n_ch, np.nan)
        direct_amp = np.zeros(n_ch)
        if self.remove_direct:
            search = max(3, int(self.direct_search_s / dt))
            guess = np.argmax(np.abs(baseband[:, :search]), axis=1) * dt
            tau, amp = self.fit_delays(baseband, times, guess)
            # The response is zero beyond its support: subtract it only on the bins it covers
            # (a tenth of the window; the same result).
            first = max(int(np.floor((np.min(tau) + self._g_start) / dt)), 0)
            last = int(np.ceil((np.max(tau) + self._g_start + self._g.size * self._g_step) / dt))
            subtract_echoes(baseband, times, tau, amp, first, min(last + 1, n_bins), self._g,
                            self._g_start, self._g_step)
            direct_tof, direct_amp = tau, np.abs(amp)
        # |baseband| of the single-precision baseband, as a reader of the features message
        # computes it (conversions.features_from_msg).
        envelope = np.abs(baseband)
        residual_db = self._direct_residual_db(envelope, times, direct_tof, direct_amp)
        if not first_echo:
            unknown = np.full(n_ch, np.nan)
            return EchoFeatures(
                baseband=baseband, envelope=envelope, bin_width_s=dt, start_s=0.0,
                carrier_hz=self.carrier_hz, tof_s=unknown, tof_cfd_s=unknown.copy(),
                snr_db=unknown.copy(), noise_floor=unknown.copy(), direct_tof_s=direct_tof,
                direct_amplitude=direct_amp, direct_residual_db=residual_db)
        # Noise after the direct arrival's main lobe: a suffix of each channel's bins.
        start = np.searchsorted(times, np.nan_to_num(direct_tof, nan=0.0) + self._cfd_offset_s,
                                side='right')
        noise_floor = np.sqrt(np.array([median_square(envelope[i, start[i]:])
                                        for i in range(n_ch)]) / np.log(2.0))
        after = np.arange(n_bins)[None] >= start[:, None]
        tof, tof_cfd, snr = self._first_echo(baseband, envelope, times, after, noise_floor)
        return EchoFeatures(
            baseband=baseband, envelope=envelope, bin_width_s=dt, start_s=0.0,
            carrier_hz=self.carrier_hz, tof_s=tof, tof_cfd_s=tof_cfd, snr_db=snr,
            noise_floor=noise_floor, direct_tof_s=direct_tof, direct_amplitude=direct_amp,
            direct_residual_db=residual_db)

    def _direct_residual_db(self, envelope: np.ndarray, times: np.ndarray,
                            direct_tof: np.ndarray, direct_amp: np.ndarray) -> float:
        """Largest envelope within ``DIRECT_RESIDUAL_S`` after each direct arrival, relative to
        that arrival's peak, dB (max over channels); NaN without a direct arrival."""
        ratio = direct_residual(envelope, times, direct_tof, direct_amp, self._g_peak,
                                DIRECT_RESIDUAL_S)
        return float(20.0 * np.log10(max(ratio, 1e-12)))

    def _delay_grid(self, dt: float) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`fit_delays`' grid at bin spacing ``dt``, tabulated once: the main lobe's half
        width in bins, the delay steps ``(s,)`` over +-1 bin, the conjugate point response at
        every bin of the window for every step ``(w, s)`` and its energy per step ``(s,)``."""
        if self._delay_grid_dt != dt:
            half = int(np.ceil(self._cfd_offset_s / dt)) + 1
            steps = np.arange(-1.0, 1.0 + 1e-9, 1.0 / 16) * dt
            model = self.point_response(np.arange(-half, half + 1)[:, None] * dt - steps)
            self._delay_grid_dt = dt
            self._delay_grid_table = (half, steps, np.conj(model),
                                      np.sum(np.abs(model) ** 2, axis=0))
        return self._delay_grid_table

    def fit_delays(self, baseband: np.ndarray, times_s: np.ndarray,
                   guess_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Delay and complex amplitude of one echo per channel by fitting the point response.

        Least squares of ``A g(t - tau)`` over the main lobe around the envelope peak within two
        bins of ``guess_s``, A free (so only the envelope shape, not the carrier phase, sets
        tau): a grid search over +-1 bin in 1/16 bin steps, then a parabola through the best
        three points.

        :param baseband: ``(n_ch, n_bins)`` complex baseband.
        :param times_s: bin times ``(n_bins,)``.
        :param guess_s: initial delay per channel ``(n_ch,)``; NaN skips the channel.
        :return: ``(tau_s (n_ch,), amplitude (n_ch,) complex)`` where the echo is
            ``amplitude * g(t - tau)``; NaN/0 for skipped channels.
        """
        dt = times_s[1] - times_s[0]
        half, steps, model, norm = self._delay_grid(dt)
        return fit_delays(baseband, np.ascontiguousarray(times_s, dtype=float),
                          np.ascontiguousarray(guess_s, dtype=float), half, steps, model,
                          norm, self._g, self._g_start, self._g_step)

    def _first_echo(self, baseband: np.ndarray, envelope: np.ndarray, times: np.ndarray,
                    after: np.ndarray, noise_floor: np.ndarray) -> tuple[np.ndarray, ...]:
        n_ch = baseband.shape[0]
        # Above the noise, and not a sidelobe of a much stronger later echo.
        strongest = np.max(np.where(after, envelope, 0.0), axis=1)
        threshold = np.maximum(noise_floor * 10.0 ** (self.detection_db / 20.0),
                               strongest * 10.0 ** (-self.relative_db / 20.0))
        above = after & (envelope > threshold[:, None])
        local_max = np.zeros_like(above)
        local_max[:, 1:-1] = (envelope[:, 1:-1] >= envelope[:, :-2]) & (
            envelope[:, 1:-1] > envelope[:, 2:])
        candidates = above & local_max
        found = np.any(candidates, axis=1)
        first = np.argmax(candidates, axis=1)
        guess = np.where(found, times[first], np.nan)
        tau, amp = self.fit_delays(baseband, times, guess)
        # A weaker echo overlapping a stronger one ahead of it is the first (first_echo.py).
        tau = self._overlap.earliest(baseband, times, tau, threshold)
        dt = times[1] - times[0]
        tof_cfd = np.full(n_ch, np.nan)
        for i in np.flatnonzero(found):
            level = 0.5 * envelope[i, first[i]]
            below = np.flatnonzero(envelope[i, :first[i]] < level)
            if below.size:
                j = below[-1]
                frac = (level - envelope[i, j]) / (envelope[i, j + 1] - envelope[i, j])
                tof_cfd[i] = times[j] + frac * dt + self._cfd_offset_s
        snr = np.where(found, 20.0 * np.log10(np.maximum(np.abs(amp) * self._g_peak, 1e-30)
                                              / np.maximum(noise_floor, 1e-30)), np.nan)
        return tau, tof_cfd, snr


def median_square(values: np.ndarray) -> float:
    """``np.median(np.square(values, dtype=np.float64))`` of non-negative ``values`` ``(n,)``,
    to the bit, from one partition of the values themselves (squaring keeps their order): a
    third of its cost on a frame's bins, no squared copy.

    :param values: ``(n,)``, n >= 1, finite and non-negative.
    """
    n = values.size
    half = n // 2
    if n % 2:
        return float(np.square(np.partition(values, half)[half], dtype=np.float64))
    ordered = np.partition(values, (half - 1, half))
    below, above = np.square(ordered[half - 1:half + 1], dtype=np.float64)
    # np.median's mean of the two middle values: their sum, halved.
    return float((below + above) / 2.0)


def direct_explained(features: EchoFeatures,
                     limit_db: float = DIRECT_RESIDUAL_LIMIT_DB) -> bool:
    """Whether the direct arrival's removal left nothing that could pass for an echo
    (:attr:`EchoFeatures.direct_residual_db` at most ``limit_db``; true when unknown)."""
    return not features.direct_residual_db > limit_db


def working_channels(features: EchoFeatures, min_direct_ratio: float = 0.1) -> np.ndarray:
    """Which receivers work: bool ``(n_channels,)``.

    Every working receiver hears the emitter directly, tens of dB above any echo; a channel
    whose direct arrival is below ``min_direct_ratio`` (-20 dB) of the strongest channel's
    hears nothing (disconnected, dead preamp) and would only add noise to a coherent sum.
    """
    direct = np.nan_to_num(np.asarray(features.direct_amplitude, dtype=float))
    return direct >= min_direct_ratio * np.max(direct)
