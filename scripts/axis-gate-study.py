#!/usr/bin/env python3
"""Where the axis scans pay (issue 20, with issue 19's honesty kept): ``echoloc evaluate
--rooms random:N``'s frames, each settled twice (the axis scans on, and off), and for every
scan what was known before it and what it changed, one JSON line a scan in ``--out``.

A scan's line: the frame (``frame``), which call of the frame (``call``: 0 the first fix, 1
the wider look's), what :meth:`PhysicsLocalizer._physics_alone` knew before scanning (the
residual ``ratio``, whether ``doubtful``, the fix's evidence ``score``, the gap to its best
proposed rival ``rival_gap``, its own sigma per axis ``sigma_m`` and which axes are ``weak``,
the room's kind), the scan's peaks' gaps (``gaps``), whether they widened the published
sigma by more than 1 % (``widened``) and whether one is refined (``refine``: a gap under
``AXIS_REFINE_GAP``). A frame's line (``kind: frame``): whether the settled fix moved or its
sigma grew by more than 1 % with the scans (``changed``). With ``--against gated`` the fixes
evaluated are the gated scans' (:meth:`AxisRivals._scans_pay`), each settled again with every
fix scanned, and a frame's line says whether the two differ (``changed``).

    python scripts/axis-gate-study.py --split dev --seed 7 --n 300 --snr-db 10 --out a.jsonl
    python scripts/axis-gate-study.py --split dev --seed 8 --n 200 --against gated --out b.jsonl
"""
import argparse
import json

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.physics.config import AXIS_REFINE_GAP, UNEXPLAINED_RATIO
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.offline.room_evaluation import evaluate_rooms, is_soft
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import Scenario


def _recording(out, state: dict) -> None:
    """Wrap :class:`PhysicsLocalizer`'s ``settled`` and ``_physics_alone`` to write the
    lines (``state``: the room and the frame count)."""
    settled, alone = PhysicsLocalizer.settled, PhysicsLocalizer._physics_alone

    def gated(self, *args) -> bool:
        self.axis_gate = True
        try:
            return self._scans_pay(*args)
        finally:
            self.axis_gate = False

    def physics_alone(self, proposal, index, theta, score, rivals, ratio, cov):
        result = alone(self, proposal, index, theta, score, rivals, ratio, cov)
        if not self.axis_rivals or self.axis_gate:
            return result
        published, _, _, peaks = result
        unseparated = self._unseparated(proposal, index)
        plain = self._physics_covariance(cov, theta[:3], score, rivals,
                                         ratio > UNEXPLAINED_RATIO or unseparated, True, ())[0]
        plain = 0.5 * (plain + plain.T) + self.position_floor_m ** 2 * np.eye(3)
        growth = np.sqrt(np.diag(published) / np.diag(plain))
        gaps = [g for g, _ in peaks]
        room = state['room']
        line = {'kind': 'scan', 'frame': state['frame'], 'call': state['call'],
                'room': room.name, 'shoebox': room.is_shoebox,
                'furnished': bool(room.furniture), 'soft': is_soft(room),
                'ratio': ratio, 'unseparated': unseparated,
                'score': score,
                'rival_gap': (score - max(r[0] for r in rivals[:3])) if rivals else None,
                'sigma_m': np.sqrt(np.diag(cov)).tolist(),
                'weak': self._weak_axes(cov).tolist(),
                'shares': self._axis_shares(proposal.frame, theta).tolist(),
                'gate': gated(self, proposal.frame, theta, score, rivals, ratio,
                              ratio > UNEXPLAINED_RATIO or unseparated),
                'gaps': gaps, 'widened': bool(np.max(growth) > 1.01),
                'refine': bool(any(g < AXIS_REFINE_GAP for g in gaps))}
        out.write(json.dumps(line) + '\n')
        state['call'] += 1
        return result

    def settled_twice(self, proposal):
        state['call'] = 0
        if state['against'] == 'gated':
            # The gated fix is the one evaluated, the fully scanned one its reference.
            self.axis_gate = True
            try:
                on = settled(self, proposal)
            finally:
                self.axis_gate = False
            state['call'] = 0
            off = settled(self, proposal)
        else:
            on = settled(self, proposal)
            scans = self.axis_rivals
            self.axis_rivals = False
            try:
                off = settled(self, proposal)
            finally:
                self.axis_rivals = scans
        moved = float(np.linalg.norm(on.position_m - off.position_m))
        growth = float(np.max(np.sqrt(np.diag(on.covariance_m2) / np.diag(off.covariance_m2))))
        out.write(json.dumps({'kind': 'frame', 'frame': state['frame'],
                              'room': state['room'].name, 'moved_m': moved,
                              'sigma_growth': growth,
                              'changed': bool(moved > 1e-6 or abs(growth - 1) > 0.01)}) + '\n')
        state['frame'] += 1
        return on

    # Every fix scanned, the gate's choice recorded (``gate``).
    PhysicsLocalizer.axis_gate = False
    PhysicsLocalizer.settled = settled_twice
    PhysicsLocalizer._physics_alone = physics_alone


def main() -> None:
    """Write the lines and print the evaluation's pooled JSON (the scans on)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rooms', type=int, default=30)
    parser.add_argument('--room', default=None, help='one room file instead (default_room, ...)')
    parser.add_argument('--split', default='dev')
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--n', type=int, default=300)
    parser.add_argument('--snr-db', type=float, default=10.0)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--against', choices=('off', 'gated'), default='off',
                        help='off: the full scans evaluated, against none (the scan lines '
                        'written); gated: the gated scans evaluated, against the full ones '
                        '(the frame lines only)')
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    rooms = ([load_room(args.room)] if args.room is not None
             else generate_rooms(args.split, args.rooms, args.seed))
    state = {'frame': 0, 'call': 0, 'room': rooms[0], 'against': args.against}
    with open(args.out, 'w') as out:
        _recording(out, state)

        def progress(i, room, result):
            out.flush()
            if i + 1 < len(rooms):
                state['room'] = rooms[i + 1]
        result = evaluate_rooms(rooms, load_array('square_4sensor'), Chirp(),
                                Scenario(snr_db=args.snr_db, seed=args.seed), args.n, args.seed,
                                heading_noise_deg=args.heading_noise_deg, progress=progress)
    print(json.dumps({key: result[key] for key in result if key != 'per_room'}))


if __name__ == '__main__':
    main()
