"""`echoloc calibrate-receivers` reads the array's roll and pitch from the recording's
sensor_msgs/Imu (`--imu-topic`, default /imu/data where recorded): each frame carries the tilt
stamped nearest it, so a tilted array's receivers are solved in its own frame, not moved by
the tilt; a topic of another type, or a quaternion with no tilt in it, is named."""
import json

import numpy as np
import pytest
from recording_testing import write_recording

from echoloc_ros.cli import main
from echoloc_ros.core.array_geometry import load_array
from echoloc_ros.core.receiver_calibration import (ReceiverCalibrationResult, array_yaml,
                                                   receivers_calibrated)
from echoloc_ros.core.room_calibration import ARRAY_STD_M, CALIBRATED_ARRAY_STD_M
from echoloc_ros.ros.bag import posed_frames, recorded_tilts
from echoloc_ros.sim.model_error import ModelError

# The recordings' poses and noise (frames of test_calibrate_receivers_cli: seed 6).
SEED = 8


def tilted_hardware(receiver_offset_m=0.0):
    """The square array tilted by about 1.5 deg (roll and pitch drawn, seed 5)."""
    hardware = ModelError(tilt_deg=1.5, receiver_offset_m=receiver_offset_m,
                          seed=5).draw_hardware(load_array('square_4sensor'))
    assert np.rad2deg(max(abs(hardware.roll_rad), abs(hardware.pitch_rad))) > 0.7
    return hardware


def test_each_frame_carries_the_tilt_stamped_nearest_it(tmp_path):
    hardware = tilted_hardware()
    write_recording(tmp_path / 'drive', hardware, 4, SEED, imu={'frames': (0, 1, 2)})
    tilts = recorded_tilts(tmp_path / 'drive', '/imu/data')
    assert len(tilts.times) == 3
    frames, counts = posed_frames(tmp_path / 'drive', max_yaw_std_deg=5.0, tilts=tilts,
                                  tilt_tolerance_s=0.02)
    assert counts['no_tilt'] == 1 and counts['used'] == 3, counts
    for frame in frames:
        np.testing.assert_allclose(frame[3], (hardware.roll_rad, hardware.pitch_rad),
                                   atol=1e-6)
    # 5 ms off the frame: outside a 4 ms tolerance, no frame has a tilt.
    frames, counts = posed_frames(tmp_path / 'drive', max_yaw_std_deg=5.0, tilts=tilts,
                                  tilt_tolerance_s=0.004)
    assert counts['no_tilt'] == 4 and not frames
    frames, counts = posed_frames(tmp_path / 'drive', max_yaw_std_deg=5.0)
    assert 'no_tilt' not in counts and counts['used'] == 4
    assert all(len(frame) == 3 for frame in frames)


def test_a_tilt_that_cannot_be_read_is_named(tmp_path):
    hardware = tilted_hardware()
    write_recording(tmp_path / 'nan', hardware, 2, SEED, imu={'bad_quaternion': True})
    with pytest.raises(SystemExit, match=r"'/imu/data' stamped 0\.005000 s has a "
                                         'non-finite quaternion'):
        main(['calibrate-receivers', str(tmp_path / 'nan'), '--out', str(tmp_path / 'a.yaml')])
    write_recording(tmp_path / 'other', hardware, 2, SEED, imu={'topic': '/imu/raw'})
    with pytest.raises(SystemExit, match=r"topic '/echoloc/pose' in .* is of type "
                                         r"'geometry_msgs/msg/PoseWithCovarianceStamped', "
                                         'expected sensor_msgs/msg/Imu'):
        main(['calibrate-receivers', str(tmp_path / 'other'), '--out',
              str(tmp_path / 'a.yaml'), '--imu-topic', '/echoloc/pose'])
    with pytest.raises(SystemExit, match="--imu-topic '/imu/none': the recording holds no "
                                         'message on it'):
        main(['calibrate-receivers', str(tmp_path / 'other'), '--out',
              str(tmp_path / 'a.yaml'), '--imu-topic', '/imu/none'])
    with pytest.raises(SystemExit, match='--imu-tolerance-s must be .* above 0, got -1'):
        main(['calibrate-receivers', str(tmp_path / 'other'), '--out',
              str(tmp_path / 'a.yaml'), '--imu-tolerance-s', '-1'])
    assert not (tmp_path / 'a.yaml').exists()


@pytest.mark.long
def test_a_tilted_array_is_calibrated_in_its_own_frame(tmp_path, capsys):
    """Receivers 0.3 mm off their file on an array tilted about 1.5 deg: told the recorded
    tilt, the offsets found are the receivers'; taken as level, the tilt's lift of each
    receiver (7 cm x 1.5 deg, ~1.8 mm) is taken for theirs."""
    hardware = tilted_hardware(receiver_offset_m=0.0003)
    write_recording(tmp_path / 'drive', hardware, 50, SEED, imu={})
    array = load_array('square_4sensor')
    # The receivers' true offsets in the array's own frame (the tilt is about the emitter).
    truth = hardware.receivers_m - hardware.receivers_m.mean(axis=0)
    errors = {}
    for imu_topic in (None, ''):
        out = tmp_path / f'array_{imu_topic is None}.yaml'
        more = [] if imu_topic is None else ['--imu-topic', imu_topic]
        assert main(['calibrate-receivers', str(tmp_path / 'drive'), '--out', str(out),
                     '--passes', '1', *more]) == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        now = load_array(out)
        error = now.receivers_m - now.receivers_m.mean(axis=0) - truth
        errors[imu_topic] = float(np.sqrt(np.mean(error ** 2)))
        if imu_topic is None:
            assert report['imu']['topic'] == '/imu/data' and report['imu']['source'] == 'auto'
            assert report['imu']['tilted_frames'] == report['frames']['used'] == 50
            np.testing.assert_allclose(report['imu']['mean_roll_pitch_deg'],
                                       np.rad2deg([hardware.roll_rad, hardware.pitch_rad]),
                                       atol=1e-3)
        else:
            assert report['imu']['topic'] is None and 'level' in report['imu']['source']
    before = array.receivers_m - array.receivers_m.mean(axis=0) - truth
    rms_before = float(np.sqrt(np.mean(before ** 2)))
    assert errors[None] < 0.5 * rms_before, (errors, rms_before)
    assert errors[''] > 2 * errors[None], errors


def test_calibrate_room_takes_a_calibrated_arrays_doubt(tmp_path, capsys):
    """calibrate-room's --array-std-m: 1 mm for an array file as drawn, 0.3 mm for one that
    calibrate-receivers wrote (its description says so), the value given where given."""
    array = load_array('square_4sensor')
    result = ReceiverCalibrationResult(np.full((4, 3), 1e-4), np.full((4, 3), 2e-5), 120)
    calibrated = tmp_path / 'square_now.yaml'
    calibrated.write_text(array_yaml('square_4sensor', result))
    assert receivers_calibrated(load_array(calibrated)) and not receivers_calibrated(array)
    hardware = ModelError(receiver_offset_m=0.0001, seed=3).draw_hardware(array)
    write_recording(tmp_path / 'drive', hardware, 24, SEED, imu={})
    stds, surface_stds = [], []
    for more in ([], ['--array', str(calibrated)], ['--array-std-m', '0.0005']):
        assert main(['calibrate-room', str(tmp_path / 'drive'), '--out',
                     str(tmp_path / 'room.yaml'), '--max-pose-std-m', '0.01',
                     '--max-yaw-std-deg', '5', *more]) == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        stds.append((report['array_std_m'], report['array_std_source']))
        surface_stds.append(np.array(list(report['surface_std_mm'].values())))
    assert [s for s, _ in stds] == [ARRAY_STD_M, CALIBRATED_ARRAY_STD_M, 0.0005], stds
    assert 'calibrated' in stds[1][1] and stds[2][1] == 'given'
    # The array's doubt is in each surface's: the smaller it is, the surer each one measured
    # (the floor and the ceiling here; 24 frames leave the walls unmeasured).
    seen = np.isfinite(surface_stds[0])
    assert seen.sum() >= 2
    assert np.all(surface_stds[1][seen] < surface_stds[2][seen])
    assert np.all(surface_stds[2][seen] < surface_stds[0][seen])
    with pytest.raises(SystemExit, match=r'array_std_m must be in \[0, 0\.05\] m, got 0\.1'):
        main(['calibrate-room', str(tmp_path / 'drive'), '--out', str(tmp_path / 'r.yaml'),
              '--array-std-m', '0.1'])
