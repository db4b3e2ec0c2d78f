"""Load: 8 patients chat at once through the running app while a simulation batch writes to the same
database, and every message lands once, in its own session, in order, with no cross-talk.

The app (``python app.py`` in accounts mode) and the batch (``python -m patient_sim simulate``) use
scripted models (tests/fakeapp.py): the therapist echoes the session-specific markers it was shown,
so a reply naming another session's marker would be cross-talk between sessions. Everything else is
real: Gradio's queue, eight ``gradio_client`` clients in threads, the session engine, SQLite in WAL
mode with two processes writing. Turn latencies are printed, never asserted
(``benchmarks/load.py`` measures them on the embedded model).
"""
from __future__ import annotations

import re
import sqlite3

import pytest
from apprunner import RunningApp
from fakeapp import fake_env, markers, write_site
from loadkit import (PASSWORD, LoadResult, add_patients, alternation_problems, run_sessions, start_batch, summary,
                     wait_for_rows)

SESSIONS, MESSAGES = 8, 4
BATCH_PERSONAS, BATCH_TURNS = 2, 6
LOCKED = re.compile(r"database is locked|database table is locked", re.I)


def message(k: int, m: int) -> str:
    return f"Message {m} from patient {k} [[k{k}-m{m}]]: work has been heavy and I keep putting things off."


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    data = tmp_path_factory.mktemp("loaddata")
    site = write_site(tmp_path_factory.mktemp("loadsite"))
    users = add_patients(data, SESSIONS)
    env = fake_env(site, FAKE_DELAY="0.01")
    app = RunningApp(data, env)
    batch = None
    logs = tmp_path_factory.mktemp("loadlogs")

    def start_the_batch():  # once every client is signed in: the batch writes while they chat
        nonlocal batch
        batch = start_batch(data, {**env, "PATH": "/usr/bin:/bin"}, logs, "fake-therapist", "fake-patient",
                            BATCH_PERSONAS, BATCH_TURNS, study="load")
        wait_for_rows(app.db, "SELECT COUNT(*) FROM turns t JOIN sessions s ON s.id = t.session_id "
                              "WHERE s.study = 'load'", 1, proc=batch)
    try:
        app.client(auth=(users[0], PASSWORD))  # waits until the app answers
        result = run_sessions(app, users, MESSAGES, "fake-therapist", message, before_start=start_the_batch)
        batch_rc = batch.wait(120) if batch else None
        yield {"app": app, "result": result, "users": users, "batch_rc": batch_rc,
               "batch_out": (logs / "batch.out").read_text() if batch else "",
               "batch_err": (logs / "batch.err").read_text() if batch else ""}
    finally:
        if batch is not None and batch.poll() is None:
            batch.kill()
        app.stop()


def test_eight_concurrent_sessions_and_a_batch_store_every_turn_once_without_cross_talk(loaded):
    app, result = loaded["app"], loaded["result"]
    result: LoadResult
    median, p95 = summary(result.latencies)
    print(f"\n{SESSIONS} concurrent sessions x {MESSAGES} messages (+ a {BATCH_PERSONAS}-persona simulation "
          f"batch): {len(result.latencies)} turns in {result.wall_s:.1f} s, turn latency median "
          f"{median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")

    # every client got every reply: nothing refused, failed or lost in transport
    assert result.errors == []
    assert len(result.turns) == SESSIONS * MESSAGES and all(t.acknowledged for t in result.turns)
    sessions = result.sessions()
    assert len(sessions) == SESSIONS
    by_user = {turns[0].user: sid for sid, turns in sessions.items()}
    assert sorted(by_user) == sorted(loaded["users"])  # one session per patient, each its own

    # the database: every acknowledged message stored exactly once, in its own session, in order
    for sid, turns in sessions.items():
        k = loaded["users"].index(turns[0].user)
        assert {t.user for t in turns} == {turns[0].user}
        owner = app.rows("SELECT u.username FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id=?", (sid,))
        assert owner == [(turns[0].user,)]
        stored = app.rows("SELECT role, content FROM turns WHERE session_id=? ORDER BY idx", (sid,))
        assert [r[0] for r in stored] == ["patient", "therapist"] * MESSAGES
        assert [r[1] for r in stored[0::2]] == [message(k, m) for m in range(MESSAGES)]
        for m, (_, reply) in enumerate(stored[1::2]):
            assert reply.startswith(f"Reply to [[k{k}-m{m}]]"), reply
            # no cross-talk: the prompt held this session's messages, all of them, and nothing else
            assert markers(reply) == [f"k{k}-m{m}"] + [f"k{k}-m{i}" for i in range(m + 1)], reply
        # what the client was shown is what was stored
        assert [t.reply for t in sorted(turns, key=lambda t: t.index)] == [r[1] for r in stored[1::2]]
    for k in range(SESSIONS):
        for m in range(MESSAGES):
            assert app.rows("SELECT COUNT(*) FROM turns WHERE content=?", (message(k, m),))[0][0] == 1

    # the batch ran alongside, completed, and its sessions are whole
    assert loaded["batch_rc"] == 0, loaded["batch_err"][-2000:]
    assert f"{BATCH_PERSONAS} run" in loaded["batch_out"] and "0 failed" in loaded["batch_out"], loaded["batch_out"]
    batch_sessions = app.rows("SELECT id, status FROM sessions WHERE study='load'")
    assert len(batch_sessions) == BATCH_PERSONAS and {s for _, s in batch_sessions} == {"ended"}
    for sid, _ in batch_sessions:
        roles = [r[0] for r in app.rows("SELECT role FROM turns WHERE session_id=? ORDER BY idx", (sid,))]
        assert roles == ["patient", "therapist"] * BATCH_TURNS
    assert alternation_problems(app.db) == []
    # and it really wrote while the patients chatted (two processes writing one database)
    first, last = app.rows("SELECT MIN(t.created_utc), MAX(t.created_utc) FROM turns t "
                           "JOIN sessions s ON s.id = t.session_id WHERE s.user_id IS NOT NULL")[0]
    overlap = app.rows("SELECT COUNT(*) FROM turns t JOIN sessions s ON s.id = t.session_id "
                       "WHERE s.study='load' AND t.created_utc BETWEEN ? AND ?", (first, last))[0][0]
    print(f"batch turns written while the patients chatted: {overlap} of {2 * BATCH_PERSONAS * BATCH_TURNS}")
    assert overlap >= 1

    # no lock errors anywhere, no turn failures recorded, and the file is sound
    for where, text in (("app log", app.log.read_text()), ("batch output", loaded["batch_out"]),
                        ("batch errors", loaded["batch_err"]), ("client errors", "\n".join(result.errors))):
        assert not LOCKED.search(text), f"{where}: {LOCKED.search(text).group(0)}"
    assert app.rows("SELECT COUNT(*) FROM audit WHERE action IN ('turn.error', 'turn.empty')")[0][0] == 0
    with sqlite3.connect(app.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO turns_fts(turns_fts) VALUES('integrity-check')")  # the FTS index matches
