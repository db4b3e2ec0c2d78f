"""What identifies a running process beyond its pid, which the system reuses: the start time
``/proc/<pid>/stat`` gives and the boot id. The job runner (jobs/runner.py) trusts a job's pid only
with them, and the CPU share (models/cpu_share.py) ignores a marker whose pid now belongs to
another process. Without /proc (macOS) only the pid's existence is checked.
"""
from __future__ import annotations

import os
from pathlib import Path


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc, or None if unreadable."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and ')' itself: split after its last ')'.
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[19])  # field 3 = state, field 22 = starttime


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_identity(pid: int) -> dict:
    """What identifies this process later: pid, start ticks and boot id (Linux only)."""
    stat = _proc_stat(pid)
    return {"pid": int(pid), "start_ticks": stat[1] if stat else None, "boot_id": _boot_id()}


def process_alive(pid: int | None, identity: dict | None = None) -> bool:
    """True if ``pid`` runs, is not a zombie, and (when known) is the same process as ``identity``."""
    if not pid:
        return False
    identity = identity or {}
    if Path("/proc/self/stat").exists():
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False
        if identity.get("boot_id") and identity["boot_id"] != _boot_id():
            return False  # the machine rebooted since: every pid is somebody else's
        start = identity.get("start_ticks")
        return start is None or start == stat[1]
    try:  # no /proc (macOS): existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process took the pid: ours ran as us
    return True
