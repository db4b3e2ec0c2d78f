"""The SQLite store: one file, WAL, foreign keys, a busy timeout, one connection per thread.

``Store`` owns connections and migrations; the aggregate classes (sessions, audit, ...)
take a ``Store`` and do their writes inside ``store.write()`` so every turn is durable the
moment the call returns. The data dir is 0700 and the database files 0600 (see ``store.files``).
"""
from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

import sqlite_utils

from store.files import create_private_file, private_dir, private_file
from store.migrations import apply_migrations

BUSY_TIMEOUT_MS = 30_000


class StoreError(RuntimeError):
    """The database cannot be used (unwritable, corrupt, disk full...)."""


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            private_dir(self.path.parent)
        except OSError as exc:
            raise StoreError(f"Cannot create the data directory {self.path.parent}: {exc}") from exc
        try:
            create_private_file(self.path)  # before SQLite creates it with the umask's mode
        except OSError as exc:
            raise StoreError(f"Cannot create the database {self.path}: {exc}") from exc
        self._local = threading.local()
        try:
            self.applied = apply_migrations(self.db)
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open the database {self.path}: {exc}") from exc
        self._tighten_files()

    def _tighten_files(self) -> None:
        """Fix database files left open to others by older versions; after connecting, so the
        -wal and -shm files exist (SQLite copies the database file's mode when it makes them)."""
        for suffix in ("", "-wal", "-shm"):
            try:
                private_file(f"{self.path}{suffix}")
            except OSError:  # stat failed: nothing to tighten that we can see
                pass

    def _connect(self) -> sqlite_utils.Database:
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        db = sqlite_utils.Database(conn, execute_plugins=False)
        if db.journal_mode != "wal":
            db.enable_wal()
        return db

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection (SQLite connections must not be shared across threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction that holds the write lock from its first statement.

        Nested calls become savepoints. Committed when the block exits without error.
        """
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        try:
            db.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"The database is not writable: {exc}") from exc
        try:
            yield db
            db.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            db.rollback()
            raise StoreError(f"Could not save to the database: {exc}") from exc
        except BaseException:
            db.rollback()
            raise

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
