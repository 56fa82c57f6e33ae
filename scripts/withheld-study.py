#!/usr/bin/env python3
"""Every fix of ``echoloc evaluate --rooms random:N`` and why it is or is not withheld (issue
19, dev split only): per localized frame one JSON line with the room (index, name, shoebox,
soft, furnished), the error, d² against the published covariance, its largest sigma,
confidence, residual ratio, the echoes modelled, the share of its pose's predicted echo
energy the fit does not find (``missing``, :attr:`Estimate.missing_share`) and each modelled
path's predicted energy (noise units, the frame's gain) with its fitted amplitude over the
predicted (``paths``), so that withholding rules can be replayed without localizing again:

    python scripts/withheld-study.py record --out rows.jsonl --shoebox -- --method physics \
        --rooms random:30 --split dev --seed 13 --n 600 --snr-db 10 --heading-noise-deg 1 \
        --tracked-frames 0
    python scripts/withheld-study.py replay rows.jsonl --fewest 6 --missing 0.2

``--shoebox`` localizes only the shoebox rooms, ``--soft`` only the soft ones. ``replay``
prints, per room group, the published fixes' gross count, outside_999, coverage_95 and
withheld share under r37-03's echo count (a shoebox fix of at most ``--fewest`` echoes
withheld) and under the missing share (one whose fit misses more than ``--missing`` of its
predicted echo energy), with the fixes each part withheld and how many of them were right;
then each fix not right, or withheld by either shoebox rule.
"""
import argparse
import json
import sys

import numpy as np

from echoloc_ros import cli
from echoloc_ros.core import pipeline as pipeline_module
from echoloc_ros.core import withhold
from echoloc_ros.core.physics.evidence import Evidence
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.offline import room_evaluation
from echoloc_ros.offline.evaluation import CHI2_95_3DOF, CHI2_999_3DOF

GROSS_M = 0.10


def record(args) -> int:
    """Localize the chosen rooms of the evaluate run; one JSON line per localized frame."""
    real_evaluate, real_doubted = room_evaluation.evaluate_fixes, pipeline_module.doubted
    real_finished, real_fit = PhysicsLocalizer._finished, PhysicsLocalizer._fix_fit
    real_information = Evidence._information_ratio
    rows, missing, calls, last, paths = [], {}, [0], [None], {}

    def information(self, fr, tau, amp, coef, fitted=None):
        last[0] = _path_echoes(fr, tau, amp, coef)
        return real_information(self, fr, tau, amp, coef, fitted)

    def fix_fit(self, proposal, index):
        fresh = index not in proposal.refined
        out = real_fit(self, proposal, index)
        if fresh:
            paths[(id(proposal), index)] = last[0]
        return out

    def finished(self, proposal, index=0, *rest):
        estimate, peaks = real_finished(self, proposal, index, *rest)
        if proposal.localizer is self:
            missing[estimate.position_m.tobytes()] = (
                float(estimate.missing_share), paths.get((id(proposal), index)))
        return estimate, peaks

    def doubted(estimate, shoebox=False):
        rows.append({'confidence': float(estimate.confidence),
                     'ratio': float(estimate.residual_ratio), 'echoes': int(estimate.n_echoes),
                     'missing': missing.get(estimate.position_m.tobytes(), (-1.0, None))[0],
                     'paths': missing.get(estimate.position_m.tobytes(), (-1.0, None))[1]})
        return real_doubted(estimate, shoebox)

    def one_room(room, *rest, details=None, **kwargs):
        index = calls[0]
        calls[0] += 1
        soft = room_evaluation.is_soft(room)
        if (args.shoebox and not room.is_shoebox) or (args.soft and not soft):
            return {}
        rows.clear()
        missing.clear()
        result = real_evaluate(room, *rest, details=details, **kwargs)
        errors = np.asarray(details['errors_m'])
        if len(errors) != len(rows):
            raise RuntimeError(f'room {index}: {len(errors)} fixes, {len(rows)} rules applied')
        error_v = np.asarray(details['estimate_m']) - np.asarray(details['truth_m'])
        cov = np.asarray(details['covariance_m2'])
        d2 = np.einsum('ki,kij,kj->k', error_v, np.linalg.inv(cov), error_v)
        with open(args.out, 'a') as out:
            for k, row in enumerate(rows):
                row.update(room=index, name=room.name, shoebox=bool(room.is_shoebox),
                           soft=bool(soft), furnished=bool(room.furniture), frame=k,
                           error_m=float(errors[k]), d2=float(d2[k]),
                           sigma_m=float(np.sqrt(np.linalg.eigvalsh(cov[k])[-1])),
                           published=bool(details['published'][k]))
                out.write(json.dumps(row) + '\n')
        print(f'room {index} {room.name}: {len(rows)} fixes', file=sys.stderr, flush=True)
        return result

    room_evaluation.evaluate_fixes = one_room
    pipeline_module.doubted = doubted
    PhysicsLocalizer._finished, PhysicsLocalizer._fix_fit = finished, fix_fit
    Evidence._information_ratio = information
    try:
        return cli.main(['evaluate', *args.evaluate_args])
    finally:
        room_evaluation.evaluate_fixes, pipeline_module.doubted = real_evaluate, real_doubted
        PhysicsLocalizer._finished, PhysicsLocalizer._fix_fit = real_finished, real_fit
        Evidence._information_ratio = real_information


def _path_echoes(fr, tau, amp, coef) -> list:
    """Each modelled path of a final fit: ``[energy predicted with the frame's gain, fitted
    over predicted amplitude]``, the energy in noise units (``sum_i amp_i^2 / s_i^2``),
    strongest first."""
    modelled = np.flatnonzero(np.any(amp > 0, axis=1))
    energy = fr.gain ** 2 * np.sum(amp[modelled] ** 2 * fr.weights, axis=1)
    share = np.abs(coef[modelled]) / fr.gain
    order = np.argsort(-energy)
    return [[round(float(energy[p]), 2), round(float(share[p]), 3)] for p in order]


def missing_share(row: dict) -> float:
    """:meth:`~echoloc_ros.core.physics.evidence.Evidence._missing_share` from the row's
    recorded paths (rows recorded before the estimate carried it)."""
    if not row.get('paths'):
        return 0.0
    energy, found = np.array(row['paths'], dtype=float).T
    return float(np.sum(energy * (1 - np.minimum(found, 1)) ** 2) / max(energy.sum(), 1e-300))


def _withheld(row: dict, rule: str, limit: float) -> str:
    """Which part of the rule withholds the row's fix ('' none): 'confidence', 'ratio', or
    in a shoebox 'echoes' (``rule`` 'count': at most ``limit`` echoes modelled, r37-03's) or
    'missing' (``rule`` 'missing': more than ``limit`` of the predicted energy not found)."""
    if row['confidence'] <= 0.0:
        return 'confidence'
    if row['ratio'] > withhold.WITHHELD_RATIO:
        return 'ratio'
    if row['shoebox'] and rule == 'count' and row['echoes'] <= limit:
        return 'echoes'
    if row['shoebox'] and rule == 'missing' and missing_share(row) > limit:
        return 'missing'
    return ''


def _right(row: dict) -> bool:
    return row['error_m'] <= GROSS_M and row['d2'] <= CHI2_999_3DOF


def _summary(rows: list[dict], rule: str, limit: float) -> dict:
    """The published fixes' figures under one rule, and per part of it how many fixes it
    withheld and how many of those were right (under 10 cm and inside their 99.9 %)."""
    parts = [_withheld(r, rule, limit) for r in rows]
    shown = [r for r, part in zip(rows, parts) if not part]
    out = {'frames': len(rows), 'published': len(shown),
           'withheld_rate': round(1 - len(shown) / max(len(rows), 1), 4),
           'gross': sum(r['error_m'] > GROSS_M for r in shown),
           'outside': sum(r['d2'] > CHI2_999_3DOF for r in shown),
           'coverage_95': round(float(np.mean([r['d2'] <= CHI2_95_3DOF for r in shown]))
                                if shown else 0.0, 4)}
    out['outside_999'] = round(out['outside'] / max(len(shown), 1), 4)
    for part in ('confidence', 'ratio', 'echoes', 'missing'):
        if part in parts:
            out[f'{part}_withheld_right'] = [parts.count(part), sum(
                1 for r, p in zip(rows, parts) if p == part and _right(r))]
    return out


def replay(args) -> int:
    """r37-03's echo count and the missing share over the recorded rows, per room group;
    then every fix that is not right or that either rule withholds alone."""
    rows = [json.loads(line) for path in args.files for line in open(path) if line.strip()]
    groups = {'all': rows, 'shoebox': [r for r in rows if r['shoebox']],
              'soft': [r for r in rows if r['soft']],
              'furnished': [r for r in rows if r['furnished']],
              'non_rectangular': [r for r in rows if not r['shoebox']]}
    for name, group in groups.items():
        if group:
            for rule, limit in (('count', args.fewest), ('missing', args.missing)):
                print(json.dumps({'group': name, 'rule': f'{rule} {limit}',
                                  **_summary(group, rule, limit)}))
    for r in rows:
        alone = {_withheld(r, 'count', args.fewest), _withheld(r, 'missing', args.missing)}
        if not _right(r) or alone & {'echoes', 'missing'}:
            print(json.dumps({'room': r['room'], 'frame': r['frame'], 'name': r['name'],
                              'error_cm': round(100 * r['error_m'], 2),
                              'd2': round(r['d2'], 1), 'confidence': round(r['confidence'], 3),
                              'ratio': round(r['ratio'], 3), 'echoes': r['echoes'],
                              'missing': round(missing_share(r), 3),
                              'published_main': not _withheld(r, 'count', args.fewest),
                              'published_now': not _withheld(r, 'missing', args.missing)}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    one = sub.add_parser('record', help='localize and record every fix')
    one.add_argument('--out', required=True)
    one.add_argument('--shoebox', action='store_true', help='the shoebox rooms only')
    one.add_argument('--soft', action='store_true', help='the soft rooms only')
    one.add_argument('evaluate_args', nargs=argparse.REMAINDER)
    two = sub.add_parser('replay', help='the rules over recorded rows')
    two.add_argument('files', nargs='+')
    two.add_argument('--fewest', type=int, default=6, help="r37-03's echo count")
    two.add_argument('--missing', type=float, default=withhold.SHOEBOX_MISSING_SHARE)
    args = parser.parse_args()
    if args.command == 'record':
        rest = args.evaluate_args
        args.evaluate_args = rest[1:] if rest[:1] == ['--'] else rest
        return record(args)
    return replay(args)


if __name__ == '__main__':
    raise SystemExit(main())
