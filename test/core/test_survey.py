"""Placing moved furniture from frames at known poses, and writing the room file back."""
from dataclasses import replace

import numpy as np
import pytest
import yaml

from echoloc_ros.core.echo_processing import EchoProcessor
from echoloc_ros.offline.tracked_path import drive, moved_off_path, tracked_path
from echoloc_ros.core.room import load_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario
from echoloc_ros.core.survey import FurnitureSurvey, write_room_file

FS_HZ = 250e3


@pytest.fixture(scope='module')
def furnished():
    return load_room('furnished_room')


def path_frames(room, world, array, chirp, seed, snr_db=10.0, step_s=0.2):
    """Frames at true poses (heading exact) along one lap of the tracked evaluations' path."""
    path = tracked_path(room)
    frames = drive(path, room.vertices_m.min(axis=0), EchoSimulator(room, array, chirp, FS_HZ),
                   EchoProcessor(chirp, FS_HZ, array=array),
                   Scenario(snr_db=snr_db, furniture=world.furniture),
                   np.random.default_rng(seed), int(np.ceil(path.period_s / step_s)),
                   1.0 / step_s, 0.0)
    return [(features, position, yaw) for _, position, features, yaw in frames]


@pytest.fixture(scope='module')
def moved_drive(furnished, array, chirp):
    """The furnished room's furniture moved off the path (up to 1 m), and a lap's frames at
    true poses among it: ``(moved boxes, frames)``."""
    lo = furnished.vertices_m.min(axis=0)
    moved = moved_off_path(furnished, tracked_path(furnished), lo,
                           np.random.default_rng(3), 1.0)
    world = replace(furnished, furniture=moved)
    return moved, path_frames(furnished, world, array, chirp, seed=5)


@pytest.mark.long
def test_survey_places_the_boxes_the_path_passes(furnished, array, chirp, moved_drive):
    moved, frames = moved_drive
    survey = FurnitureSurvey(furnished, array, chirp, FS_HZ)
    result = survey.run(frames)
    assert result.n_frames == len(frames)
    fixes = {b.name: b for b in result.boxes}
    # The path runs 0.3 m high: the sofa, cabinet and bookshelf stand level with it.
    for box, truth in zip(furnished.furniture, moved):
        if box.name == 'desk_top':
            continue
        fix = fixes[box.name]
        shift = truth.min_m[:2] - box.min_m[:2]
        assert fix.seen, box.name
        assert fix.score > fix.score_at_file, box.name
        # Along the face's normal the echo's delay places it; along the face, the poses that
        # see it do: within a centimetre or two (one frame every 6 cm of path, and the receivers
        # whose reflection points lie on the face near its edges).
        assert np.min(np.abs(fix.shift_m - shift)) < 0.01, (box.name, fix.shift_m, shift)
        assert np.linalg.norm(fix.shift_m - shift) < 0.03, (box.name, fix.shift_m, shift)
    moved_box = {b.name: b for b in result.room.furniture}
    for box, fix in zip(furnished.furniture, result.boxes):
        assert moved_box[box.name].min_m[:2] == pytest.approx(box.min_m[:2] + fix.shift_m)
        assert moved_box[box.name].min_m[2] == box.min_m[2]


@pytest.mark.long
def test_survey_of_an_unmoved_room_leaves_it(furnished, array, chirp):
    frames = path_frames(furnished, furnished, array, chirp, seed=6, step_s=0.4)
    result = FurnitureSurvey(furnished, array, chirp, FS_HZ, max_shift_m=0.5).run(frames)
    # Where nothing has moved, no placement elsewhere scores enough above the file's
    # position to move a box, not even by the few millimetres noise would.
    for fix in result.boxes:
        assert np.all(fix.shift_m == 0.0), (fix.name, fix.shift_m, fix.score, fix.score_at_file)
    assert sum(fix.seen for fix in result.boxes) >= 3


def test_survey_bad_input_is_named(furnished, array, chirp, simulator):
    survey = FurnitureSurvey(furnished, array, chirp, FS_HZ)
    with pytest.raises(ValueError, match='at least one frame'):
        survey.run([])
    features = EchoProcessor(chirp, FS_HZ, array=array).process(
        simulator.simulate(np.array([2.0, 2.0, 0.5]), 0.0, Scenario()))
    with pytest.raises(ValueError, match=r'survey frame 1: pose must be a finite position '
                                         r'\(3,\) and yaw, got position \[nan, 2.0, 0.5\]'):
        survey.run([(features, np.array([2.0, 2.0, 0.5]), 0.0),
                    (features, np.array([np.nan, 2.0, 0.5]), 0.0)])
    with pytest.raises(ValueError, match='survey frame 0: features have 2 channels'):
        survey.run([(features.channels(np.array([True, True, False, False])),
                     np.array([2.0, 2.0, 0.5]), 0.0)])
    with pytest.raises(ValueError, match="room 'default_room' has no furniture"):
        FurnitureSurvey(load_room('default_room'), array, chirp)
    with pytest.raises(ValueError, match='max_shift_m must be > 0, got 0'):
        FurnitureSurvey(furnished, array, chirp, max_shift_m=0.0)
    with pytest.raises(ValueError, match=r'step_m must be in \(0, max_shift_m=1.0\], got 2'):
        FurnitureSurvey(furnished, array, chirp, step_m=2.0)


def test_write_room_file_moves_only_the_seen_boxes(furnished, tmp_path):
    from echoloc_ros.core.survey import BoxFix, SurveyResult
    fixes = [BoxFix(box.name, np.array([0.25, -0.1]) if box.name == 'sofa' else np.zeros(2),
                    100.0, 0.0, 10, box.name != 'desk_top') for box in furnished.furniture]
    out = write_room_file('furnished_room', SurveyResult(furnished, fixes, 10),
                          tmp_path / 'now.yaml')
    written = load_room(out)
    for before, after in zip(furnished.furniture, written.furniture):
        expected = before.min_m + ([0.25, -0.1, 0.0] if before.name == 'sofa' else 0.0)
        assert after.min_m == pytest.approx(expected)
        assert after.absorption == before.absorption
    text = yaml.safe_load(out.read_text())
    assert [f['material'] for f in text['furniture']] == ['wood', 'wood', 'fabric', 'wood']
    assert text['name'] == 'furnished_room'


@pytest.mark.long
def test_evaluate_survey_small_run(furnished, array, chirp):
    from echoloc_ros.offline.survey_evaluation import evaluate_survey
    result = evaluate_survey(furnished, array, chirp, 20.0, n_layouts=1, survey_s=6.0,
                             n_test=4, seed=2, method='physics', live_survey_s=3.0)
    assert result['n'] == 4 and result['boxes'] == 4
    # 150 frames at 25 Hz, every 5th kept when the track is sure of itself.
    assert 0 < result['survey_frames_mean'] <= 30
    assert result['known_median_cm'] < 1.0
    # The drive's own room, kept up to date as it went: its boxes are those of the last
    # placement, at the end of the drive.
    assert 0 < result['live_boxes_seen'] <= 4
    assert np.isfinite(result['live_box_error_cm_median'])
    for key in ('stale', 'surveyed', 'known', 'live'):
        low, high = result[f'{key}_gross_rate_10cm_ci95']
        assert low <= result[f'{key}_gross_rate_10cm'] <= high
    with pytest.raises(ValueError, match='a survey is for moved furniture'):
        evaluate_survey(furnished, array, chirp, 20.0, 1, 6.0, 4, 2, furniture_shift_m=0.0)


@pytest.mark.long
def test_live_survey_keeps_sure_frames_and_finds_the_moved_boxes(furnished, array, chirp,
                                                                 moved_drive):
    from echoloc_ros.core.survey import LiveSurvey
    moved, frames = moved_drive
    live = LiveSurvey(FurnitureSurvey(furnished, array, chirp, FS_HZ), period_s=10.0,
                      interval_s=0.3, max_frames=60, min_frames=20)
    sure, unsure = 1e-6 * np.eye(3), 1e-2 * np.eye(3)
    rooms, kept = [], 0
    for k, (features, position, yaw) in enumerate(frames):
        t_s = 0.2 * k
        # A frame whose track is unsure, or whose heading is, is not kept; nor one within
        # interval_s of the last kept.
        assert not live.offer(t_s, features, position, unsure, yaw, 1e-8)
        assert not live.offer(t_s, features, position, sure, yaw, np.deg2rad(1.0) ** 2)
        if live.offer(t_s, features, position, sure, yaw, 1e-8):
            kept += 1
            assert not live.offer(t_s + 0.1, features, position, sure, yaw, 1e-8)
        if live.due(t_s):
            assert live.n_frames >= 20
            room = live.place(t_s)
            if room is not None:
                rooms.append(room)
    # One frame in two (0.4 s apart), the last 60 held.
    assert kept == 100 and live.n_frames == 60
    # Every 10 s from the 20th frame kept (7.6 s in), over a lap of 40 s.
    assert live.placements == 4
    assert rooms and live.room is rooms[-1]
    for box, now, truth in zip(furnished.furniture, live.room.furniture, moved):
        if box.name != 'desk_top':
            assert np.linalg.norm(now.min_m[:2] - truth.min_m[:2]) < 0.03, box.name
    # Placed twice from the same frames: the second finds no change, and gives no new room.
    live.place(100.0)
    assert live.place(101.0) is None
    live.reset()
    assert live.n_frames == 0 and not live.due(1000.0)
    with pytest.raises(ValueError, match='min_frames <= max_frames, got 30 and 20'):
        LiveSurvey(live.survey, min_frames=30, max_frames=20)
    with pytest.raises(ValueError, match='period_s must be > 0, got nan'):
        LiveSurvey(live.survey, period_s=float('nan'))
    with pytest.raises(ValueError, match='pose must be a finite position'):
        live.offer(2000.0, frames[0][0], np.array([np.nan, 1.0, 0.3]), sure, 0.0, 1e-8)
