"""Where echoloc's configuration files live, from a source checkout or an installed package."""

from pathlib import Path
from typing import Any, Callable

import yaml


def _share(name: str) -> Path:
    """``name/`` of the repository when run from source, else of the installed share."""
    source = Path(__file__).resolve().parents[2] / name
    if source.is_dir():
        return source
    # Imported here so that the core runs without ROS when used from a source checkout.
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('echoloc')) / name


def config_dir() -> Path:
    """The ``config/`` directory: the repository's when run from source, else the installed share.

    :return: path of the directory holding ``arrays/`` and ``rooms/``.
    """
    return _share('config')


#: The shipped room-independent network's name (``models/general.pt``: any room).
GENERAL_MODEL = 'general'


def default_model_path(room_name: str) -> Path:
    """Where the shipped neural localizer for a room lives: ``models/<room>.pt`` (it may not
    exist: only some rooms have one)."""
    return _share('models') / f'{room_name}.pt'


def resolve_config(kind: str, name_or_path: str | Path) -> Path:
    """Find a YAML file by name in ``config/<kind>/`` or take it as a path.

    :param kind: sub-directory, ``'arrays'`` or ``'rooms'``.
    :param name_or_path: bare name (``'default_room'``) or a path to a ``.yaml`` file.
    :return: existing file path.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in ('.yaml', '.yml') or candidate.parent != Path('.'):
        if not candidate.is_file():
            raise ValueError(f'{kind[:-1]} file {str(candidate)!r} does not exist')
        return candidate
    path = config_dir() / kind / f'{name_or_path}.yaml'
    if not path.is_file():
        known = sorted(p.stem for p in (config_dir() / kind).glob('*.yaml'))
        raise ValueError(f'unknown {kind[:-1]} {str(name_or_path)!r}; known: {known}')
    return path


def load_config(kind: str, name_or_path: str | Path, from_dict: Callable[[dict], Any]) -> Any:
    """Read ``config/<kind>/<name>.yaml`` (or a path) and build it with ``from_dict``.

    :raises ValueError: the file is missing, or ``from_dict`` rejects a field (the message
        then starts with the file's path).
    """
    path = resolve_config(kind, name_or_path)
    with open(path, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    try:
        return from_dict(data)
    except ValueError as err:
        raise ValueError(f'{path}: {err}') from None
