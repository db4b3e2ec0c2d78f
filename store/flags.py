"""Risk flags: raised by the safety screen, sticky until a supervisor resolves them with a note.

A flag belongs to a session, and through the session to a patient (the user, or the course when
there are no accounts), so an open flag follows the patient into every later session.
"""
from __future__ import annotations

import json

from store.db import Store
from store.ids import new_id, utc_now

class FlagError(ValueError):
    pass


class FlagStore:
    def __init__(self, store: Store):
        self.store = store

    def raise_flag(self, session_id: str, level: str, kind: str, turn_id: str | None = None,
                   detail: dict | None = None) -> dict:
        row = {"id": new_id(), "session_id": session_id, "turn_id": turn_id, "level": level,
               "kind": kind, "status": "open", "detail_json": json.dumps(detail or {}),
               "created_utc": utc_now()}
        with self.store.write() as db:
            db["flags"].insert(row)
        return row

    def open_for_patient(self, patient_key: str) -> list[dict]:
        """Open flags on any session of this patient (user id, else course id)."""
        sql = """SELECT flags.* FROM flags JOIN sessions ON sessions.id = flags.session_id
                 WHERE flags.status = 'open' AND COALESCE(sessions.user_id, sessions.course_id) = ?
                 ORDER BY flags.id"""
        return [dict(r) for r in self.store.db.query(sql, [patient_key])]

    def for_session(self, session_id: str) -> list[dict]:
        return list(self.store.db["flags"].rows_where("session_id = ?", [session_id], order_by="id"))

    def open_flags(self) -> list[dict]:
        return list(self.store.db["flags"].rows_where("status = 'open'", order_by="id desc"))

    def resolve(self, flag_id: str, resolved_by: str, note: str) -> dict:
        """Only a supervisor's resolution with a written note closes a flag."""
        if not (note or "").strip():
            raise FlagError("A resolution note is required to close a risk flag.")
        with self.store.write() as db:
            rows = list(db["flags"].rows_where("id = ?", [flag_id]))
            if not rows:
                raise FlagError(f"No flag {flag_id}")
            if rows[0]["status"] != "open":
                raise FlagError("This flag is already resolved.")
            db["flags"].update(flag_id, {"status": "resolved", "resolved_by": resolved_by,
                                         "resolution_note": note.strip(), "resolved_utc": utc_now()})
        return dict(self.store.db["flags"].get(flag_id))

