"""Where the physics localizer's published covariance is too wide or too narrow: localize dev
frames as ``echoloc evaluate`` does and save, per fix, the error and the covariance's parts
(the echoes' information, the residual ratio, the heading prior, the rivals' and weak axes'
widening, whether the fix was held doubtful), so that variants of the covariance can be
scored on the same fixes without localizing again (docs/results.md, issue 18/19 coverage).

    python scripts/covariance-study.py --room default_room --snr-db 20 --n 200 --seed 7 \
        --out /tmp/cov-default-20.npz
    python scripts/covariance-study.py --rooms random:30 --split dev --n 200 --seed 7 ...

Saved per fix: ``info`` (5 x 5), ``ratio`` (what the covariance divided it by), ``raw_ratio``
(the pooled residual ratio the doubt is judged by), ``local_noise`` (the fit's residual floor
over the frame's and the paths' misfit: ``Evidence._residual_floor``), ``yaw_info``,
``jacobian``, the ``published`` and ``local`` covariances, ``estimate``, ``truth``,
``doubtful``. Prints one JSON line: coverage_95, outside_999 and the median squared normalised
error per axis of the published and the local covariance.
"""
import argparse
import json

import numpy as np

from echoloc_ros.core.array_geometry import load_array, yaw_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.physics.config import UNEXPLAINED_RATIO, YAW
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.offline.evaluation import CHI2_95_3DOF, CHI2_999_3DOF, evaluate_fixes
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import Scenario


class Recorder:
    """Wraps :meth:`PhysicsLocalizer._finished` (what ``finish`` and ``localize`` call) and
    records the parts of each published fix's covariance: of the fixes a frame finishes (the
    first, and the wider look's or the refined axis peaks'), the one ``localize`` returns."""

    def __init__(self):
        self.rows: list[dict] = []
        self._finish = PhysicsLocalizer._finished
        self._localize = PhysicsLocalizer.localize
        recorder = self
        frame_rows: list[dict] = []

        def localize(localizer, *args, **kwargs):
            frame_rows.clear()
            estimate = recorder._localize(localizer, *args, **kwargs)
            published = [r for r in frame_rows
                         if np.array_equal(r['estimate'], estimate.position_m)]
            recorder.rows.append(published[-1])
            return estimate

        def finish(localizer, proposal, index=0, probabilities=None, component_scale=1.0):
            if proposal.localizer is not localizer:
                return recorder._finish(localizer, proposal, index, probabilities,
                                        component_scale)
            seen = {}
            covariance = localizer._covariance

            def recorded(info, ratio, yaw_info):
                seen.update(info=info.copy(), ratio=ratio, yaw_info=yaw_info)
                return covariance(info, ratio, yaw_info)

            localizer._covariance = recorded
            residual_ratio = PhysicsLocalizer._residual_ratio

            def raw(model, fr, tau, amp, coef, fitted=None):
                value = residual_ratio(model, fr, tau, amp, coef, fitted)
                seen.update(raw_ratio=value,
                            local=model._residual_floor(fr, tau, amp, coef, fitted))
                return value

            PhysicsLocalizer._residual_ratio = raw
            try:
                estimate, peaks = recorder._finish(localizer, proposal, index, probabilities,
                                                   component_scale)
            finally:
                del localizer._covariance
                PhysicsLocalizer._residual_ratio = residual_ratio
            fr = proposal.frame
            emitter_m = fr.tilt @ localizer.array.emitter_m
            jacobian = np.zeros((3, 5))
            jacobian[:, :3] = np.eye(3)
            if fr.yaw_free:
                jacobian[:, YAW] = -yaw_matrix(estimate.yaw_rad + 0.5 * np.pi) @ (
                    emitter_m * [1.0, 1.0, 0.0])
            frame_rows.append(dict(  # noqa: C408 (keyword names read as the columns)
                info=seen['info'], ratio=seen['ratio'], yaw_info=seen['yaw_info'],
                jacobian=jacobian, published=estimate.covariance_m2,
                local=estimate.local_covariance_m2, estimate=estimate.position_m,
                doubtful=estimate.residual_ratio > UNEXPLAINED_RATIO,
                confidence=estimate.confidence,
                n_paths=estimate.n_echoes, snr_gain=float(fr.gain), raw_ratio=seen['raw_ratio'],
                local_noise=np.array(seen['local'])))
            return estimate, peaks

        PhysicsLocalizer._finished = finish
        PhysicsLocalizer.localize = localize


def main() -> None:
    """Localize, save the parts and print the summary line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--rooms', default=None)
    parser.add_argument('--split', default='dev')
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--n', type=int, default=200)
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--max-order', default='2')
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    max_order = args.max_order if args.max_order == 'all' else int(args.max_order)
    array, chirp = load_array('square_4sensor'), Chirp()
    recorder = Recorder()
    truths, estimates, kinds = [], [], []
    if args.rooms:
        rooms = generate_rooms(args.split, int(args.rooms.split(':')[1]), args.seed)
        n_room = int(np.ceil(args.n / len(rooms)))
        for i, room in enumerate(rooms):
            details: dict = {}
            before = len(recorder.rows)
            room_seed = int(np.random.SeedSequence([args.seed, i]).generate_state(1)[0])
            evaluate_fixes(room, array, chirp, Scenario(snr_db=args.snr_db), n_room, room_seed,
                           details=details, heading_noise_deg=args.heading_noise_deg,
                           max_order=max_order)
            truths.append(details['truth_m'])
            estimates.append(details['estimate_m'])
            kinds += [i] * (len(recorder.rows) - before)
    else:
        details = {}
        evaluate_fixes(load_room(args.room), array, chirp, Scenario(snr_db=args.snr_db),
                       args.n, args.seed, details=details,
                       heading_noise_deg=args.heading_noise_deg, max_order=max_order)
        truths.append(details['truth_m'])
        estimates.append(details['estimate_m'])
        kinds = [0] * len(recorder.rows)
    truth, estimate = np.vstack(truths), np.vstack(estimates)
    rows = recorder.rows
    if len(rows) != len(truth):
        raise RuntimeError(f'{len(rows)} fixes recorded for {len(truth)} scored')
    saved = {name: np.array([r[name] for r in rows]) for name in rows[0]}
    np.savez(args.out, truth=truth, scored=estimate, room_index=np.array(kinds), **saved)
    error = saved['estimate'] - truth
    out = {'n': len(rows)}
    for name in ('published', 'local'):
        cov = saved[name]
        d2 = np.einsum('ni,ni->n', error, np.linalg.solve(cov, error[..., None])[..., 0])
        per_axis = error ** 2 / np.diagonal(cov, axis1=1, axis2=2)
        out[name] = {'coverage_95': round(float(np.mean(d2 <= CHI2_95_3DOF)), 4),
                     'outside_999': round(float(np.mean(d2 > CHI2_999_3DOF)), 4),
                     'median_axis_d2': np.round(np.median(per_axis, axis=0), 3).tolist()}
    out['doubtful_rate'] = round(float(np.mean(saved['doubtful'])), 4)
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
