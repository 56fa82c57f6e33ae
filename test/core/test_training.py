"""Inputs, augmentation and a short end-to-end training run with resume."""

import json

import numpy as np
import pytest
import torch

from echoloc_ros.core import dataset
from echoloc_ros.core.echo_processing import EchoFeatures
from echoloc_ros.core.simulator import Scenario
from echoloc_ros.core.training import Augment, extract_inputs, frame_inputs, train

torch.set_num_threads(1)


def _features(delay_s=5e-3, n_bins=2411, dt=16e-6, noise=2.0):
    """One echo of a 10 kHz-wide Gaussian pulse at ``delay_s`` on every channel."""
    t = np.arange(n_bins) * dt
    pulse = 50 * np.exp(-0.5 * ((t - delay_s) / 40e-6) ** 2) * np.exp(1j * 0.3)
    baseband = np.tile(pulse, (4, 1)).astype(np.complex64)
    return EchoFeatures(baseband=baseband, envelope=np.abs(baseband), bin_width_s=dt,
                        start_s=0.0, carrier_hz=40e3, tof_s=np.full(4, delay_s),
                        tof_cfd_s=np.full(4, delay_s), snr_db=np.full(4, 30.0),
                        noise_floor=np.full(4, noise), direct_tof_s=np.zeros(4),
                        direct_amplitude=np.ones(4))


def test_inputs_keep_the_echo_at_its_delay_in_noise_floor_units():
    dt_out = 16e-6 * 2411 / 603
    x = frame_inputs(_features(delay_s=78 * dt_out))
    assert x.shape == (4, 2, 603) and x.dtype == np.float32
    z = x[:, 0] + 1j * x[:, 1]
    assert np.argmax(np.abs(z[0])) == 78
    peak = 78
    # The pulse (well inside the kept band) keeps its amplitude and phase: 50 / 2 at 0.3 rad.
    assert np.abs(z[0, peak]) == pytest.approx(25.0, rel=0.05)
    assert np.angle(z[0, peak]) == pytest.approx(0.3, abs=0.05)


def test_augmentations():
    x = torch.from_numpy(np.stack([frame_inputs(_features(delay_s=30e-3))] * 8))
    yaw = torch.zeros(8)
    spec = {'bin_width_s': 16e-6 * 2411 / 603, 'carrier_hz': 40e3}
    gen = torch.Generator().manual_seed(0)
    off = Augment(0, 0, 0, 0, 0, 0, 0)
    same, same_yaw = off(x, yaw, spec, gen)
    assert torch.equal(same, x) and torch.equal(same_yaw, yaw)
    # Gain only: each receiver scaled by one factor, the phase untouched.
    gained, _ = Augment(0, 3.0, 0, 0, 0, 0, 0)(x, yaw, spec, gen)
    ratio = gained.norm(dim=(2, 3)) / x.norm(dim=(2, 3))
    assert ratio.std() > 0.05 and torch.allclose(gained / ratio[..., None, None], x, atol=1e-4)
    # Another temperature stretches delays by c0 / c: 3 C is 0.53 % of 30 ms = 159 us.
    stretched, _ = Augment(0, 0, 0, 3.0, 1.0, 0, 0)(x, yaw, spec, gen)
    peaks = stretched[:, 0].norm(dim=1).argmax(dim=1).float() * spec['bin_width_s']
    shift = (peaks - x[:, 0].norm(dim=1).argmax(dim=1).float() * spec['bin_width_s']).abs()
    assert shift.max() > spec['bin_width_s']
    assert shift.max() < 159e-6 + spec['bin_width_s']
    dead, _ = Augment(0, 0, 0, 0, 0, 1.0, 0)(x, yaw, spec, gen)
    quiet = dead.norm(dim=2).amax(dim=2) < 0.5 * x.norm(dim=2).amax(dim=2)
    assert torch.equal(quiet.sum(dim=1), torch.ones(8, dtype=torch.long))
    _, noisy_yaw = Augment(0, 0, 0, 0, 0, 0, 1.0)(x[:1].expand(2000, -1, -1, -1),
                                                  torch.zeros(2000), spec, gen)
    assert float(noisy_yaw.std()) == pytest.approx(np.radians(1.0), rel=0.1)


def test_train_writes_a_loadable_checkpoint_and_resumes(tmp_path, room, array, chirp):
    spec = dataset.DatasetSpec(room, array, chirp, Scenario(snr_db=20.0), n_frames=24, seed=5,
                               chunk_size=12)
    dataset.generate(spec, tmp_path / 'data', workers=1, progress=False)
    data = extract_inputs(tmp_path / 'data', workers=1, progress=False)
    assert data['x'].shape == (24, 4, 2, 603) and data['x'].dtype == torch.float16
    assert (tmp_path / 'data' / 'nn_inputs.pt').exists()
    out = tmp_path / 'm.pt'
    first = train(tmp_path / 'data', out, room, 'tiny', epochs=2, batch_size=8, workers=1,
                  progress=False, val_fraction=0.25)
    assert out.exists() and first['epochs_run'] == 2 and first['n_val'] == 6
    state = torch.load(out.with_name('m.pt.state'), weights_only=True)
    assert state['epoch'] == 1 and len(state['history']) == 2
    second = train(tmp_path / 'data', out, room, 'tiny', epochs=3, batch_size=8, workers=1,
                   progress=False, val_fraction=0.25)
    assert second['epochs_run'] == 3
    assert len(torch.load(out.with_name('m.pt.state'), weights_only=True)['history']) == 3
    ckpt = torch.load(out, weights_only=True)
    assert ckpt['room'] == 'default_room' and ckpt['chirp'] == chirp.to_dict()
    assert json.loads(json.dumps(ckpt['input_spec']))['n_bins'] == 603
    from echoloc_ros.core.room import load_room
    with pytest.raises(ValueError, match='furnished_room'):
        train(tmp_path / 'data', tmp_path / 'x.pt', load_room('furnished_room'), 'tiny',
              epochs=1, workers=1, progress=False)
