"""scripts/classify-gross.py ``--variants`` and scripts/evaluate-shards.py: a variant names only
the physics localizer's constants, and the shards pool only when every room is in exactly one."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_SCRIPTS = Path(__file__).resolve().parents[2] / 'scripts'


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name.replace('-', '_'), _SCRIPTS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_variant_sets_the_constants_it_names_and_refuses_others():
    classify = _script('classify-gross')
    name, values = classify.parse_variant('w25:HEADING_STEP=True,WALL_HEADING_PRIOR_WEIGHT=0.25')
    assert name == 'w25'
    assert values == {'HEADING_STEP': True, 'WALL_HEADING_PRIOR_WEIGHT': 0.25}
    from echoloc_ros.core.physics import config, staged_search
    before = (staged_search.HEADING_STEP, config.HEADING_STEP)
    try:
        classify.apply_variant({'HEADING_STEP': not before[0]})
        # Every module's own binding moves, not only the config module's.
        assert (staged_search.HEADING_STEP, config.HEADING_STEP) == (not before[0],) * 2
    finally:
        classify.apply_variant({'HEADING_STEP': before[0]})
    with pytest.raises(ValueError, match='NOT_A_CONSTANT'):
        classify.parse_variant('x:NOT_A_CONSTANT=1')
    with pytest.raises(ValueError, match='NAME:KEY=VALUE'):
        classify.parse_variant(':HEADING_STEP=True')
    with pytest.raises(ValueError, match='not a Python literal'):
        classify.parse_variant('x:HEADING_STEP=maybe')


def test_shards_that_miss_a_room_or_hold_one_twice_are_refused(tmp_path):
    shards = _script('evaluate-shards')
    from echoloc_ros.sim.room_generator import generate_rooms
    rooms = generate_rooms('dev', 2, 7)
    empty = {f'{i}/{key}': np.zeros(0) for i in range(2) for key in shards.KEYS}
    names = {f'{i}/name': np.array(room.name) for i, room in enumerate(rooms)}
    np.savez(tmp_path / 'a.npz', **{k: v for k, v in {**empty, **names}.items()
                                    if k.startswith('0/')})
    with pytest.raises(ValueError, match=r'rooms \[1\] are in none'):
        shards.pool('random:2', 'dev', 7, 2, [str(tmp_path / 'a.npz')])
    with pytest.raises(ValueError, match='room 0 is in two shards'):
        shards.pool('random:2', 'dev', 7, 2, [str(tmp_path / 'a.npz')] * 2)
    np.savez(tmp_path / 'b.npz', **{k: v for k, v in {**empty, **names}.items()
                                    if k.startswith('1/')})
    pooled = shards.pool('random:2', 'dev', 7, 2, [str(tmp_path / 'a.npz'),
                                                   str(tmp_path / 'b.npz')])
    # Two rooms, one frame each, none published: everything withheld.
    assert pooled['pooled']['withheld_rate'] == 1.0
    with pytest.raises(ValueError, match='shard must be in'):
        shards.run(4, 4, str(tmp_path / 'c.npz'), [])
    with pytest.raises(ValueError, match="shard file '.*missing.npz' does not exist"):
        shards.pool('random:2', 'dev', 7, 2, [str(tmp_path / 'missing.npz')])
