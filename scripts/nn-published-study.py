#!/usr/bin/env python3
"""The general network's published fixes and what it knew of each (issue 19, dev only).

``record`` runs ``echoloc evaluate`` (its own arguments after ``--``, ``--method nn``) and
writes one JSON line a localized frame: the room's groups, the truth, the fix published or
withheld exactly as ``evaluate`` scores it (its place, covariance, error and whether it was
published), and the network's steps as :meth:`NeuralLocalizer.fixes` took them: the
probabilities it gave the first proposal's candidates and the wide proposal's (each
candidate, then none), whether it doubted the frame and kept the wide proposal, the
candidates of both proposals, its own fix, physics' own fix (the guard's) and every fix
physics settled (the first proposal's first). ``--shard K --of N`` localizes only rooms
``i % N == K``, as ``scripts/evaluate-shards.py`` does::

    python scripts/nn-published-study.py record --out nn8.jsonl -- --method nn
        --rooms random:30 --split dev --seed 8 --n 600 --snr-db 10 --heading-noise-deg 1
        --tracked-frames 0            (one line)

``replay`` prints per group (pooled, furnished) the network's published fixes, the gross
ones, those outside their 99.9 % ellipsoid and the withheld share beside physics' on the same
frames (``--physics``: ``evaluate-shards.py run --method physics`` files of the same
command), the published fixes by kind (whose fix, the two fixes at one place or not, each
side's doubt: :func:`_kinds`), then lists every gross fix of the network, published or not,
with what it knew (its top two probabilities and "none", its doubt, its fix and physics' own
with their errors, log evidence, residual ratio and confidence, whether a candidate was
within 10 cm), then, for each rule of :data:`RULES`, what withholding more would have
cost: the published fixes it withholds, right and gross::

    python scripts/nn-published-study.py replay nn8.jsonl nn9.jsonl --physics ph8.npz ph9.npz
"""
import argparse
import json
import sys

import numpy as np

from echoloc_ros import cli
from echoloc_ros.core.nn_localizer import NeuralLocalizer
from echoloc_ros.offline import room_evaluation
from echoloc_ros.offline.evaluation import CHI2_999_3DOF
from echoloc_ros.offline.room_evaluation import is_soft

GROSS_M = 0.10


def _row(estimate) -> dict:
    """An estimate's place, log evidence, residual ratio, confidence, echoes modelled and
    covariance (JSON)."""
    return {'pos': np.asarray(estimate.position_m).tolist(), 'score': float(estimate.score),
            'ratio': float(estimate.residual_ratio), 'conf': float(estimate.confidence),
            'n_echoes': int(estimate.n_echoes),
            'cov': np.asarray(estimate.covariance_m2).ravel().tolist()}


def traced_fixes(trace: list[dict]):
    """:meth:`NeuralLocalizer.fixes` that also appends the network's steps to ``trace``."""
    real = NeuralLocalizer.fixes

    def fixes(self, *args, **kwargs):
        ranks, settled = [], []
        rank, settle = self.rank, self.physics.settled

        def ranked(proposal):
            out = rank(proposal)
            ranks.append((proposal, out[0]))
            return out

        def settling(proposal):
            settled.append(settle(proposal))
            return settled[-1]
        self.rank, self.physics.settled = ranked, settling
        try:
            fix, network, physics = real(self, *args, **kwargs)
        finally:
            del self.rank, self.physics.settled
        wide = ranks[1] if len(ranks) > 1 else (None, None)
        trace.append({'doubted': bool(fix.doubted), 'wide': bool(fix.wide),
                      'kept': bool(fix.wide_kept), 'p_first': ranks[0][1].tolist(),
                      'p_wide': None if wide[1] is None else wide[1].tolist(),
                      'first_cands': ranks[0][0].positions_m().tolist(),
                      'wide_cands': None if wide[0] is None else wide[0].positions_m().tolist(),
                      'pub': _row(fix.estimate), 'net': _row(network),
                      'guard': None if physics is None else _row(physics),
                      'settled': [_row(s) for s in settled]})
        return fix, network, physics
    return fixes


def record(args) -> int:
    """``echoloc evaluate`` with the network's steps recorded (see the module's docstring)."""
    rest = args.evaluate_args[1:] if args.evaluate_args[:1] == ['--'] else args.evaluate_args
    if '--seed' not in rest or int(rest[rest.index('--seed') + 1]) in (0, 1):
        raise SystemExit('record: give --seed, not 0 or 1 (the training and calibration rooms)')
    seed = int(rest[rest.index('--seed') + 1])
    trace: list[dict] = []
    real_fixes, real_rooms = NeuralLocalizer.fixes, room_evaluation.evaluate_fixes
    calls = [0]
    out = open(args.out, 'a')

    def one_room(room, *a, details=None, **kw):
        index = calls[0]
        calls[0] += 1
        if index % args.of != args.shard:
            return {}
        trace.clear()
        result = real_rooms(room, *a, details=details, **kw)
        if len(trace) != len(details.get('errors_m', [])):
            raise RuntimeError(f'room {index}: {len(trace)} frames traced, '
                               f'{len(details.get("errors_m", []))} scored')
        for k, steps in enumerate(trace):
            out.write(json.dumps({
                'seed': seed, 'room': index, 'k': k, 'name': room.name,
                'shoebox': bool(room.is_shoebox), 'soft': bool(is_soft(room)),
                'furnished': bool(room.furniture),
                'truth': np.asarray(details['truth_m'][k]).tolist(),
                'est': np.asarray(details['estimate_m'][k]).tolist(),
                'cov_pub': np.asarray(details['covariance_m2'][k]).ravel().tolist(),
                'err': float(details['errors_m'][k]),
                'published': bool(details['published'][k]), **steps}) + '\n')
        out.flush()
        return result
    NeuralLocalizer.fixes = traced_fixes(trace)
    room_evaluation.evaluate_fixes = one_room
    try:
        return cli.main(['evaluate', *rest])
    finally:
        NeuralLocalizer.fixes, room_evaluation.evaluate_fixes = real_fixes, real_rooms
        out.close()


def _outside(estimate, truth, covariance) -> bool:
    e = np.subtract(estimate, truth)
    return float(e @ np.linalg.solve(np.reshape(covariance, (3, 3)), e)) > CHI2_999_3DOF


def _dist(a, b) -> float:
    return float(np.linalg.norm(np.subtract(a, b)))


def chosen_p(r: dict) -> np.ndarray:
    """The probabilities of the proposal the network chose from (each candidate, then none)."""
    return np.asarray(r['p_wide'] if r['kept'] else r['p_first'])


def margin(r: dict) -> tuple[float, float, float]:
    """The network's best probability, its second and "none"."""
    p = chosen_p(r)
    q = np.sort(p[:-1])[::-1]
    return float(q[0]), float(q[1]) if len(q) > 1 else 0.0, float(p[-1])


def _network_published(r: dict) -> bool:
    return _dist(r['pub']['pos'], r['net']['pos']) < 1e-9


#: Rules that withhold more of the published fixes: (name, whether the rule withholds ``r``).
RULES = {
    'doubted': lambda r: r['doubted'],
    'doubted_network_fix': lambda r: r['doubted'] and _network_published(r),
    'best_below_0.8': lambda r: margin(r)[0] < 0.8,
    'best_below_0.9': lambda r: margin(r)[0] < 0.9,
    'none_above_0.1': lambda r: margin(r)[2] > 0.1,
    'physics_doubts_network_fix': lambda r: _network_published(r) and r['guard']['conf'] <= 0,
    'wide_kept': lambda r: r['kept'],
}


def _physics(paths: list[str]) -> dict:
    """``(seed, room) -> details`` of ``evaluate-shards.py run`` files (seed from the name's
    ``ph<seed>`` or the order given: --physics-seeds)."""
    out = {}
    for path, seed in paths:
        with np.load(path) as data:
            for key in data.files:
                if '/' in key:
                    index, name = key.split('/')
                    out.setdefault((seed, int(index)), {})[name] = data[key]
    return out


def _group_lines(rows: list[dict], physics: dict) -> None:
    for group in ('pooled', 'furnished'):
        sel = [r for r in rows if group == 'pooled' or r['furnished']]
        pub = [r for r in sel if r['published']]
        line = {'group': group, 'method': 'nn', 'n': len(sel), 'published': len(pub),
                'gross': sum(r['err'] >= GROSS_M for r in pub),
                'outside': sum(_outside(r['est'], r['truth'], r['cov_pub']) for r in pub),
                'withheld': round(1 - len(pub) / max(1, len(sel)), 4),
                'every_fix_gross': sum(r['err'] >= GROSS_M for r in sel)}
        print(json.dumps(line))
        rooms = {(r['seed'], r['room']) for r in sel}
        got = [physics[key] for key in sorted(rooms) if key in physics]
        if not got:
            continue
        err = np.concatenate([d['errors_m'] for d in got])
        shown = np.concatenate([d['published'] for d in got]).astype(bool)
        out = sum(_outside(d['estimate_m'][k], d['truth_m'][k], d['covariance_m2'][k])
                  for d in got for k in np.flatnonzero(d['published']))
        print(json.dumps({'group': group, 'method': 'physics', 'rooms': len(got),
                          'n': int(err.size), 'published': int(shown.sum()),
                          'gross': int((shown & (err >= GROSS_M)).sum()), 'outside': int(out),
                          'withheld': round(1 - shown.mean(), 4),
                          'every_fix_gross': int((err >= GROSS_M).sum())}))


def _gross_line(r: dict) -> str:
    best, second, none = margin(r)
    net, guard = r['net'], r['guard']

    def fix(f):
        return (f"{100 * _dist(f['pos'], r['truth']):.1f} cm, evidence {f['score']:.1f}, "
                f"ratio {f['ratio']:.2f}, conf {f['conf']:.2f}")
    near = [int(bool(c) and min(_dist(x, r['truth']) for x in c) < GROSS_M)
            for c in (r['first_cands'], r['wide_cands'] or [])]
    return (f"{'F' if r['furnished'] else ' '} seed {r['seed']} room {r['room']} k {r['k']}: "
            f"{100 * r['err']:.1f} cm {'PUBLISHED' if r['published'] else 'withheld'}; "
            f"p {best:.3f}/{second:.3f} none {none:.3f} doubted {int(r['doubted'])} kept "
            f"{int(r['kept'])}; network {fix(net)}; physics {fix(guard)}; truth within 10 cm "
            f'of a candidate (first, wide) {near}')


def _kinds(rows: list[dict]) -> None:
    """The published fixes by kind: whose fix (the network's or physics' own), physics' own
    at the same place as the network's or elsewhere, the network sure or doubting, physics'
    own confident or doubted (confidence 0); published and gross, per group."""
    kinds: dict = {}
    for r in rows:
        if not r['published']:
            continue
        key = ('network' if _network_published(r) else 'physics',
               'same' if _dist(r['guard']['pos'], r['net']['pos']) < GROSS_M else 'apart',
               'doubted' if r['doubted'] else 'sure',
               'physics_doubted' if r['guard']['conf'] <= 0 else 'physics_sure',
               'furnished' if r['furnished'] else 'bare')
        got = kinds.setdefault(key, [0, 0])
        got[0] += 1
        got[1] += r['err'] >= GROSS_M
    for key in sorted(kinds):
        print(json.dumps({'kind': '/'.join(key), 'published': kinds[key][0],
                          'gross': kinds[key][1]}))


def replay(args) -> int:
    """The groups' lines, every gross fix of the network, and each rule's cost."""
    rows = [json.loads(line) for path in args.rows for line in open(path)
            if line.endswith('\n')]
    seeds = args.physics_seeds or [int(p.split('ph')[-1].split('.')[0]) for p in args.physics]
    _group_lines(rows, _physics(list(zip(args.physics, seeds))))
    _kinds(rows)
    for r in rows:
        if r['err'] >= GROSS_M:
            print(_gross_line(r))
    for name, withholds in RULES.items():
        for group in ('pooled', 'furnished'):
            hit = [r for r in rows if r['published'] and (group == 'pooled' or r['furnished'])
                   and withholds(r)]
            print(json.dumps({'rule': name, 'group': group, 'withholds': len(hit),
                              'gross_withheld': sum(r['err'] >= GROSS_M for r in hit)}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='command', required=True)
    rec = sub.add_parser('record', help='echoloc evaluate with the network\'s steps')
    rec.add_argument('--shard', type=int, default=0)
    rec.add_argument('--of', type=int, default=1)
    rec.add_argument('--out', required=True)
    rec.add_argument('evaluate_args', nargs=argparse.REMAINDER)
    rep = sub.add_parser('replay', help='the published fixes, the gross ones, the rules')
    rep.add_argument('rows', nargs='+')
    rep.add_argument('--physics', nargs='*', default=[])
    rep.add_argument('--physics-seeds', nargs='*', type=int, default=None)
    args = ap.parse_args()
    return record(args) if args.command == 'record' else replay(args)


if __name__ == '__main__':
    sys.exit(main())
