"""Every "Done when" item of issue 18 (a real array, a real room: the model off) in one run,
each ``echoloc evaluate`` judged against its bar, so the whole issue is measured at one commit
on worlds never used before.

    python scripts/issue18-sweep.py --me-seed S --seed T [--items 1a,2a,...] [--jobs 2]
        [--n-scale 0.1] [--dry-run] [--out FILE]

``--me-seed`` draws the model-error worlds (``S`` .. ``S + 9``: pick ``S`` whose ten worlds no
earlier run used), ``--seed`` the perfect-model and every-order runs' frames. Each item prints
one JSON line: its commands, the figures the bar reads and ``met`` (true, false, or null where
the bar is a judgement the line states). ``--n-scale`` shrinks every run's frames (a dev smoke
run; a held-out claim needs 1). Runs are ``nice -n 5`` subprocesses, ``--jobs`` at once.

Item 7 (the DESIGN section 5 scenarios with a perfect model) compares with the intervals in
``docs/results.md``'s table; the sweep prints its four runs and leaves ``met`` null.
"""
import argparse
import json
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

E = 'echoloc evaluate --heading-noise-deg 1 --tracked-frames 0'
TRANSDUCERS = '--resonance-offset-hz 1500 --bandwidth-range-hz 9000 15000'
ROOM3 = '--surface-offset-m 0.03 --room-tolerance-m 0.03'
MIX20 = ('--surface-offset-m 0.01 --room-tolerance-m 0.01 --tilt-deg 0.25 --estimate-tilt '
         '--receiver-offset-m 0.00025 --resonance-spread-hz 200')
CAL10 = '--calibrate-frames 100 --calibrate-receivers 50 --receiver-passes 2'
BAND = (0.90, 0.98)


def runs(me: str, seed: int) -> dict[str, dict[str, str]]:
    """Each item's named ``evaluate`` argument strings (``me``: the model-error options)."""
    perfect = f'--method physics --n 1000 --seed {seed}'
    return {
        '1a': {'run': f'--n 1000 --snr-db 20 {TRANSDUCERS} --calibrate-frames 250 {me}'},
        '1b': {'run': f'--room furnished_room --n 1000 --snr-db 10 --seed {seed} {TRANSDUCERS} '
                      f'--calibrate-frames 250 {me}',
               'perfect': f'--room furnished_room --snr-db 10 {perfect}'},
        '1c': {'run': f'--n 300 --snr-db 20 {TRANSDUCERS} {me}'},
        '2a': {'run': f'--n 1000 {ROOM3} --air-drawn {me}'},
        '2b': {'run': f'--room default_room --calibrate-room-s 60 --n 300 {ROOM3} '
                      f'{me.replace("draws 10", "draws 3")}'},
        '2c': {'run': f'--room furnished_room --calibrate-room-s 60 --n 300 {ROOM3} '
                      f'{me.replace("draws 10", "draws 3")}'},
        '3a': {'run': f'--n 1000 --tilt-deg 3 --imu-tilt --calibrate-receivers 100 {me}',
               'level': f'--n 1000 --calibrate-receivers 100 {me}'},
        '3b': {'run': f'--n 1000 --tilt-deg 1 --estimate-tilt {me}'},
        '3c': {'run': f'--n 1000 --receiver-offset-m 0.0005 --calibrate-receivers 100 '
                      f'--receiver-passes 2 {me}'},
        '4a': {'run': f'--n 1000 {MIX20} {CAL10} --calibrate-room-s 10 --air-drawn {me}'},
        '4c': {'run': f'--n 300 {MIX20} --air-drawn {me}'},
        '5': {'default': f'--room default_room --snr-db 20 --max-order all {perfect}',
              'furnished': f'--room furnished_room --snr-db 20 --max-order all {perfect}'},
        '7': {f'{room}_{snr}': f'--room {room} --snr-db {snr} {perfect}'
              for room in ('default_room', 'furnished_room') for snr in (20, 10)},
    }


def in_band(x: float) -> bool:
    """``x`` within the coverage band the issue asks."""
    return BAND[0] <= x <= BAND[1]


def judge(item: str, out: dict[str, dict]) -> tuple[dict, bool | None]:
    """The figures ``item``'s bar reads from its runs' JSON ``out``, and whether it is met."""
    r = out.get('run', {})
    keys = ('median_cm', 'p95_cm', 'gross_rate_10cm', 'gross_rate_10cm_ci95', 'coverage_95',
            'outside_999', 'withheld_rate')
    fig = {k: r.get(k) for k in keys if k in r}
    if item == '1a':
        fig['range_first_echo_rate'] = r.get('range_first_echo_rate')  # item 6
        return fig, (r['gross_rate_10cm'] <= 0.01 and r['median_cm'] <= 0.1
                     and r['range_first_echo_rate'] >= 0.99)
    if item == '1b':
        p = out['perfect']
        ratios = {k: r[k] / max(p[k], 1e-9) for k in ('median_cm', 'p95_cm', 'gross_rate_10cm')}
        return {**fig, 'perfect': {k: p[k] for k in ratios}, 'ratios': ratios}, \
            max(ratios.values()) <= 1.5
    if item in ('1c', '4c'):
        published = r.get('withheld_rate', 0.0) < 1.0
        return fig, (not published) or r['coverage_95'] >= BAND[0]
    if item == '2a':
        return fig, in_band(r['coverage_95'])
    if item in ('2b', '2c'):
        fig = {'surface_error_mm_max': r['surface_error_mm_max'],
               'calibrated_median_cm': r['calibrated_median_cm'],
               'perfect_median_cm': r['perfect_median_cm'],
               'calibrated_coverage_95': r.get('calibrated_coverage_95')}
        ratio = r['calibrated_median_cm'] / r['perfect_median_cm']
        return {**fig, 'median_ratio': ratio}, r['surface_error_mm_max'] <= 3 and ratio <= 1.5
    if item == '3a':
        lv = out['level']
        fig['level'] = {k: lv[k] for k in keys if k in lv}
        return fig, (r['gross_rate_10cm'] <= lv['gross_rate_10cm_ci95'][1]
                     and r['median_cm'] <= 1.1 * lv['median_cm'])
    if item == '3b':
        return fig, r['gross_rate_10cm'] <= 0.01
    if item == '3c':
        return fig, r['gross_rate_10cm'] <= 0.01 and in_band(r['coverage_95'])
    if item == '4a':
        r = {k[len('calibrated_'):] if k.startswith('calibrated_') else k: v
             for k, v in r.items()}
        fig = {k: r.get(k) for k in keys if k in r}
        return fig, r['median_cm'] <= 0.2 and in_band(r['coverage_95'])
    if item == '5':
        fig = {name: {k: o[k] for k in keys if k in o} for name, o in out.items()}
        return fig, all(in_band(o['coverage_95']) and o['p95_cm'] <= 0.3 for o in out.values())
    return {name: {k: o[k] for k in keys if k in o} for name, o in out.items()}, None


def evaluate(args: str, dry_run: bool) -> dict:
    """``echoloc evaluate`` with ``args`` (niced); its last JSON line."""
    cmd = ['nice', '-n', '5', *shlex.split(E), *shlex.split(args)]
    if dry_run:
        return {'command': shlex.join(cmd)}
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith('{')]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f'{shlex.join(cmd)} failed (rc {done.returncode}): '
                           f'{done.stderr.strip()[-400:]}')
    return json.loads(lines[-1])


def scaled(args: str, scale: float) -> str:
    """``args`` with each ``--n N`` multiplied by ``scale`` (at least 20 frames)."""
    words = args.split()
    for k, word in enumerate(words[:-1]):
        if word == '--n':
            words[k + 1] = str(max(20, int(round(int(words[k + 1]) * scale))))
    return ' '.join(words)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--me-seed', type=int, required=True, help='model-error worlds S .. S+9')
    p.add_argument('--seed', type=int, required=True, help="perfect-model runs' frame seed")
    p.add_argument('--items', default='1a,1b,1c,2a,2b,2c,3a,3b,3c,4a,4c,5,7')
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--n-scale', type=float, default=1.0)
    p.add_argument('--dry-run', action='store_true')
    p.add_argument('--out', help='also append each JSON line to this file')
    a = p.parse_args()
    me = f'--model-error-seed {a.me_seed} --model-error-draws 10'
    table = runs(me, a.seed)
    items = a.items.split(',')
    unknown = [i for i in items if i not in table]
    if unknown:
        sys.exit(f'issue18-sweep: unknown items {unknown}; known: {sorted(table)}')
    jobs = [(i, name, scaled(args, a.n_scale)) for i in items for name, args in table[i].items()]
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futures = {(i, name): pool.submit(evaluate, args, a.dry_run) for i, name, args in jobs}
        for i in items:  # each item's line as soon as its runs are done, in order
            out = {name: futures[(i, name)].result() for name in table[i]}
            report(i, out, table[i], a)


def report(i: str, out: dict[str, dict], item: dict[str, str], a: argparse.Namespace) -> None:
    """Print (and with ``--out`` append) item ``i``'s line from its runs' JSON ``out``."""
    commands = {name: f'{E} {scaled(args, a.n_scale)}' for name, args in item.items()}
    line = {'item': i, 'commands': commands}
    if not a.dry_run:
        figures, met = judge(i, out)
        line.update(figures=figures, met=met)
    text = json.dumps(line)
    print(text, flush=True)
    if a.out:
        with open(a.out, 'a') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
