"""scripts/ruler-study.py: each world's kept scale is judged against the doubt its calibration
stated, with the share of the measured scale its ruler keeps recovered from that doubt."""

import importlib.util
from pathlib import Path

import numpy as np

from echoloc_ros.core.room_calibration import ruler_weight

_SCRIPT = Path(__file__).resolve().parents[2] / 'scripts' / 'ruler-study.py'


def _script():
    spec = importlib.util.spec_from_file_location('ruler_study', _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_world_is_judged_by_the_ruler_it_used():
    study = _script()
    # The default room's +-1 cm file (0.102 %) and 1 degC of air (0.1765 %).
    file_std, air_std = 0.00102, 0.001765
    weight, both_std = ruler_weight(file_std, air_std)
    truth = np.array([-0.0017, 0.0005, 0.0012])
    measured = np.array([0.003, -0.002, 0.0089])
    worlds = [{'ruler': 'both', 'scale_std_pct': 100 * both_std},
              {'ruler': 'temperature', 'scale_std_pct': 100 * air_std},
              {'ruler': 'file', 'scale_std_pct': 100 * file_std}]
    error, z = study.kept_scale_errors(worlds, truth, measured, file_std)
    # 'both' keeps ruler_weight's share, the temperature's all, the file's none.
    expected = np.array([weight * measured[0] - truth[0], measured[1] - truth[1], -truth[2]])
    np.testing.assert_allclose(error, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(z, expected / np.array([both_std, air_std, file_std]))
    # A run whose worlds do not say their ruler (before it was reported) is not judged.
    assert study.kept_scale_errors([{'scale_std_pct': 0.1}], truth[:1], measured[:1],
                                   file_std) == (None, None)
