"""Sessions and their turns: the aggregate every chat, simulation and rating reads from.

Each ``add_turn`` is its own committed transaction, so an acknowledged turn survives a crash
of the process a moment later.
"""
from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from typing import Any

from sqlite_utils.db import NotFoundError

from store.db import Store
from store.ids import new_id, utc_now
from vocabulary import SESSION_STATUSES

IDLE_SQL = """
SELECT s.id FROM sessions s
WHERE s.status = 'active' AND s.simulated = 0
  AND COALESCE((SELECT MAX(t.created_utc) FROM turns t WHERE t.session_id = s.id), s.created_utc) < ?
  AND NOT EXISTS (SELECT 1 FROM drafts d WHERE d.session_id = s.id AND d.status = 'pending')
"""

TURN_ROLES = ("patient", "therapist", "system")


class SessionNotFound(KeyError):
    pass


@dataclass
class TurnRecord:
    role: str
    content: str
    reasoning: str | None = None
    model_id: str | None = None
    adapter: str | None = None
    latency_ms: int | None = None
    ttft_ms: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    meta: dict | None = None


class SessionStore:
    def __init__(self, store: Store):
        self.store = store

    def create(self, *, modality: str, therapist_model: str, reasoning: bool, user_id: str | None = None,
               adapter: str | None = None, course_id: str | None = None, course_index: int = 1,
               simulated: bool = False, persona_id: str | None = None, patient_model: str | None = None,
               study: str | None = None, variant: str | None = None, sim_key: str | None = None,
               meta: dict | None = None) -> dict:
        row = {
            "id": new_id(), "user_id": user_id, "modality": modality,
            "therapist_model": therapist_model, "adapter": adapter, "reasoning": int(reasoning),
            "course_id": course_id, "course_index": course_index, "status": "active",
            "simulated": int(simulated), "persona_id": persona_id, "patient_model": patient_model,
            "study": study, "variant": variant, "sim_key": sim_key, "created_utc": utc_now(), "meta_json": json.dumps(meta) if meta else None,
        }
        row["course_id"] = course_id or row["id"]
        with self.store.write() as db:
            db["sessions"].insert(row)
        return row

    def get(self, session_id: str) -> dict:
        rows = list(self.store.db["sessions"].rows_where("id = ?", [session_id]))
        if not rows:
            raise SessionNotFound(session_id)
        return rows[0]

    def list(self, limit: int = 50, user_id: str | None = None) -> list[dict]:
        where, args = ("user_id = ?", [user_id]) if user_id else (None, [])
        return list(self.store.db["sessions"].rows_where(where, args, order_by="id desc", limit=limit))

    def add_turn(self, session_id: str, turn: TurnRecord) -> dict:
        """Append a turn at the next index; committed before this returns."""
        if turn.role not in TURN_ROLES:
            raise ValueError(f"unknown turn role {turn.role!r}")
        with self.store.write() as db:
            if not db.execute("SELECT 1 FROM sessions WHERE id = ?", [session_id]).fetchone():
                raise SessionNotFound(session_id)
            next_idx = db.execute(
                "SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE session_id = ?", [session_id]
            ).fetchone()[0]
            row: dict[str, Any] = {
                "id": new_id(), "session_id": session_id, "idx": next_idx, "role": turn.role,
                "content": turn.content, "reasoning": turn.reasoning, "model_id": turn.model_id,
                "adapter": turn.adapter, "latency_ms": turn.latency_ms, "ttft_ms": turn.ttft_ms,
                "tokens_in": turn.tokens_in, "tokens_out": turn.tokens_out,
                "created_utc": utc_now(), "meta_json": json.dumps(turn.meta) if turn.meta else None,
            }
            db["turns"].insert(row)
        return row

    def turns(self, session_id: str) -> list[dict]:
        return list(self.store.db["turns"].rows_where("session_id = ?", [session_id], order_by="idx"))

    def set_feedback(self, turn_id: str, value: int | None) -> None:
        if value not in (1, -1, None):
            raise ValueError("feedback must be 1, -1 or None")
        with self.store.write() as db:
            db["turns"].update(turn_id, {"feedback": value})

    def end(self, session_id: str, summary: str | None = None, status: str = "ended") -> None:
        self._update_session(session_id, {"status": status, "summary": summary, "ended_utc": utc_now()})

    def set_status(self, session_id: str, status: str) -> None:
        if status not in SESSION_STATUSES:
            raise ValueError(f"unknown session status {status!r}")
        with self.store.write() as db:
            if not db.execute("SELECT 1 FROM sessions WHERE id = ?", [session_id]).fetchone():
                raise SessionNotFound(session_id)
            db["sessions"].update(session_id, {"status": status})

    def set_summary(self, session_id: str, summary: str) -> None:
        self._update_session(session_id, {"summary": summary})

    def _update_session(self, session_id: str, values: dict) -> None:
        with self.store.write() as db:
            try:
                db["sessions"].update(session_id, values)
            except NotFoundError:
                raise SessionNotFound(session_id) from None

    def course(self, course_id: str) -> list[dict]:
        return list(self.store.db["sessions"].rows_where(
            "course_id = ?", [course_id], order_by="course_index"))

    def in_study(self, study: str, *, simulated: bool | None = None, status: str | None = None) -> list[dict]:
        """A study's sessions, oldest first; ``simulated`` and ``status`` narrow them."""
        clauses, args = ["study = ?"], [study]
        if simulated is not None:
            clauses.append("simulated = ?")
            args.append(int(simulated))
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        return list(self.store.db["sessions"].rows_where(" AND ".join(clauses), args, order_by="id"))

    def ended_ids(self, study: str | None = None) -> list[str]:
        """Ids of ended sessions, oldest first, of one study or of all."""
        where, args = ("status = 'ended'", []) if study is None else ("status = 'ended' AND study = ?", [study])
        return [r[0] for r in self.store.db.execute(f"SELECT id FROM sessions WHERE {where} ORDER BY id", args)]

    def statuses(self, ids: list[str]) -> dict[str, str]:
        """{id: status} for those of ``ids`` that exist (unknown ids are left out)."""
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):  # SQLite's bound-variable limit
            chunk = ids[start:start + 500]
            found.update(self.store.db.execute(
                f"SELECT id, status FROM sessions WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
        return found

    def open_for(self, user_id: str | None, limit: int = 10) -> list[dict]:
        """A person's own sessions that are still open (active or on hold), newest first; with
        ``user_id`` None, the single researcher's (no accounts). Simulations are not anyone's."""
        return list(self.store.db["sessions"].rows_where(
            "user_id IS ? AND simulated = 0 AND status IN ('active', 'hold')", [user_id],
            order_by="id desc", limit=limit))

    def abandon_idle(self, cutoff_utc: str, keep: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """Mark ``abandoned`` every human session still ``active`` whose last turn (or start, if
        it has none) is older than ``cutoff_utc`` and that has no draft waiting for a supervisor;
        return their ids. Sessions on hold are left for the supervisor; simulations resume on
        their own (patient_sim/batch.py); ``keep`` names sessions to leave alone (a reply in flight)."""
        with self.store.write() as db:
            ids = [r[0] for r in db.execute(IDLE_SQL, [cutoff_utc]) if r[0] not in keep]
            now = utc_now()
            for session_id in ids:
                db["sessions"].update(session_id, {"status": "abandoned", "ended_utc": now})
        return ids

    def reply_seconds(self, model_id: str, limit: int = 200) -> float | None:
        """The median time this model took per reply over its latest ``limit`` replies on this
        machine (None before its first): what estimates of long work are made from."""
        rows = self.store.db.execute(
            "SELECT latency_ms FROM turns WHERE model_id = ? AND role = 'therapist' AND latency_ms > 0 "
            "ORDER BY id DESC LIMIT ?", [model_id, limit]).fetchall()
        return statistics.median(r[0] for r in rows) / 1000 if rows else None

    def with_sim_key(self, sim_key: str, study: str | None) -> list[dict]:
        """The sessions a simulation or import key made (abandoned ones left out), oldest first."""
        return list(self.store.db["sessions"].rows_where(
            "sim_key = ? AND study IS ? AND status != 'abandoned'", [sim_key, study], order_by="id"))

    @staticmethod
    def insert_new(db, session: dict, turns: list[dict]) -> bool:
        """Inside an open ``store.write()`` transaction ``db``: inserts the session and its turns
        unless the study already holds a session with its ``sim_key``; True when inserted. The
        check runs under the transaction's write lock, so a concurrent insert is seen."""
        if db.execute("SELECT 1 FROM sessions WHERE study IS ? AND sim_key = ?",
                      [session.get("study"), session["sim_key"]]).fetchone():
            return False
        db["sessions"].insert(session)
        db["turns"].insert_all(turns)
        return True

    def search(self, query: str, limit: int = 50) -> list[dict]:
        """Full-text search over turn content and reasoning.

        The query is plain words (quoted for FTS5), so text typed in a search box such as
        ``don't`` or ``self-worth`` never raises an FTS syntax error.
        """
        # Each whitespace-separated chunk that holds a word becomes one quoted FTS5 phrase.
        phrases = ['"' + chunk.replace('"', '""') + '"'
                   for chunk in (query or "").split() if re.search(r"\w", chunk)]
        if not phrases:
            return []
        return list(self.store.db["turns"].search(" ".join(phrases), limit=limit))

    def find(self, *, study: str | None = None, modality: str | None = None, model: str | None = None,
             flag: str = "any", source: str = "any", text: str | None = None, limit: int = 200) -> list[dict]:
        """Sessions for the Review tab, newest first, with turn, flag and rating counts.

        ``flag``: any | flagged (ever flagged) | open (an open flag) | none. ``source``: any | human |
        simulated | imported. ``text``: words that must occur in a turn (full-text search).
        Abandoned sessions (interrupted simulations that were run again) are never listed.
        """
        clauses, args = ["s.status != 'abandoned'"], []
        for column, value in (("s.study", study), ("s.modality", modality), ("s.therapist_model", model)):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        clauses += {"flagged": ["EXISTS (SELECT 1 FROM flags f WHERE f.session_id = s.id)"],
                    "open": ["EXISTS (SELECT 1 FROM flags f WHERE f.session_id = s.id AND f.status = 'open')"],
                    "none": ["NOT EXISTS (SELECT 1 FROM flags f WHERE f.session_id = s.id)"]}.get(flag, [])
        clauses += {"human": ["s.simulated = 0 AND (s.sim_key IS NULL OR s.sim_key NOT LIKE 'import:%')"],
                    "simulated": ["s.simulated = 1"],
                    "imported": ["s.sim_key LIKE 'import:%'"]}.get(source, [])
        if text and text.strip():
            ids = sorted({t["session_id"] for t in self.search(text, limit=2000)})
            if not ids:
                return []
            clauses.append(f"s.id IN ({','.join('?' * len(ids))})")
            args += ids
        sql = f"""SELECT s.*, (SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id) AS n_turns,
                  (SELECT COUNT(*) FROM flags f WHERE f.session_id = s.id) AS n_flags,
                  (SELECT COUNT(*) FROM ratings r WHERE r.session_id = s.id AND r.rater_kind = 'human') AS n_human,
                  (SELECT COUNT(*) FROM ratings r WHERE r.session_id = s.id AND r.rater_kind = 'judge') AS n_judge
                  FROM sessions s WHERE {' AND '.join(clauses)} ORDER BY s.id DESC LIMIT ?"""
        return [dict(r) for r in self.store.db.query(sql, args + [int(limit)])]

    def facets(self) -> dict[str, list[str]]:
        """Distinct studies and therapist models, for the Review tab's filters."""
        db = self.store.db
        return {column: [r[0] for r in db.execute(
            f"SELECT DISTINCT {column} FROM sessions WHERE {column} IS NOT NULL ORDER BY 1").fetchall()]
            for column in ("study", "therapist_model")}
