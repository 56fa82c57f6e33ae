"""One dependency list: setup.cfg, requirements.txt, requirements-ros.txt and package.xml agree."""
import configparser
import xml.etree.ElementTree as ET
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

# The rosdep key that installs each Python dependency on a ROS install (apt python3-*).
ROSDEP_KEYS = {
    'numpy': 'python3-numpy',
    'scipy': 'python3-scipy',
    'numba': 'python3-numba',
    'pyyaml': 'python3-yaml',
    'pyserial': 'python3-serial',
    'tqdm': 'python3-tqdm',
    'matplotlib': 'python3-matplotlib',
    'pytest': 'python3-pytest',
    'pytest-timeout': 'python3-pytest-timeout',
    'hypothesis': 'python3-hypothesis',
}


def _requirements(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            req = Requirement(line)
            out[req.name.lower()] = str(req.specifier)
    return out


def _setup_cfg() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / 'setup.cfg')
    lines = cfg['options']['install_requires'].split()
    for extra in cfg['options.extras_require'].values():
        lines += [line for line in extra.splitlines() if line.strip()]
    return {Requirement(line).name.lower(): str(Requirement(line).specifier) for line in lines}


def _package_xml_keys() -> set[str]:
    root = ET.parse(ROOT / 'package.xml').getroot()
    return {e.text for e in root if e.tag in ('depend', 'exec_depend', 'test_depend')}


def test_setup_cfg_dependencies_are_in_requirements_txt_with_the_same_pins():
    requirements = _requirements(ROOT / 'requirements.txt')
    for name, spec in _setup_cfg().items():
        assert name in requirements, f'{name} (setup.cfg) missing from requirements.txt'
        assert requirements[name] == spec, (
            f'{name}: setup.cfg {spec!r}, requirements.txt {requirements[name]!r}')


def test_each_python_dependency_installs_on_a_ros_install_one_way():
    ros_pip = _requirements(ROOT / 'requirements-ros.txt')
    keys = _package_xml_keys()
    for name in _setup_cfg():
        by_rosdep = ROSDEP_KEYS.get(name) in keys
        by_pip = name in ros_pip
        assert by_rosdep != by_pip, (
            f'{name}: rosdep key {ROSDEP_KEYS.get(name)!r} in package.xml: {by_rosdep}, in '
            f'requirements-ros.txt: {by_pip}; expected exactly one')


def test_requirements_ros_pins_as_make_setup_does():
    requirements = _requirements(ROOT / 'requirements.txt')
    for name, spec in _requirements(ROOT / 'requirements-ros.txt').items():
        assert requirements.get(name) == spec, (
            f'{name}: requirements-ros.txt {spec!r}, requirements.txt {requirements.get(name)!r}')
    # The CPU wheel: an unpinned torch pulls a multi-GB CUDA build.
    assert requirements['torch'] == '==2.13.0'
