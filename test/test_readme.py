"""README documents every node parameter, so the docs cannot silently fall behind."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A node declares on itself (self); its helpers, such as the driver's backends, on it (node).
DECLARED = re.compile(r"declare\(\s*(?:self|node),\s*'([a-z0-9_]+)'")


def test_every_declared_parameter_is_in_the_readme():
    readme = (ROOT / 'README.md').read_text()
    documented = set(re.findall(r'`([a-z0-9_]+)`', readme))
    for node in (ROOT / 'echoloc_ros' / 'nodes').glob('*.py'):
        declared = DECLARED.findall(node.read_text())
        for name in declared:
            if name.startswith('chirp_') and '`chirp_*`' in readme:
                continue
            assert name in documented, f'{node.name}: parameter {name} is not in README.md'


def test_the_parameter_scan_sees_the_driver_backends():
    backends = (ROOT / 'echoloc_ros' / 'nodes' / 'driver_backends.py').read_text()
    declared = DECLARED.findall(backends)
    assert {'sim_snr_db', 'port', 'replay_file'} <= set(declared)
