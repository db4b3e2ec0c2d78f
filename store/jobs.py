"""Background jobs: long work (simulation, training, judging) in a subprocess the UI can follow.

A job is three things that outlive the page and the app process that started it:

* a ``jobs`` row (status, pid, config, last progress, error): the truth the UI reads;
* ``<data_dir>/runs/<job_id>/progress.jsonl``: one JSON line per progress report, fsynced;
* ``<data_dir>/runs/<job_id>/log.txt``: the child's stdout and stderr.

``JobRunner`` (in the app) creates the row and starts ``python -m <module> ... --job-id ID`` in
its own process group; ``JobReporter`` (in the child) writes progress and the final status.
``JobStore.reconcile`` settles jobs whose process died without reporting (kill -9, OOM, crash):
a pid is only trusted together with the start time ``/proc/<pid>/stat`` gave when the job began,
so a recycled pid never keeps a dead job "running".

Statuses: queued -> running -> done | failed | cancelled. Terminal statuses never change again.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from config import Settings
from processes import process_alive, process_identity  # noqa: F401 (part of this module's API)
from store.db import Store, StoreError
from store.ids import new_id, utc_now

ACTIVE = ("queued", "running")
TERMINAL = ("done", "failed", "cancelled")
ENDED_WITHOUT_REPORT = "the process ended without reporting (killed or crashed)"
# A queued row without a pid is a launch in progress; only after this long is it abandoned.
QUEUED_GRACE_S = 60.0
CANCEL_TIMEOUT_S = 10.0
REPO_ROOT = Path(__file__).resolve().parents[1]
EXIT_CANCELLED = 128 + signal.SIGTERM  # the shell's convention for "ended by SIGTERM"

_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_JOB_ID_RE = re.compile(r"[0-9A-Za-z]{1,64}")


class JobError(RuntimeError):
    """A job cannot be created, found or started."""


class JobNotFound(JobError, KeyError):
    pass


class JobCancelled(BaseException):
    """Raised in the child by the default SIGTERM handler.

    A BaseException, like KeyboardInterrupt, so a broad ``except Exception`` in the work
    cannot swallow a cancel request.
    """


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

def read_progress(path: str | Path, last: int | None = None) -> list[dict]:
    """The records of a progress.jsonl; a torn line (the writer died mid-write) is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records[-last:] if last else records


def tail_file(path: str | Path, lines: int = 40, block: int = 8192) -> str:
    """The last ``lines`` lines of a file, reading backwards so a huge log costs little."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = pos = fh.tell()
            data = b""
            while pos > 0 and data.count(b"\n") <= lines:
                pos = max(0, pos - block)
                fh.seek(pos)
                data = fh.read(end - pos)
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def _exit_detail(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class JobRunner:
    """Starts jobs as subprocesses, reaps them, and cancels them."""

    def __init__(self, store: Store, data_dir: str | Path, audit, settings=None):
        self.jobs = JobStore(store)
        self.data_dir = Path(data_dir).resolve()
        self.audit = audit
        self.settings = settings  # the app's resolved Settings, handed to every job it launches
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        # Called with the job id once a job's process is gone (after its row is settled), so the
        # records a job kept (a judge run, say) can be settled too; a hook's error is not fatal.
        self.on_ended: list[Callable[[str], None]] = []

    def launch(self, kind: str, argv: list[str], config: dict, created_by: str | None) -> dict:
        """Create the row and start ``python -m <argv...> --job-id ID``; the child reports progress."""
        if not argv or not all(isinstance(a, str) for a in argv) or not _MODULE_RE.fullmatch(argv[0]):
            raise JobError(f"argv must start with a module name, got {argv!r}")
        job = self.jobs.create(kind, argv, config, created_by)
        folder = run_dir(self.data_dir, job["id"])
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / "log.txt"
        self.jobs.set_log_path(job["id"], log_path)
        try:
            proc = self._spawn(argv, job["id"], log_path)
        except OSError as exc:
            self.jobs.finish(job["id"], "failed", error=f"could not start the process: {exc}")
            raise JobError(f"could not start job {job['id']}: {exc}") from exc
        self.jobs.mark_running(job["id"], proc.pid)
        with self._lock:
            self._procs[job["id"]] = proc
        threading.Thread(target=self._reap, args=(job["id"], proc), daemon=True,
                         name=f"job-reaper-{job['id']}").start()
        self.audit.record(created_by, "job.launch", job["id"], kind=kind, argv=list(argv), pid=proc.pid)
        return self.jobs.get(job["id"], reconcile=False)

    def _spawn(self, argv: list[str], job_id: str, log_path: Path) -> subprocess.Popen:
        env = dict(os.environ)
        # The child finds the same database even if argv forgot --data-dir; its log is live.
        env["THERALAB_DATA_DIR"] = str(self.data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        if self.settings is not None:  # the job loads the app's resolved settings, not its own guess
            from config import SETTINGS_FILE_ENV, settings_json
            from store.files import create_private_file
            path = log_path.parent / "settings.json"
            create_private_file(path)  # it names model endpoints and paths: owner-only, whatever the umask
            path.write_text(settings_json(self.settings), encoding="utf-8")
            env[SETTINGS_FILE_ENV] = str(path)
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                [sys.executable, "-m", *argv, "--job-id", job_id], cwd=REPO_ROOT, env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # own process group: cancel reaches its children too

    def _reap(self, job_id: str, proc: subprocess.Popen) -> None:
        """Wait for the child (no zombies) and settle the row at once if it did not report."""
        returncode = proc.wait()
        with self._lock:
            self._procs.pop(job_id, None)
        try:
            self.jobs.settle_dead(job_id, proc.pid, _exit_detail(returncode))
        except (StoreError, JobError):
            pass  # reconcile() settles it on the next read
        self._ended(job_id)

    def _ended(self, job_id: str) -> None:
        for hook in list(self.on_ended):
            try:
                hook(job_id)
            except Exception:  # noqa: BLE001 - a hook must not take the reaper down
                pass

    def cancel(self, job_id: str, actor: str | None, timeout: float = CANCEL_TIMEOUT_S) -> dict:
        """SIGTERM the job's process group, SIGKILL after ``timeout`` s; the job ends "cancelled"
        (or keeps the status it reached first, e.g. "done"). Returns the job."""
        job = self.jobs.get(job_id)
        if job["status"] not in ACTIVE:
            return job
        self.jobs.request_cancel(job_id, actor)
        forced = False
        pid = job["pid"]
        if pid and process_alive(pid, job["process"]):
            _signal_group(pid, signal.SIGTERM)
            if not self._wait_gone(job_id, pid, job["process"], timeout):
                forced = True
                _signal_group(pid, signal.SIGKILL)
                self._wait_gone(job_id, pid, job["process"], 5.0)
            if _group_members(pid):  # stragglers that outlived the leader
                _signal_group(pid, signal.SIGKILL)
        self.jobs.finish(job_id, "cancelled")
        self._ended(job_id)
        self.audit.record(actor, "job.cancel", job_id, forced=forced, pid=pid)
        return self.jobs.get(job_id, reconcile=False)

    def _wait_gone(self, job_id: str, pid: int, identity: dict, timeout: float) -> bool:
        with self._lock:
            proc = self._procs.get(job_id)
        if proc is not None:  # our own child: wait() also reaps it
            try:
                proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process_alive(pid, identity):
                return True
            time.sleep(0.05)
        return not process_alive(pid, identity)

    def read_progress(self, job_id: str, last: int | None = None) -> list[dict]:
        return read_progress(run_dir(self.data_dir, job_id) / "progress.jsonl", last)

    def tail_log(self, job_id: str, lines: int = 40) -> str:
        return tail_file(run_dir(self.data_dir, job_id) / "log.txt", lines)


def _group_members(pgid: int) -> list[int]:
    """Live pids in process group ``pgid`` (empty without /proc: nothing is signalled blindly)."""
    members = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = entry.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):  # field 5 = pgrp
            members.append(int(entry.parent.name))
    return members


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


# ---------------------------------------------------------------------------- the child side

class JobReporter:
    """Used inside the job's process: progress lines, the jobs row, the final status.

    ``progress`` appends to progress.jsonl every time (flushed and fsynced) but writes the
    database at most every ``min_db_interval`` s, plus always the final step, so a fast loop
    does not hammer SQLite while the UI still sees the latest state.
    """

    def __init__(self, store: Store, job_id: str, data_dir: str | Path, min_db_interval: float = 0.5):
        self.jobs = JobStore(store)
        self.job_id = job_id
        job = self.jobs.get(job_id, reconcile=False)  # fails loudly on a wrong id or database
        if job["status"] in TERMINAL:  # e.g. cancelled before this process got going
            raise JobError(f"job {job_id} is already {job['status']}")
        self.folder = run_dir(data_dir, job_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "progress.jsonl"
        self.min_db_interval = min_db_interval
        self.cancel_requested = False
        self.finished = False
        self._last_db = float("-inf")
        self._pending: dict | None = None
        if job["status"] == "queued":  # started by hand or before the parent recorded the pid
            self.jobs.mark_running(job_id, os.getpid())

    @classmethod
    def from_args(cls, job_id: str | None, data_dir: str | Path, store: Store | None = None,
                  **kwargs: Any) -> "JobReporter":
        """The reporter for a CLI's ``--job-id``: a no-op one when the CLI runs without a job."""
        if job_id is None:
            return NullReporter()
        if store is None:
            store = Store(Settings(data_dir=Path(data_dir)).db_path)
        return cls(store, job_id, data_dir, **kwargs)

    def progress(self, done: int, total: int, **fields: Any) -> dict:
        record = {"t": utc_now(), "done": done, "total": total, **fields}
        self._append(record)
        self._pending = record
        now = time.monotonic()
        if now - self._last_db >= self.min_db_interval or (total and done >= total):
            self._flush_db(now)
        return record

    def done(self, summary: dict | None = None) -> bool:
        return self._finish("done", summary=summary or {})

    def fail(self, error: str) -> bool:
        return self._finish("failed", error=str(error))

    def cancelled(self) -> bool:
        return self._finish("cancelled")

    def on_cancel(self, callback: Callable[[], None] | None = None) -> None:
        """Handle SIGTERM (what ``JobRunner.cancel`` sends). Call from the main thread.

        With a callback, the handler sets ``cancel_requested`` and calls it: the work stops at
        its next check and then calls ``cancelled()``. Without one, the handler raises
        ``JobCancelled`` wherever the work is, and ``guard()`` turns that into "cancelled".
        """
        def handler(signum, frame):
            if self.cancel_requested:
                return  # a second SIGTERM must not interrupt the clean-up of the first
            self.cancel_requested = True
            if callback is not None:
                callback()
            else:
                raise JobCancelled()

        signal.signal(signal.SIGTERM, handler)

    @contextlib.contextmanager
    def guard(self) -> Iterator["JobReporter"]:
        """Report how the block ends: normally -> done (unless already reported), JobCancelled
        or Ctrl-C -> cancelled and exit 143, an exception -> failed with its message, re-raised."""
        try:
            yield self
        except (JobCancelled, KeyboardInterrupt):
            self.cancelled()
            raise SystemExit(EXIT_CANCELLED)
        except SystemExit as exc:
            if exc.code in (0, None):
                self.done()
            else:
                self.fail(f"exited with code {exc.code}")
            raise
        except BaseException as exc:
            self.fail(f"{type(exc).__name__}: {exc}")
            raise
        if not self.finished:
            self.done()

    # -- internals

    def _append(self, record: dict) -> None:
        line = json.dumps(record, default=str) + "\n"
        # One write of a whole line in append mode: a crash can only tear the last line.
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def _flush_db(self, now: float) -> None:
        if self._pending is None:
            return
        try:
            self.jobs.update_progress(self.job_id, self._pending)
        except StoreError as exc:  # the jsonl still has it; the next report retries
            print(f"warning: job progress not saved to the database: {exc}", file=sys.stderr)
            return
        self._pending = None
        self._last_db = now

    def _finish(self, status: str, error: str | None = None, summary: dict | None = None) -> bool:
        if self.finished:
            return False
        self._flush_db(time.monotonic())
        event = {"t": utc_now(), "event": status}
        if error:
            event["error"] = error
        if summary is not None:
            event["summary"] = summary
        self._append(event)
        self.finished = True
        return self.jobs.finish(self.job_id, status, error=error, summary=summary)


class NullReporter(JobReporter):
    """What a CLI gets without ``--job-id``: the same calls, nothing written."""

    def __init__(self):  # noqa: D107 - deliberately skips JobReporter's store and files
        self.job_id = None
        self.cancel_requested = False
        self.finished = False

    def progress(self, done: int, total: int, **fields: Any) -> dict:
        return {"t": utc_now(), "done": done, "total": total, **fields}

    def _finish(self, status: str, error: str | None = None, summary: dict | None = None) -> bool:
        if self.finished:
            return False
        self.finished = True
        return True
