"""README documents every node parameter, so the docs cannot silently fall behind."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_declared_parameter_is_in_the_readme():
    readme = (ROOT / 'README.md').read_text()
    documented = set(re.findall(r'`([a-z0-9_]+)`', readme))
    for node in (ROOT / 'echoloc_ros' / 'nodes').glob('*.py'):
        declared = re.findall(r"declare\(\s*self,\s*'([a-z0-9_]+)'", node.read_text())
        for name in declared:
            if name.startswith('chirp_') and '`chirp_*`' in readme:
                continue
            assert name in documented, f'{node.name}: parameter {name} is not in README.md'
