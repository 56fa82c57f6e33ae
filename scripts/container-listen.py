"""Subscribe on this host to a graph running elsewhere (a container) and print what arrived.

Waits for the first pose and ``--settle-s`` more (the nodes' start-up), then counts poses and
samples the diagnostics every second for ``--duration-s``; prints one JSON line: pose rate, error
against ground truth (sim) or a known position (serial), and each diagnostic status's worst and
last level. Exit status 1 when the rate is below ``--min-rate-hz``, the median error above
``--max-error-cm`` or, with ``--diagnostics-ok``, a status is not OK at the end. Used by
scripts/container-check.sh.
"""
import argparse
import json
import time

import numpy as np
import rclpy

from echoloc_ros.ros.diagnostics import level_of
from echoloc_ros.ros.listener import GraphListener, Spinner

LEVELS = ('OK', 'WARN', 'ERROR', 'STALE')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--name', required=True, help='name of the check in the JSON')
    parser.add_argument('--duration-s', type=float, default=20.0)
    parser.add_argument('--wait-s', type=float, default=120.0,
                        help='give up when no pose arrives within this long')
    parser.add_argument('--settle-s', type=float, default=0.0,
                        help='start counting this long after the first pose')
    parser.add_argument('--min-rate-hz', type=float, default=20.0)
    parser.add_argument('--max-error-cm', type=float, default=5.0)
    parser.add_argument('--diagnostics-ok', action='store_true',
                        help='fail unless every diagnostic status is OK at the end')
    parser.add_argument('--position', type=float, nargs=3, metavar=('X', 'Y', 'Z'),
                        help='where the array is (serial); default: the sim\'s ground truth')
    args = parser.parse_args()
    rclpy.init()
    listener = GraphListener('echoloc_container_check')
    worst: dict[str, int] = {}
    with Spinner(listener):
        deadline = time.monotonic() + args.wait_s
        while not listener.pose_stamps():
            if time.monotonic() > deadline:
                print(json.dumps({'check': args.name, 'ok': False,
                                  'error': f'no pose within {args.wait_s:g} s'}), flush=True)
                return 1
            time.sleep(0.2)
        time.sleep(args.settle_s)
        start_s = time.time()
        while time.time() - start_s < args.duration_s:
            time.sleep(1.0)
            with listener.lock:
                for name, status in listener.heard.diagnostics.items():
                    worst[name] = max(worst.get(name, 0), level_of(status))
        with listener.lock:
            poses = [(k, v) for k, v in listener.heard.poses.items()
                     if start_s <= v[0] < start_s + args.duration_s]
            truths = dict(listener.heard.truths)
            last = {name: (level_of(s), s.message)
                    for name, s in listener.heard.diagnostics.items()}
    listener.destroy_node()
    rclpy.try_shutdown()
    if args.position:
        errors_m = [np.linalg.norm(v[1] - np.array(args.position)) for _, v in poses]
    else:
        errors_m = [np.linalg.norm(v[1] - truths[k]) for k, v in poses if k in truths]
    rate_hz = len(poses) / args.duration_s
    error_cm = 100 * float(np.median(errors_m)) if errors_m else float('inf')
    diagnostics_ok = bool(last) and all(level == 0 for level, _ in last.values())
    ok = (rate_hz >= args.min_rate_hz and error_cm <= args.max_error_cm
          and (diagnostics_ok or not args.diagnostics_ok))
    print(json.dumps({
        'check': args.name, 'ok': ok, 'settle_s': args.settle_s,
        'duration_s': args.duration_s, 'poses': len(poses), 'rate_hz': round(rate_hz, 2),
        'median_error_cm': round(error_cm, 2) if errors_m else None,
        'diagnostics_ok': diagnostics_ok,
        'diagnostics_last': {n: LEVELS[lv] for n, (lv, _) in sorted(last.items())},
        'diagnostics_worst': {n: LEVELS[lv] for n, lv in sorted(worst.items())},
        'not_ok_messages': {n: m for n, (lv, m) in sorted(last.items()) if lv}}), flush=True)
    return 0 if ok else 1


if __name__ == '__main__':
    raise SystemExit(main())
