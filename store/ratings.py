"""Ratings and judge runs: the scores humans and LLM judges give sessions on a rubric.

A rating row holds the valid item scores (``scores_json``: item id -> int), the rubric's totals
(``totals_json``), the primary total, the rubric id and version, and a status (ok | partial |
failed). A human has at most one rating per session and rubric (editing updates it); a judge run
has at most one per session, which is how a run resumes. ``detail_json`` keeps what a judge
answered (raw attempts, problems, rationales) so a score can always be traced back.

Scoring and validation live in ``eval/``; this module stores what it is given.
"""
from __future__ import annotations

import json
import statistics
from datetime import datetime
from typing import Any, Iterable

from store.db import Store
from store.ids import new_id, utc_now

RATER_KINDS = ("human", "judge")
RATING_STATUSES = ("ok", "partial", "failed")
RUN_ACTIVE = ("running",)
RUN_STATUSES = ("running", "done", "failed", "cancelled")


class RatingError(ValueError):
    pass


def _parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _decode(row: dict) -> dict:
    out = dict(row)
    for column, key in (("scores_json", "scores"), ("totals_json", "totals"), ("detail_json", "detail"),
                        ("config_json", "config")):
        if column in out:
            out[key] = json.loads(out.pop(column) or "{}")
    return out


class RatingStore:
    def __init__(self, store: Store):
        self.store = store

    # --- ratings -----------------------------------------------------------------------------

    def save(self, *, session_id: str, rater_id: str, rater_kind: str, rubric_id: str, rubric_version: int,
             scores: dict, totals: dict, total: float | None, status: str, comment: str | None = None,
             judge_run_id: str | None = None, detail: dict | None = None) -> dict:
        """Insert a rating, or update the same rater's (human) or the same run's (judge) one."""
        if rater_kind not in RATER_KINDS:
            raise RatingError(f"unknown rater kind {rater_kind!r}")
        if status not in RATING_STATUSES:
            raise RatingError(f"unknown rating status {status!r}")
        values = {"scores_json": json.dumps(scores), "totals_json": json.dumps(totals), "total": total,
                  "status": status, "comment": comment, "rubric_version": rubric_version,
                  "detail_json": json.dumps(detail) if detail else None, "updated_utc": utc_now()}
        with self.store.write() as db:
            if not db.execute("SELECT 1 FROM sessions WHERE id = ?", [session_id]).fetchone():
                raise RatingError(f"unknown session {session_id}")
            found = self._existing(db, session_id, rater_id, rater_kind, rubric_id, judge_run_id)
            if found:
                db["ratings"].update(found, values)
                rating_id = found
            else:
                rating_id = new_id()
                db["ratings"].insert({"id": rating_id, "session_id": session_id, "rater_id": rater_id,
                                      "rater_kind": rater_kind, "rubric_id": rubric_id,
                                      "judge_run_id": judge_run_id, "created_utc": values["updated_utc"],
                                      **values})
        return self.get(rating_id)

    @staticmethod
    def _existing(db, session_id, rater_id, rater_kind, rubric_id, judge_run_id) -> str | None:
        if rater_kind == "human":
            row = db.execute("SELECT id FROM ratings WHERE session_id = ? AND rubric_id = ? AND rater_id = ? "
                             "AND rater_kind = 'human'", [session_id, rubric_id, rater_id]).fetchone()
        elif judge_run_id:
            row = db.execute("SELECT id FROM ratings WHERE judge_run_id = ? AND session_id = ?",
                             [judge_run_id, session_id]).fetchone()
        else:
            row = None
        return row[0] if row else None

    def get(self, rating_id: str) -> dict:
        rows = list(self.store.db["ratings"].rows_where("id = ?", [rating_id]))
        if not rows:
            raise RatingError(f"unknown rating {rating_id}")
        return _decode(rows[0])

    def for_session(self, session_id: str, rubric_id: str | None = None) -> list[dict]:
        where, args = "session_id = ?", [session_id]
        if rubric_id:
            where, args = where + " AND rubric_id = ?", args + [rubric_id]
        return [_decode(r) for r in self.store.db["ratings"].rows_where(where, args, order_by="created_utc")]

    def list(self, rubric_id: str | None = None, rater_kind: str | None = None,
             judge_run_id: str | None = None, session_ids: Iterable[str] | None = None) -> list[dict]:
        clauses, args = [], []
        for column, value in (("rubric_id", rubric_id), ("rater_kind", rater_kind), ("judge_run_id", judge_run_id)):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        if session_ids is not None:
            ids = list(session_ids)
            if not ids:
                return []
            clauses.append(f"session_id IN ({','.join('?' * len(ids))})")
            args += ids
        where = " AND ".join(clauses) or None
        return [_decode(r) for r in self.store.db["ratings"].rows_where(where, args, order_by="created_utc")]

    # --- judge runs --------------------------------------------------------------------------

    def create_run(self, rubric_id: str, judge_model: str, selection: str, config: dict[str, Any],
                   created_by: str | None, job_id: str | None = None) -> dict:
        now = utc_now()
        row = {"id": new_id(), "rubric_id": rubric_id, "judge_model": judge_model, "selection": selection,
               "status": "running", "config_json": json.dumps(config), "created_utc": now, "started_utc": now,
               "created_by": created_by, "job_id": job_id, "n_ok": 0, "n_partial": 0, "n_failed": 0}
        with self.store.write() as db:
            db["judge_runs"].insert(row)
        return self.run(row["id"])

    def run(self, run_id: str) -> dict:
        rows = list(self.store.db["judge_runs"].rows_where("id = ?", [run_id]))
        if not rows:
            raise RatingError(f"unknown judge run {run_id}")
        return _decode(rows[0])

    def runs(self, rubric_id: str | None = None, limit: int = 50) -> list[dict]:
        where, args = ("rubric_id = ?", [rubric_id]) if rubric_id else (None, [])
        return [_decode(r) for r in self.store.db["judge_runs"].rows_where(where, args, order_by="id desc",
                                                                           limit=limit)]

    def judge_seconds(self, judge_model: str, rubric_id: str) -> float | None:
        """The median time per judged session of this judge on this rubric, over its finished runs
        (None before one has finished)."""
        per_session = []
        for run in self.runs(rubric_id, limit=200):
            rated = run["n_ok"] + run["n_partial"] + run["n_failed"]
            start, end = run.get("started_utc"), run.get("finished_utc")
            if run["judge_model"] == judge_model and run["status"] == "done" and rated and start and end:
                seconds = (_parse_utc(end) - _parse_utc(start)).total_seconds()
                if seconds > 0:
                    per_session.append(seconds / rated)
        return statistics.median(per_session) if per_session else None

    def find_resumable(self, rubric_id: str, judge_model: str, selection: str, config: dict) -> dict | None:
        """The latest run with the same rubric, judge, selection and settings, if any: continuing it
        rates only what it has not (sessions it missed, or that ended since)."""
        for run in self.runs(rubric_id, limit=200):
            if run["judge_model"] == judge_model and run["selection"] == selection and run["config"] == config:
                return run
        return None

    def update_run(self, run_id: str, **values: Any) -> None:
        """Set status / counts; counts are recomputed from the ratings, never incremented blindly."""
        counts = {f"n_{status}": n for status, n in self.store.db.execute(
            "SELECT status, COUNT(*) FROM ratings WHERE judge_run_id = ? GROUP BY status", [run_id]).fetchall()}
        row = {"n_ok": counts.get("n_ok", 0), "n_partial": counts.get("n_partial", 0),
               "n_failed": counts.get("n_failed", 0), **values}
        if values.get("status") and values["status"] != "running":
            row["finished_utc"] = utc_now()
        with self.store.write() as db:
            db["judge_runs"].update(run_id, row)

    def running_with_ended_job(self) -> list[tuple[str, str]]:
        """(run id, job status) of runs still marked running whose job has ended."""
        return [tuple(r) for r in self.store.db.execute(
            """SELECT r.id, j.status FROM judge_runs r JOIN jobs j ON j.id = r.job_id
               WHERE r.status = 'running' AND j.status IN ('done', 'failed', 'cancelled')""").fetchall()]

    def rated_in_run(self, run_id: str) -> set[str]:
        return {r[0] for r in self.store.db.execute(
            "SELECT session_id FROM ratings WHERE judge_run_id = ?", [run_id]).fetchall()}
