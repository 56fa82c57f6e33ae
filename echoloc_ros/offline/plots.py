"""PNG figures of evaluation results (matplotlib, no display needed)."""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from echoloc_ros.core.room import Room


def _floor_plan(ax, room: Room) -> None:
    outline = np.vstack([room.vertices_m, room.vertices_m[:1]])
    ax.plot(outline[:, 0], outline[:, 1], color='0.3', lw=1.5)
    for box in room.furniture:
        ax.add_patch(_rect(box.min_m[:2], box.max_m[:2]))
    ax.set_aspect('equal')
    ax.set_xlabel('x [m]')
    ax.set_ylabel('y [m]')


def _rect(lo, hi):
    from matplotlib.patches import Rectangle
    return Rectangle(lo, *(np.asarray(hi) - lo), color='tan', alpha=0.6)


def evaluation_png(room: Room, frames: dict, tracked: dict | None, path: Path,
                   title: str) -> Path:
    """Error CDF, error map over the floor plan, covariance calibration, and the tracked path.

    :param frames: ``details`` of ``evaluate_physics`` (random poses).
    :param tracked: ``details`` of ``evaluate_tracked`` (a trajectory), or None.
    """
    fig = Figure(figsize=(14, 9), layout='constrained')
    axes = fig.subplots(2, 2)
    fig.suptitle(title)

    ax = axes[0, 0]
    for label, errors in (('per frame', frames['errors_m']),
                          ('tracked', None if tracked is None else tracked['tracked_errors_m'])):
        if errors is not None:
            cm = np.sort(100 * np.asarray(errors))
            ax.step(cm, np.arange(1, cm.size + 1) / cm.size, where='post', label=label)
    ax.set_xscale('log')
    ax.axvline(5, color='0.6', ls=':', label='5 cm')
    ax.set_xlabel('position error [cm]')
    ax.set_ylabel('fraction of frames')
    ax.set_title('error CDF')
    ax.legend()
    ax.grid(alpha=0.3)

    ax = axes[0, 1]
    _floor_plan(ax, room)
    truth = frames['truth_m']
    sc = ax.scatter(truth[:, 0], truth[:, 1], c=np.log10(100 * frames['errors_m'] + 1e-3),
                    cmap='viridis', s=18, vmin=-2, vmax=2)
    fig.colorbar(sc, ax=ax, label='log10 error [cm]')
    ax.set_title('per-frame error over the floor plan (at the true position)')

    ax = axes[1, 0]
    errors = frames['estimate_m'] - truth
    d2 = np.einsum('ni,nij,nj->n', errors, np.linalg.inv(frames['covariance_m2']), errors)
    nominal = np.linspace(0.01, 0.99, 99)
    actual = [np.mean(d2 <= stats.chi2.ppf(p, 3)) for p in nominal]
    ax.plot(nominal, actual, label='echoloc')
    ax.plot([0, 1], [0, 1], color='0.6', ls=':', label='ideal')
    ax.set_xlabel('nominal coverage of the covariance ellipsoid')
    ax.set_ylabel('fraction of truths inside')
    ax.set_title('covariance calibration')
    ax.legend()
    ax.grid(alpha=0.3)

    ax = axes[1, 1]
    if tracked is None:
        ax.set_axis_off()
    else:
        _floor_plan(ax, room)
        ax.plot(tracked['truth_m'][:, 0], tracked['truth_m'][:, 1], color='0.2', lw=2,
                label='truth')
        ax.plot(tracked['tracked_m'][:, 0], tracked['tracked_m'][:, 1], color='C1', lw=1,
                label='tracked')
        bad = tracked['errors_m'] > 0.10
        ax.scatter(tracked['estimate_m'][bad, 0], tracked['estimate_m'][bad, 1], color='C3',
                   marker='x', s=25, label='per-frame fixes > 10 cm off')
        ax.set_xlim(room.vertices_m[:, 0].min() - 0.2, room.vertices_m[:, 0].max() + 0.2)
        ax.set_ylim(room.vertices_m[:, 1].min() - 0.2, room.vertices_m[:, 1].max() + 0.2)
        ax.legend(loc='upper right', fontsize=8)
        ax.set_title('trajectory: truth and tracked pose')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
