"""Export sessions (with their turns and flags) to JSON Lines or CSV for analysis.

Exports never contain usernames: each session carries a stable pseudonymous participant id.
Every export file gets a ``<file>.manifest.json`` beside it listing the session and user ids it
holds, so that erasing a participant can find and delete the copies of their data
(``store/erase.py``). Files are written owner-only (0600) because they hold health data.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from store.db import Store
from store.ids import utc_now
from store.redact import Redactor

SESSION_FIELDS = ("id", "modality", "therapist_model", "adapter", "reasoning", "course_id",
                  "course_index", "status", "simulated", "persona_id", "patient_model", "study",
                  "variant", "created_utc", "ended_utc", "summary")
TURN_FIELDS = ("idx", "role", "content", "reasoning", "model_id", "created_utc", "latency_ms",
               "ttft_ms")
FORMATS = ("jsonl", "csv")
MANIFEST_SUFFIX = ".manifest.json"


class ExportError(ValueError):
    """An export cannot be made; the message says why."""


@dataclass
class ExportResult:
    path: Path
    manifest: Path
    sessions: int
    turns: int


def participant_id(session: dict) -> str:
    """A stable pseudonym: a hash of the user id, or the course id for sessions without accounts."""
    if session.get("user_id"):
        return "P-" + hashlib.sha256(session["user_id"].encode("utf-8")).hexdigest()[:10]
    return session.get("course_id") or session["id"]


def canonical(path: Path) -> Path:
    """An absolute path with its folders resolved but not the file itself (a link stays a link),
    so the audit log and erase name each export file the same way."""
    path = Path(path).absolute()
    return path.parent.resolve() / path.name


def exports_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "exports"


def default_path(data_dir: Path, study: str | None, fmt: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    # The study name goes into a file name: keep only characters that are safe everywhere.
    label = "".join(c if c.isalnum() or c in "-_" else "_" for c in study)[:40] if study else "all"
    return exports_dir(data_dir) / f"sessions-{label}-{stamp}.{fmt}"


def _select_sessions(store: Store, study: str | None) -> list[dict]:
    """Sessions of one study, or every session when ``study`` is None, oldest first."""
    where, args = ("study = ?", [study]) if study is not None else (None, [])
    return list(store.db["sessions"].rows_where(where, args, order_by="id"))


def _usernames(store: Store) -> dict[str, str]:
    # Only used to pick a participant's names list for redaction; never written out.
    return {r["id"]: r["username"] for r in store.db.query("SELECT id, username FROM users")}


def _session_record(store: Store, session: dict, clean: Callable[[str | None], str | None]) -> dict:
    """One session as a dict: metadata, participant pseudonym, turns and flags."""
    record = {k: session.get(k) for k in SESSION_FIELDS}
    record["summary"] = clean(record["summary"])
    record["participant_id"] = participant_id(session)
    record["turns"] = [{k: t[k] for k in TURN_FIELDS} | {"content": clean(t["content"]),
                                                       "reasoning": clean(t["reasoning"])}
                       for t in store.db["turns"].rows_where("session_id = ?", [session["id"]],
                                                             order_by="idx")]
    flag_sql = """SELECT f.level, f.kind, f.status, f.resolution_note, f.created_utc,
                         t.idx AS turn_idx
                  FROM flags f LEFT JOIN turns t ON t.id = f.turn_id
                  WHERE f.session_id = ? ORDER BY f.id"""
    # Flag details (matched phrases, held drafts) are left out on purpose: they are raw text.
    record["flags"] = [dict(f) | {"resolution_note": clean(f["resolution_note"])}
                       for f in store.db.query(flag_sql, [session["id"]])]
    return record


def iter_records(store: Store, sessions: list[dict], redactor: Redactor | None) -> Iterator[dict]:
    """Export records of ``sessions``, one at a time, redacted when a redactor is given."""
    names = _usernames(store) if redactor else {}
    for session in sessions:
        username = names.get(session.get("user_id"))
        clean = (lambda text, u=username: redactor(text, u)) if redactor else (lambda text: text)
        yield _session_record(store, session, clean)


def _open_private(path: Path, newline: str | None = None):
    """A new file readable by its owner only (health data), failing if it already exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline=newline)


def _write_jsonl(path: Path, records: Iterator[dict]) -> None:
    with _open_private(path) as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _csv_columns() -> list[str]:
    session_cols = ["session_id"] + [k for k in SESSION_FIELDS if k != "id"]
    return session_cols + ["participant_id", "flags_json"] + [f"turn_{k}" for k in TURN_FIELDS]


def _write_csv(path: Path, records: Iterator[dict]) -> None:
    """One row per turn, the session's columns repeated; a session without turns gets one row."""
    with _open_private(path, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=_csv_columns())
        writer.writeheader()
        for record in records:
            base = {("session_id" if k == "id" else k): record[k] for k in SESSION_FIELDS}
            base |= {"participant_id": record["participant_id"],
                     "flags_json": json.dumps(record["flags"], ensure_ascii=False)}
            for turn in record["turns"] or [{}]:
                writer.writerow(base | {f"turn_{k}": turn.get(k) for k in TURN_FIELDS})


def write_manifest(path: Path, manifest: dict) -> Path:
    """Write ``<path>.manifest.json`` atomically (temp file, then rename)."""
    target = path.with_name(path.name + MANIFEST_SUFFIX)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with _open_private(tmp) as fh:
        json.dump(manifest, fh, indent=1)
    os.replace(tmp, target)
    return target


def export_sessions(store: Store, data_dir: Path, *, study: str | None, fmt: str,
                    redactor: Redactor | None = None, out: Path | None = None) -> ExportResult:
    """Write the sessions of ``study`` (every session when None) and the manifest beside them."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}")
    with _snapshot(store):
        return _export(store, data_dir, study, fmt, redactor, out)


@contextlib.contextmanager
def _snapshot(store: Store) -> Iterator[None]:
    """One read transaction, so sessions still being written appear whole or not at all."""
    conn = store.db.conn
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _export(store: Store, data_dir: Path, study: str | None, fmt: str,
            redactor: Redactor | None, out: Path | None) -> ExportResult:
    sessions = _select_sessions(store, study)
    if not sessions:
        raise ExportError(f"no sessions with study {study!r}" if study is not None
                          else "no sessions to export")
    path = Path(out) if out else default_path(data_dir, study, fmt)
    if path.exists():
        raise ExportError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The manifest goes first: if the export is cut short, erase still knows what it held.
    manifest = write_manifest(path, {
        "file": path.name, "created_utc": utc_now(), "format": fmt, "study": study,
        "redacted": redactor is not None,
        "session_ids": [s["id"] for s in sessions],
        "user_ids": sorted({s["user_id"] for s in sessions if s.get("user_id")}),
    })
    turns = 0

    def counted(records: Iterator[dict]) -> Iterator[dict]:
        nonlocal turns
        for record in records:
            turns += len(record["turns"])
            yield record

    # Records stream from the database to a temp file, renamed only once complete.
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    writer = _write_jsonl if fmt == "jsonl" else _write_csv
    try:
        writer(tmp, counted(iter_records(store, sessions, redactor)))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a half-written copy of health data must not stay behind
        manifest.unlink(missing_ok=True)
        raise
    return ExportResult(path, manifest, len(sessions), turns)
