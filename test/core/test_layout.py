"""The package's layering: what each part may import, and what a physics run loads."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import echoloc_ros

PACKAGE = Path(echoloc_ros.__file__).parent
# ROS client libraries and message packages: the core works without a ROS graph.
ROS_ROOTS = ('rclpy', 'echoloc.msg', 'std_msgs', 'sensor_msgs', 'geometry_msgs',
             'diagnostic_msgs', 'visualization_msgs', 'nav_msgs', 'builtin_interfaces')


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f'{node.module}.{alias.name}' for alias in node.names]
    return names


def _offending(folder: str, allowed) -> dict[str, list[str]]:
    bad = {}
    for path in sorted((PACKAGE / folder).rglob('*.py')):
        wrong = [name for name in _imports(path) if not allowed(name)]
        if wrong:
            bad[str(path.relative_to(PACKAGE))] = wrong
    return bad


def _within(name: str, roots) -> bool:
    return any(name == root or name.startswith(root + '.') for root in roots)


# What each part of the package may import from the package (itself included). The rest of the
# package stays out: core is the runtime algorithms, so it imports no simulator, device, tool,
# ROS or command code; the simulator and the device link build on core alone; offline tools
# (evaluation, training, bench) may run the simulator, the device model and the ROS helpers but
# never a node's internals; nodes never import the command line. Bench and the marker renderer
# (offline) use ROS, so only core, sim and device must not.
MAY_IMPORT = {
    'core': ('core',),
    'sim': ('core', 'sim'),
    'device': ('core', 'device'),
    'ros': ('core', 'ros'),
    'offline': ('core', 'sim', 'device', 'ros', 'offline'),
    'nodes': ('core', 'sim', 'device', 'ros', 'nodes'),
    'cli': ('core', 'sim', 'device', 'ros', 'offline', 'nodes', 'cli'),
}
# The parts that work without a ROS graph (and without ROS installed).
WITHOUT_ROS = ('core', 'sim', 'device')


def test_every_module_lives_in_a_role_package():
    top = sorted(p.name for p in PACKAGE.glob('*.py') if p.name != '__init__.py')
    folders = sorted(p.name for p in PACKAGE.iterdir()
                     if p.is_dir() and (p / '__init__.py').exists())
    assert top == []
    assert folders == sorted(MAY_IMPORT)


@pytest.mark.parametrize('part', sorted(MAY_IMPORT))
def test_each_part_imports_only_what_its_role_allows(part):
    roots = tuple(f'echoloc_ros.{name}' for name in MAY_IMPORT[part])

    def allowed(name: str) -> bool:
        if part in WITHOUT_ROS and _within(name, ROS_ROOTS):
            return False
        return not name.startswith('echoloc_ros') or _within(name, roots)
    assert _offending(part, allowed) == {}


def test_the_layering_test_sees_a_wrong_import(tmp_path):
    # The walk reaches imports inside functions, where a lazy import would hide.
    module = tmp_path / 'bad.py'
    module.write_text('def f():\n    from echoloc_ros.nodes.localizer import LocalizerNode\n')
    assert 'echoloc_ros.nodes.localizer' in _imports(module)


def test_evaluate_with_physics_does_not_load_torch():
    code = ('import sys\n'
            'from echoloc_ros.cli import main\n'
            "main(['evaluate', '--method', 'physics', '--n', '2', '--tracked-frames', '0'])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"method": "physics"' in done.stdout
