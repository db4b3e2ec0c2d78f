"""The app as a user drives it: launched on a free loopback port, used through gradio_client."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from apprunner import chat_text

ROOT = Path(__file__).resolve().parents[1]


# Loaded into the app process: records every outbound connection and host-name lookup, so the
# test can prove that nothing but loopback is contacted.
NETWORK_SPY = """
import socket, json, os
_log = os.environ["THERALAB_NETWORK_LOG"]
def _record(kind, target):
    with open(_log, "a") as f:
        f.write(json.dumps([kind, str(target)]) + "\\n")
_connect = socket.socket.connect
def connect(self, address):
    _record("connect", address)
    return _connect(self, address)
socket.socket.connect = connect
_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):
    _record("lookup", host)
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
_record("spy", "loaded")
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from apprunner import RunningApp
    data = tmp_path_factory.mktemp("appdata")
    spy_dir = tmp_path_factory.mktemp("spy")
    (spy_dir / "sitecustomize.py").write_text(NETWORK_SPY)
    started = time.monotonic()
    running = RunningApp(data, {"PYTHONPATH": str(spy_dir), "THERALAB_NETWORK_LOG": str(data / "network.jsonl")})
    client = running.client()
    client.predict(True, api_name="/accept_consent")  # the researcher accepts the consent text once
    yield {"client": client, "db": running.db, "proc": running.proc, "startup_s": time.monotonic() - started,
           "port": running.port, "network_log": data / "network.jsonl"}
    running.stop()


def _rows(db: Path, sql: str, args=()):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_binds_loopback_only(app):
    listening = subprocess.run(["cat", "/proc/net/tcp"], capture_output=True, text=True).stdout
    port_hex = f"{app['port']:04X}"
    local = [line.split()[1] for line in listening.splitlines()[1:] if line.split()[1].endswith(":" + port_hex)]
    assert local and all(addr.startswith("0100007F") for addr in local)  # 127.0.0.1


def test_chat_turn_on_reasoning_model_lands_in_sqlite(app):
    client = app["client"]
    sid, _, note = client.predict("act", "default-think", True, api_name="/start_session")
    assert sid and "started" in note
    same_sid, chat, status, box = client.predict(sid, "I can't stop worrying about my exams.", True, "act",
                                                 "default-think", api_name="/send")
    # the box was emptied when the message was stored; the stream's last update leaves it alone,
    # so text typed during the reply survives (issue 19)
    assert same_sid == sid and box == {"__type__": "update"} and not status
    roles = [m["role"] for m in chat]
    assert roles[0] == "user" and roles[-1] == "assistant"
    assert any((m.get("metadata") or {}).get("title", "").startswith("Reasoning") for m in chat)
    rows = _rows(app["db"], "SELECT role, content, reasoning, model_id FROM turns WHERE session_id=? ORDER BY idx", (sid,))
    assert [r[0] for r in rows] == ["patient", "therapist"]
    assert rows[0][1] == "I can't stop worrying about my exams."
    assert rows[1][2] and rows[1][3] == "default-think"
    # hiding reasoning redraws from the store without generating again
    hidden = client.predict(sid, False, api_name="/history")
    assert not any((m.get("metadata") or {}).get("title") for m in hidden)
    assert _rows(app["db"], "SELECT COUNT(*) FROM turns WHERE session_id=?", (sid,))[0][0] == 2


def test_bad_input_gets_a_message_and_logs_nothing(app):
    client = app["client"]
    sid, _, _ = client.predict("cbt", "default", False, api_name="/start_session")
    sessions_before = _rows(app["db"], "SELECT COUNT(*) FROM sessions")[0][0]
    _, _, status, _ = client.predict(sid, "   ", False, "cbt", "default", api_name="/send")
    assert "empty" in status
    _, _, status, _ = client.predict(sid, "y" * 50_000, False, "cbt", "default", api_name="/send")
    assert "50,000" in status
    new_sid, _, status, _ = client.predict("", "", False, "cbt", "default", api_name="/send")
    assert "empty" in status and new_sid == ""
    assert _rows(app["db"], "SELECT COUNT(*) FROM turns WHERE session_id=?", (sid,))[0][0] == 0
    assert _rows(app["db"], "SELECT COUNT(*) FROM sessions")[0][0] == sessions_before


def test_first_message_starts_a_session(app):
    sid, chat, status, _ = app["client"].predict("", "Hello, I feel flat lately.", False, "cbt", "default",
                                                 api_name="/send")
    assert sid and not status
    row = _rows(app["db"], "SELECT modality, therapist_model FROM sessions WHERE id=?", (sid,))[0]
    assert row == ("cbt", "default")
    assert [r[0] for r in _rows(app["db"], "SELECT role FROM turns WHERE session_id=? ORDER BY idx", (sid,))] \
        == ["patient", "therapist"]


def test_next_session_of_course_opens_with_summary(app):
    client = app["client"]
    sid, _, _ = client.predict("cbt", "default", False, api_name="/start_session")
    client.predict(sid, "I have been low since I moved city.", False, "cbt", "default", api_name="/send")
    sid2, chat, note = client.predict(sid, "cbt", "default", False, api_name="/next_session")
    assert sid2 != sid and "Session 2" in note
    assert chat[0]["metadata"]["title"] == "Previous session summary"
    summary = _rows(app["db"], "SELECT summary, status FROM sessions WHERE id=?", (sid,))[0]
    assert summary[0].startswith("Session Summary") and summary[1] == "ended"


def test_unknown_model_is_refused_clearly(app):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="not in the list of choices"):
        app["client"].predict("act", "no-such-model", False, api_name="/start_session")
    assert app["proc"].poll() is None  # still serving


def test_risk_disclosure_gets_the_safe_reply_and_a_flag(app):
    sid, chat, status, _ = app["client"].predict(
        "", "I can't go on. I'm going to take all my pills tonight.", False, "act", "default", api_name="/send")
    assert "988" in chat_text(chat[-1]) and "AI" in chat_text(chat[-1])
    assert "Safety check" in status and "on hold" in status
    flags = _rows(app["db"], "SELECT level, status FROM flags WHERE session_id=?", (sid,))
    assert flags and flags[0][1] == "open" and flags[0][0] in ("high", "imminent")
    assert _rows(app["db"], "SELECT status FROM sessions WHERE id=?", (sid,))[0][0] == "hold"

def test_watch_tab_runs_a_simulated_session_and_stop_ends_it(app):
    client = app["client"]
    persona = _rows(app["db"], "SELECT id FROM personas WHERE modality='act' ORDER BY id LIMIT 1")[0][0]
    chat, status = client.predict(persona, "default", "default", 2, True, api_name="/watch_start")
    assert "finished" in status
    sid = _rows(app["db"], "SELECT id FROM sessions WHERE study='watch' ORDER BY id DESC LIMIT 1")[0][0]
    row = _rows(app["db"], "SELECT simulated, persona_id, patient_model, status FROM sessions WHERE id=?", (sid,))[0]
    assert row == (1, persona, "default", "ended")
    assert [r[0] for r in _rows(app["db"], "SELECT role FROM turns WHERE session_id=? ORDER BY idx", (sid,))] \
        == ["patient", "therapist"] * 2
    assert [m["role"] for m in chat][:2] == ["user", "assistant"]
    job = client.submit(persona, "default", "default", 30, False, api_name="/watch_start")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _rows(app["db"], "SELECT COUNT(*) FROM sessions WHERE study='watch'")[0][0] < 2:
        time.sleep(0.2)
    assert "Stopping" in client.predict(api_name="/watch_stop")
    job.result(timeout=120)
    sid = _rows(app["db"], "SELECT id FROM sessions WHERE study='watch' ORDER BY id DESC LIMIT 1")[0][0]
    exchanges = _rows(app["db"], "SELECT COUNT(*) FROM turns WHERE session_id=? AND role='patient'", (sid,))[0][0]
    assert 0 <= exchanges < 30 and _rows(app["db"], "SELECT status FROM sessions WHERE id=?", (sid,))[0][0] == "ended"


def test_admin_launches_a_simulation_job_follows_and_cancels_it(app):
    client = app["client"]
    note, _ = client.predict(["default"], "sample:1", "default", 1, 1, 1, "jobtest", api_name="/admin_simulate")
    job_id = note.split("`")[1]
    deadline = time.monotonic() + 180
    status = None
    while time.monotonic() < deadline:
        table, log, _ = client.predict(job_id, api_name="/admin_jobs")
        status = next(r[2] for r in table["data"] if r[0] == job_id)
        if status in ("done", "failed", "cancelled"):
            break
        time.sleep(0.5)
    assert status == "done", log
    assert _rows(app["db"], "SELECT COUNT(*) FROM sessions WHERE study='jobtest' AND status='ended'")[0][0] == 1
    note, _ = client.predict(["default"], "sample:3", "default", 30, 1, 1, "canceltest", api_name="/admin_simulate")
    job_id = note.split("`")[1]
    time.sleep(3)
    note, table = client.predict(job_id, api_name="/admin_cancel")
    assert "cancelled" in note
    assert _rows(app["db"], "SELECT status FROM jobs WHERE id=?", (job_id,))[0][0] == "cancelled"
    note, _ = client.predict([], "sample:1", "default", 1, 1, 1, "x", api_name="/admin_simulate")
    assert "Not launched" in note
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="not in the list of choices"):  # Gradio checks before our handler does
        client.predict(["default"], "sample:1", "--data-dir=/tmp", 1, 1, 1, "x", api_name="/admin_simulate")
    assert _rows(app["db"], "SELECT COUNT(*) FROM jobs")[0][0] == 2


def wait_for_job(client, job_id, limit=240):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        table, log, runs = client.predict(job_id, api_name="/admin_jobs")
        status = next(r[2] for r in table["data"] if r[0] == job_id)
        if status in ("done", "failed", "cancelled"):
            return status, log, runs
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {status}: {log}")


def test_admin_judge_job_rates_a_study_and_resumes_without_rerating(app):
    client = app["client"]
    sid = _rows(app["db"], "SELECT id FROM sessions WHERE study='jobtest' AND status='ended'")[0][0]
    note, _, _ = client.predict("tes", "default", "study:jobtest", 1, False, False, api_name="/admin_judge")
    status, log, runs = wait_for_job(client, note.split("`")[1])
    assert status == "done", log
    run = _rows(app["db"], "SELECT id, status, n_ok + n_partial + n_failed, n_total, job_id FROM judge_runs")
    assert len(run) == 1 and run[0][1:4] == ("done", 1, 1) and run[0][4] == note.split("`")[1]
    assert any(r[0] == run[0][0] for r in runs["data"])  # the Judge tab's runs table shows it
    rating = _rows(app["db"], "SELECT session_id, status, scores_json FROM ratings WHERE judge_run_id=?", (run[0][0],))
    assert rating[0][0] == sid and rating[0][1] in ("ok", "partial", "failed")
    assert all(1 <= v <= 7 for v in json.loads(rating[0][2]).values())
    note, _, _ = client.predict("tes", "default", "study:jobtest", 1, False, False, api_name="/admin_judge")
    assert wait_for_job(client, note.split("`")[1])[0] == "done"  # continues the run: nothing new to rate
    assert _rows(app["db"], "SELECT COUNT(*) FROM ratings WHERE rater_kind='judge'")[0][0] == 1
    assert _rows(app["db"], "SELECT COUNT(*) FROM judge_runs")[0][0] == 1
    note, _, _ = client.predict("tes", "default", "study:x;rm", 1, False, False, api_name="/admin_judge")
    assert "Not launched" in note
    note, _, _ = client.predict("ctrs", "default", "study:jobtest", 1, False, True, api_name="/admin_judge")
    job_id = note.split("`")[1]
    deadline = time.monotonic() + 60
    while not _rows(app["db"], "SELECT 1 FROM judge_runs WHERE job_id=?", (job_id,)) and time.monotonic() < deadline:
        time.sleep(0.2)  # cancel once the run is under way
    note, _ = client.predict(job_id, api_name="/admin_cancel")
    assert "cancelled" in note
    assert _rows(app["db"], "SELECT status FROM judge_runs WHERE job_id=?", (job_id,)) == [("cancelled",)]


def test_app_contacts_nothing_but_loopback(app):
    """Runs after the chat tests (file order): no analytics, no hub, no update check."""
    import json
    app["client"].predict("act", "default", False, api_name="/start_session")
    log = app["network_log"]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert ["spy", "loaded"] in events  # the spy really ran inside the app
    events = [e for e in events if e[0] != "spy"]
    loopback = ("127.0.0.1", "localhost", "::1", "('127.0.0.1'", "('::1'", "None", "")
    outside = [e for e in events if not str(e[1]).startswith(loopback)]
    assert outside == []
