"""Start the node graph as separate processes and stop every one of them cleanly."""
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from echoloc_ros.ros.graph import GRAPH, NodeSpec, default_params_file

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    # Runs in the child before exec: if the supervising process dies, even by SIGKILL, the
    # kernel sends the node SIGTERM, so no node outlives its bringup.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _param_arg(name: str, value) -> str:
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, str):
        text = value
    else:
        text = repr(value)
    return f'{name}:={text}'


class NodeProcesses:
    """The graph's nodes as child processes: ``with NodeProcesses() as graph: ...``.

    :param params_file: the ``<node>: ros__parameters:`` YAML every node reads.
    :param overrides: per node name, parameters that replace the file's values.
    :param env: environment of the nodes (defaults to this process's).
    :param log_dir: where each node's stdout/stderr goes (``<node>.log``); None inherits ours.
    """

    def __init__(self, specs: tuple[NodeSpec, ...] = GRAPH, params_file: Path | None = None,
                 overrides: dict[str, dict] | None = None, env: dict | None = None,
                 log_dir: Path | None = None):
        self.specs = specs
        self.params_file = Path(params_file or default_params_file())
        if not self.params_file.is_file():
            raise FileNotFoundError(f'parameter file {self.params_file} does not exist')
        self.overrides = overrides or {}
        self.env = env
        self.log_dir = Path(log_dir) if log_dir else None
        self.processes: dict[str, subprocess.Popen] = {}
        self.override_files: list[Path] = []

    def command(self, spec: NodeSpec) -> list[str]:
        args = [sys.executable, '-m', spec.module, '--ros-args']
        if not spec.nodes:
            args += ['-r', f'__node:={spec.name}', '--params-file', str(self.params_file)]
            for name, value in self.overrides.get(spec.name, {}).items():
                args += ['-p', _param_arg(name, value)]
            return args
        # Several nodes in one process: a -p would set every node's parameter of that name,
        # so each node's overrides go in its own section of a second parameter file.
        args += ['--params-file', str(self.params_file)]
        sections = {node: {'ros__parameters': self.overrides[node]} for node in spec.nodes
                    if self.overrides.get(node)}
        if sections:
            with tempfile.NamedTemporaryFile('w', prefix=f'echoloc-{spec.name}-',
                                             suffix='.yaml', delete=False) as out:
                yaml.safe_dump(sections, out)
            self.override_files.append(Path(out.name))
            args += ['--params-file', out.name]
        return args

    def start(self) -> 'NodeProcesses':
        for spec in self.specs:
            out = None
            if self.log_dir:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                out = open(self.log_dir / f'{spec.name}.log', 'wb')
            # Own session: a Ctrl-C in the terminal reaches only the supervisor, which then
            # stops the nodes in order instead of all of them racing.
            self.processes[spec.name] = subprocess.Popen(
                self.command(spec), env=self.env, stdout=out, stderr=subprocess.STDOUT
                if out else None, start_new_session=True, preexec_fn=die_with_parent)
            if out:
                out.close()
        return self

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}

    def exited(self) -> dict[str, int]:
        """Nodes that have exited, with their exit codes."""
        return {name: p.returncode for name, p in self.processes.items()
                if p.poll() is not None}

    def stop(self, timeout_s: float = 5.0) -> dict[str, int]:
        """SIGINT (rclpy's clean shutdown), then SIGTERM, then SIGKILL; return exit codes."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in self.processes.values() if p.poll() is None]
            if not alive:
                break
            for p in alive:
                p.send_signal(sig)
            deadline = time.monotonic() + timeout_s
            for p in alive:
                try:
                    p.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for path in self.override_files:
            path.unlink(missing_ok=True)
        self.override_files = []
        return {name: p.returncode for name, p in self.processes.items()}

    def __enter__(self) -> 'NodeProcesses':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def isolated_ros_env(domain_id: int, log_dir: Path) -> dict:
    """An environment whose DDS traffic stays on this host and in ``domain_id``."""
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_LOG_DIR=str(log_dir))
    return env
