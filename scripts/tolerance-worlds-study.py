"""Issue 18 item 2a over many worlds: how often a run of ten worlds, each room drawn within its
file's tolerance, lands in the band [0.90, 0.98], for shares of the room term's z variance.

    python scripts/tolerance-worlds-study.py FILE.npz:SEED:DRAWS... [--shares 1.0,1.2]
        [--worlds 60000]

Each ``FILE.npz`` is ``scripts/coverage-terms-study.py --out`` of a plain 2a run (the default
room, ``--surface-offset-m T --room-tolerance-m T --model-error-seed SEED --model-error-draws
DRAWS``). Each world's surfaces are drawn again from its seed (``ModelError.draw_room``), each
right fix's error is fitted to them (per axis: the nearer wall and the height's scale along x
and y, the floor and the ceiling by height along z) and the fit's residual kept. Per share it
prints one JSON line: the real fixes' coverage_95 pooled and per world (published: confidence
above 0), and over ``--worlds`` worlds drawn anew (30 fixes each, sampled from the real ones,
their error the fit's for the new offsets plus their own residual; a gross fix keeps its error)
the mean, the spread per world and the share of ten-world runs in the band.
"""
import argparse
import json
from dataclasses import replace

import numpy as np

from echoloc_ros.core.room import load_room
from echoloc_ros.core.room_tolerance import Z_VARIANCE_SHARE, tolerance_covariance
from echoloc_ros.offline.evaluation import CHI2_95_3DOF
from echoloc_ros.sim.model_error import ModelError

BAND = (0.90, 0.98)


def response(position: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(3, 6, 2)``: per axis, the error's two regressors' weights on the offsets (south,
    east, north, west, floor, ceiling along +y, +x, +y, +x, +z, +z)."""
    r = np.zeros((3, 6, 2))
    height = hi[2] - lo[2]
    for axis, (low, high) in enumerate(((3, 1), (0, 2))):
        near_low = position[axis] - lo[axis] <= hi[axis] - position[axis]
        distance = position[axis] - lo[axis] if near_low else hi[axis] - position[axis]
        sign = 1.0 if near_low else -1.0
        r[axis, low if near_low else high, 0] = -1.0
        r[axis, 4, 1], r[axis, 5, 1] = sign * distance / height, -sign * distance / height
    share = (position[2] - lo[2]) / height
    r[2, 4, 0], r[2, 5, 1] = -(1.0 - share), -share
    return r


def load(specs: list[str]) -> dict:
    """The fixes of every ``FILE:SEED:DRAWS`` with their world's offsets."""
    names = ('error', 'other', 'tolerance', 'position', 'published', 'offsets', 'world',
             'response')
    columns: dict[str, list] = {k: [] for k in names}
    for spec in specs:
        path, seed, draws = spec.rsplit(':', 2)
        z = np.load(path, allow_pickle=True)
        n, tol = len(z['error']), float(np.sqrt(3.0 * z['sides'][0].max()))
        told = replace(load_room('default_room'), tolerance_m=tol)
        worlds = int(seed) + np.arange(n) * int(draws) // n
        offsets = {w: ModelError(surface_offset_m=tol, seed=int(w)).draw_room(told).offsets_m
                   for w in np.unique(worlds)}
        columns['error'] += list(z['error'])
        columns['other'] += list(z['published'] - z['tolerance'])
        columns['tolerance'] += list(z['tolerance'])
        columns['position'] += list(z['position'])
        columns['published'] += list(z['confidence'] > 0)
        columns['offsets'] += [offsets[w] for w in worlds]
        columns['world'] += list(worlds)
        columns['response'] += [response(p, lo, hi) for p, lo, hi in
                                zip(z['position'], z['lo'], z['hi'])]
    out = {k: np.array(v) for k, v in columns.items()}
    out['told'] = told
    return out


def fitted(d: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per axis the two regressors' coefficients ``(3, 2)`` over the right published fixes,
    and every fix's residual ``(n, 3)``."""
    right = d['published'] & (np.linalg.norm(d['error'], axis=1) < 0.1)
    x = np.einsum('naso,ns->nao', d['response'], d['offsets'])
    coef = np.array([np.linalg.lstsq(x[right, a], d['error'][right, a], rcond=None)[0]
                     for a in range(3)])
    return coef, d['error'] - np.einsum('nao,ao->na', x, coef)


def covered(error: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Whether each error is inside its covariance's 95 % ellipsoid."""
    d2 = np.einsum('...i,...i->...', error, np.linalg.solve(covariance, error[..., None])[..., 0])
    return d2 <= CHI2_95_3DOF


def score(d: dict, coef: np.ndarray, residual: np.ndarray, share: float, worlds: int) -> dict:
    """The real and redrawn figures of the room term with z variance share ``share``."""
    scale = np.sqrt([1.0, 1.0, share / Z_VARIANCE_SHARE])
    term = np.array([tolerance_covariance(d['told'], p) for p in d['position']])
    covariance = d['other'] + term * scale[:, None] * scale[None, :]
    pub = np.flatnonzero(d['published'])
    real = covered(d['error'][pub], covariance[pub])
    per_world = np.array([real[d['world'][pub] == w].mean() for w in np.unique(d['world'])])
    rng = np.random.default_rng(0)
    tol = d['told'].tolerance_m
    moves = np.einsum('naso,ao->nas', d['response'], coef)  # error per offset, each fix
    gross = np.linalg.norm(d['error'], axis=1) >= 0.1
    drawn = np.empty(worlds)
    for start in range(0, worlds, 2000):  # in blocks: 2000 worlds of 30 fixes at a time
        pick = pub[rng.integers(0, pub.size, (min(2000, worlds - start), 30))]
        offsets = rng.uniform(-tol, tol, (pick.shape[0], 6))
        error = np.einsum('wkas,ws->wka', moves[pick], offsets) + residual[pick]
        error = np.where(gross[pick][..., None], d['error'][pick], error)
        drawn[start:start + pick.shape[0]] = covered(error, covariance[pick]).mean(axis=1)
    ten = drawn[: worlds // 10 * 10].reshape(-1, 10).mean(axis=1)
    return {'z_share': share, 'real_coverage_95': round(float(real.mean()), 4),
            'n': int(real.size), 'worlds': int(per_world.size),
            'real_worlds_below_in_above': [int(np.sum(per_world < BAND[0])),
                                           int(np.sum((per_world >= BAND[0])
                                                      & (per_world <= BAND[1]))),
                                           int(np.sum(per_world > BAND[1]))],
            'drawn_coverage_95': round(float(drawn.mean()), 4),
            'drawn_world_std': round(float(drawn.std()), 3),
            'drawn_ten_in_band': round(float(np.mean((ten >= BAND[0]) & (ten <= BAND[1]))), 3),
            'drawn_ten_p5_p95': np.percentile(ten, [5, 95]).round(3).tolist()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('runs', nargs='+', help='FILE.npz:MODEL_ERROR_SEED:DRAWS')
    p.add_argument('--shares', default='1.0,1.2')
    p.add_argument('--worlds', type=int, default=60000)
    a = p.parse_args()
    d = load(a.runs)
    coef, residual = fitted(d)
    print(json.dumps({'coefficients': coef.round(3).tolist()}), flush=True)
    for share in (float(s) for s in a.shares.split(',')):
        print(json.dumps(score(d, coef, residual, share, a.worlds)), flush=True)


if __name__ == '__main__':
    main()
