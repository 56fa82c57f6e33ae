"""The tracked drive of ``echoloc evaluate --room R --tracked-frames N`` with the track search on
and off (issue 20: the localizer follows its own track), scored as the node publishes: the
tracked poses a confirmed track vouches for, their p95, coverage_95 and share outside their
own 99.9 % ellipsoid, with how many frames got a local fix and why the others did not.

The frames are those of ``echoloc evaluate --room R --heading-noise-deg H --tracked-frames N
--seed S --snr-db D`` (the same scenario and seed), so its ``tracked_*`` figures are this
script's for the same ``--track-search``.

    python scripts/track-search-study.py --room default_room --snr-db 10 --frames 300
    python scripts/track-search-study.py --room furnished_room --track-search on --period-s 2
"""
import argparse
import json
import sys

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.room import load_room
from echoloc_ros.core.track_search import FULL_SEARCH_PERIOD_S, TrackSearch
from echoloc_ros.offline.evaluation import evaluate_tracked
from echoloc_ros.offline.room_evaluation import vouched_summary
from echoloc_ros.sim.simulator import Scenario


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--room', default='default_room')
    parser.add_argument('--snr-db', type=float, default=20.0)
    parser.add_argument('--heading-noise-deg', type=float, default=1.0)
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--seed', type=int, default=20)
    parser.add_argument('--track-search', choices=('on', 'off', 'both'), default='both')
    parser.add_argument('--period-s', type=float, default=FULL_SEARCH_PERIOD_S,
                        help='the track search\'s full_search_period_s')
    args = parser.parse_args()
    if args.frames < 1:
        raise SystemExit(f'--frames must be >= 1, got {args.frames}')
    room, array = load_room(args.room), load_array('square_4sensor')
    scenario = Scenario(snr_db=args.snr_db, seed=args.seed)
    for mode in (('off', 'on') if args.track_search == 'both' else (args.track_search,)):
        search = TrackSearch(period_s=args.period_s) if mode == 'on' else False
        details: dict = {}
        try:
            evaluate_tracked(room, array, Chirp(), scenario, args.frames, args.seed,
                             heading_noise_deg=args.heading_noise_deg, details=details,
                             track_search=search)
        except ValueError as err:
            print(f'track-search-study: {err}', file=sys.stderr)
            return 1
        out = {'room': args.room, 'snr_db': args.snr_db, 'frames': args.frames,
               'seed': args.seed, 'track_search': mode, **vouched_summary(details)}
        if search:
            out.update({'period_s': args.period_s, **search.counts.as_dict()})
        print(json.dumps(out), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
