"""The per-frame figures of ``echoloc evaluate --rooms random:N`` (physics) under several
evidence margins of the wider look's replacement rule, from one run.

Each room's frames are localized once, as ``evaluate_rooms`` localizes them, with a
:class:`~echoloc_ros.offline.wider_record.WiderLookRecorder` keeping what each frame's wider
look compared; each margin then re-chooses those frames' fixes
(:func:`~echoloc_ros.offline.wider_record.wider_choice`, the room tolerance added as the
pipeline adds it) and the pooled figures are scored as the command scores them. The recorded
choice (``as_run``) gives the command's figures at the localizer's own margin,
``ratio_only`` the rule before the margin (the first fix as it was where the ratio refuses the
wider look's, the wider look's otherwise); the frames
whose fix a margin changes are listed: room, frame, error before and after (cm), the wider
look's evidence gain, the first's and the wider look's residual ratios.

    python scripts/wider-margin-frames.py --split dev --seed 7 --rooms random:30 --n 300 \
        --snr-db 20 --heading-noise-deg 1 --margin 0 5 15 30
"""
import argparse
import json
import sys

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room_tolerance import with_model_doubt
from echoloc_ros.offline.evaluation import CHI2_95_3DOF, CHI2_999_3DOF, evaluate_fixes
from echoloc_ros.offline.room_evaluation import _grouped, _rounded, parse_rooms
from echoloc_ros.offline.wider_record import WiderLookRecorder, wider_choice
from echoloc_ros.sim.model_error import ModelError
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import Scenario
from echoloc_ros.offline.room_evaluation import frames_seed


def _scored(room, truth_m: np.ndarray, estimate) -> tuple[float, bool, bool]:
    """``(error m, inside 95 %, outside 99.9 %)`` of one published fix."""
    published = with_model_doubt(estimate, room)
    error = published.position_m - truth_m
    d2 = float(error @ np.linalg.solve(published.covariance_m2, error))
    return float(np.linalg.norm(error)), d2 <= CHI2_95_3DOF, d2 > CHI2_999_3DOF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--split', default='dev')
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--rooms', default='random:30')
    parser.add_argument('--n', type=int, default=300)
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--array', default='square_4sensor')
    parser.add_argument('--margin', type=float, nargs='+', default=[0.0, 30.0])
    args = parser.parse_args()
    rooms = generate_rooms(args.split, parse_rooms(args.rooms), args.seed)
    array = load_array(args.array)
    n_room = int(np.ceil(args.n / len(rooms)))
    # (margin, kept): a first fix kept is, with kept, finished on the wider look's proposal.
    # -inf: the rule of the residual ratio alone, the first fix as it was (before r30-44).
    margins = [(None, False), (-np.inf, False)] + [
        (m, kept) for m in args.margin for kept in (False, True)]
    frames = {m: [] for m in margins}
    changed = {m: [] for m in margins[1:]}
    for i, room in enumerate(rooms):
        details: dict = {}
        room_seed = frames_seed(args.seed, i)
        with WiderLookRecorder() as recorder:
            evaluate_fixes(room, array, Chirp(), Scenario(snr_db=args.snr_db, seed=args.seed),
                           n_room, room_seed, details=details,
                           heading_noise_deg=args.heading_noise_deg, model_error=ModelError())
        truth = details.get('truth_m', np.zeros((0, 3)))
        for m in margins:
            rows = []
            for k, wider in enumerate(recorder.calls):
                if wider is None and m[0] is not None:
                    rows.append(rows_none(details, k))
                    continue
                recorded = wider_choice(None, wider, *m) if wider else None
                if recorded is None:
                    rows.append(rows_none(details, k))
                    continue
                rows.append(_scored(room, truth[k], recorded))
                base = frames[margins[0]][-1][0][k]
                if abs(rows[-1][0] - base) > 1e-9:
                    first, other = wider['first'], wider['other']
                    changed[m].append((room.name, k, round(100 * base, 3),
                                       round(100 * rows[-1][0], 3),
                                       round(other.score - first.score, 1),
                                       round(first.residual_ratio, 2),
                                       round(other.residual_ratio, 2)))
            rows = np.array(rows, dtype=float).reshape(-1, 3)
            frames[m].append((rows[:, 0], rows[:, 1].astype(bool), rows[:, 2].astype(bool)))
        print(f'[{i + 1}/{len(rooms)}] {room.name}', file=sys.stderr, flush=True)
    for m in margins:
        out = _rounded(_grouped(rooms, frames[m], [n_room] * len(rooms)))
        label = 'as_run' if m[0] is None else 'ratio_only' if np.isinf(m[0]) else m[0]
        print(json.dumps({'margin': label, 'kept': m[1],
                          'pooled': out['pooled'], 'changed_cm': changed.get(m, [])}),
              flush=True)


def rows_none(details: dict, k: int) -> tuple[float, bool, bool]:
    """Frame ``k`` as the run scored it."""
    error = details['estimate_m'][k] - details['truth_m'][k]
    cov = details['covariance_m2'][k]
    d2 = float(error @ np.linalg.solve(cov, error))
    return float(details['errors_m'][k]), bool(details['inside_95'][k]), d2 > CHI2_999_3DOF


if __name__ == '__main__':
    main()
