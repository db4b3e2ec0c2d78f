"""The Watch tab through the running app (gradio_client): Pause / Step / Resume, sampling a persona,
and the therapist's reasoning in the watched transcript.

The embedded model takes tens of seconds per exchange on a busy CPU, which makes pause/step timing
unobservable, so the app subprocess gets scripted models: a ``sitecustomize`` (loaded through
PYTHONPATH, tests/fakeapp.py) lets ``ModelPool`` build the ``fake`` catalog
entries that the config file declares, with a small delay per streamed word so a run takes long
enough to pause. Everything else (Gradio, the Watch handlers, the session engine, SQLite) is real.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from apprunner import RunningApp, chat_text
from fakeapp import THERAPISTS, fake_env, models_config, reasoning_script, write_site
from ui.chat_view import ANSWER_LABEL

ROOT = Path(__file__).resolve().parents[2]

PATIENT = "Work has been heavy and I keep putting things off."
REASONING = "The patient avoids tasks; explore values before any technique."
ANSWER = "What would matter to you about work if the dread were quieter?"

SCRIPT = reasoning_script(PATIENT, REASONING, ANSWER)
CONFIG = models_config(*THERAPISTS, ("fake-patient", "Scripted patient"))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data = tmp_path_factory.mktemp("watchdata")
    site = write_site(tmp_path_factory.mktemp("watchsite"), SCRIPT, CONFIG)
    running = RunningApp(data, fake_env(site, FAKE_DELAY="0.03"))
    running.client()  # waits until the app answers
    yield running
    running.stop()


def count(app: RunningApp, sql: str, args=()) -> int:
    return app.rows(sql, args)[0][0]


def wait_until(predicate, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def settle(app: RunningApp, sid: str, quiet: float = 3.0, limit: float = 60) -> int:
    """The session's turn count once it has not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = count(app, "SELECT COUNT(*) FROM turns WHERE session_id=?", (sid,))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
        time.sleep(0.1)
    raise AssertionError(f"session {sid} never went quiet (last count {last})")


def library_persona(app: RunningApp) -> str:
    return app.rows("SELECT id FROM personas WHERE modality='act' ORDER BY id LIMIT 1")[0][0]


def test_pause_step_resume_control_a_live_run(app):
    client = app.client()
    persona = library_persona(app)
    planned = 12
    job = client.submit(persona, "fake-therapist", "fake-patient", planned, False, api_name="/watch_start")
    wait_until(lambda: count(app, "SELECT COUNT(*) FROM sessions WHERE study='watch'") == 1, 60, "the session")
    sid = app.rows("SELECT id FROM sessions WHERE study='watch'")[0][0]
    turns = lambda: count(app, "SELECT COUNT(*) FROM turns WHERE session_id=?", (sid,))  # noqa: E731
    wait_until(lambda: turns() >= 2, 60, "the first exchange")

    assert client.predict(api_name="/watch_pause") == "Paused after the current exchange."
    paused_at = settle(app, sid)  # the exchange under way when Pause came in still finishes
    assert paused_at % 2 == 0 and 2 <= paused_at < 2 * planned
    time.sleep(3)
    assert turns() == paused_at  # paused: nothing new is stored
    assert app.rows("SELECT status FROM sessions WHERE id=?", (sid,))[0][0] == "active"

    assert client.predict(api_name="/watch_step") == "One more exchange, then paused."
    wait_until(lambda: turns() >= paused_at + 2, 30, "the stepped exchange")
    assert settle(app, sid) == paused_at + 2  # exactly one exchange (patient + therapist), then paused
    roles = [r[0] for r in app.rows("SELECT role FROM turns WHERE session_id=? ORDER BY idx", (sid,))]
    assert roles == ["patient", "therapist"] * (paused_at // 2 + 1)
    assert not job.done()

    assert client.predict(api_name="/watch_resume") == "Running."
    chat, status = job.result(timeout=120)  # runs on to its planned number of exchanges
    assert "finished" in status and sid in status
    assert turns() == 2 * planned
    row = app.rows("SELECT simulated, persona_id, therapist_model, patient_model, status FROM sessions WHERE id=?",
                   (sid,))[0]
    assert row == (1, persona, "fake-therapist", "fake-patient", "ended")
    assert [m["role"] for m in chat] == ["user", "assistant"] * planned
    assert chat_text(chat[0]) == PATIENT and chat_text(chat[1]) == ANSWER
    assert count(app, "SELECT COUNT(*) FROM sessions WHERE study='watch'") == 1  # the controls started nothing


def test_sample_stores_a_persona_that_can_be_watched(app):
    client = app.client()
    before = count(app, "SELECT COUNT(*) FROM personas")
    update, note = client.predict(11, api_name="/watch_sample")
    persona_id = update["value"]  # the Persona dropdown is updated: new choices, the sample selected
    assert persona_id in [value for _, value in update["choices"]]
    assert len(update["choices"]) == before + 1
    stored = app.rows("SELECT id, name, modality FROM personas WHERE id=?", (persona_id,))
    assert stored and stored[0][2] == "act" and stored[0][1] in note
    assert count(app, "SELECT COUNT(*) FROM personas") == before + 1
    assert client.predict(11, api_name="/watch_sample")[0]["value"] == persona_id  # same seed, same person
    assert count(app, "SELECT COUNT(*) FROM personas") == before + 1
    # the Persona dropdown now offers it: a run with the sampled persona starts and is linked to it
    chat, status = client.predict(persona_id, "fake-therapist", "fake-patient", 1, False, api_name="/watch_start")
    assert "finished" in status, status
    sid = app.rows("SELECT id FROM sessions WHERE persona_id=?", (persona_id,))
    assert len(sid) == 1
    assert count(app, "SELECT COUNT(*) FROM turns WHERE session_id=?", (sid[0][0],)) == 2


def test_show_reasoning_renders_the_reasoning_models_thinking(app):
    client = app.client()
    persona = library_persona(app)
    shown, status = client.predict(persona, "fake-think", "fake-patient", 1, True, api_name="/watch_start")
    assert "finished" in status, status
    sid = app.rows("SELECT id FROM sessions WHERE study='watch' AND therapist_model='fake-think' ORDER BY id")[-1][0]
    stored = app.rows("SELECT role, content, reasoning FROM turns WHERE session_id=? ORDER BY idx", (sid,))
    assert [r[0] for r in stored] == ["patient", "therapist"]
    assert stored[1][1] == ANSWER and stored[1][2] == REASONING  # the reasoning is stored apart from the answer
    thoughts = [m for m in shown if (m.get("metadata") or {}).get("title", "").startswith("Reasoning")]
    assert [chat_text(m) for m in thoughts] == [REASONING]
    assert chat_text(shown[-1]) == f"{ANSWER_LABEL}\n\n{ANSWER}" and REASONING not in chat_text(shown[-1])

    hidden, status = client.predict(persona, "fake-think", "fake-patient", 1, False, api_name="/watch_start")
    assert "finished" in status, status
    assert not any((m.get("metadata") or {}).get("title") for m in hidden)
    assert all(REASONING not in chat_text(m) for m in hidden) and chat_text(hidden[-1]) == ANSWER
