"""Uninstall from this venv what only building or testing needs (the container's runtime stage).

Keeps everything that requirements.txt (less ``--drop``) and echoloc itself need, following each
installed distribution's declared requirements, and uninstalls the rest. A runtime dependency
added to requirements.txt is kept without touching this file; only build and test tools are
named, in the Dockerfile. Prints what it removed as JSON.

Usage: python scripts/container-prune-venv.py requirements.txt --drop colcon-common-extensions ...
"""
import argparse
import json
import re
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def requirement_lines(path: str) -> list[Requirement]:
    """The requirements of a requirements file (comments and pip options skipped)."""
    out = []
    with open(path, encoding='utf-8') as stream:
        for line in stream:
            line = re.sub(r'(^|\s)#.*', '', line).strip()
            if line and not line.startswith('-'):
                out.append(Requirement(line))
    return out


def closure(roots: list[Requirement], installed: dict[str, metadata.Distribution]) -> set[str]:
    """Installed distributions that ``roots`` need, with the extras they ask for."""
    needed: set[str] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen or name not in installed:
            continue
        seen.add((name, extras))
        needed.add(name)
        for text in installed[name].requires or []:
            req = Requirement(text)
            wanted = not req.marker or any(req.marker.evaluate({'extra': e})
                                           for e in (extras or {''}))
            if wanted:
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return needed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('requirements', help='requirements.txt of the venv')
    parser.add_argument('--drop', nargs='+', default=[], metavar='NAME',
                        help='requirements that only building or testing needs')
    parser.add_argument('--keep', nargs='+', default=['echoloc', 'pip'], metavar='NAME',
                        help='distributions kept with what they need (default: echoloc, pip)')
    args = parser.parse_args()
    # Only what an installer put here: the ROS wheels also carry their packages' own egg-info
    # metadata (rclpy, std_msgs, ...), which is part of the wheel, not a distribution to remove.
    installed = {canonicalize_name(d.metadata['Name']): d for d in metadata.distributions()
                 if d.read_text('INSTALLER')}
    drop = {canonicalize_name(n) for n in args.drop}
    unknown = drop - {canonicalize_name(r.name) for r in requirement_lines(args.requirements)}
    if unknown:
        # A stale name here would silently keep a build tool in the image.
        raise SystemExit(f'--drop {sorted(unknown)}: not in {args.requirements}')
    roots = [r for r in requirement_lines(args.requirements)
             if canonicalize_name(r.name) not in drop] + [Requirement(n) for n in args.keep]
    removed = sorted(set(installed) - closure(roots, installed))
    if removed:
        subprocess.run([sys.executable, '-m', 'pip', 'uninstall', '--yes', '--quiet', *removed],
                       check=True)
    print(json.dumps({'kept': len(installed) - len(removed), 'removed': removed}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
