"""``python -m patient_sim simulate`` on the real embedded model: it stores the sessions, a second
run adds nothing, and a run killed halfway is completed by the next one without duplicates."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "THERALAB_MAX_TOKENS": "30"}


def simulate(data: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "patient_sim", "--data-dir", str(data), "simulate",
                             "--therapist", "default", "--personas", "sample:3", "--turns", "2", "--study", "cli",
                             *extra], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows(db: Path, sql: str):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def count(db: Path, status: str) -> int:
    """Sessions in a status; 0 while the file exists but the run has not migrated it yet."""
    try:
        return rows(db, f"SELECT COUNT(*) FROM sessions WHERE status='{status}'")[0][0]
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return 0
        raise


def test_simulate_resumes_after_a_kill_and_never_duplicates(tmp_path):
    db = tmp_path / "sessions.db"
    first = simulate(tmp_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill -9 once one session is done and the next is under way
        if db.exists() and count(db, "ended") >= 1 and count(db, "active") >= 1:
            break
        assert first.poll() is None, first.communicate()[1][-2000:]
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert rows(db, "SELECT COUNT(*) FROM sessions WHERE status='ended'")[0][0] < 3  # really cut short

    second = simulate(tmp_path)
    out, err = second.communicate(timeout=400)
    assert second.returncode == 0, err[-2000:]
    assert "restarted after an interruption" in out and "0 failed" in out
    ended = rows(db, "SELECT id, sim_key, persona_id, patient_model, simulated FROM sessions WHERE status='ended'")
    assert len(ended) == 3 and len({r[1] for r in ended}) == 3
    assert all(r[3] == "default" and r[4] == 1 and r[2].startswith("smp-") for r in ended)
    for sid, *_ in ended:
        roles = [r[0] for r in rows(db, f"SELECT role FROM turns WHERE session_id='{sid}' ORDER BY idx")]
        assert roles == ["patient", "therapist"] * 2
    assert rows(db, "SELECT COUNT(*) FROM sessions WHERE status='abandoned'")[0][0] >= 1
    assert rows(db, "PRAGMA integrity_check")[0][0] == "ok"

    third = simulate(tmp_path)
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0 and "0 run, 3 already done" in out, out + err[-1000:]
    assert rows(db, "SELECT COUNT(*) FROM sessions")[0][0] == len(ended) + \
        rows(db, "SELECT COUNT(*) FROM sessions WHERE status='abandoned'")[0][0]
