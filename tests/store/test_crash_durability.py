"""An acknowledged turn survives SIGKILL of the writing process a moment later."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from store.db import Store

ROOT = Path(__file__).resolve().parents[2]
WANT_ACKED = 25

WRITER = r"""
import sys
from store.db import Store
from store.sessions import SessionStore, TurnRecord

store = Store(sys.argv[1])
sessions = SessionStore(store)
sid = sessions.create(modality="cbt", therapist_model="default", reasoning=True)["id"]
print("session", sid, flush=True)
for i in range(200000):  # bounded, in case the test fails to kill it
    row = sessions.add_turn(sid, TurnRecord(
        "patient" if i % 2 == 0 else "therapist",
        content=f"content {i} " + "x" * (i % 50),
        reasoning=f"reasoning {i}"))
    print(row["id"], row["idx"], i, flush=True)  # acknowledged only after the commit returned
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_acknowledged_turns_survive_sigkill(tmp_path):
    db_file = tmp_path / "data" / "sessions.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("THERALAB_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db_file)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30, proc.kill)  # never hang the test run
    watchdog.start()
    try:
        first = proc.stdout.readline().split()
        assert first[:1] == ["session"], proc.stderr.read() if proc.poll() is not None else first
        session_id = first[1]
        acked: list[list[str]] = []
        while len(acked) < WANT_ACKED:
            line = proc.stdout.readline()
            assert line, f"writer stopped early: {proc.stderr.read()}"
            acked.append(line.split())
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: it is still writing
        rest, _ = proc.communicate(timeout=10)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Lines already in the pipe when the process died were acknowledged too; a torn last line is not.
    acked += [line.split() for line in rest.splitlines(keepends=True)
              if line.endswith("\n") and len(line.split()) == 3]
    assert len(acked) >= WANT_ACKED

    conn = sqlite3.connect(db_file)  # a plain reader recovers the WAL
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, session_id, idx, content, reasoning FROM turns")}
    finally:
        conn.close()
    for turn_id, idx, i in acked:
        i = int(i)
        assert turn_id in rows, f"acknowledged turn {i} ({turn_id}) lost"
        assert rows[turn_id] == (session_id, int(idx), f"content {i} " + "x" * (i % 50), f"reasoning {i}")
    # Nothing half-written: the stored turns are exactly idx 0..n-1.
    assert sorted(r[1] for r in rows.values()) == list(range(len(rows)))

    # The app's own Store reopens it cleanly and the full-text index still answers.
    store = Store(db_file)
    try:
        assert store.applied == []
        assert store.integrity_check() == "ok"
        hits = store.db.execute("SELECT rowid FROM turns_fts WHERE turns_fts MATCH 'reasoning'").fetchall()
        assert len(hits) == len(rows)
        store.db.execute("INSERT INTO turns_fts(turns_fts) VALUES('integrity-check')")
    finally:
        store.close()
