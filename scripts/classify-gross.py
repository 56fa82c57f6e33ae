#!/usr/bin/env python3
"""Classify the gross fixes of generated rooms (issue 19): search or model failures.

For each frame of ``echoloc evaluate --rooms random:N --split S --seed K --n N`` (the same
rooms, poses, noise and heading draws) the physics localizer proposes and finishes a fix; a
fix more than 10 cm off is gross, and the true pose is refined exactly as the fix was
(:meth:`PhysicsLocalizer._final_model`, the same Newton iterations) so that their evidence
compares:

- ``model``: the refined truth scores below the fix (the model prefers the wrong pose);
- ``height``: the truth scores higher and no height the search tried was within 1 cm of it;
- ``basin``: the truth scores higher and a polished candidate lay within 3 cm of it;
- ``none_near``: the truth scores higher and no polished candidate lay within 3 cm.

A fix within 10 cm whose truth lies outside its own 99.9 % ellipsoid is classified the same
way (``outside_only`` in its line). Each line says how the fix was published: ``confidence``,
``d2`` (the error's squared Mahalanobis distance under the published covariance; over
:data:`~echoloc_ros.offline.evaluation.CHI2_999_3DOF` is ``outside``), ``sigma_along_cm`` (the
published standard deviation along the error) and the plan's ``shape``; the counts add
``confident`` (confidence above 0) and ``outside`` per class.

Prints one JSON line per gross frame (with ``heading_off_deg``, the true heading minus the
one given) and the counts per class and group last, e.g.
``python scripts/classify-gross.py --split dev --seed 7 --n 300 --snr-db 20``;
``--heading-step on|off`` overrides ``HEADING_STEP`` (the heading step before the wall scans).

``--variants NAME:KEY=VALUE,... ...`` localizes every frame once per variant (the physics
modules' constants ``KEY`` set to ``VALUE`` for it, the rest as ``--heading-step`` leaves them),
so that variants compare on the same simulated frames: one JSON line per frame that is gross in
any variant, then the counts per variant and the frames that changed class.
"""

import argparse
import ast
import json
import sys
import time
from collections import Counter

import numpy as np

from echoloc_ros.core.array_geometry import load_array, yaw_matrix
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.core.physics.config import N_THETA, YAW
from echoloc_ros.core.physics import localizer as localizer_module
from echoloc_ros.core.physics import staged_search
from echoloc_ros.core.physics.localizer import PhysicsLocalizer
from echoloc_ros.offline.evaluation import CHI2_999_3DOF, direct_explained, random_frames
from echoloc_ros.core.room import load_room
from echoloc_ros.offline.room_evaluation import is_soft
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.offline.room_evaluation import frames_seed

GROSS_M = 0.10
NEAR_M = 0.03


def refined(loc: PhysicsLocalizer, fr, theta: np.ndarray) -> tuple[np.ndarray, float]:
    """``theta (5,)`` refined as :meth:`PhysicsLocalizer.finish` refines a fix, and its
    evidence."""
    free = np.arange(N_THETA) if fr.yaw_free else np.arange(YAW)
    model, valid = loc._final_model(fr, theta[None])
    fit = model._newton(fr, theta[None], valid, free, loc.max_iterations)
    return fit.theta[0], float(fit.evidence[0])


def classify_frame(loc: PhysicsLocalizer, features, position_m: np.ndarray, yaw_rad: float,
                   yaw_given_rad: float, yaw_std_rad: float | None) -> dict | None:
    """The class of one frame's fix if it is gross, else ``None``."""
    proposal = loc.propose(features, yaw_given_rad, None, yaw_std_rad)
    # The fix :meth:`PhysicsLocalizer.localize` publishes.
    estimate = loc.settled(proposal)
    error = estimate.position_m - position_m
    error_m = float(np.linalg.norm(error))
    d2 = float(error @ np.linalg.solve(estimate.covariance_m2, error))
    if error_m <= GROSS_M and d2 <= CHI2_999_3DOF:
        return None
    fr = proposal.frame
    emitter = position_m + yaw_matrix(yaw_rad) @ loc.array.emitter_m
    truth = np.array([*emitter, 1.0, yaw_rad - yaw_given_rad])
    truth_theta, truth_score = refined(loc, fr, truth)
    polished = proposal.thetas[:proposal.n_polished]
    near_m = float(np.min(np.linalg.norm(polished[:, :3] - emitter, axis=1)))
    near_all_m = float(np.min(np.linalg.norm(proposal.thetas[:, :3] - emitter, axis=1)))
    heights = np.unique(np.round(proposal.thetas[:, 2], 4))
    height_off_m = float(np.min(np.abs(heights - emitter[2])))
    if truth_score < estimate.score:
        kind = 'model'
    elif height_off_m > 0.01:
        kind = 'height'
    elif near_m <= NEAR_M:
        kind = 'basin'
    else:
        kind = 'none_near'
    return {'kind': kind, 'error_cm': round(100 * error_m, 1),
            'gap': round(truth_score - estimate.score, 1),
            'near_polished_cm': round(100 * near_m, 2), 'near_any_cm': round(100 * near_all_m, 2),
            'height_off_cm': round(100 * height_off_m, 2),
            'truth_refined_off_cm': round(100 * float(np.linalg.norm(truth_theta[:3] - emitter)),
                                          2),
            'heading_off_deg': round(float(np.degrees(yaw_rad - yaw_given_rad)), 2),
            'confidence': round(estimate.confidence, 3),
            'residual_ratio': round(estimate.residual_ratio, 2),
            'd2': round(d2, 2), 'outside': d2 > CHI2_999_3DOF, 'outside_only': error_m <= GROSS_M,
            'sigma_along_cm': round(100 * float(np.sqrt(error @ estimate.covariance_m2 @ error))
                                    / error_m, 2),
            'offset_cm': np.round(100 * (estimate.position_m - position_m), 1).tolist()}


def parse_variant(text: str) -> tuple[str, dict]:
    """``NAME:KEY=VALUE,...`` as ``(name, {KEY: value})``, values read as Python literals.

    :raises ValueError: no name, or a setting not ``KEY=VALUE`` naming a physics constant.
    """
    name, _, settings = text.partition(':')
    if not name:
        raise ValueError(f'variant {text!r}: expected NAME:KEY=VALUE,...')
    values = {}
    for item in filter(None, settings.split(',')):
        key, eq, value = item.partition('=')
        if not eq or not _physics_modules(key):
            raise ValueError(f'variant {text!r}: {item!r} is not KEY=VALUE with KEY a constant '
                             'of the physics localizer')
        try:
            values[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f'variant {text!r}: {value!r} is not a Python literal (True, '
                             '0.25, None, ...)') from None
    return name, values


def _variant_arg(text: str) -> tuple[str, dict]:
    """:func:`parse_variant` for argparse: its message shown as the option's error."""
    try:
        return parse_variant(text)
    except (ValueError, SyntaxError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _physics_modules(key: str) -> list:
    """The loaded physics modules that hold ``key`` (each imported its own binding)."""
    return [module for name, module in list(sys.modules.items())
            if name.startswith('echoloc_ros.core.physics') and hasattr(module, key)]


def apply_variant(values: dict) -> None:
    """Set each constant of ``values`` in every physics module that holds it."""
    for key, value in values.items():
        for module in _physics_modules(key):
            setattr(module, key, value)


def _kinds(row: dict) -> list[str]:
    """The counts one classified fix adds to: its class (``outside_only/`` before it for a fix
    within 10 cm), and that again with ``/confident`` and ``/outside`` where it was so."""
    kind = f'outside_only/{row["kind"]}' if row['outside_only'] else row['kind']
    return [kind] + [f'{kind}/{flag}' for flag, on in
                     (('confident', row['confidence'] > 0), ('outside', row['outside'])) if on]


def _count(counts: Counter, group: str, rows: dict, head: dict, compare: bool) -> None:
    """Count one frame's classes per variant and print its line where any variant is gross or
    outside its 99.9 % ellipsoid."""
    counts[(group, 'frames')] += 1
    for name, row in rows.items():
        if row is not None:
            for kind in _kinds(row):
                counts[(group, f'{name}/{kind}' if compare else kind)] += 1
    if not compare:
        if rows[''] is not None:
            print(json.dumps({**head, **rows['']}), flush=True)
        return
    if any(row is not None for row in rows.values()):
        kinds = {name: _kinds(row)[0] if row else 'right' for name, row in rows.items()}
        if len(set(kinds.values())) > 1:
            counts[(group, 'changed')] += 1
        print(json.dumps({**head, 'kinds': kinds, 'rows': rows}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--split', default='dev')
    parser.add_argument('--rooms', type=int, default=30)
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--n', type=int, default=300)
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--only', type=int, nargs='*', help='room indices to run')
    parser.add_argument('--room', help='a project room file instead of generated rooms (its '
                        'frames drawn as here, with --seed; not evaluate\'s own frames)')
    parser.add_argument('--no-wider-look', action='store_true',
                        help='without the doubtful fix\'s second search (WIDER_LOOK off)')
    parser.add_argument('--heading-step', choices=('on', 'off'),
                        default='on' if staged_search.HEADING_STEP else 'off',
                        help='the heading step before the wall scans (HEADING_STEP)')
    parser.add_argument('--variants', nargs='+', type=_variant_arg, default=None,
                        help='NAME:KEY=VALUE,... localizations per frame to compare')
    args = parser.parse_args()
    localizer_module.WIDER_LOOK = not args.no_wider_look
    # The heading step is read where the staged search runs it (staged_search's binding).
    apply_variant({'HEADING_STEP': args.heading_step == 'on'})
    if args.room:
        rooms = [load_room(args.room)]
    else:
        rooms = generate_rooms(args.split, args.rooms, args.seed)
    array = load_array('square_4sensor')
    chirp = Chirp()
    n_room = int(np.ceil(args.n / len(rooms)))
    noise_rad = float(np.deg2rad(args.heading_noise_deg))
    yaw_std = noise_rad if args.heading_noise_deg > 0 else None
    variants = args.variants or [('', {})]
    defaults = {key: getattr(_physics_modules(key)[0], key)
                for _, values in variants for key in values}
    counts: Counter = Counter()
    cpu_s: Counter = Counter()
    for i, room in enumerate(rooms):
        if args.only and i not in args.only:
            continue
        group = 'shoebox' if room.is_shoebox else 'non_rectangular'
        room_seed = frames_seed(args.seed, i)
        processor = EchoProcessor(chirp, 250e3, array=array)
        loc = PhysicsLocalizer(room, array, chirp, 250e3, processor=processor)
        simulator = EchoSimulator(room, array, chirp, 250e3, max_order=2)
        scenario = Scenario(snr_db=args.snr_db, seed=args.seed)
        frames = random_frames(simulator, scenario, n_room, room_seed)
        for k, (_, frame, position, yaw, draw, _) in enumerate(frames):
            features = processor.process(frame)
            if not direct_explained(features):
                continue
            rows = {}
            for name, values in variants:
                apply_variant({**defaults, **values})
                start = time.process_time()
                rows[name] = classify_frame(loc, features, position, yaw,
                                            yaw + noise_rad * draw, yaw_std)
                cpu_s[name] += time.process_time() - start
            head = {'room': i, 'name': room.name, 'frame': k, 'group': group,
                    'shape': room.name if args.room else room.name.split('_', 3)[-1],
                    'soft': is_soft(room)}
            _count(counts, group, rows, head, args.variants is not None)
    summary = {f'{g}/{k}': v for (g, k), v in sorted(counts.items())}
    if args.variants:
        summary['cpu_ms_per_frame'] = {name: round(1e3 * cpu_s[name] / max(1, sum(
            v for (g, k), v in counts.items() if k == 'frames')), 2) for name, _ in variants}
    print(json.dumps(summary))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
