"""Background jobs: launch, progress, cancel, kill -9 and reconcile, failure, page reload."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apprunner import wait_for

from store.audit import AuditLog
from store.db import Store
from jobs.reporter import JobReporter, NullReporter
from jobs.runner import REPO_ROOT, JobRunner, read_progress
from store.jobs import ENDED_WITHOUT_REPORT, JobStore, process_alive, run_dir

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@pytest.fixture
def runner(store, settings):
    r = JobRunner(store, settings.data_dir, AuditLog(store))
    yield r
    for job in r.jobs.list(reconcile=False):  # never leave a child behind a failed test
        if job["status"] in ("queued", "running") and job["pid"]:
            try:
                os.killpg(job["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


def demo_argv(settings, steps=5, sleep=0.05, *extra) -> list[str]:
    return ["jobs.demo", "--steps", str(steps), "--sleep", str(sleep),
            "--data-dir", str(settings.data_dir), *extra]


def wait_status(jobs: JobStore, job_id: str, statuses=("done", "failed", "cancelled"), timeout=15.0) -> dict:
    def finished():
        job = jobs.get(job_id)
        return job if job["status"] in statuses else None
    return wait_for(finished, timeout, f"job {job_id} to reach {statuses}")


def test_demo_job_runs_to_done_with_progress(runner, settings, store):
    job = runner.launch("demo", demo_argv(settings, steps=5), {"steps": 5}, created_by="alice")
    assert job["status"] == "running" and job["pid"] and job["process"]["start_ticks"]
    assert job["config"] == {"steps": 5}  # the caller's config, untouched
    done = wait_status(runner.jobs, job["id"])
    assert done["status"] == "done", runner.tail_log(job["id"])
    assert done["error"] is None and done["finished_utc"]

    records = runner.read_progress(job["id"])
    steps = [r for r in records if "event" not in r]
    assert [(r["done"], r["total"]) for r in steps] == [(i, 5) for i in range(1, 6)]
    assert records[-1]["event"] == "done" and records[-1]["summary"] == {"steps": 5}
    # The row holds the last step (always written, whatever the throttle) and the summary.
    assert {k: done["progress"][k] for k in steps[-1]} == steps[-1]
    assert done["progress"]["summary"] == {"steps": 5}

    assert "step 5/5" in runner.tail_log(job["id"])
    assert done["log_path"] == str(run_dir(settings.data_dir.resolve(), job["id"]) / "log.txt")
    launches = AuditLog(store).recent(action="job.launch")
    assert launches[0]["target"] == job["id"] and launches[0]["actor"] == "alice"


def test_cancel_during_run(runner, settings, store):
    job = runner.launch("demo", demo_argv(settings, steps=400, sleep=0.05), {}, created_by="alice")
    wait_for(lambda: len(runner.read_progress(job["id"])) >= 2, what="first progress")
    started = time.monotonic()
    result = runner.cancel(job["id"], actor="bob")
    assert time.monotonic() - started < 15
    assert result["status"] == "cancelled" and result["error"] is None
    assert not process_alive(job["pid"])
    assert runner.read_progress(job["id"])[-1]["event"] == "cancelled"  # the child stopped cleanly
    cancels = AuditLog(store).recent(action="job.cancel")
    assert cancels[0]["target"] == job["id"] and json.loads(cancels[0]["detail_json"])["forced"] is False
    # Cancelling a finished job changes nothing.
    assert runner.cancel(job["id"], actor="bob")["status"] == "cancelled"


def test_cancel_escalates_to_sigkill(runner, settings, store):
    job = runner.launch("demo", demo_argv(settings, 400, 0.05, "--ignore-term"), {}, created_by="alice")
    wait_for(lambda: len(runner.read_progress(job["id"])) >= 1, what="first progress")
    result = runner.cancel(job["id"], actor="bob", timeout=0.5)
    assert result["status"] == "cancelled"
    assert not process_alive(job["pid"])
    assert json.loads(AuditLog(store).recent(action="job.cancel")[0]["detail_json"])["forced"] is True


def test_failing_job_is_failed_with_its_error(runner, settings):
    job = runner.launch("demo", demo_argv(settings, 5, 0.05, "--fail-at", "3"), {}, created_by="alice")
    failed = wait_status(runner.jobs, job["id"])
    assert failed["status"] == "failed"
    assert failed["error"] == "RuntimeError: demo failure at step 3"
    assert [r["done"] for r in runner.read_progress(job["id"]) if "done" in r and "event" not in r] == [1, 2]
    assert "demo failure at step 3" in runner.tail_log(job["id"])


def _orphan(jobs: JobStore, settings, steps=400) -> tuple[dict, subprocess.Popen]:
    """A job whose child nobody in this process watches: as after an app restart."""
    job = jobs.create("demo", demo_argv(settings, steps), {}, created_by="alice")
    proc = subprocess.Popen([sys.executable, "-m", *demo_argv(settings, steps), "--job-id", job["id"]],
                            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    jobs.mark_running(job["id"], proc.pid)
    return job, proc


def test_kill9_then_reconcile_marks_failed_and_spares_healthy_jobs(store, settings):
    jobs = JobStore(store)
    victim, victim_proc = _orphan(jobs, settings)
    healthy, healthy_proc = _orphan(jobs, settings)
    try:
        wait_for(lambda: jobs.get(victim["id"])["progress"].get("done", 0) >= 2, what="victim progress")
        os.kill(victim_proc.pid, signal.SIGKILL)
        # Not reaped yet: a zombie counts as dead.
        wait_for(lambda: not process_alive(victim_proc.pid), timeout=5, what="victim to die")
        assert jobs.reconcile() == [victim["id"]]
        row = jobs.get(victim["id"])
        assert row["status"] == "failed" and row["error"] == ENDED_WITHOUT_REPORT
        assert jobs.get(healthy["id"])["status"] == "running"
        assert jobs.reconcile() == []  # idempotent, and the healthy job is left alone
    finally:
        for proc in (victim_proc, healthy_proc):
            proc.kill()
            proc.wait()


def test_kill9_of_runner_child_is_failed(runner, settings):
    job = runner.launch("demo", demo_argv(settings, 400, 0.05), {}, created_by="alice")
    wait_for(lambda: len(runner.read_progress(job["id"])) >= 2, what="first progress")
    os.kill(job["pid"], signal.SIGKILL)
    wait_for(lambda: not process_alive(job["pid"]), timeout=5, what="child to die")
    runner.jobs.reconcile()  # whether the reaper thread or reconcile gets there first
    row = runner.jobs.get(job["id"])
    assert row["status"] == "failed" and row["error"].startswith(ENDED_WITHOUT_REPORT)


def test_reconcile_detects_a_reused_pid(store):
    jobs = JobStore(store)
    healthy = jobs.create("demo", ["jobs.demo"], {}, created_by="alice")
    reused = jobs.create("demo", ["jobs.demo"], {}, created_by="alice")
    for job in (healthy, reused):  # this test process stands in for a live child
        jobs.mark_running(job["id"], os.getpid())
    config = json.loads(store.db["jobs"].get(reused["id"])["config_json"])
    config["_process"]["start_ticks"] -= 1  # recorded for an earlier process with the same pid
    with store.write() as db:
        db["jobs"].update(reused["id"], {"config_json": json.dumps(config)})
    assert jobs.reconcile() == [reused["id"]]
    assert jobs.get(healthy["id"])["status"] == "running"
    assert jobs.get(reused["id"])["error"] == ENDED_WITHOUT_REPORT


def test_queued_without_pid_gets_a_grace_period(store):
    jobs = JobStore(store)
    fresh = jobs.create("demo", ["jobs.demo"], {}, created_by="alice")
    stale = jobs.create("demo", ["jobs.demo"], {}, created_by="alice")
    with store.write() as db:
        db["jobs"].update(stale["id"], {"created_utc": "2020-01-01T00:00:00.000Z"})
    assert [j["id"] for j in jobs.list() if j["status"] == "failed"] == [stale["id"]]  # list() reconciles
    assert jobs.get(fresh["id"])["status"] == "queued"


def test_reconcile_after_cancel_request_reads_cancelled(store):
    jobs = JobStore(store)
    job = jobs.create("demo", ["jobs.demo"], {}, created_by="alice")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    jobs.mark_running(job["id"], proc.pid)  # a pid that is already gone
    jobs.request_cancel(job["id"], "bob")
    assert jobs.reconcile() == [job["id"]]
    assert jobs.get(job["id"])["status"] == "cancelled"


def test_read_progress_tolerates_a_torn_last_line(store, settings):
    jobs = JobStore(store)
    job = jobs.create("demo", ["jobs.demo"], {}, created_by="alice")
    reporter = JobReporter(store, job["id"], settings.data_dir)
    for i in range(1, 4):
        reporter.progress(i, 10, loss=0.5)
    with open(reporter.path, "a", encoding="utf-8") as fh:
        fh.write('{"t": "2024-01-01T00:00:00Z", "done": 4, "to')  # the writer died mid-line
    records = read_progress(reporter.path)
    assert [r["done"] for r in records] == [1, 2, 3]
    assert read_progress(reporter.path, last=1)[0]["done"] == 3
    assert read_progress(settings.data_dir / "nope.jsonl") == []


def test_reporter_throttles_db_writes_but_keeps_the_last(store, settings):
    jobs = JobStore(store)
    job = jobs.create("demo", ["jobs.demo"], {}, created_by="alice")
    reporter = JobReporter(store, job["id"], settings.data_dir, min_db_interval=3600)
    assert jobs.get(job["id"])["status"] == "running"  # started by hand: the reporter records itself
    reporter.progress(1, 3)
    reporter.progress(2, 3)
    assert jobs.get(job["id"])["progress"]["done"] == 1  # throttled
    reporter.progress(3, 3, note="last")
    assert jobs.get(job["id"])["progress"]["note"] == "last"  # the final step is always written
    assert len(read_progress(reporter.path)) == 3  # the jsonl gets every step
    assert reporter.done({"ok": True}) and not reporter.fail("too late")
    assert jobs.get(job["id"])["status"] == "done"


def test_null_reporter_is_a_no_op(settings):
    reporter = JobReporter.from_args(None, settings.data_dir)
    assert isinstance(reporter, NullReporter)
    reporter.progress(1, 2)
    with reporter.guard():
        pass
    assert reporter.finished and not (Path(settings.data_dir) / "runs").exists()


def test_jobs_survive_a_new_store_instance(runner, settings):
    job = runner.launch("demo", demo_argv(settings, 400, 0.05), {"n": 1}, created_by="alice")
    wait_for(lambda: len(runner.read_progress(job["id"])) >= 2, what="first progress")
    reload = Store(settings.db_path)  # a page reload / app restart: state is read from the DB
    try:
        again = JobStore(reload)
        seen = again.get(job["id"])
        assert seen["status"] == "running" and seen["pid"] == job["pid"] and seen["config"] == {"n": 1}
        assert [j["id"] for j in again.list(kind="demo")] == [job["id"]]
        assert again.reconcile() == []
        runner.cancel(job["id"], actor="alice")
        assert again.get(job["id"])["status"] == "cancelled"
    finally:
        reload.close()


def test_a_job_sees_the_settings_of_the_app_that_launched_it(store, settings, tmp_path):
    """The reproduction of issue 18: the app had models ['my-judge'] and max_tokens 77 (from its
    config file); the job it launched had no models and max_tokens 150."""
    import dataclasses
    app_settings = dataclasses.replace(settings, max_tokens=77, crisis_locale="UK", models=[
        {"id": "my-judge", "label": "Judge", "backend": "openai", "base_url": "http://127.0.0.1:8000/v1",
         "model": "m"}])
    runner = JobRunner(store, settings.data_dir, AuditLog(store), app_settings)
    job = runner.launch("demo", demo_argv(settings, 1, 0.01, "--print-settings"), {}, "tester")
    wait_status(runner.jobs, job["id"], ("done",))
    line = next(l for l in Path(job["log_path"]).read_text().splitlines() if l.startswith("SETTINGS "))
    seen = json.loads(line[len("SETTINGS "):])
    assert seen["max_tokens"] == 77 and seen["crisis_locale"] == "UK"
    assert [m["id"] for m in seen["models"]] == ["my-judge"]
    assert (run_dir(settings.data_dir, job["id"]) / "settings.json").stat().st_mode & 0o077 == 0
