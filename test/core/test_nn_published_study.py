"""scripts/nn-published-study.py: the recorder's traced ``NeuralLocalizer.fixes`` publishes
what the localizer publishes and records the network's steps; the replay's kinds and rules
read the recorded rows (issue 19, dev)."""

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from echoloc_ros.core.nn_localizer import NeuralLocalizer
from echoloc_ros.core.paths import GENERAL_MODEL, default_model_path
from dev_frames_testing import HEADING_STD_RAD, drawn_frame

torch.set_num_threads(1)
_SCRIPT = Path(__file__).resolve().parents[2] / 'scripts' / 'nn-published-study.py'


def _study():
    spec = importlib.util.spec_from_file_location('nn_published_study', _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_traced_fixes_are_the_localizer_s_and_record_its_steps(array, chirp, processor):
    study = _study()
    room, frame, position, heading = drawn_frame(0, 8, 0, array, chirp)
    nn = NeuralLocalizer.from_checkpoint(default_model_path(GENERAL_MODEL), room, array, chirp,
                                         processor=processor)
    features = processor.process(frame)
    plain = nn.fixes(features, heading, None, HEADING_STD_RAD)
    trace: list[dict] = []
    traced = study.traced_fixes(trace)(nn, features, heading, None, HEADING_STD_RAD)
    for a, b in zip(plain[1:], traced[1:]):
        np.testing.assert_array_equal(a.position_m, b.position_m)
    np.testing.assert_array_equal(plain[0].estimate.position_m, traced[0].estimate.position_m)
    assert len(trace) == 1
    steps = trace[0]
    # The first proposal's probabilities (each candidate, then none) sum to one, the fix
    # published and physics' own are recorded as the localizer gave them, and the first fix
    # physics settled is that of the first proposal.
    assert sum(steps['p_first']) == pytest.approx(1.0)
    assert len(steps['p_first']) == len(steps['first_cands']) + 1
    assert steps['pub']['pos'] == traced[0].estimate.position_m.tolist()
    assert steps['guard']['pos'] == traced[2].position_m.tolist()
    assert steps['doubted'] == traced[0].doubted and steps['wide'] == traced[0].wide
    assert steps['settled']
    assert (steps['wide_cands'] is None) == (not steps['wide'])
    # The localizer is left as it was: its own rank and physics' settle, not the tracer's.
    assert 'rank' not in vars(nn) and 'settled' not in vars(nn.physics)


def test_the_replay_counts_kinds_and_rules(tmp_path, capsys):
    study = _study()
    truth = [1.0, 1.0, 1.0]

    def row(net_x: float, guard_x: float, published: bool, doubted: bool) -> dict:
        fix = {'pos': [net_x, 1.0, 1.0], 'score': 1.0, 'ratio': 1.0, 'conf': 1.0}
        guard = {**fix, 'pos': [guard_x, 1.0, 1.0]}
        return {'seed': 8, 'room': 0, 'k': 0, 'furnished': True, 'truth': truth,
                'est': fix['pos'], 'cov_pub': (1e-4 * np.eye(3)).ravel().tolist(),
                'err': abs(net_x - 1.0), 'published': published, 'doubted': doubted,
                'kept': False, 'p_first': [0.9, 0.05, 0.05], 'p_wide': None,
                'first_cands': [fix['pos'], guard['pos']], 'wide_cands': None,
                'pub': fix, 'net': fix, 'guard': guard}
    rows = [row(1.0, 1.0, True, False), row(1.5, 1.5, True, True), row(1.0, 2.0, False, True)]
    path = tmp_path / 'rows.jsonl'
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    study.replay(argparse.Namespace(rows=[str(path)], physics=[], physics_seeds=None))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith('{')]
    pooled = lines[0]
    assert (pooled['n'], pooled['published'], pooled['gross']) == (3, 2, 1)
    kinds = {line['kind']: (line['published'], line['gross']) for line in lines if 'kind' in line}
    assert kinds == {'network/same/sure/physics_sure/furnished': (1, 0),
                     'network/same/doubted/physics_sure/furnished': (1, 1)}
    rules = {(line['rule'], line['group']): (line['withholds'], line['gross_withheld'])
             for line in lines if 'rule' in line}
    assert rules[('doubted', 'furnished')] == (1, 1)
    assert rules[('none_above_0.1', 'pooled')] == (0, 0)


def test_record_refuses_the_training_and_calibration_seeds():
    study = _study()
    with pytest.raises(SystemExit, match='not 0 or 1'):
        study.record(argparse.Namespace(evaluate_args=['--', '--seed', '0'], out='/dev/null',
                                        shard=0, of=1))
