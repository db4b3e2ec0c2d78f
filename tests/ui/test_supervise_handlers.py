"""Supervise tab and role checks, called directly with a signed-in request (accounts mode)."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from services import build_services
from ui.access import Access
from ui.session_tab import REVIEWING, SessionHandlers
from ui.supervise_tab import SuperviseHandlers

RISK = "I keep thinking about killing myself."


@pytest.fixture
def svc(settings):
    services = build_services(settings)
    for name, role in (("pat1", "patient"), ("pat2", "patient"), ("sup", "supervisor")):
        services.users.add(name, "a-long-password", role)
    services.sign_in = True  # as app.py decides at start-up when accounts exist
    services.catalog.add(CatalogEntry("fake", "Fake", "fake", reasoning="think", source="test"))
    services.pool.register("fake", FakeBackend("fake", replies=lambda m: "<think>plan</think>How are you feeling?"))
    yield services
    services.store.close()


def req(name):
    return SimpleNamespace(username=name)


def handlers(svc):
    access = Access(svc)
    return SessionHandlers(svc, access), SuperviseHandlers(svc, access)


def consented_session(svc, sh, name="pat1"):
    sh.consent(True, req(name))
    return list(sh.send("", "Hello there.", True, "act", "fake", req(name)))[-1]


def denials(svc):
    return [a for a in svc.audit.recent(200) if a["action"] == "access.denied"]


def test_consent_gate_and_patient_never_sees_reasoning(svc):
    sh, _ = handlers(svc)
    consent_panel, chat_panel, show, *_ = sh.on_load(req("pat1"))
    assert consent_panel["visible"] is True and chat_panel["visible"] is False and show["visible"] is False
    *_, status, _ = list(sh.send("", "Hello?", False, "act", "fake", req("pat1")))[-1]
    assert "consent" in status and svc.sessions.list(user_id=svc.users.get("pat1")["id"]) == []
    assert "tick the box" in sh.consent(False, req("pat1"))[2]
    sid, chat, *_ = consented_session(svc, sh)
    assert [m["content"] for m in chat] == ["Hello there.", "How are you feeling?"]  # show=True ignored
    assert not any(m.get("metadata") for m in sh.redraw(sid, True, req("pat1"))[0])
    assert sh.on_load(req("pat1"))[3] == sid  # a reload finds the open session again


def test_patients_cannot_touch_other_sessions_or_supervise(svc):
    sh, sup = handlers(svc)
    sid = consented_session(svc, sh)[0]
    sh.consent(True, req("pat2"))
    with pytest.raises(gr.Error, match="not your session"):
        sh.redraw(sid, False, req("pat2"))
    with pytest.raises(gr.Error, match="not your session"):
        list(sh.send(sid, "hijack", False, "act", "fake", req("pat2")))
    for call in (lambda: sup.live(req("pat1")), lambda: sup.open(sid, req("pat1")),
                 lambda: sup.resolve(sid, "x", "note", req("pat2")), lambda: sup.hold(sid, req("pat1"))):
        with pytest.raises(gr.Error, match="patient"):
            call()
    with pytest.raises(gr.Error, match="sign in"):
        sh.on_load(req("nobody"))
    assert len(denials(svc)) == 7
    assert {d["actor"] for d in denials(svc)} == {"pat1", "pat2", "nobody"}
    assert [t["content"] for t in svc.sessions.turns(sid)][0] == "Hello there."  # nothing added


def test_disabled_account_is_refused_at_once(svc):
    sh, _ = handlers(svc)
    sid = consented_session(svc, sh)[0]
    svc.users.set_disabled("pat1", True)
    with pytest.raises(gr.Error, match="not active"):
        sh.redraw(sid, False, req("pat1"))


def test_supervisor_sees_flag_first_holds_approves_and_resolves(svc):
    sh, sup = handlers(svc)
    calm = consented_session(svc, sh, "pat2")[0]
    sid = consented_session(svc, sh, "pat1")[0]
    list(sh.send(sid, RISK, False, "act", "fake", req("pat1")))
    table, alert = sup.live(req("sup"))
    assert table[0][-1] == sid and table[0][0] == "MODERATE" and "1 session" in alert
    assert calm in [row[-1] for row in table]
    opened = sup.open(sid, req("sup"))
    assert opened[0] == sid and any(m.get("metadata") for m in opened[2])  # supervisors see reasoning
    assert any(a["action"] == "session.read" and a["actor"] == "sup" for a in svc.audit.recent(50))
    sh.redraw(sid, True, req("sup"))  # reading it from the Session tab is audited too
    assert sum(a["action"] == "session.read" for a in svc.audit.recent(50)) == 2
    sh.redraw(sid, False, req("pat1"))  # the patient reading their own session is not a read by others
    assert sum(a["action"] == "session.read" for a in svc.audit.recent(50)) == 2
    sup.hold(sid, req("sup"))
    *_, status, _ = list(sh.send(sid, "I'm ok now, it was nothing.", False, "act", "fake", req("pat1")))[-1]
    assert REVIEWING in status
    assert sh.waiting(sid, req("pat1"))["active"] is True
    view = sup.open(sid, req("sup"))
    draft_id, draft_text = view[5], view[6]
    assert draft_text == "How are you feeling?" and draft_id
    ticked = sup.tick(sid, draft_id, None, req("sup"))
    assert ticked[2 + 4] == draft_id and ticked[2 + 5] == {"__type__": "update"}  # an edit in progress survives
    status, *_ = sup.send_edited(sid, draft_id, "Thank you for telling me. How are you right now?", req("sup"))
    assert "sent to the patient" in status
    chat, _, poll_status, timer = sh.poll(sid, False, req("pat1"))
    assert chat[-1]["content"] == "Thank you for telling me. How are you right now?"
    assert poll_status == "" and timer["active"] is False
    flag_id = svc.flags.for_session(sid)[0]["id"]
    assert "Not done" in sup.resolve(sid, flag_id, "  ", req("sup"))[0]  # a note is required
    assert "resolved" in sup.resolve(sid, flag_id, "Called the patient; safety plan in place.", req("sup"))[0]
    assert "Note saved" in sup.note(sid, "Follow up on Monday.", req("sup"))[0]
    assert sup.live(req("sup"))[0][0][0] == ""  # no open flag left on top
    actions = {a["action"] for a in svc.audit.recent(100) if a["actor"] == "sup"}
    assert {"session.read", "session.hold", "draft.edited", "flag.resolve", "note.add"} <= actions


def test_live_list_puts_people_before_simulations_and_drops_finished_simulations(svc):
    sh, sup = handlers(svc)
    persona = svc.personas.list(modality="act")[0]
    sim = svc.engine.start("act", "fake", simulated=True, persona_id=persona.id, actor="simulator")
    list(svc.engine.turn(sim["id"], RISK))
    sid = consented_session(svc, sh)[0]
    list(sh.send(sid, RISK, False, "act", "fake", req("pat1")))
    table, _ = sup.live(req("sup"))
    assert [row[-1] for row in table[:2]] == [sid, sim["id"]]
    svc.engine.end(sim["id"])
    assert sim["id"] not in [row[-1] for row in sup.live(req("sup"))[0]]


def test_admin_launch_refuses_models_outside_the_catalog(svc):
    from ui.admin_tab import AdminHandlers
    svc.users.add("boss", "a-long-password", "admin")
    admin = AdminHandlers(svc, Access(svc))
    note, _ = admin.launch_simulation(["fake", "--data-dir=/etc"], "sample:1", "fake", 1, 1, 1, "x", req("boss"))
    assert "unknown model" in note and "--data-dir=/etc" in note
    assert svc.jobs.jobs.list() == []
    with pytest.raises(gr.Error, match="supervisor"):
        admin.launch_simulation(["fake"], "sample:1", "fake", 1, 1, 1, "x", req("sup"))


def test_every_empty_view_clears_the_flag_choice_afresh():
    """Gradio pops ``value`` from an update dict once sent; a shared empty view would then stop
    clearing the selected flag, and every later refresh failed on the stale value."""
    from ui.supervise_tab import empty_view
    first, second = empty_view(), empty_view()
    first[3].pop("value")  # what Gradio does to the update it sent
    assert second[3] is not first[3] and second[3]["value"] is None and second[3]["choices"] == []
