"""scripts/ruler-audit.py: the other rulers are those the evaluate options do not give (both,
with the default ``auto``), and options without a drive are refused by name before anything
is simulated."""

import importlib.util
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / 'scripts' / 'ruler-audit.py'


def _script():
    spec = importlib.util.spec_from_file_location('ruler_audit', _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_other_ruler_is_the_one_not_given():
    audit = _script()
    assert audit.other_rulers(['--calibrate-room-s', '60']) == ('temperature', 'both')
    assert audit.other_rulers(['--calibrate-room-ruler', 'both']) == ('temperature',)
    assert audit.other_rulers(['--calibrate-room-ruler=temperature']) == ('both',)


def test_options_without_a_drive_are_refused_by_name(monkeypatch):
    audit = _script()
    monkeypatch.setattr(sys, 'argv', ['ruler-audit.py', '--n', '10'])
    with pytest.raises(SystemExit, match=r'expected evaluate options with --calibrate-room-s S'
                                         r".*got '--n 10'"):
        audit.main()
