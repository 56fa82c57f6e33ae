import json
import subprocess
import sys

import numpy as np
import pytest

from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.chirp import Chirp
from echoloc_ros.core.frame_rate import max_frame_rate_hz
from echoloc_ros.offline.room_evaluation import (evaluate_rooms, evaluate_rooms_tracked,
                                                 parse_rooms, quantile_interval, summary)
from echoloc_ros.core.room import load_room
from echoloc_ros.offline.tracked_path import fitted_path, tracked_path
from echoloc_ros.sim.room_generator import generate_room
from echoloc_ros.sim.simulator import Scenario
from echoloc_ros.sim.trajectory import LissajousTrajectory


def test_rooms_spec():
    assert parse_rooms('random:30') == 30
    for bad in ('random:0', 'random:x', 'l_shaped_room', 'random:-2'):
        with pytest.raises(ValueError, match=f'--rooms must be random:N .*got {bad!r}'):
            parse_rooms(bad)


def test_quantile_interval_holds_the_true_quantile_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    median_held = p95_held = 0
    trials = 2000
    for _ in range(trials):
        x = rng.standard_normal(60)
        lo, hi = quantile_interval(x, 0.5)
        median_held += lo <= 0.0 <= hi
        lo, hi = quantile_interval(x, 0.95)
        p95_held += lo <= 1.6449 <= hi
    # Order statistics give at least the level (discreteness adds a little).
    assert 0.94 <= median_held / trials <= 0.985
    assert 0.93 <= p95_held / trials <= 0.995


def test_summary_counts_rates_and_their_intervals():
    errors = np.array([0.001, 0.002, 0.5, 0.003])
    out = summary(errors, np.array([True, True, False, True]),
                  np.array([False, False, True, False]), n_frames=5)
    assert out['n'] == 4 and out['withheld_rate'] == pytest.approx(0.2)
    assert out['gross_rate_10cm'] == 0.25 and out['outside_999'] == 0.25
    assert out['coverage_95'] == 0.75
    lo, hi = out['gross_rate_10cm_ci95']
    assert lo < 0.25 < hi


def test_frames_pool_over_rooms():
    rooms = [generate_room('dev', 0), generate_room('dev', 1)]
    seen = []
    out = evaluate_rooms(rooms, load_array('square_4sensor'), Chirp(), Scenario(snr_db=20.0),
                         5, 3, heading_noise_deg=1.0,
                         progress=lambda i, room, result: seen.append((i, room.name)))
    assert seen == [(0, rooms[0].name), (1, rooms[1].name)]
    assert out['frames_per_room'] == 3
    per_room = out['per_room']
    assert [r['room'] for r in per_room] == [r.name for r in rooms]
    assert out['pooled']['n'] == sum(r['n'] for r in per_room)
    assert out['pooled']['rooms'] == 2
    assert out['shoebox']['n'] == per_room[0]['n'] and out['shoebox']['rooms'] == 1
    assert out['non_rectangular']['n'] == per_room[1]['n']
    assert per_room[1]['max_frame_rate_hz'] == pytest.approx(
        max_frame_rate_hz(rooms[1], Chirp()), abs=1e-4)
    gross = sum(r['gross_rate_10cm'] * r['n'] for r in per_room) / out['pooled']['n']
    assert out['pooled']['gross_rate_10cm'] == pytest.approx(gross, abs=1e-4)


def test_cli_evaluates_generated_rooms():
    cmd = [sys.executable, '-m', 'echoloc_ros.cli', 'evaluate', '--rooms', 'random:2',
           '--split', 'heldout', '--n', '2', '--seed', '1']
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result['split'] == 'heldout'
    assert [r['room'] for r in result['per_room']] == ['heldout_1_000_shoebox',
                                                       result['per_room'][1]['room']]
    assert result['per_room'][1]['room'].startswith('heldout_1_001_')
    bad = subprocess.run(cmd[:5] + ['random:none'], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "--rooms must be random:N with N >= 1 generated rooms, got 'random:none'" \
        in bad.stderr


def test_fitted_path_stays_inside_a_non_rectangular_plan_and_off_the_boxes():
    for room in (generate_room('dev', 3), generate_room('dev', 5)):  # L, alcove + 6 boxes
        assert not room.is_shoebox
        path = fitted_path(room, 20.0)
        assert path is not None and path.period_s <= 20.0
        points = path.positions(np.linspace(0.0, path.period_s, 997))
        points[:, :2] += room.vertices_m.min(axis=0)
        assert np.all(room.contains_xy(points[:, :2]))
        assert np.min(room.wall_distance_m(points[:, :2])) >= 0.6 - 1e-3
        assert not any(np.any(box.contains(points, 0.2 - 1e-3)) for box in room.furniture)
    # The smallest figure (0.25 m half-extents) takes about 7.9 s a lap at 0.3 m/s.
    assert fitted_path(generate_room('dev', 3), 5.0) is None


def test_the_tracked_path_of_an_l_stays_on_its_floor():
    # Over the bounding box, a quarter of l_shaped_room's figure-of-eight lay in the L's
    # missing corner (no frame: the simulator refuses an array outside the room) and the lap
    # resumed 6 cm from the notch's wall; its path is now the largest figure inside the plan.
    room = load_room('l_shaped_room')
    over_the_box = LissajousTrajectory.inside((6.0, 5.0), 0.6, 0.3, 0.3)
    lap = over_the_box.positions(np.linspace(0.0, over_the_box.period_s, 600))[:, :2]
    assert np.mean(room.contains_xy(lap)) < 0.8
    path = tracked_path(room)
    points = path.positions(np.linspace(0.0, path.period_s, 997))[:, :2]
    assert np.all(room.contains_xy(points))
    assert np.min(room.wall_distance_m(points)) >= 0.6 - 1e-3
    assert path.amplitude_m[0] >= 0.8 and path.amplitude_m[1] >= 0.8
    # A rectangle keeps the figure over its bounding box.
    default = load_room('default_room')
    assert tracked_path(default) == LissajousTrajectory.inside((6.0, 4.5), 0.6, 0.3, 0.3)


def test_one_tracked_lap_per_room():
    bare = generate_room('heldout', 0)
    assert bare.is_shoebox and not bare.furniture
    seen = []
    out = evaluate_rooms_tracked([bare], load_array('square_4sensor'),
                                 Chirp(), Scenario(snr_db=20.0), 12.0, 1, heading_noise_deg=1.0,
                                 progress=lambda i, room, result: seen.append(i))
    assert seen == [0] and out['rooms_without_path'] == []
    (one,) = out['per_room']
    assert one['room'] == bare.name and one['lap_s'] <= 12.0
    # Scored: the poses a confirmed track vouches for; the first frames (before the track
    # is confirmed) are withheld.
    frames = int(np.ceil(one['lap_s'] * 25.0))
    assert one['n'] == out['pooled']['n'] and frames - 5 <= one['n'] < frames
    assert one['withheld_rate'] == pytest.approx(1.0 - one['n'] / frames, abs=1e-4)
    # A bare shoebox at 20 dB: fixes within 0.1 cm (p95); the track follows them on this
    # tight figure (0.36 m half-extents; it lagged them by about 1 cm when it filtered the
    # room file's 2 cm tolerance as if it were noise), never outside its 99.9 %.
    assert one['gross_rate_10cm'] == 0.0 and one['p95_cm'] <= 0.2
    assert one['outside_999'] == 0.0
    assert out['shoebox'] == {'rooms': 1, **{k: v for k, v in one.items() if k in out['pooled']
                                             and k != 'rooms'}}
    assert 'non_rectangular' not in out


def test_cli_tracked_laps_name_rooms_without_path_and_refuse_a_single_room():
    cmd = [sys.executable, '-m', 'echoloc_ros.cli', 'evaluate', '--rooms', 'random:2',
           '--split', 'heldout', '--tracked-lap-s', '5']
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result['scenario']['tracked_lap_s'] == 5.0 and result['per_room'] == []
    assert result['rooms_without_path'] == ['heldout_0_000_shoebox',
                                            result['rooms_without_path'][1]]
    bad = subprocess.run(cmd[:4] + ['--room', 'default_room', '--tracked-lap-s', '5'],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and '--tracked-lap-s applies to --rooms random:N' in bad.stderr
