"""Record the tracked laps' tracker inputs once, then replay trackers on them in seconds.

``record`` drives the laps of ``echoloc evaluate --rooms random:N --tracked-lap-s S`` (the
same rooms, paths, noise seeds and pipeline: ``evaluate_tracked`` along ``fitted_path``, as
``evaluate_rooms_tracked`` drives them) and writes, per room, every frame's time, the
untolerated ``Estimate`` the pipeline hands the tracker, and the truth, to
``OUT/<room>.pickle``. ``replay`` feeds those inputs to a :class:`PoseTracker` (its options
given as ``--option name=value``) and scores the published track as
``evaluate_rooms_tracked`` scores it: the poses a confirmed track vouches for, ``coverage_95``
and ``outside_999`` against the published covariance (the room tolerance added, as
``Pipeline.step`` adds it). The base tracker's replay gives the command's figures to the digit,
so tracker variants are compared on identical fixes. It also gives ``right_wide``: the share
of right poses (under 10 cm off) published with a sigma over 10 cm along some axis.

Each frame's wider look is recorded too (:class:`WiderLookRecorder`: the first fix, the wider
look's, and the first finished on the wider look's proposal), so that ``replay
--wider-margin M [--wider-kept]`` re-chooses the fixes as the localizer would with
``WiderLook._replaces`` at evidence margin ``M`` (``--wider-margin=-inf``: the rule of the
residual ratio alone, the localizer before r30-44) without localizing again, and ``replay
--wider-rivals`` gives each fix the one its wider look did not choose as ``localize`` attaches
it since r31-55 (for laps recorded before; ``--option wider_rivals=False``: the tracker
before, which ignores it). ``record --room
R --frames N --seed S`` records the standard tracked run of ``echoloc evaluate --room R --n 1
--tracked-frames N --seed S``.

    python scripts/tracker-replay.py record --split dev --seed 7 --rooms random:30 \
        --snr-db 20 --heading-noise-deg 1 --lap-s 12 --out /tmp/laps-dev7
    python scripts/tracker-replay.py replay /tmp/laps-dev7 --option prior_right=0.5
"""
import argparse
import json
import pickle
from pathlib import Path

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import load_room
from echoloc_ros.core.room_tolerance import tolerance_covariance
from echoloc_ros.core.tracker import PoseTracker
from echoloc_ros.offline.evaluation import CHI2_95_3DOF, CHI2_999_3DOF, evaluate_tracked
from echoloc_ros.offline.room_evaluation import _grouped, _rounded, parse_rooms, summary
from echoloc_ros.offline.tracked_path import fitted_path
from echoloc_ros.offline.wider_record import WiderLookRecorder, wider_choice, wider_rival
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import Scenario

RIGHT_M = 0.10
WIDE_STD_M = 0.10


class RecordingTracker(PoseTracker):
    """A :class:`PoseTracker` that keeps every ``(t_s, estimate)`` it is handed, and in
    ``wider`` what the wider look of that frame's localize saw (:class:`WiderLookRecorder`;
    ``None`` where it did not run)."""

    def __init__(self, recorder: WiderLookRecorder, **kwargs) -> None:
        self.recorder = recorder
        super().__init__(**kwargs)

    def reset(self) -> None:
        super().reset()
        self.inputs = []
        self.wider = []

    def update_estimate(self, t_s, estimate):
        self.inputs.append((t_s, estimate))
        self.wider.append(self.recorder.pop())
        return super().update_estimate(t_s, estimate)


def record(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    array = load_array(args.array)
    if args.room is not None:
        # The standard tracked run, ``echoloc evaluate --room R --n 1 --tracked-frames N
        # --seed S``: the room file's own path, its frames from the seed itself.
        room = load_room(args.room)
        _record_one(out / f'{room.name}.pickle', 0, room, array, args, None, args.seed,
                    args.frames)
        return
    rooms = generate_rooms(args.split, parse_rooms(args.rooms), args.seed)
    only = None if args.only is None else {int(i) for i in args.only.split(',')}
    for i, room in enumerate(rooms):
        if only is not None and i not in only:
            continue
        path = fitted_path(room, args.lap_s)
        if path is None:
            print(f'{room.name}: no path', flush=True)
            continue
        room_seed = int(np.random.SeedSequence([args.seed, i]).generate_state(1)[0])
        _record_one(out / f'{i:03d}_{room.name}.pickle', i, room, array, args, path, room_seed,
                    None)


def _record_one(name: Path, index: int, room, array, args, path, room_seed: int,
                n_frames: int | None) -> None:
    """Drive one lap (``path``; ``None``: :func:`tracked_path`, ``n_frames`` frames) and
    write its tracker inputs to ``name``."""
    details: dict = {}
    with WiderLookRecorder() as recorder:
        tracker = RecordingTracker(recorder, room_volume_m3=room.volume_m3)
        evaluate_tracked(room, array, Chirp(), Scenario(snr_db=args.snr_db, seed=args.seed),
                         n_frames, room_seed, details=details, path=path, tracker=tracker,
                         heading_noise_deg=args.heading_noise_deg)
    with open(name, 'wb') as f:
        pickle.dump({'index': index, 'room': room, 'inputs': tracker.inputs,
                     'wider': tracker.wider, 'truth_m': details['truth_m'],
                     'tracked_m': details['tracked_m']}, f)
    vouched = details['vouched']
    errors_cm = 100 * details['tracked_errors_m'][vouched]
    print(f'{room.name}: {len(tracker.inputs)} frames, tracked p95 '
          f'{np.percentile(errors_cm, 95) if errors_cm.size else float("nan"):.3f} cm',
          flush=True)


def replay_lap(lap: dict, options: dict, margin: float | None = None,
               kept: bool = False, rivals: bool = False) -> dict:
    """One recorded lap through a tracker of ``options``: per-frame published position,
    covariance (room tolerance added) and whether a confirmed track vouched for it; the fixes
    re-chosen by :func:`wider_choice` when ``margin`` is given; with ``rivals``, each carrying
    the fix the wider look did not choose (:func:`wider_rival`), as ``localize`` attaches it
    since r31-55."""
    room = lap['room']
    tracker = PoseTracker(room_volume_m3=room.volume_m3, **options)
    tracker.reset()
    positions, covariances, vouched = [], [], []
    widers = lap.get('wider', [None] * len(lap['inputs']))
    if margin is not None and 'wider' not in lap:
        raise SystemExit(f'{room.name}: recorded without the wider look; --wider-margin needs '
                         'a recording of this version')
    for (t_s, estimate), wider in zip(lap['inputs'], widers):
        estimate = wider_choice(estimate, wider, margin, kept)
        if rivals:
            estimate = wider_rival(estimate, wider, margin)
        position, covariance, _ = tracker.update_estimate(t_s, estimate)
        positions.append(position)
        covariances.append(covariance + tolerance_covariance(room, position))
        vouched.append(tracker.initialised)
    return {'position_m': np.array(positions), 'covariance_m2': np.array(covariances),
            'vouched': np.array(vouched)}


def scored(lap: dict, run: dict) -> tuple:
    """``(errors, inside_95, outside_999, right_wide)`` of the vouched poses."""
    v = run['vouched']
    error = run['position_m'][v] - lap['truth_m'][v]
    cov = run['covariance_m2'][v]
    d2 = np.einsum('ni,ni->n', error, np.linalg.solve(cov, error[..., None])[..., 0])
    norm = np.linalg.norm(error, axis=1)
    wide = np.sqrt(np.linalg.eigvalsh(cov)[:, -1]) > WIDE_STD_M
    return norm, d2 <= CHI2_95_3DOF, d2 > CHI2_999_3DOF, wide & (norm < RIGHT_M)


def _option(text: str) -> tuple:
    """``name=value`` of ``--option``: a :class:`PoseTracker` keyword and its value."""
    name, _, value = text.partition('=')
    if not value:
        raise SystemExit(f'--option must be name=value, got {text!r}')
    if value in ('True', 'False'):
        return name, value == 'True'
    if value == 'None':
        return name, None
    return name, int(value) if name in ('confirm_hits', 'max_tracks') else float(value)


def replay(args) -> None:
    options = dict(_option(text) for text in args.option)
    rooms, frames, counts, right = [], [], [], []
    files = sorted(Path(args.laps).glob('*.pickle'))
    for name in files:
        with open(name, 'rb') as f:
            lap = pickle.load(f)
        run = replay_lap(lap, options, args.wider_margin, args.wider_kept, args.wider_rivals)
        *frame, wide = scored(lap, run)
        rooms.append(lap['room'])
        frames.append(tuple(frame))
        counts.append(len(lap['inputs']))
        right.append(wide)
        if args.per_room:
            one = _rounded(summary(*frame, counts[-1]))
            get = {k: one.get(k, np.nan) for k in ('median_cm', 'p95_cm', 'gross_rate_10cm',
                                                   'coverage_95')}
            print(f'{lap["room"].name:28s} n {one["n"]:4d} withheld {one["withheld_rate"]:.3f} '
                  f'median {get["median_cm"]:8.4f} p95 {get["p95_cm"]:8.3f} '
                  f'gross {get["gross_rate_10cm"]:.3f} cov95 {get["coverage_95"]:.3f} '
                  f'out999 {int(np.sum(frame[2])):3d} '
                  f'right_wide {np.mean(wide) if wide.size else 0.0:.3f}')
    out = _rounded(_grouped(rooms, frames, counts, lambda f, n: summary(*f, n)))
    all_right = np.concatenate(right)
    out['right_wide'] = round(float(np.mean(all_right)) if all_right.size else 0.0, 4)
    out['rooms_meeting_bar'] = sum(
        1 for f in frames if f[0].size and np.percentile(100 * f[0], 95) <= 1.0
        and not np.any(f[2]))
    out['options'] = options
    if args.wider_margin is not None:
        out['wider_margin'] = args.wider_margin
        out['wider_kept'] = args.wider_kept
    print(json.dumps(out if args.groups else {k: out[k] for k in (
        'pooled', 'right_wide', 'rooms_meeting_bar', 'options', 'wider_margin', 'wider_kept')
        if k in out}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    rec = sub.add_parser('record', help='drive the laps and keep the tracker inputs')
    rec.add_argument('--split', default='dev')
    rec.add_argument('--seed', type=int, default=7)
    rec.add_argument('--rooms', default='random:30')
    rec.add_argument('--snr-db', type=float, default=20.0)
    rec.add_argument('--heading-noise-deg', type=float, default=1.0)
    rec.add_argument('--lap-s', type=float, default=12.0)
    rec.add_argument('--array', default='square_4sensor')
    rec.add_argument('--only', help='room indices, comma separated')
    rec.add_argument('--room', help='a room file instead of --rooms: the standard tracked run '
                     'of echoloc evaluate --room R --tracked-frames N --seed S')
    rec.add_argument('--frames', type=int, default=300, help='with --room: frames driven')
    rec.add_argument('--out', required=True)
    rep = sub.add_parser('replay', help='replay recorded laps through a tracker')
    rep.add_argument('laps')
    rep.add_argument('--option', action='append', default=[],
                     help='a PoseTracker option, name=value')
    rep.add_argument('--per-room', action='store_true')
    rep.add_argument('--wider-margin', type=float,
                     help='re-choose each frame with WiderLook._replaces at this evidence '
                     'margin (default: the fixes as recorded)')
    rep.add_argument('--wider-kept', action='store_true',
                     help='with --wider-margin: a first fix kept is finished on the wider '
                     "look's proposal")
    rep.add_argument('--wider-rivals', action='store_true',
                     help='each fix carries the one its wider look did not choose, as '
                     'localize attaches it since r31-55 (for laps recorded before)')
    rep.add_argument('--groups', action='store_true')
    args = parser.parse_args()
    record(args) if args.command == 'record' else replay(args)


if __name__ == '__main__':
    main()
