"""Share the CPU cores between the processes that run llama.cpp on one machine.

Why: the app, an Admin-tab job (simulation, judge, study) and a command-line batch each load their
own llama.cpp. Each used every core, and two at once collapsed: ggml's OpenMP threads spin at
barriers while the other process holds the cores. Measured on 2 cores with raw llama.cpp (64
greedy tokens): one process alone ran 58-73 tokens/s on 2 threads; two at once ran about 20 each
on 2 threads each, and 35-40 each on 1 thread each. App turns beside a simulation batch fell
from about 50 to 3.7 tokens/s.

How: a process that is generating keeps a file named after its pid in a per-user directory under
the system temp dir. Before a generation, and every few tokens during it, the process counts the
live files (its own included) and runs on ``cores // busy`` threads. The file holds the process's
start time and boot id (``processes.py``): a file whose process is gone (killed with -9), or
whose pid a new, unrelated process has taken over, is removed by whoever sees it. A process given
an explicit thread count (``n_threads`` / ``THERALAB_N_THREADS``) keeps it, but still counts as
busy for the others.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from processes import process_alive, process_identity


def default_directory() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"theralab-cpu-{uid}"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask or cpuset), else every core."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _identity(path: Path) -> dict:
    try:
        identity = json.loads(path.read_text())
    except (OSError, ValueError):
        identity = None
    return identity if isinstance(identity, dict) else {}  # being written: judged by the pid alone


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


class CpuShare:
    """The busy marker of this process and the thread count it may use now."""

    def __init__(self, cores: int | None = None, directory: Path | None = None, pid: int | None = None):
        self.cores = cores or usable_cores()
        self.directory = directory or default_directory()
        self._pid = pid
        self._depth = 0
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self._pid or os.getpid()  # looked up each time: a forked child is a new process

    @property
    def marker(self) -> Path:
        return self.directory / str(self.pid)

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Mark this process as generating for the duration (nested uses count once)."""
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._write_marker()
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    _remove(self.marker)

    def _write_marker(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
            self.marker.write_text(json.dumps(process_identity(self.pid)))
        except OSError:
            pass  # sharing is best effort: without the marker, the others just do not see us

    def busy_processes(self) -> int:
        """Live processes generating now, this one included when it is."""
        count = 0
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return 1
        for entry in entries:
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid == self.pid or process_alive(pid, _identity(Path(entry.path))):
                count += 1
            else:
                _remove(Path(entry.path))
        return max(count, 1)

    def threads(self) -> int:
        """This process's share of the cores now."""
        return max(1, self.cores // self.busy_processes())


SHARE = CpuShare()
