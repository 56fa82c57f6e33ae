#!/usr/bin/env python3
"""Where the general network's choice is gross, and what its top two say (issue 19, dev only).

``record`` draws ``echoloc evaluate --rooms random:N --split dev --seed S``'s frames (the same
frames) and writes one JSON line a frame: the truth, the room's groups, physics' fix exactly
as ``--method physics`` publishes it, and the network's steps as
:meth:`NeuralLocalizer.fixes` takes them: every candidate of the proposal it chose from (its
position, physics' score, the network's probability), whether it doubted the frame and kept
the wide search's proposal, its own fix, physics' own fix of its first proposal (the guard's),
whether the guard let physics stand, and the network's second choice refined as its first
(``second``). ``replay`` publishes a fix per rule and prints per group the gross fixes, the
fixes given confidence 0 (``doubted``: withheld without a tracker), coverage_95 and the fixes
outside their 99.9 % ellipsoid beside physics' on the same frames, and the gross, coverage_95
and outside of the fixes not withheld (``gross_kept``, ``coverage_kept``, ``outside_kept``);
``carried`` is the shipped rule, ``physics`` physics' own, ``shipped`` r35-94's:

    python scripts/nn-tie-study.py record --seed 8 --n 300 --snr-db 10 --out s8.jsonl
    python scripts/nn-tie-study.py replay s8.jsonl [more.jsonl ...]
"""
import argparse
import json
import sys

import numpy as np
from nn_study import FS_HZ, GROUPS, apart_m, fix_row, group_line, in_group

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor, direct_explained
from echoloc_ros.core.nn_localizer import (PHYSICS_KEPT_GAP, SAME_PLACE_M,
                                           WIDE_BEST_PROBABILITY, WIDE_NONE_PROBABILITY,
                                           NeuralLocalizer)
from echoloc_ros.core.physics.config import UNEXPLAINED_RATIO
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.physics.results import Estimate
from echoloc_ros.offline.evaluation import random_frames
from echoloc_ros.offline.room_evaluation import frames_seed, is_soft
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import EchoSimulator, Scenario


def frame_record(nn: NeuralLocalizer, physics: PhysicsLocalizer, features, yaw_told: float,
                 yaw_std: float) -> dict:
    """Physics' published fix and the network's steps (those of ``NeuralLocalizer.fixes``)."""
    fixed = physics.localize(features, yaw_told, None, yaw_std)
    proposal = first = nn.physics.propose(features, yaw_told, None, yaw_std)
    p, _ = nn.rank(proposal)
    doubted = bool(p[-1] > WIDE_NONE_PROBABILITY or p[:-1].max() < WIDE_BEST_PROBABILITY)
    kept = False
    if doubted and nn.wide_search:
        wider = nn.wide.propose(features, yaw_told, None, yaw_std)
        q, _ = nn.rank(wider)
        if q[:-1].max() > p[:-1].max():
            proposal, p, kept = wider, q, True
    order = np.argsort(-p[:-1], kind='stable')
    network = nn.physics.finish(proposal, int(order[0]), p, nn.covariance_scale)
    guard = nn.physics_fix(first)
    stands = nn.physics_stands(guard, network)
    second = (nn.physics.finish(proposal, int(order[1]), p, nn.covariance_scale)
              if len(order) > 1 else None)
    return {'physics': fix_row(fixed), 'network': fix_row(network), 'guard': fix_row(guard),
            'second': None if second is None else fix_row(second), 'stands': bool(stands),
            'doubted': doubted, 'kept': kept,
            'candidates_m': proposal.positions_m().tolist(),
            'scores': np.asarray(proposal.scores, float).tolist(),
            'n_polished': int(proposal.n_polished), 'p': p.tolist(),
            'first_candidates_m': first.positions_m().tolist()}


def record(args) -> int:
    """One JSON line a frame (see the module's docstring)."""
    array, chirp = load_array('square_4sensor'), Chirp()
    rooms = generate_rooms('dev', args.rooms, args.seed)
    n_room = int(np.ceil(args.n / len(rooms)))
    noise = float(np.deg2rad(args.heading_noise_deg))
    scenario = Scenario(snr_db=args.snr_db, seed=args.seed)
    with open(args.out, 'a') as out:
        for i, room in enumerate(rooms):
            if i < args.first_room or (args.last_room is not None and i > args.last_room):
                continue
            processor = EchoProcessor(chirp, FS_HZ, array=array)
            nn = NeuralLocalizer.from_checkpoint(args.model, room, array, chirp, FS_HZ,
                                                 processor=processor)
            physics = PhysicsLocalizer(room, array, chirp, FS_HZ, processor=processor)
            simulator = EchoSimulator(room, array, chirp, FS_HZ, max_order=2)
            frames = random_frames(simulator, scenario, n_room, frames_seed(args.seed, i))
            for k, (_, frame, position, yaw, draw, _) in enumerate(frames):
                features = processor.process(frame)
                if not direct_explained(features):
                    continue
                rec = frame_record(nn, physics, features, yaw + noise * draw, noise)
                rec.update({'seed': args.seed, 'room': i, 'frame': k,
                            'truth_m': np.asarray(position).tolist(),
                            'shoebox': room.is_shoebox, 'soft': is_soft(room),
                            'furnished': bool(room.furniture)})
                out.write(json.dumps(rec) + '\n')
                out.flush()
            print(f'room {i} done', file=sys.stderr, flush=True)
    return 0


def _published(r: dict) -> dict:
    return r['guard'] if r['stands'] else r['network']


def _margin(r: dict) -> float:
    """The network's probability of its choice less that of its second."""
    p = np.sort(np.asarray(r['p'][:-1]))[::-1]
    return float(p[0] - (p[1] if len(p) > 1 else 0.0))


def rule_margin(threshold: float):
    """Physics' own fix stands also where the network's top two are within ``threshold``
    of probability and physics' fix is not the network's choice."""
    def rule(r: dict) -> tuple[dict, bool]:
        if not r['stands'] and _margin(r) < threshold:
            return r['guard'], False
        return _published(r), False
    return rule


def rule_doubt(threshold: float):
    """The published fix, with confidence 0 where the network's top two are within
    ``threshold`` (and the network's fix is published)."""
    def rule(r: dict) -> tuple[dict, bool]:
        fix = _published(r)
        tie = not r['stands'] and _margin(r) < threshold
        return fix, tie or fix['confidence'] <= 0.0
    return rule


def rule_second_evidence(gap: float):
    """Of the network's top two, the one the refined evidence prefers by more than ``gap``
    (else its first), then the guard."""
    def rule(r: dict) -> tuple[dict, bool]:
        net, sec = r['network'], r['second']
        if sec is not None and sec['score'] > net['score'] + gap:
            net = sec
        stands = (apart_m(r['guard'], net) >= 0.1 and r['guard']['score'] > net['score'] + 10
                  and r['guard']['ratio'] <= max(2.0, net['ratio']))
        return (r['guard'] if stands else net), False
    return rule


def _sure(r: dict) -> bool:
    """The network does not doubt the proposal it chose from (its wide search's test)."""
    p = np.asarray(r['p'])
    return bool(p[-1] <= WIDE_NONE_PROBABILITY and p[:-1].max() >= WIDE_BEST_PROBABILITY)


def rule_sure(gap: float | None):
    """Where the network doubts its choice, physics' own fix stands where it is at least
    ``gap`` better explained (``None``: always); else the published fix."""
    def rule(r: dict) -> tuple[dict, bool]:
        g, net = r['guard'], r['network']
        if not _sure(r) and (gap is None or (
                g['score'] >= net['score'] + gap and g['ratio'] <= max(2.0, net['ratio']))):
            return g, g['confidence'] <= 0.0
        fix = _published(r)
        return fix, fix['confidence'] <= 0.0
    return rule


def rule_doubted_gap(gap: float):
    """:meth:`NeuralLocalizer.physics_stands` with its gap at ``gap`` where the network
    doubts the proposal it chose from (``PHYSICS_KEPT_GAP`` where it does not)."""
    def rule(r: dict) -> tuple[dict, bool]:
        g, net = r['guard'], r['network']
        kept_gap = PHYSICS_KEPT_GAP if _sure(r) else gap
        explained = g['ratio'] <= max(UNEXPLAINED_RATIO, net['ratio'])
        stands = (apart_m(g, net) >= SAME_PLACE_M and explained
                  and g['score'] > net['score'] + kept_gap)
        fix = g if stands else net
        return fix, fix['confidence'] <= 0.0
    return rule


def rule_shipped(r: dict) -> tuple[dict, bool]:
    """r35-94's :meth:`NeuralLocalizer.fixes` on the recorded fixes (``carry_doubt`` off)."""
    g, net = r['guard'], r['network']
    explained = g['ratio'] <= max(UNEXPLAINED_RATIO, net['ratio'])
    if _sure(r):
        stands = explained and (apart_m(g, net) >= SAME_PLACE_M
                                and g['score'] > net['score'] + PHYSICS_KEPT_GAP)
    else:
        stands = explained and g['score'] >= net['score']
    fix = g if stands else net
    return fix, fix['confidence'] <= 0.0


def _estimate(row: dict) -> Estimate:
    """A fix row as the :class:`Estimate` :meth:`NeuralLocalizer.choice_doubted` reads."""
    return Estimate(position_m=np.asarray(row['position_m']),
                    covariance_m2=np.reshape(row['covariance_m2'], (3, 3)),
                    speed_of_sound_mps=0.0, confidence=row['confidence'], score=row['score'],
                    n_echoes=0, residual_ratio=row['ratio'])


def rule_carried(r: dict) -> tuple[dict, bool]:
    """:meth:`NeuralLocalizer.fixes` with ``carry_doubt`` (r36-05): r35-94's fix, given
    confidence 0 where neither the network nor physics vouches for it."""
    fix, zero = rule_shipped(r)
    stands = fix is r['guard']
    return fix, zero or NeuralLocalizer.choice_doubted(
        _estimate(r['network']), _estimate(r['guard']), np.asarray(r['p']), stands)


def rule_bound(r: dict) -> tuple[dict, bool]:
    """Not a rule but a bound: the nearest to the truth of physics' published fix, the
    network's own and physics' own fix of the network's proposal (what any chooser of these
    three fixes could publish at best; r37-04)."""
    truth = np.asarray(r['truth_m'])
    fix = min((r['physics'], r['network'], r['guard']),
              key=lambda f: float(np.linalg.norm(np.subtract(f['position_m'], truth))))
    return fix, False


RULES = {
    'bound': rule_bound,
    'carried': rule_carried,
    'shipped': rule_shipped,
    'doubted_gap0': rule_doubted_gap(0.0),
    'doubted_gap5': rule_doubted_gap(5.0),
    'doubted_physics': lambda r: ((r['guard'], r['guard']['confidence'] <= 0.0) if r['doubted']
                                  else (_published(r), _published(r)['confidence'] <= 0.0)),
    'sure_always': rule_sure(None),
    'sure_gap_any': rule_sure(-np.inf),
    'sure_gap0': rule_sure(0.0),
    'physics': lambda r: (r['physics'], r['physics']['confidence'] <= 0.0),
    'guard_alone': lambda r: (r['guard'], r['guard']['confidence'] <= 0.0),
    'network': lambda r: (r['network'], False),
    'published': lambda r: (_published(r), _published(r)['confidence'] <= 0.0),
    **{f'margin{t:g}': rule_margin(t) for t in (0.2, 0.4, 0.6, 0.8, 1.01)},
    **{f'doubt{t:g}': rule_doubt(t) for t in (0.2, 0.4, 0.6)},
    **{f'second_gap{g:g}': rule_second_evidence(g) for g in (0.0, 10.0)},
}


def diagnose(rows: list[dict]) -> dict:
    """Per frame where physics or the network's published fix is gross: whether a candidate
    within 10 cm of the truth was among the network's slots, its probability and rank, the
    margin of the network's choice, and whether the guard decided."""
    out = []
    for r in rows:
        truth = np.asarray(r['truth_m'])
        err = {k: float(np.linalg.norm(np.subtract(r[k]['position_m'], truth)))
               for k in ('physics', 'network', 'guard')}
        pub = _published(r)
        err['published'] = float(np.linalg.norm(np.subtract(pub['position_m'], truth)))
        if err['physics'] < 0.1 and err['published'] < 0.1:
            continue
        d = np.linalg.norm(np.asarray(r['candidates_m']) - truth, axis=1)
        p = np.asarray(r['p'][:-1])
        near = np.flatnonzero(d < 0.1)
        rank = np.argsort(-p, kind='stable')
        out.append({'seed': r['seed'], 'room': r['room'], 'frame': r['frame'],
                    **{f'{k}_cm': round(100 * v, 1) for k, v in err.items()},
                    'stands': r['stands'], 'kept': r['kept'], 'doubted': r['doubted'],
                    'near_slots': near.tolist(),
                    'p_near': round(float(p[near].sum()), 3) if len(near) else None,
                    'near_rank': int(np.flatnonzero(np.isin(rank, near))[0])
                    if len(near) else None,
                    'p_top': round(float(p[rank[0]]), 3), 'margin': round(_margin(r), 3),
                    'p_none': round(float(r['p'][-1]), 3),
                    'score_gap_net_guard': round(r['guard']['score'] - r['network']['score'],
                                                 1),
                    'second_cm': round(100 * float(np.linalg.norm(
                        np.subtract(r['second']['position_m'], truth))), 1)
                    if r['second'] else None,
                    'second_gap': round(r['second']['score'] - r['network']['score'], 1)
                    if r['second'] else None,
                    'conf_pub': round(pub['confidence'], 3),
                    'conf_phys': round(r['physics']['confidence'], 3)})
    return out


def replay(args) -> int:
    """Each rule's gross, doubted and coverage per group, and the diagnosis lines."""
    # A line still being written by a running ``record`` is left out.
    rows = [json.loads(line) for path in args.rows for line in open(path)
            if line.endswith('\n')]
    if args.diagnose:
        for line in diagnose(rows):
            print(json.dumps(line))
    for name in args.rules:
        rule = RULES[name]
        line = {'rule': name, 'n': len(rows)}
        for group in GROUPS:
            mine = [r for r in rows if in_group(r, group)]
            if not mine:
                continue
            chosen = [rule(r) for r in mine]
            line[group], got = group_line([f for f, _ in chosen], mine)
            zero = np.array([z for _, z in chosen])
            line[group].update(doubted=int(zero.sum()),
                               gross_kept=int((got[:, 0] & ~zero).sum()),
                               coverage_kept=round(float(got[~zero, 1].mean()), 4)
                               if np.any(~zero) else None,
                               outside_kept=int((got[:, 2] & ~zero).sum()))
        print(json.dumps(line))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='command', required=True)
    rec = sub.add_parser('record')
    rec.add_argument('--rooms', type=int, default=30)
    rec.add_argument('--seed', type=int, default=8)
    rec.add_argument('--n', type=int, default=300)
    rec.add_argument('--snr-db', type=float, default=10.0)
    rec.add_argument('--heading-noise-deg', type=float, default=1.0)
    rec.add_argument('--model', default='models/general.pt')
    rec.add_argument('--first-room', type=int, default=0)
    rec.add_argument('--last-room', type=int, default=None)
    rec.add_argument('--out', required=True)
    rep = sub.add_parser('replay')
    rep.add_argument('rows', nargs='+')
    rep.add_argument('--rules', nargs='+', default=list(RULES), choices=sorted(RULES))
    rep.add_argument('--diagnose', action='store_true')
    args = ap.parse_args()
    if args.command == 'record' and args.seed in (0, 1):
        ap.error(f'--seed {args.seed} made the training or calibration rooms; use a dev seed '
                 'other than 0 and 1')
    return record(args) if args.command == 'record' else replay(args)


if __name__ == '__main__':
    sys.exit(main())
