"""Erase one participant so that none of their session text survives anywhere in the data dir.

What goes: their sessions and every row hanging off them (turns, flags, drafts, notes, ratings,
found by following the schema's foreign keys), their consents, their account (unless kept),
the full-text index entries of their turns, and export files that hold any of it. Then the
database file is rewritten (secure_delete, WAL checkpoint, VACUUM) so deleted bytes do not
linger in free pages or in the write-ahead log.

What stays: a content-free tombstone in the append-only audit log (user id and counts only).
"""
from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from store.audit import AuditLog
from store.db import Store
from store.export import MANIFEST_SUFFIX, canonical, exports_dir, participant_id
from vocabulary import EventKind

_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit
# Columns that point at a parent even where a table declares no foreign key for them.
_IMPLICIT_REFS = {"sessions": "session_id", "users": "user_id"}
_NEVER_DELETE = {"audit"}  # append-only: a trigger rejects deletes, which would abort the erasure


class EraseError(ValueError):
    """An erasure cannot be done; nothing was changed. The message says why."""


@dataclass
class ErasePlan:
    user: dict
    session_ids: list[str]
    turns: int
    exports: list[Path] = field(default_factory=list)


@dataclass
class EraseReport:
    user_id: str
    sessions: int
    turns: int
    exports_removed: list[Path]
    compacted: bool
    compact_error: str | None = None


def plan_erasure(store: Store, data_dir: Path, username: str) -> ErasePlan:
    """What erasing ``username`` would remove; raises EraseError for an unknown user."""
    rows = list(store.db.query("SELECT id, username FROM users WHERE username = ?", [username]))
    if not rows:
        raise EraseError(f"No user {username!r}: nothing was changed")
    user = rows[0]
    session_ids = [r["id"] for r in store.db.query(
        "SELECT id FROM sessions WHERE user_id = ? ORDER BY id", [user["id"]])]
    turns = sum(_count(store.db, "turns", "session_id", chunk) for chunk in _chunks(session_ids))
    plan = ErasePlan(user, session_ids, turns)
    plan.exports = find_exports(store, data_dir, session_ids, user["id"])
    return plan


def _chunks(values: list) -> list[list]:
    return [values[i:i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _count(db: sqlite_utils.Database, table: str, column: str, values: list) -> int:
    marks = ",".join("?" * len(values))
    return db.execute(f"SELECT COUNT(*) FROM [{table}] WHERE [{column}] IN ({marks})", values).fetchone()[0]


# --- export files -------------------------------------------------------------------------

def _export_candidates(store: Store, data_dir: Path) -> set[Path]:
    """Every file under exports/, plus exports written elsewhere (``--out``) that the audit log
    recorded and that still exist."""
    found = {p for p in exports_dir(data_dir).rglob("*") if p.is_file()}
    for row in store.db.query("SELECT target FROM audit WHERE action = 'data.export'"):
        path = Path(row["target"] or "")
        if row["target"] and path.is_file():
            found.add(path)
            manifest = path.with_name(path.name + MANIFEST_SUFFIX)
            if manifest.is_file():
                found.add(manifest)
    return {canonical(p) for p in found}


def _manifest_hit(manifest: Path, session_ids: set[str], user_id: str) -> bool | None:
    """True/False from the manifest's lists; None when the manifest cannot be read."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        listed = set(data.get("session_ids") or [])
        users = set(data.get("user_ids") or [])
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return bool(listed & session_ids) or user_id in users


def _contains_any(path: Path, needles: list[bytes]) -> bool:
    try:
        data = path.read_bytes()
    except OSError as exc:
        # Neither provably clean nor provably ours: stop before anything is changed.
        raise EraseError(f"Cannot read {path} to check it for the participant's data "
                         f"({exc.strerror or exc}); nothing was changed") from exc
    return any(n in data for n in needles)


def find_exports(store: Store, data_dir: Path, session_ids: list[str], user_id: str) -> list[Path]:
    """Export files (and their manifests) that hold any of this participant's data.

    A file with a readable manifest is judged by the manifest; any other file (no manifest, an
    unreadable one, a leftover temp file, a manifest whose export is gone) is searched for the
    session ids, the user id and the participant's pseudonym.
    """
    ids = set(session_ids)
    needles = [s.encode() for s in [*session_ids, user_id, participant_id({"user_id": user_id})]]
    candidates = _export_candidates(store, data_dir)
    hits: set[Path] = set()
    for path in candidates:
        if path.name.endswith(MANIFEST_SUFFIX):
            verdict = _manifest_hit(path, ids, user_id)
        else:
            manifest = path.with_name(path.name + MANIFEST_SUFFIX)
            verdict = _manifest_hit(manifest, ids, user_id) if manifest in candidates else None
        if verdict is None:
            verdict = _contains_any(path, needles)
        if verdict:
            hits.add(path)
    # An export goes with its manifest, and a manifest with its export.
    for path in list(hits):
        twin = (path.with_name(path.name[:-len(MANIFEST_SUFFIX)]) if path.name.endswith(MANIFEST_SUFFIX)
                else path.with_name(path.name + MANIFEST_SUFFIX))
        if twin in candidates:
            hits.add(twin)
    return sorted(hits)


def remove_files(paths: list[Path]) -> None:
    """Delete the files, or raise EraseError naming those that could not be deleted."""
    failed = []
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            failed.append(f"{path} ({exc.strerror or exc})")
    if failed:
        raise EraseError("Could not remove export files; the database was not changed: "
                         + "; ".join(failed))


# --- database rows ------------------------------------------------------------------------

def _referrers(db: sqlite_utils.Database, parent: str) -> list[tuple[str, str, str]]:
    """(child table, child column, parent column) for every reference to ``parent``.

    Read from the live schema, so tables added by later migrations are followed too.
    """
    refs = []
    for table in db.table_names():
        if table == parent or table in _NEVER_DELETE:
            continue  # no self-references today (following one could loop); audit is append-only
        fks = db.execute(f"PRAGMA foreign_key_list([{table}])").fetchall()
        declared = {(fk[3], fk[4] or "id") for fk in fks if fk[2] == parent}
        implicit = _IMPLICIT_REFS.get(parent)
        if implicit and implicit in db[table].columns_dict and not any(c == implicit for c, _ in declared):
            declared.add((implicit, "id"))
        refs.extend((table, col, parent_col) for col, parent_col in sorted(declared))
    return refs


def _delete_cascade(db: sqlite_utils.Database, table: str, column: str, values: list,
                    counts: Counter, depth: int = 0) -> None:
    """Delete rows of ``table`` whose ``column`` is in ``values``, children first.

    Foreign keys are ON, so a parent row can only go once nothing references it.
    """
    if not values:
        return
    if depth > 8:
        raise EraseError(f"The schema nests deeper than expected below {table!r}; "
                         "the database was not changed")
    for child, child_col, parent_col in _referrers(db, table):
        keys = []
        for chunk in _chunks(values):
            marks = ",".join("?" * len(chunk))
            keys += [r[0] for r in db.execute(
                f"SELECT [{parent_col}] FROM [{table}] WHERE [{column}] IN ({marks})", chunk)]
        _delete_cascade(db, child, child_col, sorted({k for k in keys if k is not None}), counts, depth + 1)
    for chunk in _chunks(values):
        marks = ",".join("?" * len(chunk))
        counts[table] += db.execute(f"DELETE FROM [{table}] WHERE [{column}] IN ({marks})", chunk).rowcount


def _purge_fts(db: sqlite_utils.Database) -> None:
    """Drop deleted text from every FTS5 index.

    A delete through the triggers only appends tombstones: the old terms stay in the index
    segments until they are merged. 'rebuild' re-reads the index from its content table and
    'optimize' merges what is left into one segment.
    """
    fts_tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND sql LIKE 'CREATE VIRTUAL TABLE%USING FTS5%'")]
    for name in fts_tables:
        try:
            db.execute(f"INSERT INTO [{name}]([{name}]) VALUES ('rebuild')")
        except sqlite3.OperationalError:
            pass  # contentless tables cannot be rebuilt; optimize still merges their tombstones
        db.execute(f"INSERT INTO [{name}]([{name}]) VALUES ('optimize')")


def delete_participant(db: sqlite_utils.Database, user_id: str, keep_account: bool) -> Counter:
    """Delete the participant's rows (call inside ``store.write()``); rows deleted per table."""
    counts: Counter = Counter()
    if keep_account:
        for child, child_col, _ in _referrers(db, "users"):
            _delete_cascade(db, child, child_col, [user_id], counts)
    else:
        _delete_cascade(db, "users", "id", [user_id], counts)
    _purge_fts(db)
    return counts


# --- the file itself ----------------------------------------------------------------------

def compact(store: Store) -> str | None:
    """Rewrite the database so deleted bytes are gone from sessions.db and sessions.db-wal.

    secure_delete zeroes freed content; the TRUNCATE checkpoints copy the WAL into the database
    and cut the WAL file to zero bytes; VACUUM rebuilds the file from live rows only. A
    checkpoint cannot finish while another connection is reading, so this returns an error
    message instead of raising when the app is busy (None when everything completed).
    """
    db = store.db
    db.execute("PRAGMA secure_delete=ON")
    try:
        first = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        db.execute("VACUUM")
        last = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.OperationalError as exc:
        return f"could not compact the database: {exc}"
    if first[0] or last[0]:
        return "the WAL checkpoint was blocked by an open reader (is the app running?)"
    return None


def erase_user(store: Store, data_dir: Path, plan: ErasePlan, keep_account: bool = False) -> EraseReport:
    """Carry out ``plan`` (from ``plan_erasure``): exports, rows, tombstone, then compaction."""
    user_id = plan.user["id"]
    # secure_delete is per connection and must be on before the first delete.
    store.db.execute("PRAGMA secure_delete=ON")
    # Exports first: if one cannot be removed, the database is untouched and the run can be
    # repeated; the other way round, the user would be gone and their exports unfindable.
    remove_files(plan.exports)
    n_exports = sum(1 for p in plan.exports if not p.name.endswith(MANIFEST_SUFFIX))
    with store.write() as db:
        counts = delete_participant(db, user_id, keep_account)
        # The tombstone commits with the deletions: ids and counts only, never names or text.
        AuditLog(store).record("cli", EventKind.USER_ERASED, user_id, sessions=counts["sessions"],
                               turns=counts["turns"], exports_removed=n_exports,
                               account_kept=keep_account)
    error = compact(store)
    return EraseReport(user_id, counts["sessions"], counts["turns"], plan.exports, error is None, error)
