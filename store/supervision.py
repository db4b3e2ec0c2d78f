"""What the supervisor works with: held drafts, notes on sessions, and the live overview.

A held draft is a therapist reply that waits for a supervisor to approve, edit or replace it; the
patient does not see it until then. Only one draft per session is pending at a time: a newer one
supersedes the older, because it answers the conversation as it now stands.
"""
from __future__ import annotations

import json

from store.db import Store
from store.ids import new_id, utc_now

DRAFT_DECISIONS = ("approved", "edited", "replaced", "discarded")


class DraftError(ValueError):
    """The draft cannot be decided (unknown, already decided, superseded); the message says why."""


class DraftStore:
    def __init__(self, store: Store):
        self.store = store

    def add(self, session_id: str, content: str, reasoning: str | None, model_id: str | None,
            after_turn_id: str | None = None, meta: dict | None = None) -> dict:
        row = {"id": new_id(), "session_id": session_id, "after_turn_id": after_turn_id,
               "content": content, "reasoning": reasoning, "model_id": model_id, "status": "pending",
               "meta_json": json.dumps(meta) if meta else None, "created_utc": utc_now()}
        with self.store.write() as db:  # the older draft goes in the same transaction
            self.supersede(session_id)
            db["drafts"].insert(row)
        return row

    def get(self, draft_id: str) -> dict:
        rows = list(self.store.db["drafts"].rows_where("id = ?", [draft_id]))
        if not rows:
            raise DraftError(f"No draft {draft_id}")
        return rows[0]

    def pending(self, session_id: str) -> dict | None:
        rows = list(self.store.db["drafts"].rows_where(
            "session_id = ? AND status = 'pending'", [session_id], order_by="id desc", limit=1))
        return rows[0] if rows else None

    def supersede(self, session_id: str) -> None:
        with self.store.write() as db:
            db.execute("UPDATE drafts SET status = 'superseded', decided_utc = ? "
                       "WHERE session_id = ? AND status = 'pending'", [utc_now(), session_id])

    def mark(self, draft_id: str, status: str, decided_by: str, final_text: str | None = None,
             turn_id: str | None = None) -> None:
        """Record the decision; refuses a draft that is no longer pending (checked in the write)."""
        if status not in DRAFT_DECISIONS:
            raise DraftError(f"unknown decision {status!r}")
        with self.store.write() as db:
            changed = db.execute(
                "UPDATE drafts SET status = ?, decided_by = ?, final_text = ?, turn_id = ?, decided_utc = ? "
                "WHERE id = ? AND status = 'pending'",
                [status, decided_by, final_text, turn_id, utc_now(), draft_id]).rowcount
            if not changed:
                raise DraftError("This draft was already decided or replaced by a newer one.")


class NoteStore:
    def __init__(self, store: Store):
        self.store = store

    def add(self, session_id: str, author: str, text: str) -> dict:
        text = (text or "").strip()
        if not text:
            raise ValueError("The note is empty.")
        row = {"id": new_id(), "session_id": session_id, "author": author, "text": text,
               "created_utc": utc_now()}
        with self.store.write() as db:
            db["notes"].insert(row)
        return row

    def for_session(self, session_id: str) -> list[dict]:
        return list(self.store.db["notes"].rows_where("session_id = ?", [session_id], order_by="id"))


LIVE_SQL = """
SELECT s.id, s.status, s.modality, s.therapist_model, s.simulated, s.created_utc, s.course_index,
       COALESCE(u.username, CASE WHEN s.simulated THEN 'simulated' ELSE 'researcher' END) AS patient,
       (SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id AND t.role != 'system') AS n_turns,
       (SELECT MAX(t.created_utc) FROM turns t WHERE t.session_id = s.id) AS last_utc,
       (SELECT COUNT(*) FROM flags f WHERE f.session_id = s.id AND f.status = 'open') AS open_flags,
       (SELECT MAX(CASE f.level WHEN 'imminent' THEN 4 WHEN 'high' THEN 3 WHEN 'moderate' THEN 2
                                WHEN 'low' THEN 1 ELSE 0 END)
          FROM flags f WHERE f.session_id = s.id AND f.status = 'open') AS flag_rank,
       (SELECT COUNT(*) FROM drafts d WHERE d.session_id = s.id AND d.status = 'pending') AS drafts
FROM sessions s LEFT JOIN users u ON u.id = s.user_id
WHERE s.status NOT IN ('ended', 'abandoned')
   OR (s.simulated = 0 AND EXISTS (SELECT 1 FROM flags f WHERE f.session_id = s.id AND f.status = 'open'))
ORDER BY open_flags > 0 DESC, s.simulated ASC, flag_rank DESC, drafts > 0 DESC,
         COALESCE(last_utc, s.created_utc) DESC
LIMIT ?
"""
RANK_LEVEL = {4: "imminent", 3: "high", 2: "moderate", 1: "low"}


def live_overview(store: Store, limit: int = 200) -> list[dict]:
    """Sessions a supervisor must see: every running one, and ended human sessions that still have
    open flags; open flags first (people before simulations, worst level first), then drafts
    waiting, then most recent. A finished simulation's flags are research data, not alerts."""
    rows = [dict(r) for r in store.db.query(LIVE_SQL, [limit])]
    for row in rows:
        row["flag_level"] = RANK_LEVEL.get(row.pop("flag_rank") or 0, "")
    return rows
