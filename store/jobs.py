"""The ``jobs`` table: background jobs (simulation, training, judging) the UI can follow.

This module is the store's part; the subprocess runner is ``jobs/runner.py`` and the child's
reporter ``jobs/reporter.py``. A job is three things that outlive the page and the app process that started it:

* a ``jobs`` row (status, pid, config, last progress, error): the truth the UI reads;
* ``<data_dir>/runs/<job_id>/progress.jsonl``: one JSON line per progress report, fsynced;
* ``<data_dir>/runs/<job_id>/log.txt``: the child's stdout and stderr.

``JobRunner`` (``jobs/runner.py``, in the app) creates the row and starts ``python -m <module> ... --job-id ID`` in
its own process group; ``JobReporter`` (``jobs/reporter.py``, in the child) writes progress and the final status.
``JobStore.reconcile`` settles jobs whose process died without reporting (kill -9, OOM, crash):
a pid is only trusted together with the start time ``/proc/<pid>/stat`` gave when the job began,
so a recycled pid never keeps a dead job "running".

Statuses: queued -> running -> done | failed | cancelled. Terminal statuses never change again.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from processes import process_alive, process_identity  # noqa: F401 (part of this module's API)
from store.db import Store
from store.ids import new_id, utc_now

ACTIVE = ("queued", "running")
TERMINAL = ("done", "failed", "cancelled")
ENDED_WITHOUT_REPORT = "the process ended without reporting (killed or crashed)"
# A queued row without a pid is a launch in progress; only after this long is it abandoned.
QUEUED_GRACE_S = 60.0
CANCEL_TIMEOUT_S = 10.0

_JOB_ID_RE = re.compile(r"[0-9A-Za-z]{1,64}")


class JobError(RuntimeError):
    """A job cannot be created, found or started."""


class JobNotFound(JobError, KeyError):
    pass


# ---------------------------------------------------------------------------- paths and processes

def run_dir(data_dir: str | Path, job_id: str) -> Path:
    """``<data_dir>/runs/<job_id>``; the id is checked so it can never climb out of runs/."""
    if not isinstance(job_id, str) or not _JOB_ID_RE.fullmatch(job_id):
        raise JobError(f"not a job id: {job_id!r}")
    return Path(data_dir) / "runs" / job_id


def _loads(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _decode(row: dict) -> dict:
    """A jobs row plus parsed ``config``, ``progress`` and ``process`` (the pid's identity)."""
    out = dict(row)
    config = _loads(row.get("config_json"))
    out["process"] = config.pop("_process", None) or {}
    out["config"] = config
    out["progress"] = _loads(row.get("progress_json"))
    return out


def _age_s(utc: str | None) -> float:
    if not utc:
        return float("inf")
    try:
        then = datetime.fromisoformat(utc)
    except ValueError:
        return float("inf")
    return (datetime.now(timezone.utc) - then).total_seconds()


# ---------------------------------------------------------------------------- the jobs table

class JobStore:
    """The ``jobs`` rows. Every status change is one conditional write, so racing writers
    (the child finishing, the app cancelling, a reconcile) cannot undo a terminal status."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, kind: str, argv: list[str], config: dict, created_by: str | None) -> dict:
        if not kind or not isinstance(kind, str):
            raise JobError("a job needs a kind")
        if "_process" in (config or {}):
            raise JobError("'_process' is reserved in a job config")
        job_id = new_id()
        # The caller's config stays as given; what the app knows about the process sits apart.
        stored = {**(config or {}), "_process": {"argv": list(argv or [])}}
        with self.store.write() as db:
            db["jobs"].insert({
                "id": job_id, "kind": kind, "status": "queued", "pid": None,
                "config_json": json.dumps(stored, default=str), "progress_json": None,
                "log_path": None, "error": None, "created_by": created_by or "anonymous",
                "created_utc": utc_now(), "started_utc": None, "finished_utc": None,
            })
        return self.get(job_id, reconcile=False)

    def get(self, job_id: str, reconcile: bool = True) -> dict:
        """One job, decoded. An active job whose process is gone is settled first."""
        row = self._row(job_id)
        if reconcile and row["status"] in ACTIVE and self._is_orphan(_decode(row)):
            self._settle(job_id, row["pid"])
            row = self._row(job_id)
        return _decode(row)

    def list(self, kind: str | None = None, limit: int = 50, reconcile: bool = True) -> list[dict]:
        """Newest first. Reading the list settles dead jobs, so none shows "running" forever."""
        if reconcile:
            self.reconcile()
        where, args = ("kind = ?", [kind]) if kind else (None, [])
        rows = self.store.db["jobs"].rows_where(where, args, order_by="id desc", limit=limit)
        return [_decode(r) for r in rows]

    def set_log_path(self, job_id: str, log_path: str | Path) -> None:
        with self.store.write() as db:
            db.execute("UPDATE jobs SET log_path = ? WHERE id = ?", [str(log_path), job_id])

    def mark_running(self, job_id: str, pid: int) -> None:
        """Record the pid and its start time. Queued becomes running; a job that already
        finished (a very fast child) keeps its status."""
        identity = process_identity(pid)
        with self.store.write() as db:
            row = self._row(job_id)
            config = _loads(row["config_json"])
            config["_process"] = {**config.get("_process", {}), **identity}
            db.execute(
                "UPDATE jobs SET pid = ?, config_json = ?, started_utc = COALESCE(started_utc, ?),"
                " status = CASE WHEN status = 'queued' THEN 'running' ELSE status END WHERE id = ?",
                [int(pid), json.dumps(config, default=str), utc_now(), job_id])

    def update_progress(self, job_id: str, progress: dict) -> None:
        with self.store.write() as db:
            db.execute("UPDATE jobs SET progress_json = ? WHERE id = ?",
                       [json.dumps(progress, default=str), job_id])

    def finish(self, job_id: str, status: str, error: str | None = None,
               summary: dict | None = None) -> bool:
        """Set a terminal status; False if the job had already finished (nothing changes)."""
        if status not in TERMINAL:
            raise JobError(f"not a final status: {status!r}")
        with self.store.write() as db:
            row = self._row(job_id)
            if row["status"] not in ACTIVE:
                return False
            progress = _loads(row["progress_json"])
            if summary is not None:
                progress["summary"] = summary
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, progress_json = ?, finished_utc = ? WHERE id = ?",
                [status, error, json.dumps(progress, default=str) if progress else None, utc_now(), job_id])
        return True

    def request_cancel(self, job_id: str, actor: str | None) -> None:
        """Remember that a cancel was asked for, so a death after it reads as cancelled, not failed."""
        with self.store.write() as db:
            config = _loads(self._row(job_id)["config_json"])
            config["_process"] = {**config.get("_process", {}),
                                  "cancel_requested_by": actor or "anonymous", "cancel_requested_utc": utc_now()}
            db.execute("UPDATE jobs SET config_json = ? WHERE id = ?", [json.dumps(config, default=str), job_id])

    def reconcile(self) -> list[str]:
        """Settle every queued/running job whose process is gone; return the ids changed."""
        rows = list(self.store.db["jobs"].rows_where("status IN ('queued', 'running')"))
        fixed = []
        for row in rows:
            job = _decode(row)
            if self._is_orphan(job) and self._settle(job["id"], job["pid"]):
                fixed.append(job["id"])
        return fixed

    def settle_dead(self, job_id: str, pid: int | None, detail: str | None = None) -> bool:
        """The job's process has exited: if it did not report, mark it (see ``_settle``)."""
        return self._settle(job_id, pid, detail)

    # -- internals

    def _row(self, job_id: str) -> dict:
        rows = list(self.store.db["jobs"].rows_where("id = ?", [job_id]))
        if not rows:
            raise JobNotFound(job_id)
        return rows[0]

    @staticmethod
    def _is_orphan(job: dict) -> bool:
        if job["pid"] is None:
            # Launch in progress, unless it has been "starting" for far too long.
            return _age_s(job["created_utc"]) > QUEUED_GRACE_S
        return not process_alive(job["pid"], job["process"])

    def _settle(self, job_id: str, pid: int | None, detail: str | None = None) -> bool:
        """Dead and still active: cancelled if a cancel was requested, else failed.

        Checked again inside the write transaction: if the child reported meanwhile, or the
        row got a new pid, it is left alone.
        """
        with self.store.write() as db:
            job = _decode(self._row(job_id))
            if job["status"] not in ACTIVE or job["pid"] != pid:
                return False
            cancelled = bool(job["process"].get("cancel_requested_by"))
            error = None if cancelled else ENDED_WITHOUT_REPORT + (f"; {detail}" if detail else "")
            db.execute("UPDATE jobs SET status = ?, error = ?, finished_utc = ? WHERE id = ?",
                       ["cancelled" if cancelled else "failed", error, utc_now(), job_id])
        return True


# ---------------------------------------------------------------------------- the app side
