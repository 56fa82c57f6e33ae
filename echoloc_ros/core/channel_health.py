"""Per-receiver health from one frame's raw samples: ok, dead, saturated or noisy."""
import numpy as np

CHANNEL_OK = 'ok'
CHANNEL_DEAD = 'dead'
CHANNEL_SATURATED = 'saturated'
CHANNEL_NOISY = 'noisy'


def channel_health(samples: np.ndarray, *, dead_rms: float = 8.0,
                   saturate_fraction: float = 0.01, noise_floor_max: float = 500.0,
                   min_snr_db: float = 6.0, clip_level: int = 32767,
                   n_segments: int = 32) -> list[dict]:
    """Classify every channel of one echo frame as ok, dead, saturated or noisy.

    The noise floor is the RMS of the quietest of ``n_segments`` equal segments (after
    removing the mean): a frame always has quiet stretches between echoes.  A working channel
    always hears the direct emitter-to-receiver path, ~35 dB above the wall echoes, so a
    channel whose loudest segment is not ``min_snr_db`` above its floor hears nothing.

    :param samples: int16 ``(n_channels, n_samples)``
    :param dead_rms: AC RMS (counts) below which a channel is dead; 8 = half an LSB of the
        12-bit ADC scaled to int16
    :param saturate_fraction: fraction of samples at +/-``clip_level`` that makes it saturated
    :param noise_floor_max: noise floor (counts RMS) above which it is noisy
    :param min_snr_db: loudest-segment to floor ratio below which it is dead (no signal)
    :param clip_level: magnitude counted as clipped
    :param n_segments: segments for the noise floor estimate
    :return: one dict per channel: ``channel``, ``state`` (``'ok'``, ``'dead'``,
        ``'saturated'``, ``'noisy'``), ``reason``, ``rms``, ``dc``, ``peak``,
        ``clip_fraction``, ``noise_floor_rms``, ``snr_db``
    """
    data = np.asarray(samples)
    if data.ndim != 2:
        raise ValueError(f'samples must be (n_channels, n_samples), got shape {data.shape}')
    n = data.shape[1]
    n_seg = max(1, min(n_segments, n // 8))
    report = []
    for ch, row in enumerate(data.astype(np.float64)):
        if n == 0:
            report.append({'channel': ch, 'state': CHANNEL_DEAD, 'reason': 'no samples',
                           'rms': 0.0, 'dc': 0.0, 'peak': 0.0, 'clip_fraction': 0.0,
                           'noise_floor_rms': 0.0, 'snr_db': 0.0})
            continue
        dc = float(row.mean())
        ac = row - dc
        rms = float(np.sqrt(np.mean(ac ** 2)))
        seg_rms = np.sqrt(np.mean(ac[:n - n % n_seg].reshape(n_seg, -1) ** 2, axis=1))
        floor = float(seg_rms.min())
        snr_db = float(20 * np.log10(max(float(seg_rms.max()), 1e-9) / max(floor, 1e-9)))
        clip_fraction = float(np.mean(np.abs(row) >= clip_level))
        span = float(row.max() - row.min())
        if span <= 1.0:
            state, reason = CHANNEL_DEAD, f'stuck at {row[0]:.0f}'
        elif rms < dead_rms:
            state, reason = CHANNEL_DEAD, f'rms {rms:.1f} < {dead_rms}'
        elif clip_fraction >= saturate_fraction:
            state, reason = CHANNEL_SATURATED, f'{100 * clip_fraction:.1f} % of samples clipped'
        elif floor > noise_floor_max:
            state, reason = CHANNEL_NOISY, f'noise floor {floor:.0f} > {noise_floor_max}'
        elif snr_db < min_snr_db:
            state, reason = CHANNEL_DEAD, f'no signal above noise ({snr_db:.1f} dB)'
        else:
            state, reason = CHANNEL_OK, ''
        report.append({'channel': ch, 'state': state, 'reason': reason, 'rms': rms, 'dc': dc,
                       'peak': float(np.abs(row).max()), 'clip_fraction': clip_fraction,
                       'noise_floor_rms': floor, 'snr_db': snr_db})
    return report
