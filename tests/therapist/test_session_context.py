"""History trimming by the backend's own token count: a message under the character limit but over
the context in tokens gets a clear error before anything is generated, and the session goes on."""
from __future__ import annotations

import pytest

from models.base import Capabilities, clean_messages
from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from services import build_services
from store.sessions import TurnRecord
from therapist.session import CONTEXT_MARGIN_TOKENS, MESSAGE_OVERHEAD_TOKENS

REPLY = "Tell me more about that."


class DenseBackend(FakeBackend):
    """A fake whose tokenizer needs one token per character (like digits or CJK on a small model)."""
    capabilities = Capabilities(prefix=True, json_schema=True, token_count=True)

    def count_tokens(self, text: str) -> int:
        return len(text)


@pytest.fixture
def services(settings):
    svc = build_services(settings)
    svc.engine.record_consent(None, "test")
    yield svc
    svc.store.close()


def _register(services, backend) -> FakeBackend:
    services.catalog.add(CatalogEntry(backend.id, backend.id, "fake", reasoning="none", source="test"))
    services.pool.register(backend.id, backend)
    return backend


def _budget(services, system: str) -> int:
    s = services.settings
    return s.n_ctx - s.max_tokens - s.reasoning_budget - CONTEXT_MARGIN_TOKENS - len(system) - MESSAGE_OVERHEAD_TOKENS


def test_a_message_over_the_context_in_tokens_is_refused_before_generating(services):
    backend = _register(services, DenseBackend("dense", replies=lambda m: REPLY))
    sid = services.engine.start("act", "dense")["id"]
    dense = "7" * 5000  # under max_message_chars (8,000), 5,000 tokens for this backend
    assert len(dense) < services.settings.max_message_chars
    events = list(services.engine.turn(sid, dense))
    assert [e.kind for e in events] == ["patient", "error"]
    assert "context" in events[-1].text and "shorter" in events[-1].text and len(events[-1].text) < 300
    assert backend.calls == [] and not services.engine.replying(sid)
    assert [t["role"] for t in services.sessions.turns(sid)] == ["patient"]
    assert services.audit.recent(action="turn.error")[0]["target"] == sid
    retry = list(services.engine.reply(sid))  # Retry gives the same clear error, still no call
    assert [e.kind for e in retry] == ["error"] and "context" in retry[0].text and backend.calls == []


def test_the_session_goes_on_after_a_message_that_did_not_fit(services):
    backend = _register(services, DenseBackend("dense", replies=lambda m: REPLY))
    sid = services.engine.start("act", "dense")["id"]
    list(services.engine.turn(sid, "7" * 5000))
    events = list(services.engine.turn(sid, "Sorry, I pasted the wrong thing. I feel low."))
    assert events[-1].kind == "done" and events[-1].text == REPLY
    sent = backend.calls[-1][0]
    assert [m["role"] for m in sent] == ["system", "user"]  # the dense message was dropped
    assert sent[-1]["content"] == "Sorry, I pasted the wrong thing. I feel low."


def test_history_is_trimmed_by_the_backends_token_count_oldest_first(services):
    dense = _register(services, DenseBackend("dense", replies=lambda m: REPLY))
    plain = _register(services, FakeBackend("plain", replies=lambda m: REPLY))  # no count_tokens
    sent = {}
    for backend in (dense, plain):
        sid = services.engine.start("act", backend.id)["id"]
        for i in range(12):
            list(services.engine.turn(sid, f"message {i} " + "word " * 100))
        sent[backend.id] = backend.calls[-1][0]
    messages = sent["dense"]
    system = messages[0]["content"]
    used = sum(len(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages[1:])
    assert used <= _budget(services, system)
    assert messages[1]["role"] == "user" and messages[-1]["content"].startswith("message 11")
    assert messages[1]["content"].startswith("message ") and not messages[1]["content"].startswith("message 0 ")
    # the character estimate (3 per token) would have kept about three times as many turns
    assert len(sent["plain"]) > 2 * len(messages) and sent["plain"][-1] == messages[-1]


def test_the_summary_falls_back_to_an_extract_when_the_last_message_does_not_fit(services):
    backend = _register(services, DenseBackend("dense", replies=lambda m: REPLY))
    sid = services.engine.start("cbt", "dense")["id"]
    list(services.engine.turn(sid, "7" * 5000))
    summary = services.engine.end(sid)
    assert summary.startswith("Session Summary: the client talked about: 777") and backend.calls == []


def test_the_real_backend_counts_tokens_as_its_prompt_does_real_model(services):
    """The embedded GGUF's count_tokens and the history the engine builds with it (tokenization
    only, no generation): a token-dense message is dropped so the next prompt fits the context."""
    from models.embedded import embedded_gguf_path
    from models.llama_cpp_backend import get_host
    backend = services.pool.get("default")  # a proxy: the model itself runs in the worker process
    host = get_host(embedded_gguf_path(), None, services.settings.n_ctx, services.settings.n_threads)
    digits = "0123456789" * 799
    assert backend.count_tokens(digits) == len(host.tokenize([{"role": "user", "content": digits}])) - \
        len(host.tokenize([{"role": "user", "content": ""}]))
    assert backend.count_tokens(digits) > services.settings.n_ctx
    sid = services.engine.start("act", "default")["id"]
    # the turns are written directly: nothing is generated here
    services.sessions.add_turn(sid, TurnRecord("patient", digits))
    services.sessions.add_turn(sid, TurnRecord("patient", "I had a calmer day today."))
    session = services.sessions.get(sid)
    entry = services.catalog.get("default")
    messages = services.engine._history(session, entry, reasoning=False, backend=backend)
    assert [m["role"] for m in messages] == ["system", "user"]
    tokens = host.tokenize(clean_messages(messages))
    s = services.settings
    assert len(tokens) + s.max_tokens + s.reasoning_budget <= s.n_ctx
