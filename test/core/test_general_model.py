"""The room-independent ranker (issue 19): its input names no room, one checkpoint loads and
ranks in a room it was not trained on, and a per-room checkpoint is still refused elsewhere."""

import numpy as np
import pytest
import torch

from echoloc_ros.core.model import ANY_ROOM, load_checkpoint
from echoloc_ros.core.nn_features import GENERAL_PATHS, N_PATH_FEATURES, strongest_paths
from echoloc_ros.core.nn_localizer import NeuralLocalizer
from echoloc_ros.core.room import load_room
from echoloc_ros.offline import dataset
from echoloc_ros.offline.general_training import GeneralCandidateSpec, training_rooms
from echoloc_ros.offline.training import CandidateSpec, labels, load_examples, train
from echoloc_ros.sim.room_generator import generate_room
from echoloc_ros.sim.simulator import EchoSimulator, Scenario

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def general(tmp_path_factory, array, chirp):
    """16 frames over two dev rooms (a shoebox and a chamfered plan), room-independent
    input, and a model trained on them for one epoch."""
    out = tmp_path_factory.mktemp('general')
    rooms = training_rooms(2, seed=0, project_rooms=False)
    spec = GeneralCandidateSpec(rooms, array, chirp, 16, seed=5, chunk_size=8)
    dataset.generate(spec, out / 'data', workers=1, progress=False)
    metrics = train(out / 'data', out / 'general.pt', None, epochs=1, batch_size=8,
                    progress=False, val_fraction=0.25)
    return spec, out, metrics


def test_strongest_paths_keeps_the_strongest_heard_echoes_first():
    # Two candidates, four paths, one receiver, one lag: echo value = path number.
    echo = np.arange(4, dtype=np.complex64)[None, :, None, None].repeat(2, axis=0)
    expected = np.array([[[1.0], [5.0], [3.0], [9.0]], [[2.0], [1.0], [4.0], [3.0]]])
    keep = np.array([[True, True, True, False], [True, False, True, True]])
    tau = np.full((2, 4, 1), 10e-3)
    out = strongest_paths({'echo': echo, 'expected': expected, 'keep': keep}, tau, 5)
    # Candidate 0: path 3 is not heard, so 1 (5), 2 (3), 0 (1), then empty slots.
    assert out['echo'][0, :, 0, 0].real.tolist() == [1, 2, 0, 0, 0]
    assert out['keep'][0].tolist() == [True, True, True, False, False]
    assert out['echo'][1, :, 0, 0].real.tolist() == [2, 3, 0, 0, 0]
    assert out['expected'][1, :3, 0].tolist() == [4.0, 3.0, 2.0]
    # 10 ms of flight is 3.43 m of path (over 10 m in the feature); unheard slots are zeros.
    assert out['path'][0, 0].tolist() == pytest.approx([0.343, 0.0, 1.0])
    assert not out['path'][0, 3:].any() and not out['expected'][0, 3:].any()


@pytest.mark.long
def test_general_data_spans_the_rooms_and_name_none(general):
    spec, out, _ = general
    meta, data = load_examples(out / 'data')
    assert meta['room'] == ANY_ROOM and meta['general'] is True
    assert meta['rooms'] == [r.name for r in spec.rooms]
    m = spec.for_room(spec.rooms[0]).n_candidates
    assert data['echo'].shape == (16, m, GENERAL_PATHS, 4, 5, 2)
    assert data['path'].shape == (16, m, GENERAL_PATHS, N_PATH_FEATURES)
    # The best candidate hears most of its slots; its place is 0 m from itself.
    assert data['keep'][:, 0].float().mean() > 0.6
    assert torch.all(data['candidate'][:, 0, 5:7] == 0)
    target = labels(data['position_m'], data['truth_m'].float(), data['present'])
    assert (target < m).float().mean() >= 0.7
    # Frame i is the per-room spec's frame i in room i % 2 (same draws, same candidates).
    one = CandidateSpec(spec.rooms[1], spec.array, spec.chirp, 4, seed=5, chunk_size=4,
                        general=True)
    one.start_worker()
    again = one.__class__.write_chunk  # noqa: F841  (the public path is generate)
    from echoloc_ros.offline.training import _Worker
    example = _Worker(one).example(3)
    assert np.array_equal(example['truth_m'], data['truth_m'][3].numpy())
    assert np.array_equal(example['keep'], data['keep'][3].numpy())


@pytest.mark.long
def test_a_general_checkpoint_ranks_in_a_room_it_never_saw(general, array, chirp, processor):
    spec, out, metrics = general
    assert metrics['epochs'] == 1 and metrics['train_frames'] == 12
    model, ckpt = load_checkpoint(out / 'general.pt')
    assert ckpt['room'] == ANY_ROOM and model.config.room_independent
    # A heldout room (an L-shaped plan: more paths than a shoebox) and a project room.
    for room in (generate_room('heldout', 1, 26), load_room('furnished_room')):
        assert room.name not in [r.name for r in spec.rooms]
        loc = NeuralLocalizer.from_checkpoint(out / 'general.pt', room, array, chirp,
                                              processor=processor)
        rng = np.random.default_rng(2)
        position, yaw = room.random_pose(rng)
        frame = EchoSimulator(room, array, chirp).simulate(position, yaw,
                                                           Scenario(snr_db=25), rng)
        features = processor.process(frame)
        proposal = loc.physics.propose(features, yaw, yaw_std_rad=np.deg2rad(1))
        p, _ = loc.rank(proposal)
        assert p.shape == (len(proposal.thetas) + 1,) and p.sum() == pytest.approx(1.0)
        fix = loc.fix(features, yaw, yaw_std_rad=np.deg2rad(1))
        assert np.all(np.linalg.eigvalsh(fix.estimate.covariance_m2) > 0)
    fast = NeuralLocalizer.from_checkpoint(out / 'general.pt', room, array, chirp,
                                           processor=processor, optimization_level='fast')
    assert np.allclose(fast.rank(proposal)[0], p, atol=1e-4)


@pytest.mark.long
def test_a_per_room_checkpoint_is_still_refused_in_another_room(general, tmp_path, array,
                                                                chirp):
    spec, out, _ = general
    ckpt = torch.load(out / 'general.pt', weights_only=True)
    # A room-independent model that claims one room, or a per-room one that claims any: both
    # are inconsistent, and named.
    for room_name, general_flag in (('dev_0_000_shoebox', True), (ANY_ROOM, False)):
        bad = dict(ckpt, room=room_name, config=dict(ckpt['config'],
                                                     room_independent=general_flag))
        torch.save(bad, tmp_path / 'bad.pt')
        with pytest.raises(ValueError, match='not a consistent checkpoint'):
            NeuralLocalizer.from_checkpoint(tmp_path / 'bad.pt', load_room('default_room'),
                                            array, chirp)
    with pytest.raises(ValueError, match="trained for room 'default_room', not "
                                         "'furnished_room'"):
        NeuralLocalizer.from_checkpoint('models/default_room.pt', load_room('furnished_room'),
                                        array, chirp)


def test_general_spec_rejects_bad_rooms_and_options(array, chirp):
    room = load_room('default_room')
    with pytest.raises(ValueError, match='room names must differ'):
        GeneralCandidateSpec((room, room), array, chirp, 4, 0)
    with pytest.raises(ValueError, match='at least one room'):
        GeneralCandidateSpec((), array, chirp, 4, 0)
    with pytest.raises(ValueError, match='n_candidates and n_rescan must be >= 1'):
        GeneralCandidateSpec((room,), array, chirp, 4, 0, options=(('n_candidates', 0),))
    with pytest.raises(ValueError, match='no rooms to train on'):
        training_rooms(0, 0, project_rooms=False)
