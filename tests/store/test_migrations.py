"""Schema from a blank database: exact tables and columns, pragmas, idempotent re-open, and the
constraints the rest of the app relies on (append-only audit, foreign keys, unique turn index)."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from store.audit import AuditLog
from store.db import BUSY_TIMEOUT_MS, Store
from store.ids import new_id, utc_now
from store.migrations import MIGRATIONS

# Written out from store/migrations.py m001_initial, m002_supervision, m003_simulation and m004_ratings (column -> declared type).
EXPECTED_COLUMNS = {
    "_migrations": {"name": "TEXT", "applied_utc": "TEXT"},
    "users": {"id": "TEXT", "username": "TEXT", "password_hash": "TEXT", "role": "TEXT",
              "disabled": "INTEGER", "created_utc": "TEXT"},
    "consents": {"id": "TEXT", "user_id": "TEXT", "version": "TEXT", "text_sha256": "TEXT",
                 "created_utc": "TEXT"},
    "personas": {"id": "TEXT", "name": "TEXT", "modality": "TEXT", "archetype": "TEXT",
                 "style": "TEXT", "profile_hash": "TEXT", "source": "TEXT", "profile_json": "TEXT",
                 "created_utc": "TEXT"},
    "sessions": {"id": "TEXT", "user_id": "TEXT", "modality": "TEXT", "therapist_model": "TEXT",
                 "adapter": "TEXT", "reasoning": "INTEGER", "course_id": "TEXT",
                 "course_index": "INTEGER", "status": "TEXT", "simulated": "INTEGER",
                 "persona_id": "TEXT", "patient_model": "TEXT", "study": "TEXT", "variant": "TEXT",
                 "summary": "TEXT", "created_utc": "TEXT", "ended_utc": "TEXT", "meta_json": "TEXT",
                 "sim_key": "TEXT"},
    "turns": {"id": "TEXT", "session_id": "TEXT", "idx": "INTEGER", "role": "TEXT",
              "content": "TEXT", "reasoning": "TEXT", "model_id": "TEXT", "adapter": "TEXT",
              "latency_ms": "INTEGER", "ttft_ms": "INTEGER", "tokens_in": "INTEGER",
              "tokens_out": "INTEGER", "feedback": "INTEGER", "created_utc": "TEXT",
              "meta_json": "TEXT"},
    "flags": {"id": "TEXT", "session_id": "TEXT", "turn_id": "TEXT", "level": "TEXT", "kind": "TEXT",
              "status": "TEXT", "detail_json": "TEXT", "resolved_by": "TEXT",
              "resolution_note": "TEXT", "created_utc": "TEXT", "resolved_utc": "TEXT"},
    "ratings": {"id": "TEXT", "session_id": "TEXT", "rater_id": "TEXT", "rater_kind": "TEXT",
                "rubric_id": "TEXT", "scores_json": "TEXT", "total": "REAL", "comment": "TEXT",
                "judge_run_id": "TEXT", "status": "TEXT", "created_utc": "TEXT",
                "updated_utc": "TEXT", "rubric_version": "INTEGER", "totals_json": "TEXT", "detail_json": "TEXT"},
    "judge_runs": {"id": "TEXT", "rubric_id": "TEXT", "judge_model": "TEXT", "selection": "TEXT",
                   "status": "TEXT", "n_ok": "INTEGER", "n_partial": "INTEGER",
                   "n_failed": "INTEGER", "config_json": "TEXT", "created_utc": "TEXT",
                   "finished_utc": "TEXT", "job_id": "TEXT", "created_by": "TEXT", "error": "TEXT",
                   "started_utc": "TEXT", "n_total": "INTEGER"},
    "jobs": {"id": "TEXT", "kind": "TEXT", "status": "TEXT", "pid": "INTEGER", "config_json": "TEXT",
             "progress_json": "TEXT", "log_path": "TEXT", "error": "TEXT", "created_by": "TEXT",
             "created_utc": "TEXT", "started_utc": "TEXT", "finished_utc": "TEXT"},
    "audit": {"id": "TEXT", "actor": "TEXT", "action": "TEXT", "target": "TEXT",
              "detail_json": "TEXT", "created_utc": "TEXT"},
    "drafts": {"id": "TEXT", "session_id": "TEXT", "after_turn_id": "TEXT", "content": "TEXT",
               "reasoning": "TEXT", "model_id": "TEXT", "status": "TEXT", "final_text": "TEXT",
               "decided_by": "TEXT", "turn_id": "TEXT", "meta_json": "TEXT", "created_utc": "TEXT",
               "decided_utc": "TEXT"},
    "notes": {"id": "TEXT", "session_id": "TEXT", "author": "TEXT", "text": "TEXT",
              "created_utc": "TEXT"},
}
FTS_TABLE = "turns_fts"
FTS_SHADOW = {"turns_fts_data", "turns_fts_idx", "turns_fts_docsize", "turns_fts_config"}


def columns(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    return {row[1]: row[2] for row in conn.execute(f"PRAGMA table_info([{table}])")}


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "data" / "sessions.db"


@pytest.fixture
def fresh(db_path):
    store = Store(db_path)
    yield store
    store.close()


def add_session(store: Store) -> str:
    sid = new_id()
    with store.write() as db:
        db["sessions"].insert({"id": sid, "modality": "cbt", "therapist_model": "default",
                               "created_utc": utc_now()})
    return sid


def test_blank_db_has_exactly_the_expected_tables_and_columns(fresh, db_path):
    assert fresh.applied == [name for name, _ in MIGRATIONS]
    assert fresh.applied[0] == "m001_initial"
    conn = sqlite3.connect(db_path)  # an independent reader sees the committed schema
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == set(EXPECTED_COLUMNS) | {FTS_TABLE} | FTS_SHADOW
        for table, expected in EXPECTED_COLUMNS.items():
            assert columns(conn, table) == expected, table
        assert list(columns(conn, FTS_TABLE)) == ["content", "reasoning"]
        fts_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [FTS_TABLE]).fetchone()[0]
        assert "fts5" in fts_sql.lower() and 'content="turns"' in fts_sql and "porter" in fts_sql
        triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
        assert {"audit_no_update", "audit_no_delete"} <= triggers
        assert {"turns_ai", "turns_ad", "turns_au"} <= triggers  # FTS kept in sync
    finally:
        conn.close()


def test_keys_defaults_and_not_null(fresh):
    db = fresh.db
    assert db["sessions"].pks == ["id"] and db["turns"].pks == ["id"]
    assert db["_migrations"].pks == ["name"]
    turn_fks = {(fk.column, fk.other_table, fk.other_column) for fk in db["turns"].foreign_keys}
    assert turn_fks == {("session_id", "sessions", "id")}
    session_fks = {(fk.column, fk.other_table, fk.other_column) for fk in db["sessions"].foreign_keys}
    assert session_fks == {("user_id", "users", "id"), ("persona_id", "personas", "id")}
    flag_fks = {(fk.column, fk.other_table) for fk in db["flags"].foreign_keys}
    assert flag_fks == {("session_id", "sessions"), ("turn_id", "turns")}
    notnull = {c.name for c in db["turns"].columns if c.notnull}
    assert notnull == {"session_id", "idx", "role", "content"}
    sid = add_session(fresh)
    row = db["sessions"].get(sid)
    assert (row["status"], row["reasoning"], row["simulated"], row["course_index"]) == ("active", 0, 0, 1)
    unique_indexes = [ix.columns for ix in db["turns"].indexes if ix.unique]
    assert ["session_id", "idx"] in unique_indexes
    assert ["username"] in [ix.columns for ix in db["users"].indexes if ix.unique]


def test_pragmas_wal_foreign_keys_busy_timeout(fresh, db_path):
    def pragmas(db):
        return (db.execute("PRAGMA journal_mode").fetchone()[0],
                db.execute("PRAGMA foreign_keys").fetchone()[0],
                db.execute("PRAGMA busy_timeout").fetchone()[0])

    assert pragmas(fresh.db) == ("wal", 1, BUSY_TIMEOUT_MS)
    assert BUSY_TIMEOUT_MS >= 1000
    # Another thread gets its own connection, configured the same way.
    seen = {}

    def other():
        seen["conn"] = fresh.db
        seen["pragmas"] = pragmas(fresh.db)
        fresh.close()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen["pragmas"] == ("wal", 1, BUSY_TIMEOUT_MS)
    assert seen["conn"] is not fresh.db
    # WAL is a property of the file: a plain connection sees it too.
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_reopen_applies_nothing(db_path):
    first = Store(db_path)
    add_session(first)
    first.close()
    second = Store(db_path)
    try:
        assert second.applied == []
        names = [r["name"] for r in second.db["_migrations"].rows]
        assert names == [name for name, _ in MIGRATIONS]
        assert second.db["sessions"].count == 1  # data kept, nothing recreated
    finally:
        second.close()


def test_concurrent_first_open_applies_migrations_once(db_path):
    results, errors = [], []

    def open_store():
        try:
            s = Store(db_path)
            results.append(s.applied)
            s.close()
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(exc))

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(len(r) for r in results) == [0] * 5 + [len(MIGRATIONS)]


def test_audit_is_append_only(fresh):
    audit = AuditLog(fresh)
    row_id = audit.record("alice", "session.end", "S1", reason="done")
    audit.record(None, "app.start")
    rows = fresh.db.execute("SELECT id, actor, action, target, detail_json FROM audit ORDER BY id").fetchall()
    assert rows[0] == (row_id, "alice", "session.end", "S1", '{"reason": "done"}')
    assert rows[1][1:4] == ("anonymous", "app.start", None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        with fresh.write() as db:
            db.execute("UPDATE audit SET actor = 'mallory' WHERE id = ?", [row_id])
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        with fresh.write() as db:
            db.execute("DELETE FROM audit")
    # Also refused on a raw connection that bypasses the Store.
    conn = sqlite3.connect(fresh.path)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("DELETE FROM audit WHERE id = ?", [row_id])
    conn.rollback()
    conn.close()
    assert fresh.db.execute("SELECT count(*) FROM audit").fetchone()[0] == 2
    assert fresh.db["audit"].get(row_id)["actor"] == "alice"
    assert [r["action"] for r in audit.recent()] == ["app.start", "session.end"]
    assert [r["id"] for r in audit.recent(action="session.end")] == [row_id]


def test_foreign_key_enforced_for_turns(fresh):
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        with fresh.write() as db:
            db["turns"].insert({"id": new_id(), "session_id": "no-such-session", "idx": 0,
                                "role": "patient", "content": "hi", "created_utc": utc_now()})
    assert fresh.db["turns"].count == 0
    sid = add_session(fresh)
    with fresh.write() as db:
        db["turns"].insert({"id": new_id(), "session_id": sid, "idx": 0, "role": "patient",
                            "content": "hi", "created_utc": utc_now()})
    assert fresh.db["turns"].count == 1
    # A session with turns cannot be deleted out from under them.
    with pytest.raises(sqlite3.IntegrityError):
        with fresh.write() as db:
            db.execute("DELETE FROM sessions WHERE id = ?", [sid])
    assert fresh.db["sessions"].count == 1


def test_unique_session_idx(fresh):
    sid = add_session(fresh)
    other = add_session(fresh)

    def turn(session_id, idx):
        return {"id": new_id(), "session_id": session_id, "idx": idx, "role": "patient",
                "content": f"turn {idx}", "created_utc": utc_now()}

    with fresh.write() as db:
        db["turns"].insert(turn(sid, 0))
        db["turns"].insert(turn(other, 0))  # same idx in another session is fine
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        with fresh.write() as db:
            db["turns"].insert(turn(sid, 0))
    rows = fresh.db.execute("SELECT session_id, idx FROM turns ORDER BY session_id").fetchall()
    assert sorted(rows) == sorted([(sid, 0), (other, 0)])
