"""Matched-filter access: what one frame offers the model (:class:`Frame`), its baseband
upsampled and sampled at any delay, and the point response with its derivatives."""

import threading
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy import interpolate

from echoloc_ros.core.echo_processing import EchoFeatures, EchoProcessor
from echoloc_ros.core.physics.config import RESPONSE_HALF_S, UPSAMPLE


@dataclass
class Frame:
    """What one call of :meth:`PhysicsLocalizer.localize` knows about its frame."""

    features: EchoFeatures
    offsets: np.ndarray        # receivers relative to the emitter, room axes (n, 3)
    c0: float                  # assumed speed of sound, m/s
    absorb: float              # air absorption, Np/m
    t_min: float               # earliest usable delay (after the direct arrival), s
    t_max: float               # last bin, s
    weights: np.ndarray        # 1 / noise power per channel (n,)
    table: np.ndarray          # baseband upsampled UPSAMPLE times (n, UPSAMPLE * n_bins)
    gain: float = 1.0          # fitted amplitude scale of the predicted paths
    yaw_info: float = 0.0      # 1 / variance of the given heading, 1/rad^2 (0: heading exact)
    yaw_grid: np.ndarray = field(default_factory=lambda: np.zeros(1))   # psi tried, rad
    tilt: np.ndarray = field(default_factory=lambda: np.eye(3))  # roll and pitch (level: I)
    # What scans the axes in place of AxisRivals._scanned_peaks (a track's LocalScans): None
    axis_scan: object = None

    @property
    def yaw_free(self) -> bool:
        """Whether the heading is estimated (not declared exact)."""
        return self.yaw_info > 0

    def yaw_prior(self, psi: np.ndarray) -> np.ndarray:
        """Log prior density of heading offsets ``psi``, up to a constant."""
        return -0.5 * self.yaw_info * np.asarray(psi) ** 2

    def rotated_offsets(self, psi: np.ndarray) -> np.ndarray:
        """Receivers relative to the emitter with the heading turned by ``psi (K,)``:
        ``(K, n, 3)``."""
        out = np.empty((len(psi),) + self.offsets.shape)
        c, s = np.cos(psi)[:, None], np.sin(psi)[:, None]
        x, y = self.offsets[:, 0], self.offsets[:, 1]
        out[..., 0] = c * x - s * y
        out[..., 1] = s * x + c * y
        out[..., 2] = self.offsets[:, 2]
        return out


def upsample(baseband: np.ndarray) -> np.ndarray:
    """The baseband at ``UPSAMPLE`` times its rate (zero padding of its spectrum):
    ``(n, UPSAMPLE * n_bins)`` complex64.

    Both transforms read buffers kept from the last frame of the same shape (in this thread):
    the baseband zero-padded, and its spectrum zero-padded, only their filled parts written
    again (what the padding and a frame-sized allocation cost each time, the same bits)."""
    n_ch, n_bins = baseband.shape
    n_fft = sfft.next_fast_len(n_bins + 32)
    padded_in, padded = _upsample_buffers(n_ch, n_bins, n_fft)
    padded_in[:, :n_bins] = baseband
    spectrum = sfft.fft(padded_in, axis=1)
    half = n_fft // 2
    padded[:, :half] = spectrum[:, :half]
    padded[:, -(n_fft - half):] = spectrum[:, half:]
    # One pass: the product of the slice is a new C-ordered array.
    return sfft.ifft(padded, axis=1)[:, :UPSAMPLE * n_bins] * UPSAMPLE


_UPSAMPLE_BUFFERS = threading.local()


def _upsample_buffers(n_ch: int, n_bins: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`upsample`'s two zero-padded buffers for this shape, ``(n_ch, n_fft)`` and
    ``(n_ch, UPSAMPLE * n_fft)`` complex64, kept per thread for the last shape asked for
    (their padding is never written, so it stays zero)."""
    key = (n_ch, n_bins, n_fft)
    if getattr(_UPSAMPLE_BUFFERS, 'key', None) != key:
        _UPSAMPLE_BUFFERS.key = key
        _UPSAMPLE_BUFFERS.arrays = (np.zeros((n_ch, n_fft), dtype=np.complex64),
                                    np.zeros((n_ch, UPSAMPLE * n_fft), dtype=np.complex64))
    return _UPSAMPLE_BUFFERS.arrays


def lower_quartile(values: np.ndarray) -> np.ndarray:
    """``np.quantile(values, 0.25, axis=1)`` (linear interpolation, NaN where a row holds one),
    in the rows' own dtype, from one partition of the rows in place of numpy's partition
    along the first axis of their transpose (a tenth of its cost on a frame's bins). The
    partition places the lower of the two order statistics read alone, the upper is the least
    after it (numpy's partition for two places costs four times its partition for one), and
    NaN is looked for apart.

    :param values: ``(n, m)``, m >= 1.
    :return: ``(n,)``.
    """
    n = values.shape[1]
    virtual = (n - 1) * 0.25
    below = min(int(np.floor(virtual)), n - 1)
    above = min(below + 1, n - 1)
    ordered = np.partition(values, below, axis=1)
    low = ordered[:, below]
    # The next order statistic is the least of those the partition put after it: a pass
    # over them costs a fifth of partitioning for both at once.
    high = np.min(ordered[:, above:], axis=1) if above > below else low
    gamma = virtual - below
    # numpy's lerp, in the same order and precision.
    step = high - low
    quartile = high - step * (1 - gamma) if gamma >= 0.5 else low + step * gamma
    quartile[np.isnan(values).any(axis=1)] = np.nan
    return quartile


def sample(fr: Frame, tau_s: np.ndarray, table: np.ndarray | None = None,
           smooth: bool = True, inside: np.ndarray | None = None) -> np.ndarray:
    """Analytic matched-filter output z = baseband * exp(j 2 pi f_c tau) at delays tau.

    :param tau_s: delays ``(..., n_channels)``, s.
    :param table: a baseband other than the frame's upsampled one ``(n, m * n_bins)``
        (a cleaned one, upsampled m times or not at all).
    :param smooth: cubic interpolation in double precision (continuous slope, as the
        evidence's compiled terms read it: :mod:`~echoloc_ros.core.physics.kernels`) rather
        than linear in single precision (for scans).
    :param inside: ``(tau_s > t_min) & (tau_s < t_max)``, when the caller has it already.
    :return: complex ``(..., n_channels)``, 0 outside [t_min, t_max].
    """
    table = fr.table if table is None else table
    n_row = table.shape[1]
    factor = n_row // fr.features.baseband.shape[1]
    table = table.ravel()
    x = (tau_s - fr.features.start_s) * (factor / fr.features.bin_width_s)
    i = x.astype(np.int64)
    np.maximum(i, 1, out=i)
    np.minimum(i, n_row - 3, out=i)
    flat = i + np.arange(tau_s.shape[-1]) * n_row
    p1, p2 = table[flat], table[flat + 1]
    cycles = fr.features.carrier_hz * tau_s
    phase = (2 * np.pi) * (cycles - np.floor(cycles))
    if smooth:
        t = x - i
        # Catmull-Rom cubic: continuous slope, so that the derivatives of the likelihood
        # are continuous across the table's nodes.
        p0, p3 = table[flat - 1], table[flat + 2]
        c1 = 0.5 * (p2 - p0)
        c2 = p0 - 2.5 * p1 + 2 * p2 - 0.5 * p3
        c3 = 1.5 * (p1 - p2) + 0.5 * (p3 - p0)
        value = p1 + t * (c1 + t * (c2 + t * c3))
        rotation = np.empty(tau_s.shape, dtype=np.complex128)
    else:
        t = (x - i).astype(np.float32)
        value = p1 + (p2 - p1) * t
        phase = phase.astype(np.float32)
        rotation = np.empty(tau_s.shape, dtype=np.complex64)
    rotation.real = np.cos(phase)
    rotation.imag = np.sin(phase)
    if inside is None:
        inside = (tau_s > fr.t_min) & (tau_s < fr.t_max)
    return np.where(inside, value * rotation, 0)


class PointResponse:
    """The processor's point response g (without carrier) and its first two derivatives,
    tabulated on a fine grid from a cubic spline through the processor's response (the
    response is smooth on the scale of the spline's 1 us knots).

    :ivar table: g, g', g'' at lags from ``-RESPONSE_HALF_S`` in steps of ``step_s``
        ``(3, L)``.
    :ivar zero: r(0), r'(0), r''(0) of the carrier-shifted response (:meth:`overlap`).
    """

    def __init__(self, processor: EchoProcessor, center_hz: float) -> None:
        knots = np.arange(-RESPONSE_HALF_S - 5e-6, RESPONSE_HALF_S + 5e-6 + 1e-12, 1e-6)
        spline = interpolate.CubicSpline(knots, processor.point_response(knots))
        self.step_s = 0.1e-6
        lags = np.arange(-RESPONSE_HALF_S, RESPONSE_HALF_S + 1e-12, self.step_s)
        self.table = np.stack([spline(lags, nu) for nu in range(3)])               # (3, L)
        self.zero = self.overlap(np.zeros(1), center_hz)[:, 0]

    def overlap(self, u_s: np.ndarray, fc: float, orders: int = 3) -> np.ndarray:
        """Analytic point response r(u) = g(u) exp(j 2 pi f_c u) and its first two derivatives:
        the matched-filter output at lag u for a unit echo (and the correlation of its noise
        between two outputs u apart). Zero beyond ``RESPONSE_HALF_S``.

        :param orders: 3, or 1 for r alone.
        :return: ``(orders, *u.shape)``: r, r', r''.
        """
        x = (u_s + RESPONSE_HALF_S) / self.step_s
        i = np.minimum(np.maximum(x.astype(np.int64), 0), self.table.shape[1] - 2)
        frac = x - i
        omega = 2 * np.pi * fc
        rotation = np.exp(1j * omega * u_s)
        if orders == 1:
            lo = self.table[0, i]
            return ((lo + (self.table[0, i + 1] - lo) * frac) * rotation)[None]
        lo = self.table[:, i]
        g, dg, ddg = lo + (self.table[:, i + 1] - lo) * frac
        jw = 1j * omega
        return np.stack([g, dg + jw * g, ddg + 2 * jw * dg + jw ** 2 * g]) * rotation


def check_features(features: EchoFeatures) -> None:
    """Refuse features no frame of echoes can give (a peer's or a corrupted frame's), which
    would otherwise fail deep in the search (an IndexError, an OverflowError).

    :raises ValueError: naming the first bad value and what was expected.
    """
    if not (np.isfinite(features.bin_width_s) and features.bin_width_s > 0.0
            and np.isfinite(features.start_s)):
        raise ValueError(f'features: bin_width_s={features.bin_width_s}, '
                         f'start_s={features.start_s}; expected a finite start and a '
                         'positive bin width')
    if not np.isfinite(features.baseband).all():
        bad = ~np.isfinite(features.baseband)
        channel, index = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f'features: baseband[{channel}, {index}] = '
                         f'{features.baseband[channel, index]}, expected finite values '
                         f'({int(bad.sum())} of {bad.size} are not)')
    # NaN is the processor's "no direct arrival found"; an infinite delay is no delay at all.
    direct = np.asarray(features.direct_tof_s, dtype=float)
    if np.isinf(direct).any():
        raise ValueError(f'features: direct_tof_s = {direct.tolist()}, expected finite '
                         'delays (NaN where no direct arrival was found)')
