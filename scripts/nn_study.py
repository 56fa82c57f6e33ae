"""What the network studies (``nn-guard-study.py``, ``nn-tie-study.py``) share: a fix as a
JSON row, the room groups, each fix's outcome against the truth, and a group's line of a
rule's outcomes beside physics' own."""
import numpy as np

from echoloc_ros.offline.evaluation import CHI2_95_3DOF, CHI2_999_3DOF

FS_HZ = 250e3
GROUPS = ('pooled', 'shoebox', 'non_rectangular', 'soft', 'furnished')


def fix_row(estimate) -> dict:
    """An estimate's place, covariance, score, residual ratio and confidence (JSON)."""
    return {'position_m': estimate.position_m.tolist(),
            'covariance_m2': np.asarray(estimate.covariance_m2).ravel().tolist(),
            'score': float(estimate.score), 'ratio': float(estimate.residual_ratio),
            'confidence': float(estimate.confidence)}


def apart_m(a: dict, b: dict) -> float:
    """How far apart two fix rows are, m."""
    return float(np.linalg.norm(np.subtract(a['position_m'], b['position_m'])))


def outcome(fix: dict, truth: np.ndarray) -> tuple[bool, bool, bool]:
    """Whether ``fix`` is gross (10 cm), inside its 95 % and outside its 99.9 % ellipsoid."""
    e = np.asarray(fix['position_m']) - truth
    d2 = float(e @ np.linalg.solve(np.reshape(fix['covariance_m2'], (3, 3)), e))
    return bool(np.linalg.norm(e) >= 0.1), d2 <= CHI2_95_3DOF, d2 > CHI2_999_3DOF


def in_group(r: dict, group: str) -> bool:
    """Whether frame row ``r``'s room is of ``group`` (:data:`GROUPS`)."""
    return {'pooled': True, 'shoebox': r['shoebox'], 'non_rectangular': not r['shoebox'],
            'soft': r['soft'], 'furnished': r['furnished']}[group]


def group_line(fixes: list[dict], rows: list[dict]) -> tuple[dict, np.ndarray]:
    """One group's line: the rule's ``fixes`` of frame ``rows`` against physics' own (gross,
    won, lost, coverage_95, outside); and the rule's outcomes (:func:`outcome`), a row each."""
    got = np.array([outcome(f, np.asarray(r['truth_m'])) for f, r in zip(fixes, rows)])
    base = np.array([outcome(r['physics'], np.asarray(r['truth_m'])) for r in rows])
    return {'n': len(rows), 'gross': int(got[:, 0].sum()),
            'physics_gross': int(base[:, 0].sum()),
            'won': int((~got[:, 0] & base[:, 0]).sum()),
            'lost': int((got[:, 0] & ~base[:, 0]).sum()),
            'coverage_95': round(float(got[:, 1].mean()), 4),
            'outside': int(got[:, 2].sum()),
            'physics_outside': int(base[:, 2].sum())}, got
