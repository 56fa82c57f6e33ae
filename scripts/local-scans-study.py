"""A track's local fixes scanned in windows about the last scans' peaks
(:class:`~echoloc_ros.core.physics.local_scans.LocalScans`), each windowed scan compared with the
whole scan of the same frame through the same fix (issue 20, with issue 19's honesty kept).

The tracked drive is ``scripts/track-search-study.py``'s (``echoloc evaluate --room R
--tracked-frames N``), or with ``--rooms K --split S`` the tracked laps of generated rooms as
``scripts/track-search-laps.py`` drives them. Every windowed scan is checked against the whole
one (``physics._scanned_peaks``, what a full search runs), which does not change the run: the
windowed scan's peaks are the ones used. One JSON line a drive: the vouched tracked poses'
summary, the track search's counts, the scans' counts, and the comparison:

- ``whole_differ``: whole scans whose peaks differ from the full search's (expected: 0);
- ``compared``: windowed scans checked;
- ``ahead_missed`` / ``ahead_extra``: frames where the whole scan has a peak ahead of the fix
  (gap below ``AXIS_REFINE_GAP``, the local fix refused) and the windows have none, or the
  other way round;
- ``peaks_missed``: whole-scan peaks within ``--gap`` (default 150: a weight ``exp(-30)``) of the
  fix with no windowed peak along the same axis within ``AXIS_BASIN_M``, each listed in
  ``missed`` as ``[axis, gap, offset_m]``;
- ``gap_error_max``: the largest difference of a matched peak's gap, log units;
- ``fixes_compared``: each local fix whose scan was windowed finished again with the whole
  scans (:class:`ComparedFixes`).

    python scripts/local-scans-study.py --room default_room --snr-db 10 --frames 300
    python scripts/local-scans-study.py --rooms 10 --split dev --seed 7 --only 0,1
"""
import argparse
import json
import sys

import numpy as np

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.physics.config import AXIS_BASIN_M, AXIS_REFINE_GAP
from echoloc_ros.core.physics import local_scans
from echoloc_ros.core.physics.local_scans import LocalScans
from echoloc_ros.core.room import load_room
from echoloc_ros.core import track_search
from echoloc_ros.core.track_search import TrackSearch
from echoloc_ros.offline.evaluation import evaluate_tracked
from echoloc_ros.offline.room_evaluation import frames_seed, vouched_summary
from echoloc_ros.offline.tracked_path import fitted_path
from echoloc_ros.sim.room_generator import generate_rooms
from echoloc_ros.sim.simulator import Scenario


def _axis(top, theta) -> int:
    return int(np.argmax(np.abs(top[:2] - theta[:2])))


class ComparedScans(LocalScans):
    """:class:`LocalScans` whose windowed scans are checked against the whole scan."""

    def __init__(self, windowed: bool, gap: float) -> None:
        super().__init__(windowed)
        self.gap = gap
        self.report = {'whole_differ': 0, 'compared': 0, 'ahead_missed': 0, 'ahead_extra': 0,
                       'peaks_missed': 0,
                       'gap_error_max': 0.0, 'missed': []}

    def _scanned(self, physics, fr, theta, whole):
        found = super()._scanned(physics, fr, theta, whole)
        if found is not None:
            reference = physics._scanned_peaks(fr, theta)
            if whole:
                self.report['whole_differ'] += not (
                    len(found) == len(reference)
                    and all(g == h and np.array_equal(t, u)
                            for (g, t), (h, u) in zip(found, reference)))
            else:
                self._compare(found, reference, theta)
        return found

    def _compare(self, found: list, whole: list, theta: np.ndarray) -> None:
        report = self.report
        report['compared'] += 1
        ahead = (any(g < AXIS_REFINE_GAP for g, _ in whole),
                 any(g < AXIS_REFINE_GAP for g, _ in found))
        report['ahead_missed'] += ahead[0] and not ahead[1]
        report['ahead_extra'] += ahead[1] and not ahead[0]
        for gap, top in whole:
            if gap >= self.gap:
                continue
            axis = _axis(top, theta)
            near = [g for g, t in found if _axis(t, theta) == axis
                    and abs(t[axis] - top[axis]) < AXIS_BASIN_M]
            if near:
                report['gap_error_max'] = max(report['gap_error_max'],
                                              round(abs(near[0] - gap), 3))
            else:
                report['peaks_missed'] += 1
                report['missed'].append([axis, round(gap, 1),
                                         round(float(top[axis] - theta[axis]), 3)])


class ComparedFixes:
    """``track_search.local_fix`` that, wherever its scan was a windowed one, finishes the same
    local fix again with the whole scans (``scans=None``, as before :class:`LocalScans`) and
    compares: the refusal for a peak ahead, and the published sigma per axis where neither
    is refused (windowed over whole: below 1 the windows left out a rival that widens it)."""

    def __init__(self, plain) -> None:
        self.plain = plain
        self.report = {'fixes': 0, 'ahead_missed': 0, 'ahead_missed_doubtful': 0,
                       'ahead_extra': 0, 'kept': 0,
                       'sigma_ratio_min': 1.0, 'sigma_ratio_max': 1.0, 'narrower_1pct': 0}

    def __call__(self, physics, *args, scans=None, **kwargs):
        before = scans.counts.windowed
        found = self.plain(physics, *args, scans=scans, **kwargs)
        if scans.counts.windowed == before or found.estimate is None:
            return found
        whole = self.plain(physics, *args, scans=None, **kwargs)
        report = self.report
        report['fixes'] += 1
        doubtful = found.doubtful
        # A doubtful fix is refused whatever its peaks.
        report['ahead_missed'] += whole.peaks_ahead and not found.peaks_ahead and not doubtful
        report['ahead_missed_doubtful'] += whole.peaks_ahead and not found.peaks_ahead and doubtful
        report['ahead_extra'] += found.peaks_ahead and not whole.peaks_ahead
        if not (found.peaks_ahead or whole.peaks_ahead or found.doubtful):
            report['kept'] += 1
            ratio = np.sqrt(np.diag(found.estimate.covariance_m2)
                            / np.diag(whole.estimate.covariance_m2))
            report['sigma_ratio_min'] = round(min(report['sigma_ratio_min'], ratio.min()), 6)
            report['sigma_ratio_max'] = round(max(report['sigma_ratio_max'], ratio.max()), 6)
            report['narrower_1pct'] += bool(ratio.min() < 0.99)
        return found


def _drives(args):
    """``(label, room, frames, seed, path)`` of each drive the arguments name."""
    if not args.rooms:
        yield args.room, load_room(args.room), args.frames, args.seed, None
        return
    rooms = generate_rooms(args.split, args.rooms, args.seed)
    only = [int(i) for i in args.only.split(',')] if args.only else range(len(rooms))
    if any(not 0 <= i < len(rooms) for i in only):
        raise SystemExit(f'--only {args.only}: expected room indices in [0, {len(rooms)})')
    for i in only:
        path = fitted_path(rooms[i], args.lap_s)
        if path is not None:
            yield rooms[i].name, rooms[i], None, frames_seed(args.seed, i), path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--rooms', type=int, default=0, help='N of random:N (generated rooms)')
    parser.add_argument('--split', choices=('dev', 'heldout'), default='dev')
    parser.add_argument('--only', default='', help='room indices, comma-separated')
    parser.add_argument('--lap-s', type=float, default=12.0)
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--seed', type=int, default=20)
    parser.add_argument('--windowed', choices=('on', 'off'), default='on')
    parser.add_argument('--compare', choices=('on', 'off'), default='on',
                        help='check every windowed scan against the whole one')
    parser.add_argument('--gap', type=float, default=150.0)
    parser.add_argument('--keep-gap', type=float, default=local_scans.KEEP_GAP,
                        help='LocalScans\' KEEP_GAP (dev choice)')
    parser.add_argument('--refresh-scans', type=int, default=local_scans.REFRESH_SCANS)
    args = parser.parse_args()
    local_scans.KEEP_GAP, local_scans.REFRESH_SCANS = args.keep_gap, args.refresh_scans
    array = load_array('square_4sensor')
    fixes = None
    if args.compare == 'on':
        fixes = ComparedFixes(track_search.local_fix)
        track_search.local_fix = fixes
    for label, room, frames, seed, path in _drives(args):
        search = TrackSearch(windowed_scans=args.windowed == 'on')
        if args.compare == 'on':
            search.scans = ComparedScans(args.windowed == 'on', args.gap)
        details: dict = {}
        evaluate_tracked(room, array, Chirp(), Scenario(snr_db=args.snr_db, seed=args.seed),
                         frames, seed, heading_noise_deg=args.heading_noise_deg,
                         details=details, path=path, track_search=search)
        counts = search.scans.counts
        out = {'room': label, 'snr_db': args.snr_db, 'windowed': args.windowed,
               'keep_gap': args.keep_gap, 'refresh_scans': args.refresh_scans,
               **vouched_summary(details), **search.counts.as_dict(),
               'scans': {'whole': counts.whole, 'windowed': counts.windowed,
                         'windowed_poses': counts.poses, 'whole_because': counts.reasons}}
        if fixes is not None:
            out['compared'] = search.scans.report
            out['fixes_compared'] = dict(fixes.report)
            fixes.report = ComparedFixes(None).report
        print(json.dumps(out), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
