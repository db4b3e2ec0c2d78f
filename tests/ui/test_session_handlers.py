"""Session tab handlers called directly: feedback, retry, redraw, course buttons."""
from __future__ import annotations

import gradio as gr
import pytest

from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from services import build_services
from ui.chat_view import REASONING_TITLE
from ui.session_tab import SessionHandlers


@pytest.fixture
def handlers(settings):
    services = build_services(settings)
    services.engine.record_consent(None, "test")
    services.catalog.add(CatalogEntry("fake-think", "Fake (reasoning)", "fake", reasoning="think", source="test"))
    backend = FakeBackend("fake-think")
    services.pool.register("fake-think", backend)
    yield SessionHandlers(services), backend
    services.store.close()


def test_send_starts_a_session_streams_and_redraws(handlers):
    h, backend = handlers
    backend.queue("Client is anxious; reflect.", "That sounds really stressful.")
    updates = list(h.send("", "Exams scare me.", True, "act", "fake-think"))
    sid, chat, ids, status, box = updates[-1]
    assert sid and status == "" and box == ""
    assert [m["role"] for m in chat] == ["user", "assistant", "assistant"]
    assert chat[1]["metadata"]["title"] == REASONING_TITLE and chat[2]["content"] == "That sounds really stressful."
    assert ids[2] is not None and ids[0] is None
    hidden, hidden_ids = h.redraw(sid, False)
    assert [m["content"] for m in hidden] == ["Exams scare me.", "That sounds really stressful."]
    # a partial update while streaming never shows reasoning text as the answer
    for update in updates[1:-1]:
        for message in update[1]:
            if message["role"] == "assistant" and not message.get("metadata"):
                assert "reflect" not in message["content"]


def test_like_stores_feedback_on_the_therapist_turn(handlers):
    h, backend = handlers
    backend.queue("thinking", "Answer one.")
    sid, chat, ids, _, _ = list(h.send("", "Hello", False, "act", "fake-think"))[-1]
    therapist_index = ids.index(next(i for i in ids if i))
    note = h.like(sid, ids, gr.LikeData(None, {"index": therapist_index, "value": "x", "liked": False}))
    assert note == "Feedback saved."
    row = h.sessions.turns(sid)[-1]
    assert row["feedback"] == -1
    assert h.like(sid, ids, gr.LikeData(None, {"index": 0, "value": "x", "liked": True})).startswith("Only")
    assert any(a["action"] == "turn.feedback" for a in h.services.audit.recent())


def test_retry_after_a_failed_reply(handlers):
    h, backend = handlers
    backend.fail_after = 0
    backend.queue("broken")
    sid, _, _, status, _ = list(h.send("", "Hello?", False, "act", "fake-think"))[-1]
    assert "failed" in status
    backend.fail_after = None
    backend.queue("reasoning", "I'm here now.")
    chat, ids, status, _ = list(h.retry(sid, False))[-1]
    assert status == "" and chat[-1]["content"] == "I'm here now."
    chat, ids, status, _ = list(h.retry(sid, False))[-1]
    assert "Nothing to retry" in status
    assert [t["role"] for t in h.sessions.turns(sid)] == ["patient", "therapist"]


def test_next_session_requires_a_session_and_end_reports_summary(handlers):
    h, backend = handlers
    assert "Start a session first" in h.start_next("", "cbt", "fake-think", False)[3]
    backend.queue("r", "Let's set our agenda.")
    sid = list(h.send("", "Hi", False, "cbt", "fake-think"))[-1][0]
    backend.queue("Session Summary: agenda set, homework: walk daily.")  # summaries skip reasoning
    note = h.end(sid)
    assert note.startswith("Session ended.") and "homework: walk daily" in note
