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
        """Only a supervisor's resolution with a written note closes a flag.

        A flag carried into a later session stands for the flags it carried: resolving either side
        closes the other too (same note, marked), so a resolved risk does not follow the patient
        into every later session through copies. ``also_resolved`` lists those ids."""
        if not (note or "").strip():
            raise FlagError("A resolution note is required to close a risk flag.")
        with self.store.write() as db:
            rows = list(db["flags"].rows_where("id = ?", [flag_id]))
            if not rows:
                raise FlagError(f"No flag {flag_id}")
            if rows[0]["status"] != "open":
                raise FlagError("This flag is already resolved.")
            closing = _linked_open_flags(flag_id, self._open_of_same_patient(db, rows[0]))
            now = utc_now()
            for fid in closing:
                text = note.strip() if fid == flag_id else f"{note.strip()} (resolved with flag {flag_id})"
                db["flags"].update(fid, {"status": "resolved", "resolved_by": resolved_by,
                                         "resolution_note": text, "resolved_utc": now})
        return {**dict(self.store.db["flags"].get(flag_id)), "also_resolved": sorted(closing - {flag_id})}

    @staticmethod
    def _open_of_same_patient(db, flag: dict) -> dict[str, dict]:
        sql = """SELECT f.* FROM flags f JOIN sessions s ON s.id = f.session_id
                 WHERE f.status = 'open' AND COALESCE(s.user_id, s.course_id) =
                       (SELECT COALESCE(user_id, course_id) FROM sessions WHERE id = ?)"""
        rows = {r["id"]: dict(r) for r in db.query(sql, [flag["session_id"]])}
        return rows or {flag["id"]: dict(flag)}


def _sources(flag: dict) -> list[str]:
    if flag["kind"] != "carried_over":
        return []
    return list(json.loads(flag.get("detail_json") or "{}").get("open_flags", []))


def _linked_open_flags(flag_id: str, open_flags: dict[str, dict]) -> set[str]:
    """``flag_id`` plus the open flags it carried and the open copies whose every source closes."""
    closing = {flag_id}
    changed = True
    while changed:
        changed = False
        for fid, flag in open_flags.items():
            if fid in closing:
                continue
            sources = _sources(flag)
            carried_by_closing = any(fid in _sources(open_flags[c]) for c in closing if c in open_flags)
            copy_of_closing = bool(sources) and all(s in closing or s not in open_flags for s in sources) \
                and any(s in closing for s in sources)
            if carried_by_closing or copy_of_closing:
                closing.add(fid)
                changed = True
    return closing
