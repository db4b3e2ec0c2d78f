"""Append-only, named schema migrations.

Each migration runs once, inside a transaction, and is recorded in ``_migrations``.
Never edit or reorder a shipped migration: add a new one at the end.
"""
from __future__ import annotations

from typing import Callable

import sqlite_utils

from store.ids import utc_now

MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = []


def migration(fn: Callable[[sqlite_utils.Database], None]):
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    db["users"].create({
        "id": str, "username": str, "password_hash": str, "role": str, "disabled": int,
        "created_utc": str,
    }, pk="id", not_null={"username", "role"}, defaults={"disabled": 0})
    db["users"].create_index(["username"], unique=True)

    db["consents"].create({
        "id": str, "user_id": str, "version": str, "text_sha256": str, "created_utc": str,
    }, pk="id", foreign_keys=[("user_id", "users", "id")])

    db["personas"].create({
        "id": str, "name": str, "modality": str, "archetype": str, "style": str,
        "profile_hash": str, "source": str, "profile_json": str, "created_utc": str,
    }, pk="id")

    db["sessions"].create({
        "id": str, "user_id": str, "modality": str, "therapist_model": str, "adapter": str,
        "reasoning": int, "course_id": str, "course_index": int, "status": str,
        "simulated": int, "persona_id": str, "patient_model": str, "study": str,
        "variant": str, "summary": str, "created_utc": str, "ended_utc": str, "meta_json": str,
    }, pk="id", not_null={"modality", "therapist_model", "status"},
        defaults={"reasoning": 0, "simulated": 0, "course_index": 1, "status": "active"},
        foreign_keys=[("user_id", "users", "id"), ("persona_id", "personas", "id")])
    db["sessions"].create_index(["course_id", "course_index"])

    db["turns"].create({
        "id": str, "session_id": str, "idx": int, "role": str, "content": str,
        "reasoning": str, "model_id": str, "adapter": str, "latency_ms": int, "ttft_ms": int,
        "tokens_in": int, "tokens_out": int, "feedback": int, "created_utc": str, "meta_json": str,
    }, pk="id", not_null={"session_id", "idx", "role", "content"},
        foreign_keys=[("session_id", "sessions", "id")])
    db["turns"].create_index(["session_id", "idx"], unique=True)
    db["turns"].enable_fts(["content", "reasoning"], create_triggers=True, tokenize="porter")

    db["flags"].create({
        "id": str, "session_id": str, "turn_id": str, "level": str, "kind": str,
        "status": str, "detail_json": str, "resolved_by": str, "resolution_note": str,
        "created_utc": str, "resolved_utc": str,
    }, pk="id", defaults={"status": "open"},
        foreign_keys=[("session_id", "sessions", "id"), ("turn_id", "turns", "id")])

    db["ratings"].create({
        "id": str, "session_id": str, "rater_id": str, "rater_kind": str, "rubric_id": str,
        "scores_json": str, "total": float, "comment": str, "judge_run_id": str,
        "status": str, "created_utc": str, "updated_utc": str,
    }, pk="id", foreign_keys=[("session_id", "sessions", "id")])

    db["judge_runs"].create({
        "id": str, "rubric_id": str, "judge_model": str, "selection": str, "status": str,
        "n_ok": int, "n_partial": int, "n_failed": int, "config_json": str,
        "created_utc": str, "finished_utc": str,
    }, pk="id", defaults={"n_ok": 0, "n_partial": 0, "n_failed": 0})

    db["jobs"].create({
        "id": str, "kind": str, "status": str, "pid": int, "config_json": str,
        "progress_json": str, "log_path": str, "error": str, "created_by": str,
        "created_utc": str, "started_utc": str, "finished_utc": str,
    }, pk="id")

    db["audit"].create({
        "id": str, "actor": str, "action": str, "target": str, "detail_json": str,
        "created_utc": str,
    }, pk="id")
    # The audit trail is append-only: the database itself refuses edits and deletions.
    db.execute("""CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
                  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""")
    db.execute("""CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
                  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""")


@migration
def m002_supervision(db: sqlite_utils.Database) -> None:
    """Held drafts waiting for a supervisor, supervisor notes, and faster consent lookups."""
    db["drafts"].create({
        "id": str, "session_id": str, "after_turn_id": str, "content": str, "reasoning": str,
        "model_id": str, "status": str, "final_text": str, "decided_by": str,
        "turn_id": str, "meta_json": str, "created_utc": str, "decided_utc": str,
    }, pk="id", not_null={"session_id", "content", "status"}, defaults={"status": "pending"},
        foreign_keys=[("session_id", "sessions", "id")])
    db["drafts"].create_index(["session_id", "status"])
    db["notes"].create({
        "id": str, "session_id": str, "author": str, "text": str, "created_utc": str,
    }, pk="id", not_null={"session_id", "text"}, foreign_keys=[("session_id", "sessions", "id")])
    db["notes"].create_index(["session_id"])
    db["consents"].create_index(["user_id", "version"])
    db["flags"].create_index(["status"])


@migration
def m003_simulation(db: sqlite_utils.Database) -> None:
    """A key per simulated combination (persona|therapist|repeat|course session), so a batch can
    resume: a finished combination is found and skipped, an interrupted one is set aside."""
    db["sessions"].add_column("sim_key", str)
    db["sessions"].create_index(["study", "sim_key"])


@migration
def m004_ratings(db: sqlite_utils.Database) -> None:
    """Ratings carry the rubric version, their totals and (for a judge) the raw answers; one human
    rating per rater, session and rubric; one judge rating per run and session, so a run resumes."""
    db["ratings"].add_column("rubric_version", int)
    db["ratings"].add_column("totals_json", str)
    db["ratings"].add_column("detail_json", str)
    db["ratings"].create_index(["session_id", "rubric_id"])
    db.execute("CREATE UNIQUE INDEX idx_ratings_human ON ratings (session_id, rubric_id, rater_id) "
               "WHERE rater_kind = 'human'")
    db.execute("CREATE UNIQUE INDEX idx_ratings_run ON ratings (judge_run_id, session_id) "
               "WHERE judge_run_id IS NOT NULL")
    for column in ("job_id", "created_by", "error", "started_utc"):
        db["judge_runs"].add_column(column, str)
    db["judge_runs"].add_column("n_total", int)


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    """Apply every pending migration; return the names applied now."""
    # BEGIN IMMEDIATE takes the write lock first, so two processes starting at once
    # cannot both decide that the same migration is pending.
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        if "_migrations" not in db.table_names():
            db["_migrations"].create({"name": str, "applied_utc": str}, pk="name")
        done = {row["name"] for row in db["_migrations"].rows}
        applied = []
        for name, fn in MIGRATIONS:
            if name not in done:
                fn(db)
                db["_migrations"].insert({"name": name, "applied_utc": utc_now()})
                applied.append(name)
        db.conn.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
    return applied
