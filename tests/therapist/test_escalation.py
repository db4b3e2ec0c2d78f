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
    services.engine.record_consent(None, "test")
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


def test_on_hold_replies_wait_as_drafts_and_a_denial_does_not_clear_the_flag(svc):
    session = svc.engine.start("act", "fake")
    _turn(svc, session["id"], IMMINENT)
    events = _turn(svc, session["id"], "I was joking, it's for a school project.")
    assert [e.kind for e in events] == ["patient", "held"]  # the patient is shown no draft text
    turns = svc.sessions.turns(session["id"])
    assert turns[-1]["role"] == "patient"  # nothing reached the patient yet
    draft = svc.drafts.pending(session["id"])
    assert draft["content"] == "Tell me more about that." and draft["after_turn_id"] == turns[-1]["id"]
    assert [f["status"] for f in svc.flags.for_session(session["id"])] == ["open"]
    assert svc.sessions.get(session["id"])["status"] == "hold"


def test_supervisor_approves_edits_or_replaces_held_drafts(svc):
    session = svc.engine.start("act", "fake")
    sid = session["id"]
    svc.engine.set_hold(sid, True, "sup")
    _turn(svc, sid, "I had a rough week.")
    approved = svc.engine.decide_draft(svc.drafts.pending(sid)["id"], "approve", "sup")
    assert approved["content"] == "Tell me more about that." and approved["model_id"] == "fake"
    _turn(svc, sid, "My boss shouted at me.")
    draft = svc.drafts.pending(sid)
    edited = svc.engine.decide_draft(draft["id"], "edit", "sup", "That sounds hard. What happened next?")
    assert edited["model_id"] == "supervisor" and json.loads(edited["meta_json"])["review"] == "edited"
    with pytest.raises(Exception, match="already decided"):
        svc.engine.decide_draft(draft["id"], "approve", "sup")
    _turn(svc, sid, "I don't know.")
    first = svc.drafts.pending(sid)
    _turn(svc, sid, "Are you there?")  # a newer message supersedes the older draft
    assert svc.drafts.get(first["id"])["status"] == "superseded"
    replaced = svc.engine.supervisor_reply(sid, "I'm here. Take your time.", "sup")
    assert replaced["content"] == "I'm here. Take your time."
    with pytest.raises(TurnRejected, match="empty"):
        svc.engine.supervisor_reply(sid, "   ", "sup")
    with pytest.raises(TurnRejected, match="broken character"):  # a lone surrogate cannot be stored
        svc.engine.supervisor_reply(sid, "I hear you \ud800", "sup")
    roles = [t["role"] for t in svc.sessions.turns(sid)]
    assert roles == ["patient", "therapist", "patient", "therapist", "patient", "patient", "therapist"]
    actions = [a["action"] for a in svc.audit.recent(50) if a["target"] == sid]
    assert {"session.hold", "draft.held", "draft.approved", "draft.edited", "draft.replaced"} <= set(actions)
    svc.engine.set_hold(sid, False, "sup")
    events = _turn(svc, sid, "Thanks.")
    assert events[-1].kind == "done" and svc.sessions.turns(sid)[-1]["role"] == "therapist"


def test_no_session_starts_without_consent(svc):
    from therapist.session import ConsentRequired
    user = svc.users.add("pat01", "long-password", "patient")
    with pytest.raises(ConsentRequired):
        svc.engine.start("act", "fake", user_id=user["id"])
    assert svc.sessions.list(user_id=user["id"]) == []
    svc.engine.record_consent(user["id"], "pat01")
    assert svc.engine.start("act", "fake", user_id=user["id"])["user_id"] == user["id"]
    assert svc.engine.start("act", "fake", simulated=True)["simulated"] == 1  # no human to ask


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


def test_second_stage_classifier_can_raise_but_never_lower(svc):
    svc.settings.risk_classifier = "cls"
    svc.catalog.add(CatalogEntry("cls", "Classifier", "fake", source="test"))
    verdicts = FakeBackend("cls")
    svc.pool.register("cls", verdicts)
    session = svc.engine.start("act", "fake")
    verdicts.queue('{"level": "high", "categories": ["self_harm"]}')
    _turn(svc, session["id"], "Everything is sorted now, I won't need my things after Friday.")
    reply = svc.sessions.turns(session["id"])[-1]
    assert reply["model_id"] == "safety" and svc.sessions.get(session["id"])["status"] == "hold"
    flag = svc.flags.for_session(session["id"])[0]
    assert flag["level"] == "high" and json.loads(flag["detail_json"])["classifier"]["level"] == "high"
    other = svc.engine.start("act", "fake")
    verdicts.queue("not json", "still not json")  # a broken classifier leaves the rule level standing
    _turn(svc, other["id"], MODERATE)
    assert svc.flags.for_session(other["id"])[0]["level"] == "moderate"
    assert any(a["action"] == "risk.classifier_failed" for a in svc.audit.recent(20))
