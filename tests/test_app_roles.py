"""Accounts mode end to end: sign-in, role checks on direct API calls, consent, the supervisor's
live view of a new risk flag (timed), and the hold / approve flow, all through gradio_client."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from apprunner import ROOT, RunningApp, chat_text
from gradio_client.exceptions import AppError

PASSWORD = "correct-horse-battery"
RISK = "Honestly I keep thinking about killing myself."


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data = tmp_path_factory.mktemp("roles")
    for name, role in (("pat1", "patient"), ("pat2", "patient"), ("sup1", "supervisor")):
        subprocess.run([sys.executable, "-m", "store", "--data-dir", str(data), "users", "add", name, "--role", role],
                       cwd=ROOT, check=True, capture_output=True, env={**os.environ, "THERALAB_PASSWORD": PASSWORD})
    running = RunningApp(data, {"THERALAB_SUPERVISE_REFRESH_S": "1"})
    running.client(auth=("sup1", PASSWORD))  # waits until the app answers
    yield running
    running.stop()


@pytest.fixture(scope="module")
def pat1(app):
    client = app.client(auth=("pat1", PASSWORD))
    client.predict(True, api_name="/accept_consent")
    return client


@pytest.fixture(scope="module")
def sup(app):
    return app.client(auth=("sup1", PASSWORD))


def denied(app, actor):
    return app.rows("SELECT detail_json FROM audit WHERE action='access.denied' AND actor=?", (actor,))


def test_sign_in_is_required_and_audited(app):
    from gradio_client import Client
    with pytest.raises(ValueError, match="login"):
        Client(app.url, verbose=False, auth=("pat1", "wrong-password"))
    with pytest.raises(Exception):  # no cookie: Gradio itself refuses before any handler runs
        Client(app.url, verbose=False).predict(True, api_name="/accept_consent")
    assert app.rows("SELECT COUNT(*) FROM audit WHERE action='auth.login_failed' AND actor='pat1'")[0][0] >= 1
    assert app.rows("SELECT COUNT(*) FROM audit WHERE action='auth.login' AND actor='sup1'")[0][0] >= 1


def test_no_session_without_consent(app):
    pat2 = app.client(auth=("pat2", PASSWORD))
    sid, _, status, _ = pat2.predict("", "Hello", False, "act", "default", api_name="/send")
    assert sid == "" and "consent" in status
    assert app.rows("SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username='pat2'")[0][0] == 0
    assert app.rows("SELECT COUNT(*) FROM consents")[0][0] <= 1  # only pat1's, if that test ran first


def test_patient_gets_no_reasoning_and_cannot_call_supervisor_endpoints(app, pat1):
    sid, chat, status, _ = pat1.predict("", "I feel flat and tired.", True, "act", "default-think", api_name="/send")
    assert sid and not any((m.get("metadata") or {}).get("title") for m in chat)
    assert app.rows("SELECT reasoning FROM turns WHERE session_id=? AND role='therapist'", (sid,))[0][0]
    for api, args in (("/supervise_tick", (sid, None)), ("/supervise_open", (sid,)), ("/supervise_hold", (sid,)),
                      ("/supervise_resolve", (sid, None, "done")), ("/supervise_reply", (sid, "Hi from pat1")),
                      ("/watch_stop", ()), ("/admin_jobs", ("",)),
                      ("/admin_simulate", (["default"], "sample:1", "default", 1, 1, 1, "x")),
                      ("/admin_judge", ("tes", "default", "all", 1, False, False)), ("/admin_agreement", ("tes", "")),
                      ("/review_find", ("", "", "", "any", "any", ""))):
        with pytest.raises(AppError, match="may not"):
            pat1.predict(*args, api_name=api)
    assert len(denied(app, "pat1")) >= 11
    assert app.rows("SELECT status FROM sessions WHERE id=?", (sid,))[0][0] == "active"  # no hold happened
    pat2 = app.client(auth=("pat2", PASSWORD))
    with pytest.raises(AppError, match="not your session"):
        pat2.predict(sid, False, api_name="/history")
    assert any("not this user" in row[0] for row in denied(app, "pat2"))


def test_supervisors_may_watch_but_not_administer(app, sup):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="supervisor"):
        sup.predict(["default"], "sample:1", "default", 1, 1, 1, "x", api_name="/admin_simulate")
    assert "Start a session first" in sup.predict(api_name="/watch_pause")
    assert app.rows("SELECT COUNT(*) FROM jobs")[0][0] == 0


def test_supervisor_sees_a_new_flag_within_5_seconds(app, pat1, sup):
    sid, chat, status, _ = pat1.predict("", RISK, False, "act", "default", api_name="/send")
    sent = time.monotonic()
    assert "988" in chat_text(chat[-1]) and "Safety check" in status
    seen = None
    while time.monotonic() - sent < 10:
        table, alert = sup.predict(sid, None, api_name="/supervise_tick")[:2]
        rows = table["data"] if isinstance(table, dict) else table
        if rows and rows[0][-1] == sid and rows[0][0] in ("MODERATE", "HIGH", "IMMINENT"):
            seen = time.monotonic() - sent
            break
        time.sleep(0.2)
    refresh_s = 1.0  # THERALAB_SUPERVISE_REFRESH_S: the tab polls this often
    print(f"\nflag visible to the supervisor's poll {seen} s after the patient's turn returned")
    assert seen is not None and seen + refresh_s < 5.0, seen
    assert "open risk flags" in alert


def test_hold_draft_waits_for_the_supervisor_then_reaches_the_patient(app, pat1, sup):
    sid, *_ = pat1.predict("", "Work has been a lot lately.", False, "cbt", "default", api_name="/send")
    sup.predict(sid, api_name="/supervise_open")
    status = sup.predict(sid, api_name="/supervise_hold")[0]
    assert "on hold" in status
    _, chat, status, _ = pat1.predict(sid, "My manager keeps adding deadlines.", False, "cbt", "default",
                                         api_name="/send")
    assert "reviewing" in status and chat[-1]["role"] == "user"
    drafts = app.rows("SELECT id, content FROM drafts WHERE session_id=? AND status='pending'", (sid,))
    assert len(drafts) == 1
    opened = sup.predict(sid, api_name="/supervise_open")
    assert opened[5] == drafts[0][1]  # the draft text, ready to approve or edit
    status = sup.predict(sid, "That sounds like a lot of pressure. What would help most this week?",
                         api_name="/supervise_send_edited")[0]
    assert "sent to the patient" in status
    chat, poll_status = pat1.predict(sid, False, api_name="/session_poll")[:2]
    assert chat_text(chat[-1]).startswith("That sounds like a lot of pressure") and poll_status == ""
    assert app.rows("SELECT status, decided_by FROM drafts WHERE id=?", (drafts[0][0],))[0] == ("edited", "sup1")
    actions = {r[0] for r in app.rows("SELECT action FROM audit WHERE actor='sup1'")}
    assert {"auth.login", "session.read", "session.hold", "draft.edited"} <= actions
