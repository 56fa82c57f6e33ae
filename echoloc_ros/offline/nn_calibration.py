"""The ``nn`` method's covariance scale (``echoloc calibrate``), fitted in one room or pooled
over generated rooms of the dev split.

The physics covariance (Fisher information scaled by the residual) is a model's; on frames
whose fix is right (within 10 cm) the squared Mahalanobis distances of the errors should
follow chi2(3): the scale makes their 95th percentile chi2(3)'s. Wrong fixes are the ranker's
mixture's business (:meth:`PhysicsLocalizer._region_covariance`), not this scale's.
"""

from pathlib import Path

import numpy as np
from scipy import stats

from echoloc_ros.core.array_geometry import ArrayGeometry
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import Room
from echoloc_ros.offline.evaluation import evaluate_fixes
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import Scenario

# A fix within this of the truth is right (the gross-error threshold).
RIGHT_M = 0.10
# The scale's bounds (a scale outside them means the frames say nothing sane).
SCALE_RANGE = (0.05, 20.0)
# Right fixes the pooled 95th percentile needs at least.
MIN_RIGHT_FRAMES = 20


def covariance_distances(model_path: str | Path, room: Room, array: ArrayGeometry,
                         chirp: Chirp, scenario: Scenario, n: int, seed: int,
                         heading_noise_deg: float = 1.0,
                         furniture_shift_m: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Localize ``n`` frames of ``scenario`` in ``room`` with the ``nn`` method.

    :return: each published fix's squared Mahalanobis distance of its error under its own
        covariance ``(k,)`` and whether it is right (within :data:`RIGHT_M`) ``(k,)``.
    """
    details: dict = {}
    evaluate_fixes(room, array, chirp, scenario, n, seed, method='nn', model_path=model_path,
                   heading_noise_deg=heading_noise_deg, furniture_shift_m=furniture_shift_m,
                   details=details)
    if 'errors_m' not in details or not len(details['errors_m']):
        return np.zeros(0), np.zeros(0, dtype=bool)
    errors = details['estimate_m'] - details['truth_m']
    solved = np.linalg.solve(details['covariance_m2'], errors[..., None])[..., 0]
    return np.einsum('ni,ni->n', errors, solved), details['errors_m'] < RIGHT_M


def fit_scale(d2: np.ndarray, right: np.ndarray, old_scale: float, frames: int) -> dict:
    """The scale that puts the 95th percentile of the right fixes' distances at chi2(3)'s.

    :param d2: squared Mahalanobis distances measured under ``old_scale`` ``(k,)``.
    :param right: whether each fix is right ``(k,)``.
    :param frames: frames localized (published or not), for the error message and record.
    :return: ``covariance_scale``, ``previous_scale``, ``frames``, ``right_frames``,
        ``coverage_95_before`` (all fixes) and ``coverage_95_right_after`` (right fixes; the
        fix's own share dominates a right frame, so its distance scales as ``old / new``).
    :raises ValueError: fewer than :data:`MIN_RIGHT_FRAMES` right fixes.
    """
    n_right = int(np.count_nonzero(right))
    if n_right < MIN_RIGHT_FRAMES:
        raise ValueError(f'only {n_right} of {frames} fixes are right; too few to calibrate on '
                         f'(at least {MIN_RIGHT_FRAMES})')
    chi2_95 = stats.chi2.ppf(0.95, 3)
    scale = float(np.clip(old_scale * np.percentile(d2[right], 95) / chi2_95, *SCALE_RANGE))
    return {'covariance_scale': scale, 'previous_scale': old_scale, 'frames': frames,
            'right_frames': n_right,
            'coverage_95_before': float(np.mean(d2 <= chi2_95)),
            'coverage_95_right_after': float(np.mean(d2[right] * old_scale / scale
                                                     <= chi2_95))}


def _stored_scale(model_path: str | Path) -> tuple[dict, float]:
    import torch
    ckpt = torch.load(model_path, map_location='cpu', weights_only=True)
    return ckpt, float(ckpt.get('covariance_scale', 1.0))


def _store(model_path: str | Path, ckpt: dict, result: dict, settings: dict) -> None:
    """Write the scale and how it was fitted into the checkpoint (atomically)."""
    import torch
    ckpt['covariance_scale'] = result['covariance_scale']
    ckpt['covariance_calibration'] = {**result, **settings}
    tmp = Path(str(model_path) + '.tmp')
    torch.save(ckpt, tmp)
    tmp.replace(model_path)


def calibrate_covariance(model_path: str | Path, room: Room, array: ArrayGeometry,
                         chirp: Chirp, scenario: Scenario, n: int, seed: int,
                         heading_noise_deg: float = 1.0, furniture_shift_m: float = 0.0,
                         write: bool = True) -> dict[str, float]:
    """Fit the covariance scale on ``n`` frames of ``scenario`` in one room and (``write``)
    store it in the checkpoint as ``covariance_scale``.

    :return: :func:`fit_scale`'s result.
    """
    ckpt, old = _stored_scale(model_path)
    d2, right = covariance_distances(model_path, room, array, chirp, scenario, n, seed,
                                     heading_noise_deg, furniture_shift_m)
    result = fit_scale(d2, right, old, n)
    if write:
        _store(model_path, ckpt, result, {'seed': seed, 'snr_db': scenario.snr_db,
                                          'heading_noise_deg': heading_noise_deg,
                                          'furniture_shift_m': furniture_shift_m})
    return result


def calibrate_covariance_rooms(model_path: str | Path, split: str, n_rooms: int, seed: int,
                               array: ArrayGeometry, chirp: Chirp, snrs_db: list[float],
                               n_total: int, heading_noise_deg: float = 1.0,
                               write: bool = True) -> dict:
    """Fit one covariance scale over the frames of ``n_rooms`` generated rooms of the dev
    split pooled (a room-independent model's: it serves rooms it never saw).

    Room ``i`` (:func:`~echoloc_ros.sim.room_generator.generate_rooms` with ``seed``) gets
    ``ceil(n_total / (n_rooms * len(snrs_db)))`` frames at each SNR, drawn from seed
    ``[seed, i, j]`` (``j``: the SNR's index).

    :param split: must be ``'dev'``: a scale fitted on held-out rooms would make their
        figures tuned ones.
    :param snrs_db: the SNRs the frames are simulated at, dB.
    :return: :func:`fit_scale`'s result, plus ``rooms``, ``frames_per_room_snr`` and, per
        SNR, the coverage of the right fixes after and of all fixes before.
    :raises ValueError: the held-out split, no SNR, ``n_rooms`` or ``n_total`` below one,
        or too few right fixes, each named.
    """
    if split != 'dev':
        raise ValueError(f'the covariance scale is fitted on the dev split only, got split '
                         f'{split!r} (held-out rooms are for reporting)')
    if isinstance(n_rooms, bool) or int(n_rooms) != n_rooms or n_rooms < 1:
        raise ValueError(f'n_rooms must be an integer >= 1, got {n_rooms!r}')
    if not len(snrs_db):
        raise ValueError('snrs_db must name at least one SNR, got none')
    if n_total < 1:
        raise ValueError(f'n_total must be >= 1, got {n_total}')
    rooms = generate_rooms(split, n_rooms, seed)
    per = int(np.ceil(n_total / (len(rooms) * len(snrs_db))))
    ckpt, old = _stored_scale(model_path)
    d2, right, snr = [], [], []
    for i, room in enumerate(rooms):
        for j, snr_db in enumerate(snrs_db):
            frame_seed = int(np.random.SeedSequence([seed, i, j]).generate_state(1)[0])
            one = covariance_distances(model_path, room, array, chirp,
                                       Scenario(snr_db=float(snr_db)), per, frame_seed,
                                       heading_noise_deg)
            d2.append(one[0])
            right.append(one[1])
            snr.append(np.full(one[0].size, float(snr_db)))
    d2, right, snr = np.concatenate(d2), np.concatenate(right), np.concatenate(snr)
    result = fit_scale(d2, right, old, per * len(rooms) * len(snrs_db))
    chi2_95 = stats.chi2.ppf(0.95, 3)
    result['per_snr'] = {
        str(s): {'fixes': int(np.count_nonzero(snr == s)),
                 'coverage_95_before': float(np.mean(d2[snr == s] <= chi2_95)),
                 'coverage_95_right_after': float(np.mean(
                     d2[(snr == s) & right] * old / result['covariance_scale'] <= chi2_95))}
        for s in sorted(set(snr.tolist()))}
    result.update({'rooms': [r.name for r in rooms], 'frames_per_room_snr': per})
    if write:
        _store(model_path, ckpt, result, {'split': split, 'n_rooms': n_rooms, 'seed': seed,
                                          'snr_db': [float(s) for s in snrs_db],
                                          'heading_noise_deg': heading_noise_deg})
    return result
