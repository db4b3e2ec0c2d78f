"""Session tab handlers called directly: feedback, retry, redraw, course buttons."""
from __future__ import annotations

import json
import threading
import time

import gradio as gr
import pytest

from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from services import build_services
from ui.chat_view import ANSWER_LABEL, REASONING_TITLE
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
    assert sid and status == ""
    # the box is emptied once, when the message is stored, and never again while the reply streams
    assert updates[0][4] == "" and all(u[4] == gr.update() for u in updates[1:])
    assert all(u[3] == gr.update() for u in updates[1:-1])  # nor is the status line rewritten
    assert [m["role"] for m in chat] == ["user", "assistant", "assistant"]
    assert chat[1]["metadata"]["title"] == REASONING_TITLE and chat[2]["content"] == f"{ANSWER_LABEL}\n\nThat sounds really stressful."
    assert ids[2] is not None and ids[0] is None
    hidden, hidden_ids = h.redraw(sid, False)
    assert [m["content"] for m in hidden] == ["Exams scare me.", "That sounds really stressful."]
    # a partial update while streaming never shows reasoning text as the answer
    for update in updates[1:-1]:
        for message in update[1]:
            if message["role"] == "assistant" and not message.get("metadata"):
                assert "reflect" not in message["content"]


def gate(backend: FakeBackend) -> threading.Event:
    """Make ``backend`` stream 40 words slowly (the engine passes text on in 50 ms pieces, once
    the leak screen has settled it), then wait for the returned event: the reply stays "being
    written" until the test releases it."""
    release, original = threading.Event(), backend._deltas

    def gated(reply, messages, usage):
        for i, piece in enumerate(original(reply, messages, usage)):
            if i < 40:
                time.sleep(0.01)
            elif i == 40:
                assert release.wait(30)
            yield piece
    backend._deltas = gated
    return release


def test_a_second_send_while_a_reply_streams_is_refused_aloud_and_keeps_the_text(handlers):
    h, backend = handlers
    release = gate(backend)
    backend.queue("The client is anxious about exams, so reflect it first. " * 6, "That sounds really stressful.")
    first = h.send("", "Exams scare me.", False, "act", "fake-think")
    sid = next(first)[0]
    next(first)  # the reply is being written, and waits at its second word
    refused = list(h.send(sid, "And my sister is ill.", False, "act", "fake-think"))
    release.set()
    assert len(refused) == 1
    _, chat, ids, status, box = refused[0]
    assert status.startswith("**Not sent:**") and "still replying" in status and "still in the box" in status
    assert box == gr.update() and chat == gr.update()  # the typed text is left where it is
    rest = list(first)
    assert rest[-1][2] and [t["content"] for t in h.sessions.turns(sid) if t["role"] == "patient"] == [
        "Exams scare me."]
    # once the reply is done, the same text goes through
    backend.queue("r", "I'm sorry to hear about your sister.")
    assert list(h.send(sid, "And my sister is ill.", False, "act", "fake-think"))[-1][3] == ""
    assert [t["role"] for t in h.sessions.turns(sid)] == ["patient", "therapist", "patient", "therapist"]


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


def test_a_reply_cut_at_its_length_limit_says_so(handlers):
    """Issue 19 (6): a reply that hit max_tokens (the model's own limit when it has one) carries a
    plain note; the stored reply is the model's text, unchanged."""
    h, backend = handlers
    h.services.catalog.get("fake-think").max_tokens = 5
    backend.honor_max_tokens = True
    backend.queue("short plan", "one two three four five six seven eight")
    sid, chat, *_ = list(h.send("", "Tell me everything.", False, "act", "fake-think"))[-1]
    row = h.sessions.turns(sid)[-1]
    assert row["content"] == "one two three four five"
    assert json.loads(row["meta_json"])["truncated"] == {"max_tokens": 5}
    assert chat[-1]["content"].startswith("one two three four five") and "length limit of 5 tokens" in chat[-1]["content"]
    backend.queue("plan", "A whole answer.")
    sid, chat, *_ = list(h.send(sid, "And now?", False, "act", "fake-think"))[-1]
    assert chat[-1]["content"] == "A whole answer." and "truncated" not in (h.sessions.turns(sid)[-1]["meta_json"] or "")


def test_a_cbt_summary_carries_one_label_however_often_the_model_repeats_it(handlers):
    """Issue 19 (7): "Session Summary: The session summary is: Session Summary: ..." is stored once-labelled."""
    h, backend = handlers
    backend.queue("r", "Let's set our agenda.")
    sid = list(h.send("", "Hi", False, "cbt", "fake-think"))[-1][0]
    backend.queue("Session Summary: The session summary is: **Session Summary:** agenda set; homework: walk.")
    h.end(sid)
    assert h.sessions.get(sid)["summary"] == "Session Summary: agenda set; homework: walk."
