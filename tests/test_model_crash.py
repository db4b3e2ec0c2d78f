"""A native crash of the model worker, the way a user meets it, on the real embedded model.

1. A session's reply is streaming when the worker gets SIGSEGV: the patient's message stays stored,
   the reply fails with the clear message, the crash is audited, Retry works once the worker is
   back, and a second session chatting all along gets every one of its replies; the database is intact.
2. A simulation job (``python -m patient_sim simulate``, a real subprocess) whose worker is killed
   with SIGKILL mid-run finishes every planned session anyway, and leaves no worker behind.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from models.base import STOPPED_MESSAGE

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux signals and /proc")
ROOT = Path(__file__).resolve().parents[1]


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def services(tmp_path):
    from config import load_settings
    from services import build_services
    settings = load_settings(["--data-dir", str(tmp_path / "data")], env={"THERALAB_MAX_TOKENS": "120"})
    svc = build_services(settings)
    svc.engine.record_consent(None, "test")
    yield svc
    svc.pool.close()
    svc.store.close()


def audit_rows(svc, action: str) -> list[dict]:
    return list(svc.store.db["audit"].rows_where("action = ?", [action]))


def test_a_worker_crash_mid_reply_fails_only_that_reply_and_retry_works(services):
    svc = services
    a = svc.engine.start("act", "default")["id"]
    b = svc.engine.start("act", "default")["id"]
    b_results: list[str] = []
    a_streaming = threading.Event()

    def chat_b():  # the other patient keeps talking through the crash
        for text in ("I have been feeling flat all week.", "Mostly at work, I think.", "Thank you, that helps."):
            a_streaming.wait(60)
            kinds = [e.kind for e in svc.engine.turn(b, text)]
            b_results.append(kinds[-1])

    other = threading.Thread(target=chat_b)
    other.start()
    events = []
    worker = svc.pool.worker("llama_cpp")
    for event in svc.engine.turn(a, "I keep lying awake worrying about everything."):
        events.append(event)
        if event.kind in ("reasoning", "answer") and not a_streaming.is_set():
            # Freeze the worker mid-reply so the crash lands while A is still generating, however
            # short A's reply turns out; then let B's first request queue behind it.
            os.kill(worker.pid, signal.SIGSTOP)
            a_streaming.set()
            wait_for(lambda: len(worker._pending) >= 2, timeout=30, what="B's request queued behind A's")
            os.kill(worker.pid, signal.SIGSEGV)  # delivered as soon as the process runs again
            os.kill(worker.pid, signal.SIGCONT)
    assert events[-1].kind == "error" and events[-1].text == STOPPED_MESSAGE
    turns = svc.sessions.turns(a)
    assert [t["role"] for t in turns] == ["patient"]  # the message is kept; nothing half-written
    assert turns[0]["content"] == "I keep lying awake worrying about everything."

    crash = wait_for(lambda: audit_rows(svc, "model.worker_crashed"), what="the crash audit row")[0]
    assert "SIGSEGV" in json.loads(crash["detail_json"])["detail"]
    assert any(json.loads(r["detail_json"])["error"] == STOPPED_MESSAGE for r in audit_rows(svc, "turn.error")
               if r["target"] == a)
    wait_for(lambda: audit_rows(svc, "model.worker_restarted"), what="the restart")

    retry = list(svc.engine.reply(a))  # the Retry button
    assert retry[-1].kind == "done", retry[-1].text
    assert [t["role"] for t in svc.sessions.turns(a)] == ["patient", "therapist"]

    other.join(240)
    assert b_results == ["done", "done", "done"]
    assert [t["role"] for t in svc.sessions.turns(b)] == ["patient", "therapist"] * 3
    assert integrity(svc.settings.db_path) == "ok"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) not in ("Z", "X")
    except OSError:
        return False


def test_a_simulation_job_whose_worker_is_killed_finishes_every_session(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "THERALAB_MAX_TOKENS": "40"}
    job = subprocess.Popen([sys.executable, "-m", "patient_sim", "--data-dir", str(data), "simulate",
                            "--therapist", "default", "--personas", "sample:3", "--turns", "2", "--study", "crash"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = data / "sessions.db"

    def mid_run():
        try:
            with sqlite3.connect(db) as conn:
                n = conn.execute("SELECT COUNT(*) FROM turns WHERE role='therapist'").fetchone()[0]
        except sqlite3.OperationalError:
            return None
        workers = children(job.pid)
        return workers if n >= 1 and workers else None

    try:
        workers = wait_for(mid_run, timeout=240, what="the job's first therapist turn")
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        out, err = job.communicate(timeout=400)
    finally:
        job.kill()
    assert job.returncode == 0, err[-2000:]
    assert "3 planned: 3 run" in out and "0 failed" in out, out
    with sqlite3.connect(db) as conn:
        ended = conn.execute("SELECT id FROM sessions WHERE status='ended' AND study='crash'").fetchall()
        assert len(ended) == 3
        for (sid,) in ended:
            roles = [r[0] for r in conn.execute("SELECT role FROM turns WHERE session_id=? ORDER BY idx", [sid])]
            assert roles == ["patient", "therapist"] * 2
        crashed = conn.execute("SELECT detail_json FROM audit WHERE action='model.worker_crashed'").fetchall()
    assert crashed and "SIGKILL" in crashed[0][0]
    assert integrity(db) == "ok"
    assert not any(alive(pid) for pid in workers)
    time.sleep(1)
    assert not children(job.pid)  # the restarted worker went away with its job
