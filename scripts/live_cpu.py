"""What ``localizer-live-cpu.py`` and ``processor-live-cpu.py`` share: a node that joins a
running graph is spun for a while, and its process's CPU split by thread and by the parts of
its main thread that are wrapped to count (thread CPU time), per message taken."""
import gc
import os
import time


def _threads(file: str):
    """``(name:id, text)`` of ``/proc/self/task/<tid>/<file>`` for each of this process's
    threads still alive when read."""
    for tid in os.listdir('/proc/self/task'):
        try:
            text = open(f'/proc/self/task/{tid}/{file}').read()
            name = open(f'/proc/self/task/{tid}/comm').read().strip()
        except OSError:
            continue
        yield f'{name}:{tid}', text


def threads_cpu_s() -> dict[str, float]:
    """CPU time (user + system) of each of this process's threads, s, by name and id."""
    tick = os.sysconf('SC_CLK_TCK')
    out = {}
    for key, stat in _threads('stat'):
        fields = stat[stat.rfind(')') + 2:].split()
        out[key] = (int(fields[11]) + int(fields[12])) / tick
    return out


def threads_wakes() -> dict[str, int]:
    """Times each of this process's threads has slept and been woken so far (its voluntary
    context switches, ``/proc/self/task/<tid>/status``), by name and id: each wake of a
    thread on a loaded machine pays for cold caches (docs/results.md, r36-01)."""
    out = {}
    for key, status in _threads('status'):
        for line in status.splitlines():
            if line.startswith('voluntary_ctxt_switches:'):
                out[key] = int(line.split()[1])
    return out


def minor_faults() -> int:
    """This process's minor page faults so far (``/proc/self/stat``): pages first touched,
    each mapped (and zeroed) by the kernel."""
    stat = open('/proc/self/stat').read()
    return int(stat[stat.rfind(')') + 2:].split()[7])


def timed(parts: dict[str, float], name: str, work):
    """``work``, its thread CPU time added to ``parts[name]`` (s) at each call."""
    def wrapper(*a, **k):
        start = time.thread_time()
        try:
            return work(*a, **k)
        finally:
            parts[name] = parts.get(name, 0.0) + time.thread_time() - start
    return wrapper


def wrap_diagnostics(parts: dict[str, float]) -> None:
    """Time every diagnostic update (before the node is built: its timer holds the method)."""
    from echoloc_ros.ros.diagnostics import Updater
    update = timed(parts, 'diagnostics', Updater.update)

    def timed_update(self) -> None:
        # One parameter, no more: rclpy hands a timer callback that takes one its TimerInfo.
        update(self)

    Updater.update = timed_update


def spin_for(executor, seconds: float) -> None:
    """Spin ``executor`` for ``seconds`` (or until rclpy shuts down)."""
    import rclpy
    end_s = time.monotonic() + seconds
    while rclpy.ok() and time.monotonic() < end_s:
        executor.spin_once(timeout_sec=0.2)


def per_frame(frames: int, threads0: dict, threads1: dict, main_s: float,
              parts: dict[str, float], callbacks: tuple[str, ...] | None) -> dict:
    """The JSON fields of a run over ``frames`` messages: each thread's CPU ms a frame (from
    :func:`threads_cpu_s` before and after), the main thread's (``main_s``, s) and its parts';
    with ``callbacks``, what the main thread spent outside those parts
    (``outside_callbacks``)."""
    per_thread = {name: round(1e3 * (cpu - threads0.get(name, 0.0)) / frames, 3)
                  for name, cpu in threads1.items() if cpu > threads0.get(name, 0.0)}
    main_parts = {name: round(1e3 * value / frames, 3) for name, value in parts.items()}
    if callbacks is not None:
        outside = main_s - sum(parts.get(name, 0.0) for name in callbacks)
        main_parts['outside_callbacks'] = round(1e3 * outside / frames, 3)
    return {'process_cpu_ms_per_frame': round(sum(per_thread.values()), 3),
            'threads_cpu_ms_per_frame': per_thread,
            'main_thread_cpu_ms_per_frame': round(1e3 * main_s / frames, 3),
            'main_thread_parts_ms_per_frame': main_parts}


class GcClock:
    """The main thread's garbage collections while ``counting``: how many and their thread
    CPU, in all and while ``in_step`` is set (inside ``pipeline.step``, set by a wrapper)."""

    def __init__(self):
        self.counting = self.in_step = False
        self.count = self.count_in_step = 0
        self.cpu_s = self.cpu_in_step_s = self._start = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict) -> None:
        if not self.counting:
            return
        if phase == 'start':
            self._start = time.thread_time()
            return
        spent = time.thread_time() - self._start
        self.count += 1
        self.cpu_s += spent
        if self.in_step:
            self.count_in_step += 1
            self.cpu_in_step_s += spent
