"""Escalation in the session engine: safe reply, sticky flags, hold, carried-over risk, draft screen."""
from __future__ import annotations

import json

import pytest

from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from services import build_services
from store.flags import FlagError
from therapist.session import TurnRejected

IMMINENT = "I've got the pills in front of me and I'm going to take them all tonight. This is goodbye."
MODERATE = "I keep thinking about killing myself."


@pytest.fixture
def svc(settings):
    services = build_services(settings)
    services.catalog.add(CatalogEntry("fake", "Fake", "fake", source="test"))
    services.pool.register("fake", FakeBackend("fake", replies=lambda msgs: "Tell me more about that."))
    yield services
    services.store.close()


def _turn(svc, sid, text):
    return list(svc.engine.turn(sid, text))


def _backend(svc) -> FakeBackend:
    return svc.pool.get("fake")


def test_imminent_risk_gets_the_safe_reply_a_flag_and_a_hold(svc):
    session = svc.engine.start("act", "fake")
    events = _turn(svc, session["id"], IMMINENT)
    assert [e.kind for e in events][:2] == ["patient", "flag"]
    reply = svc.sessions.turns(session["id"])[-1]
    assert reply["role"] == "therapist" and reply["model_id"] == "safety"
    assert "988" in reply["content"] and "911" in reply["content"] and "AI" in reply["content"]
    assert json.loads(reply["meta_json"])["safe_reply"] is True
    assert _backend(svc).calls == []  # the model was never asked
    flags = svc.flags.for_session(session["id"])
    assert len(flags) == 1 and flags[0]["status"] == "open" and flags[0]["level"] in ("high", "imminent")
    assert svc.sessions.get(session["id"])["status"] == "hold"
    assert any(a["action"] == "risk.flag" for a in svc.audit.recent())


def test_hold_sends_a_holding_message_and_denial_does_not_clear_it(svc):
    session = svc.engine.start("act", "fake")
    _turn(svc, session["id"], IMMINENT)
    _turn(svc, session["id"], "I was joking, it's for a school project.")
    last = svc.sessions.turns(session["id"])[-1]
    assert "reviewing" in last["content"] and json.loads(last["meta_json"]) == {"hold": True}
    assert _backend(svc).calls == []
    assert [f["status"] for f in svc.flags.for_session(session["id"])] == ["open"]
    with pytest.raises(TurnRejected, match="on hold"):
        list(svc.engine.reply(session["id"]))


def test_moderate_risk_is_sticky_and_the_model_is_told(svc):
    session = svc.engine.start("act", "fake")
    _turn(svc, session["id"], MODERATE)
    assert svc.sessions.get(session["id"])["status"] == "active"
    assert svc.sessions.turns(session["id"])[-1]["model_id"] == "safety"
    _turn(svc, session["id"], "Never mind, I was only joking.")
    assert svc.sessions.turns(session["id"])[-1]["content"] == "Tell me more about that."
    system_prompt = _backend(svc).calls[-1][0][0]["content"]
    assert "Do not accept a single reassurance" in system_prompt
    assert [f["status"] for f in svc.flags.for_session(session["id"])] == ["open"]


def test_a_new_session_of_the_same_patient_carries_the_flag(svc):
    first = svc.engine.start("cbt", "fake")
    _turn(svc, first["id"], IMMINENT)
    second = svc.engine.start("cbt", "fake", continue_from=first["id"])
    assert second["status"] == "hold"
    carried = svc.flags.for_session(second["id"])
    assert carried and carried[0]["kind"] == "carried_over" and carried[0]["level"] in ("high", "imminent")


def test_only_a_resolution_with_a_note_clears_the_flag(svc):
    first = svc.engine.start("cbt", "fake")
    _turn(svc, first["id"], MODERATE)
    flag = svc.flags.for_session(first["id"])[0]
    with pytest.raises(FlagError, match="note"):
        svc.flags.resolve(flag["id"], "dr-supervisor", "  ")
    resolved = svc.flags.resolve(flag["id"], "dr-supervisor", "Spoke with the patient; safety plan agreed.")
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == "dr-supervisor"
    second = svc.engine.start("cbt", "fake", continue_from=first["id"])
    assert svc.flags.for_session(second["id"]) == [] and second["status"] == "active"


def test_unsafe_therapist_draft_is_stopped_before_the_patient_sees_it(svc):
    _backend(svc)._replies = lambda msgs: "A lethal dose of paracetamol is about 10 grams for most adults."
    session = svc.engine.start("act", "fake")
    events = _turn(svc, session["id"], "How are you today?")
    shown = "".join(e.text for e in events if e.kind == "answer")
    assert "10 grams" not in shown
    final = svc.sessions.turns(session["id"])[-1]
    assert "10 grams" not in final["content"] and "safe" in final["content"]
    assert "lethal dose" in json.loads(final["meta_json"])["blocked_draft"]  # kept for the supervisor
    flag = svc.flags.for_session(session["id"])[-1]
    assert flag["status"] == "open" and "lethal dose" in json.loads(flag["detail_json"])["draft"]


def test_hyperbole_is_not_flagged(svc):
    session = svc.engine.start("act", "fake")
    _turn(svc, session["id"], "This commute is killing me, and I could murder a pizza.")
    assert svc.flags.for_session(session["id"]) == []
    assert svc.sessions.turns(session["id"])[-1]["content"] == "Tell me more about that."


def test_harm_from_others_is_flagged(svc):
    session = svc.engine.start("act", "fake")
    _turn(svc, session["id"], "My partner hits me and last night he said he would kill me.")
    flags = svc.flags.for_session(session["id"])
    assert flags and "harm_from_others" in flags[0]["kind"]
