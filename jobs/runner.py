"""Starts jobs as subprocesses of the app, reaps them, cancels them, and reads what they wrote.

``JobRunner.submit`` takes a typed spec (``jobs/kinds.py``), creates the ``jobs`` row
(``store/jobs.py``), writes the spec to ``runs/<id>/spec.json`` and starts ``python -m <module>
--job-spec runs/<id>/spec.json --job-id ID`` in its own process group, with the app's resolved settings written into the
job's folder (``runs/<id>/settings.json``, owner-only) and named by ``THERALAB_SETTINGS_FILE``, so
the child sees exactly the models, limits and resources of the app that started it. The child
reports through ``jobs/reporter.py``.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from processes import process_alive
from store.db import Store, StoreError
from store.jobs import ACTIVE, CANCEL_TIMEOUT_S, JobError, JobStore, run_dir
from vocabulary import EventKind

REPO_ROOT = Path(__file__).resolve().parents[1]
_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


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

    def submit(self, spec, created_by: str | None) -> dict:
        """Launch a typed job spec (``jobs/kinds.py``): it is written to ``runs/<id>/spec.json`` and
        the child runs ``python -m <package> --job-spec that-file``, loading exactly that spec."""
        return self.launch(spec.job_kind(), spec.argv(self.data_dir), spec.record(), created_by, spec=spec)

    def launch(self, kind: str, argv: list[str], config: dict, created_by: str | None, spec=None) -> dict:
        """Create the row and start ``python -m <argv...> --job-id ID``; the child reports progress.
        With a ``spec``, argv is what the spec stands for (kept in the row) and the child is started
        on the spec file instead."""
        if not argv or not all(isinstance(a, str) for a in argv) or not _MODULE_RE.fullmatch(argv[0]):
            raise JobError(f"argv must start with a module name, got {argv!r}")
        job = self.jobs.create(kind, argv, config, created_by)
        folder = run_dir(self.data_dir, job["id"])
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / "log.txt"
        self.jobs.set_log_path(job["id"], log_path)
        try:
            child_argv = argv if spec is None else self._write_spec(spec, folder)
            proc = self._spawn(child_argv, job["id"], log_path)
        except OSError as exc:
            self.jobs.finish(job["id"], "failed", error=f"could not start the process: {exc}")
            raise JobError(f"could not start job {job['id']}: {exc}") from exc
        self.jobs.mark_running(job["id"], proc.pid)
        with self._lock:
            self._procs[job["id"]] = proc
        threading.Thread(target=self._reap, args=(job["id"], proc), daemon=True,
                         name=f"job-reaper-{job['id']}").start()
        self.audit.record(created_by, EventKind.JOB_LAUNCH, job["id"], kind=kind, argv=list(argv), pid=proc.pid)
        return self.jobs.get(job["id"], reconcile=False)

    def _write_spec(self, spec, folder: Path) -> list[str]:
        from jobs.kinds import JOB_SPEC_FLAG
        from store.files import create_private_file
        path = folder / "spec.json"
        create_private_file(path)  # written before the child starts, and owner-only like settings.json
        path.write_text(json.dumps(spec.document(), indent=2), encoding="utf-8")
        return [spec.module, "--data-dir", str(self.data_dir), JOB_SPEC_FLAG, str(path)]

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
        self.audit.record(actor, EventKind.JOB_CANCEL, job_id, forced=forced, pid=pid)
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
