"""The child side of a job: progress lines, the jobs row, the final status, and cancellation.

Used inside the job's process (``python -m <package> ... --job-id ID``): ``JobReporter`` appends
each progress record to ``runs/<id>/progress.jsonl`` (fsynced) and to the ``jobs`` row, turns
SIGTERM into ``JobCancelled`` wherever the work is, and records how the work ended.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from config import Settings
from store.db import Store, StoreError
from store.ids import utc_now
from store.jobs import TERMINAL, JobError, JobStore, run_dir

EXIT_CANCELLED = 128 + signal.SIGTERM  # the shell's convention for "ended by SIGTERM"


class JobCancelled(BaseException):
    """Raised in the child by the default SIGTERM handler.

    A BaseException, like KeyboardInterrupt, so a broad ``except Exception`` in the work
    cannot swallow a cancel request.
    """


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
