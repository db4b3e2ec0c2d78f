"""Issue 19 (1): a reload or a link lands in the session the user was in; a patient reopens their
own open sessions; sessions idle past the limit become abandoned and leave the live lists."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from services import build_services
from ui import location
from ui.access import Access
from ui.session_tab import SessionHandlers
from ui.supervise_tab import SuperviseHandlers


@pytest.fixture
def svc(settings):
    services = build_services(settings)
    for name, role in (("pat1", "patient"), ("pat2", "patient"), ("sup", "supervisor")):
        services.users.add(name, "a-long-password", role)
    services.sign_in = True
    services.catalog.add(CatalogEntry("fake", "Fake", "fake", source="test"))
    services.pool.register("fake", FakeBackend("fake", replies=lambda m: "How are you feeling?"))
    yield services
    services.store.close()


def req(name, **query):
    return SimpleNamespace(username=name, query_params=query)


def started(svc, sh, name, text="Hello there."):
    sh.consent(True, req(name))
    return list(sh.send("", text, False, "act", "fake", req(name)))[-1][0]


def backdate(svc, sid, when="2020-01-01T00:00:00.000Z"):
    """Make a session look idle since ``when`` (test set-up reaches into the table directly)."""
    with svc.store.write() as db:
        db.execute("UPDATE turns SET created_utc = ? WHERE session_id = ?", [when, sid])
        db.execute("UPDATE sessions SET created_utc = ? WHERE id = ?", [when, sid])


def test_the_url_names_a_tab_and_a_session_and_nothing_else():
    assert location.tab_from(req("x", tab="supervise")) == "supervise"
    assert location.tab_from(req("x", tab="../etc")) is None and location.tab_from(None) is None
    assert location.session_from(req("x", session="01JABC"), "session") == "01JABC"  # no tab: Session's
    assert location.session_from(req("x", tab="supervise", session="01JABC"), "session") is None
    assert location.session_from(req("x", tab="supervise", session="01JABC"), "supervise") == "01JABC"
    assert location.session_from(req("x", session="<script>"), "session") is None
    assert set(location.TAB_IDS) == {"session", "watch", "review", "supervise", "admin"}


def test_a_link_to_your_own_session_opens_it_and_to_another_does_not(svc):
    access = Access(svc)
    sh = SessionHandlers(svc, access)
    first = started(svc, sh, "pat1", "First session.")
    second = sh.start("act", "fake", False, req("pat1"))[0]
    assert second != first
    # a reload on the first session's link lands in it, not in the newest one
    out = sh.on_load(req("pat1", session=first))
    assert out[3] == first and [m["content"] for m in out[4]][0] == "First session."
    assert "Welcome back" in out[6]
    picks, row = out[8], out[9]
    assert [value for _, value in picks["choices"]] == [second] and row["visible"] is True
    # without a link: the latest open session, and the other one offered to continue
    out = sh.on_load(req("pat1"))
    assert out[3] == second and [v for _, v in out[8]["choices"]] == [first]
    # someone else's session in a link is not opened, and the attempt is audited
    sh.consent(True, req("pat2"))
    out = sh.on_load(req("pat2", session=first))
    assert out[3] == "" and "not one of yours" in out[6] and out[4] == []
    assert any(a["action"] == "access.denied" and a["target"] == first and a["actor"] == "pat2"
               for a in svc.audit.recent(50))


def test_continue_where_you_left_off_reopens_only_your_own(svc):
    sh = SessionHandlers(svc, Access(svc))
    first = started(svc, sh, "pat1", "Where was I?")
    sh.start("act", "fake", False, req("pat1"))
    sid, chat, _ids, status, picks, _row = sh.resume(first, False, req("pat1"))
    assert sid == first and chat[0]["content"] == "Where was I?" and "reopened" in status
    assert first not in [v for _, v in picks["choices"]]
    sh.consent(True, req("pat2"))
    with pytest.raises(gr.Error, match="not your session"):
        sh.resume(first, False, req("pat2"))
    assert "Choose a session" in sh.resume(None, False, req("pat1"))[3]


def test_an_ended_session_link_shows_it_and_a_new_message_is_refused(svc):
    sh = SessionHandlers(svc, Access(svc))
    sid = started(svc, sh, "pat1")
    sh.end(sid, req("pat1"))
    out = sh.on_load(req("pat1", session=sid))
    assert out[3] == sid and "is over" in out[6]
    status = list(sh.send(sid, "Still there?", False, "act", "fake", req("pat1")))[-1][3]
    assert status.startswith("**Not sent:**")
    assert [t["content"] for t in svc.sessions.turns(sid) if t["role"] == "patient"] == ["Hello there."]


def test_idle_sessions_are_abandoned_and_leave_the_live_list(svc):
    access = Access(svc)
    sh, sup = SessionHandlers(svc, access), SuperviseHandlers(svc, access)
    idle, fresh = started(svc, sh, "pat1", "I was here long ago."), started(svc, sh, "pat2")
    flagged = started(svc, sh, "pat1", "I keep thinking about killing myself.")
    held = started(svc, sh, "pat2", "Another old one.")
    svc.sessions.set_status(held, "hold")  # a supervisor must release each reply: theirs to close
    for sid in (idle, flagged, held):
        backdate(svc, sid)
    assert any(f["status"] == "open" for f in svc.flags.for_session(flagged))
    closed = svc.engine.abandon_idle(every_s=0)
    assert sorted(closed) == sorted([idle, flagged])
    assert svc.sessions.get(idle)["status"] == "abandoned" and svc.sessions.get(fresh)["status"] == "active"
    assert svc.sessions.get(held)["status"] == "hold"
    assert {a["target"] for a in svc.audit.recent(50) if a["action"] == "session.abandoned"} == {idle, flagged}
    live_ids = [row[-1] for row in sup.live(req("sup"))[0]]
    assert idle not in live_ids and fresh in live_ids and held in live_ids
    assert flagged in live_ids  # abandoned, but its open risk flag keeps it in front of the supervisor
    assert svc.engine.abandon_idle() == []  # swept a moment ago: not again within the minute
    out = sh.on_load(req("pat1"))
    assert out[3] == "" and out[8]["choices"] == []  # nothing of pat1's is open any more


def test_a_reply_in_flight_keeps_its_session_open(svc):
    sh = SessionHandlers(svc, Access(svc))
    sid = started(svc, sh, "pat1")
    backdate(svc, sid)
    with svc.engine._inflight_lock:
        svc.engine._inflight.add(sid)
    try:
        assert svc.engine.abandon_idle(every_s=0) == []
    finally:
        svc.engine._inflight.discard(sid)
    assert svc.engine.abandon_idle(every_s=0) == [sid]


def test_idle_limit_zero_keeps_sessions_open(settings):
    from dataclasses import replace
    services = build_services(replace(settings, session_idle_minutes=0))
    try:
        services.catalog.add(CatalogEntry("fake", "Fake", "fake", source="test"))
        services.pool.register("fake", FakeBackend("fake", replies=lambda m: "Hi."))
        services.engine.record_consent(None, "test")
        sid = list(SessionHandlers(services).send("", "Hello", False, "act", "fake"))[-1][0]
        backdate(services, sid)
        assert services.engine.abandon_idle(every_s=0) == [] and services.sessions.get(sid)["status"] == "active"
    finally:
        services.store.close()


def test_a_supervisor_link_opens_the_session_in_supervise(svc):
    access = Access(svc)
    sh, sup = SessionHandlers(svc, access), SuperviseHandlers(svc, access)
    sid = started(svc, sh, "pat1")
    out = sup.open_linked(req("sup", tab="supervise", session=sid))
    assert out[0] == sid and sid in out[1]
    assert any(a["action"] == "session.read" and a["actor"] == "sup" for a in svc.audit.recent(50))
    nothing = sup.open_linked(req("pat1", tab="supervise", session=sid))  # a patient gets nothing
    assert all(part == gr.update() for part in nothing)
    assert all(part == gr.update() for part in sup.open_linked(req("sup", tab="session", session=sid)))


def test_single_researcher_reload_finds_the_open_session(settings):
    services = build_services(settings)
    try:
        services.catalog.add(CatalogEntry("fake", "Fake", "fake", source="test"))
        services.pool.register("fake", FakeBackend("fake", replies=lambda m: "Hi."))
        sh = SessionHandlers(services)
        services.engine.record_consent(None, "test")
        sid = list(sh.send("", "Hello", False, "act", "fake"))[-1][0]
        assert sh.on_load(None)[3] == sid  # no accounts: the researcher's open session comes back
    finally:
        services.store.close()


def test_a_session_keeps_its_model_and_a_course_switches_only_when_asked_twice(svc):
    """Issue 19 (3): the dropdown never silently changes who answers."""
    svc.catalog.add(CatalogEntry("other", "Other model", "fake", source="test"))
    svc.pool.register("other", FakeBackend("other", replies=lambda m: "Other model here."))
    sh = SessionHandlers(svc, Access(svc))
    sh.consent(True, req("pat1"))
    sid = list(sh.send("", "Hello.", False, "cbt", "fake", req("pat1")))[-1][0]
    assert "**Fake**" in sh.header(sid, req("pat1")) and "CBT session" in sh.header(sid, req("pat1"))
    note = sh.on_model(sid, "other", req("pat1"))
    assert "stays with **Fake**" in note and "New session" in note
    assert sh.on_model(sid, "fake", req("pat1")) == gr.update()
    list(sh.send(sid, "Still you?", False, "cbt", "other", req("pat1")))  # answered by the session's model
    assert {t["model_id"] for t in svc.sessions.turns(sid) if t["role"] == "therapist"} == {"fake"}
    # next session of the course: the first press only tells; the second switches, knowingly
    out = sh.start_next(sid, "cbt", "other", False, None, req("pat1"))
    assert out[0] == gr.update() and "has used **Fake**" in out[3] and out[4] == f"{sid}:other"
    out = sh.start_next(sid, "cbt", "other", False, out[4], req("pat1"))
    assert out[0] != sid and svc.sessions.get(out[0])["therapist_model"] == "other" and out[4] is None
    # with the course's own model in the dropdown it simply continues
    third = sh.start_next(out[0], "cbt", "other", False, None, req("pat1"))[0]
    assert svc.sessions.get(third)["therapist_model"] == "other"
    # a reload puts the approach and model of the open session back in the controls
    loaded = sh.on_load(req("pat1"))
    assert loaded[3] == third and loaded[10] == "cbt" and loaded[11]["value"] == "other"


def test_the_consent_thank_you_lands_where_it_is_seen(svc):
    """Issue 19 (7): the consent panel closes on agreeing, so its thanks go to the chat's status line."""
    sh = SessionHandlers(svc, Access(svc))
    panel, chat_panel, panel_line, chat_status = sh.consent(True, req("pat1"))
    assert panel["visible"] is False and chat_panel["visible"] is True
    assert panel_line == "" and chat_status.startswith("Thank you")
    refused = sh.consent(False, req("pat2"))
    assert "tick the box" in refused[2] and refused[3] == gr.update()


def test_a_patient_reads_the_safety_notice_in_plain_words(svc):
    """Issue 19 (8): the clinical level name is for the supervisor's view only."""
    sh = SessionHandlers(svc, Access(svc))
    sh.consent(True, req("pat1"))
    status = list(sh.send("", "I keep thinking about killing myself.", False, "act", "fake", req("pat1")))[-1][3]
    assert "Safety check" in status and "a person will look at it" in status
    assert not any(level in status for level in ("low", "moderate", "high", "imminent", "level"))
