"""Simulated patients: the drift guard, the patient agent, sessions through the engine, and the
batch runner's paired design and resume (scripted models; the real model is in test_simulate_cli)."""
from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest

from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from patient_sim.agent import FALLBACK, PatientAgent
from patient_sim.batch import plan, run_batch
from patient_sim.guard import check_turn
from patient_sim.simulate import RunControl, SimSpec, run_session
from services import build_services

PERSONA = SimpleNamespace(id="p-sam", name="Sam", modality="act", style="plain", opening=None,
                          summary="You are Sam, 34, a nurse who has felt numb and stuck since a breakup.")


@pytest.mark.parametrize("raw, kind, expected", [
    ("*sighs* I just feel stuck. [pauses] Every day is the same.", "narration", "I just feel stuck. Every day is the same."),
    ("(long pause) I don't know.", "narration", "I don't know."),
    ("I feel low.\nTherapist: What makes you say that?", "speaks_as_therapist", "I feel low."),
    ("Patient: Work has been awful.", "label", "Work has been awful."),
    ("It was a hard week. Thank you for the session, goodbye!", "ends_session", "It was a hard week."),
])
def test_guard_repairs_each_violation_kind(raw, kind, expected):
    result = check_turn(raw)
    assert result.text == expected and result.repairs.get(kind) and not result.regenerate


def test_guard_keeps_clean_text_and_allows_ending_at_the_end():
    assert check_turn("I am (honestly) not sure what I want.").repairs == {}
    assert check_turn("Thanks, see you next week.", allow_ending=True).text == "Thanks, see you next week."
    assert check_turn("Therapist: How are you?").regenerate  # nothing of the patient left


def test_agent_regenerates_unrepairable_turns_and_counts_repairs():
    backend = FakeBackend("pat", replies=["*nods*", "Therapist: Tell me more.", "*sighs* Work is too much."])
    agent = PatientAgent(backend, PERSONA, "Talk plainly.", "act", "pat")
    turn = agent.next_turn([])
    assert turn.text == "Work is too much." and turn.attempts == 3
    assert turn.repairs == {"narration": 2, "empty": 2, "speaks_as_therapist": 1}
    system, opening = backend.calls[0][0][:2]
    assert "Sam" in system["content"] and "numb" in system["content"] and opening["role"] == "user"
    bad = PatientAgent(FakeBackend("pat", replies=["*cries*"] * 3), PERSONA, "", "act", "pat").next_turn([])
    assert bad.text == FALLBACK and bad.fallback


def test_agent_sees_the_therapist_as_the_other_speaker():
    backend = FakeBackend("pat", replies=["I guess so."])
    agent = PatientAgent(backend, PERSONA, "", "act", "pat")
    agent.next_turn([{"role": "patient", "content": "Hi."}, {"role": "therapist", "content": "Hello, Sam."},
                     {"role": "system", "content": "ignored"}])
    roles = [(m["role"], m["content"]) for m in backend.calls[0][0][2:]]
    assert roles == [("assistant", "Hi."), ("user", "Hello, Sam.")]


@pytest.fixture
def svc(settings):
    services = build_services(settings)
    for model_id, reply in (("therapist", "What feels most stuck right now?"), ("patient", "*sighs* Everything, really.")):
        services.catalog.add(CatalogEntry(model_id, model_id, "fake", source="test"))
        services.pool.register(model_id, FakeBackend(model_id, replies=lambda m, r=reply: r))
    yield services
    services.store.close()


def stored(svc, index=0):
    """A shipped library persona (sessions reference the personas table)."""
    return sorted(svc.personas.list(modality="act"), key=lambda p: p.id)[index]


def test_simulated_session_goes_through_the_engine_and_is_linked(svc):
    persona = stored(svc)
    spec = SimSpec(persona, "therapist", "patient", turns=3, modality="act", study="unit")
    events = []
    row = run_session(svc.engine, spec, on_event=lambda kind, value: events.append(kind))
    assert row["simulated"] == 1 and row["persona_id"] == persona.id and row["patient_model"] == "patient"
    assert row["study"] == "unit" and row["variant"] == "therapist" and row["status"] == "ended"
    turns = svc.sessions.turns(row["id"])
    assert [t["role"] for t in turns] == ["patient", "therapist"] * 3
    assert turns[0]["content"] == "Everything, really."
    assert json.loads(turns[0]["meta_json"])["guard"] == {"narration": 1}
    assert events[0] == "session" and events[-1] == "ended" and "patient_delta" in events


def test_simulated_risk_is_flagged_but_never_holds_the_run(svc):
    svc.pool.register("patient", FakeBackend("patient", replies=lambda m: "I have the pills counted out and I'm doing it tonight."))
    row = run_session(svc.engine, SimSpec(stored(svc), "therapist", "patient", turns=2, modality="act"))
    assert row["status"] == "ended" and len(svc.sessions.turns(row["id"])) == 4
    assert svc.flags.for_session(row["id"])[0]["level"] == "imminent"


def test_run_control_pauses_steps_and_stops(svc):
    control = RunControl()
    control.pause()
    done = {}
    worker = threading.Thread(target=lambda: done.update(row=run_session(
        svc.engine, SimSpec(stored(svc), "therapist", "patient", turns=5, modality="act"), control=control)))
    worker.start()
    sid = None
    for _ in range(50):
        rows = svc.sessions.list(limit=1)
        if rows:
            sid = rows[0]["id"]
            break
        threading.Event().wait(0.05)
    assert sid and svc.sessions.turns(sid) == []  # paused before the first exchange
    control.step()
    for _ in range(100):
        if len(svc.sessions.turns(sid)) == 2:
            break
        threading.Event().wait(0.05)
    threading.Event().wait(0.3)
    assert len(svc.sessions.turns(sid)) == 2  # exactly one exchange, then paused again
    control.stop()
    worker.join(10)
    assert done["row"]["status"] == "ended" and len(svc.sessions.turns(sid)) == 2


def test_batch_is_a_paired_design_and_resumes_without_duplicates(svc):
    first_persona, other = stored(svc, 0), stored(svc, 1)
    svc.catalog.add(CatalogEntry("therapist-b", "B", "fake", source="test"))
    svc.pool.register("therapist-b", FakeBackend("therapist-b", replies=lambda m: "Tell me more."))
    specs = plan([first_persona, other], ["therapist", "therapist-b"], "patient", turns=2, repeats=2, study="pair")
    assert len(specs) == 8 and len({s.key() for s in specs}) == 8
    # an interrupted run left a half-finished session for one combination
    half = svc.engine.start("act", "therapist", simulated=True, persona_id=first_persona.id, study="pair",
                            sim_key=specs[0].key(), actor="test")
    svc.sessions.add_turn(half["id"], __import__("store.sessions", fromlist=["TurnRecord"]).TurnRecord("patient", "Hi"))
    first = run_batch(svc.engine, specs, concurrency=2, show_progress=False)
    assert (first.ran, first.skipped, first.restarted, first.failed) == (8, 0, 1, [])
    again = run_batch(svc.engine, specs, concurrency=2, show_progress=False)
    assert (again.ran, again.skipped) == (0, 8)
    rows = list(svc.store.db.query("SELECT sim_key, status FROM sessions WHERE study='pair'"))
    finished = [r["sim_key"] for r in rows if r["status"] == "ended"]
    assert sorted(finished) == sorted(s.key() for s in specs)  # one finished session per combination
    assert [r["status"] for r in rows if r["sim_key"] == specs[0].key()].count("abandoned") == 1
    persona_by_variant = {}
    for s in specs:
        persona_by_variant.setdefault(s.therapist, set()).add((s.persona.id, s.repeat))
    assert persona_by_variant["therapist"] == persona_by_variant["therapist-b"]  # paired


def test_guard_sends_back_a_turn_that_parrots_the_therapist():
    said = "I'm so glad that you're feeling proud of yourself and that it's wonderful to celebrate."
    echo = check_turn("I'm so glad that you're feeling proud of yourself and that it's wonderful!", therapist_said=said)
    assert echo.regenerate and echo.repairs == {"echo": 1}
    assert not check_turn("Proud? Not really. I mostly feel tired.", therapist_said=said).regenerate
    backend = FakeBackend("pat", replies=[said, "Honestly I just feel tired."])
    agent = PatientAgent(backend, PERSONA, "", "act", "pat")
    turn = agent.next_turn([{"role": "patient", "content": "Hi."}, {"role": "therapist", "content": said}])
    assert turn.text == "Honestly I just feel tired." and turn.repairs == {"echo": 1} and turn.attempts == 2


def test_cbt_course_runs_consecutive_sessions_with_the_summary_carried(svc):
    persona = sorted(svc.personas.list(modality="cbt"), key=lambda p: p.id)[0]
    specs = plan([persona], ["therapist"], "patient", turns=1, study="course", modality="cbt", course_sessions=2)
    summary = run_batch(svc.engine, specs, show_progress=False)
    assert (summary.planned, summary.ran) == (2, 2)
    first, second = sorted(svc.store.db["sessions"].rows_where("study = 'course'"), key=lambda r: r["course_index"])
    assert second["course_id"] == first["course_id"] and second["course_index"] == 2
    assert first["sim_key"].endswith("|s1") and second["sim_key"].endswith("|s2")
    opening = svc.sessions.turns(second["id"])[0]
    assert opening["role"] == "system" and first["summary"] in opening["content"]
    assert run_batch(svc.engine, specs, show_progress=False).skipped == 2


def test_guard_sends_back_a_turn_that_recites_the_persona_brief():
    brief = PERSONA.summary
    assert check_turn("You are Sam, 34, a nurse who has felt numb.", brief=brief).repairs == {"echo": 1}
    assert check_turn("Well, I'm 34, a nurse who has felt numb and stuck since a breakup.", brief=brief).regenerate
    assert not check_turn("Since the breakup I just feel numb at work.", brief=brief).regenerate


def test_a_cancelled_batch_drops_its_queued_sessions_and_resumes_later(svc):
    """SIGTERM raises JobCancelled in the main thread; the queued sessions must not all run first
    (a plain ``with ThreadPoolExecutor`` waits for every one of them on the way out)."""
    from jobs.reporter import JobCancelled
    specs = plan([stored(svc, 0), stored(svc, 1)], ["therapist"], "patient", turns=1, repeats=3, study="cancel")

    class CancelAtFirstProgress:
        def progress(self, *args, **kwargs):
            raise JobCancelled()

    with pytest.raises(JobCancelled):
        run_batch(svc.engine, specs, concurrency=1, reporter=CancelAtFirstProgress(), show_progress=False)
    ended = lambda: [r for r in svc.store.db.query("SELECT id FROM sessions WHERE study='cancel' AND status='ended'")]
    assert 1 <= len(ended()) <= 2 < len(specs)
    rest = run_batch(svc.engine, specs, concurrency=1, show_progress=False)
    assert rest.ran + rest.skipped == len(specs) and len(ended()) == len(specs)


def test_run_control_says_when_it_is_paused():
    """Issue 19 (7): Watch reads this to say "paused" rather than "running"."""
    control = RunControl()
    assert not control.paused
    control.pause()
    assert control.paused
    control.step()
    assert not control.paused
    control.pause()
    control.stop()
    assert not control.paused and control.stopped
