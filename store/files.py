"""Owner-only files: the data dir and the database hold health data, so only our uid may read them.

``private_dir`` and ``private_file`` tighten what we own and only warn about what we do not: a
data dir pointed at a shared directory (``/tmp``, a home dir) must never have that directory's mode
changed under other users. Filesystems that refuse chmod (some network or FAT mounts) get a warning,
not a crash: the app still works, and the warning says the data is less protected than it should be.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
_OPEN_TO_OTHERS = 0o077  # any group or other permission bit


def _shared_by_design(path: Path, st: os.stat_result) -> bool:
    """Directories other users rely on, even when we own them (e.g. running as root)."""
    if st.st_mode & stat.S_ISVTX:  # /tmp, /var/tmp and the like
        return True
    try:
        resolved = path.resolve()
        return resolved == Path(resolved.anchor) or resolved == Path.home().resolve()
    except (OSError, RuntimeError):
        return True  # cannot tell: be conservative


def private_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) if missing, and make ``path`` itself 0700 when we own it."""
    path = Path(path)
    existed = path.is_dir()
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    st = path.stat()
    old = stat.S_IMODE(st.st_mode)
    if not old & _OPEN_TO_OTHERS:
        return path
    if st.st_uid != os.getuid():
        log.warning("Data directory %s is not owned by this user and is open to others (mode %s); "
                    "leaving its mode alone. Use a data directory of your own.", path, oct(old))
        return path
    if existed and _shared_by_design(path, st):
        log.warning("Data directory %s is a shared directory (mode %s); leaving its mode alone. "
                    "Use a data directory of your own.", path, oct(old))
        return path
    _chmod(path, DIR_MODE, old, "data directory", announce=existed)
    return path


def private_file(path: str | Path) -> None:
    """Make an existing file 0600 when we own it and it is open to others; a missing file is fine."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    old = stat.S_IMODE(st.st_mode)
    if not old & _OPEN_TO_OTHERS:
        return
    if st.st_uid != os.getuid():
        log.warning("%s is not owned by this user and is open to others (mode %s); leaving it alone.",
                    path, oct(old))
        return
    _chmod(path, FILE_MODE, old, "file", announce=True)


def create_private_file(path: str | Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist, whatever the umask.

    SQLite gives the -wal and -shm files the database file's mode, so creating the database file
    owner-only first keeps all three owner-only from the start.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def _chmod(path: Path, mode: int, old: int, what: str, announce: bool) -> None:
    try:
        os.chmod(path, mode)
    except OSError as exc:  # EPERM/ENOTSUP on filesystems without Unix modes
        log.warning("Could not make %s %s owner-only (mode %s): %s", what, path, oct(old), exc)
        return
    if announce:  # a dir we just created under a loose umask is not news; an existing loose one is
        log.warning("Made %s %s owner-only: its mode was %s, now %s", what, path, oct(old), oct(mode))
