"""The session engine: the one place a therapy turn happens, for human and simulated patients.

A turn: validate the patient's text -> commit it -> screen it for risk -> build the therapist
prompt (as many recent turns as fit, counted in the model's tokens) -> stream from the chosen
backend, splitting reasoning from the answer and screening both for copied instructions
(therapist/leak_screen.py) as it arrives -> commit the therapist turn. Each commit is durable before the next step, so a crash loses at most
the reply that was still being generated, never an acknowledged turn.

A session on hold (a supervisor's choice, or high risk) still generates, but the reply is stored
as a draft that the patient does not see until a supervisor approves, edits or replaces it.
"""
from __future__ import annotations

import math
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

from config import Settings
from models.base import BackendError, GenParams, ModelStopped, coalesce
from models.catalog import Catalog, CatalogEntry, CatalogError
from models.pool import ModelPool
from store.audit import AuditLog
from store.consents import ConsentStore
from store.db import StoreError
from store.flags import FlagStore
from store.ids import utc_text
from store.sessions import SessionStore, TurnRecord
from store.supervision import DraftStore
from therapist import leak_screen, prompts
from therapist.consent import consent_text
from therapist.escalation import SAFETY_NOTE, Escalation, redacted_draft_reply, safe_reply
from therapist.reasoning import StreamSplitter, strip_reasoning
from therapist.review import ReviewActions, TurnRejected, clean_text
from vocabulary import EventKind, SESSION_MODALITIES

THINK_OPEN, THINK_CLOSE = "<think>\n", "</think>"
IDLE_SWEEP_S = 60.0  # how often the live lists may look for idle sessions
MIN_ANSWER_TOKENS = 4
CHARS_PER_TOKEN = 3.0  # conservative estimate for backends that cannot count their tokens
MESSAGE_OVERHEAD_TOKENS = 8  # chat-template markup around one message (ChatML needs 5)
CONTEXT_MARGIN_TOKENS = 64   # generation prompt, <think> tags, re-tokenized reasoning
# The most often a streaming reply is screened and shown: each screen re-normalises the whole answer
# so far (measured: 32 ms of CPU a turn per token on a 130 tokens/s CPU, 18 ms in 50 ms pieces).
# A reader cannot tell: the leak screen holds back the last eight words anyway.
COALESCE_S = 0.05


class ConsentRequired(TurnRejected):
    """No session starts before the patient has accepted the current consent text."""


class ContextOverflow(TurnRejected):
    """The latest message alone does not fit the model's context; nothing was generated."""


class NotSaved(TurnRejected):
    """The database refused the write (read-only, disk full...): nothing was stored."""

    def __init__(self, what: str, error: StoreError):
        super().__init__(f"{what} could not be saved ({error}). Nothing was stored; please try again in a "
                         "moment, and tell the study team if this keeps happening.")


@dataclass
class TurnEvent:
    kind: str                 # patient | flag | reasoning | answer | rewrite | done | held | error
    text: str = ""
    turn: dict | None = None  # the committed row for patient / done


@dataclass
class _Reply:
    reasoning: str = ""
    answer: str = ""
    ttft_ms: int | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    notes: dict = field(default_factory=dict)
    blocked: object = None  # the draft-screen verdict that stopped an unsafe answer


class _Shown:
    """What the reader has been shown of a streaming reply: only what the leak screen has settled
    (leak_screen.screen with final=False), so no part of a leaked span is ever streamed."""

    def __init__(self, ref: leak_screen.Reference):
        self.ref, self.reasoning, self.answer = ref, "", ""
        self._seen: dict[str, tuple[str, bool]] = {}  # channel -> last (raw text, final) screened

    def _changed(self, channel: str, raw: str, final: bool) -> bool:
        # Each phase streams one channel: the other one need not be screened again for every delta.
        changed = self._seen.get(channel) != (raw, final)
        self._seen[channel] = (raw, final)
        return changed

    def update(self, reasoning: str, answer: str, final: bool = False) -> Iterator[TurnEvent]:
        if self._changed("reasoning", reasoning, final):
            text = leak_screen.screen(reasoning, self.ref, final).text
            if text.startswith(self.reasoning) and text != self.reasoning:  # reasoning only grows
                yield TurnEvent("reasoning", text[len(self.reasoning):])
                self.reasoning = text
        if not self._changed("answer", answer, final):
            return
        text = leak_screen.screen(answer, self.ref, final).text
        if text != self.answer:
            # The answer shrinks when text shown as answer turns out to be reasoning: redraw it.
            grew = text.startswith(self.answer)
            yield TurnEvent("answer", text[len(self.answer):]) if grew else TurnEvent("rewrite", text)
            self.answer = text


def _token_counter(backend) -> Callable[[str], int]:
    """The backend's own token count where it has one, else a conservative character estimate."""
    if backend.capabilities.token_count:
        return backend.count_tokens
    return lambda text: math.ceil(len(text) / CHARS_PER_TOKEN)


def _recent_that_fit(convo: list[dict], budget: int, count: Callable[[str], int]) -> list[dict]:
    """The latest messages whose tokens fit ``budget`` (oldest dropped first), never starting with
    a therapist reply. The latest message always stays: if it alone does not fit, ContextOverflow."""
    kept, used = [], 0
    for message in reversed(convo):
        cost = count(message["content"]) + MESSAGE_OVERHEAD_TOKENS
        if used + cost > budget:
            if not kept:
                raise ContextOverflow(
                    f"The last message is too long for the therapist model's context: it needs about "
                    f"{cost:,} tokens and at most {max(budget, 0):,} fit beside the instructions and the "
                    "reply. Please send a shorter message, or split it into parts.")
            break
        kept.append(message)
        used += cost
    kept.reverse()
    while kept and kept[0]["role"] == "assistant":
        kept.pop(0)
    return kept


_SUMMARY_LABEL = re.compile(r"^\W*(?:(?:the\s+)?(?:session\s+)?summary(?:\s+of\s+the\s+session)?(?:\s+is)?)\W*?[:\-–]\s*\**\s*",
                            re.IGNORECASE)


def _without_summary_labels(text: str) -> str:
    """The summary without the labels a small model repeats ("Session Summary: The session summary
    is: Session Summary: ..."): one label is put back by the caller."""
    while True:
        stripped = _SUMMARY_LABEL.sub("", text, count=1).strip()
        if stripped == text or not stripped:
            return text
        text = stripped


class SessionEngine(ReviewActions):
    def __init__(self, settings: Settings, sessions: SessionStore, catalog: Catalog,
                 pool: ModelPool, audit: AuditLog, flags: FlagStore, drafts: DraftStore,
                 consents: ConsentStore):
        self.settings = settings
        self.sessions = sessions
        self.catalog = catalog
        self.pool = pool
        self.audit = audit
        self.drafts = drafts
        self.consents = consents
        self.consent = consent_text(settings)
        self.safety = Escalation(settings, sessions, flags, audit, pool)
        self._inflight: set[str] = set()  # sessions whose reply is being generated
        self._inflight_lock = threading.Lock()
        self._idle_checked = float("-inf")  # monotonic time of the last idle sweep

    # ----- consent --------------------------------------------------------------------------
    def needs_consent(self, user_id: str | None) -> bool:
        return not self.consents.has(user_id, self.consent.version, self.consent.sha256)

    def record_consent(self, user_id: str | None, actor: str | None) -> dict:
        row = self.consents.record(user_id, self.consent.version, self.consent.sha256)
        self.audit.record(actor, EventKind.CONSENT_GIVEN, user_id, version=self.consent.version,
                          text_sha256=self.consent.sha256)
        return row

    # ----- sessions -------------------------------------------------------------------------
    def start(self, modality: str, model_id: str, user_id: str | None = None,
              continue_from: str | None = None, actor: str | None = None, **extra) -> dict:
        """Open a session; ``continue_from`` makes it the next session of that CBT course."""
        if modality not in SESSION_MODALITIES:
            raise TurnRejected("Choose CBT or ACT.")
        if not extra.get("simulated") and self.needs_consent(user_id):
            raise ConsentRequired("Please read and accept the consent information before your first session.")
        try:
            entry = self.catalog.get(model_id)
        except CatalogError as exc:
            raise TurnRejected(str(exc)) from None
        course_id, index, summary = None, 1, None
        if continue_from:
            prev = self.sessions.get(continue_from)
            if prev["modality"] != "cbt" or modality != "cbt":
                raise TurnRejected("Only CBT sessions form a course. ACT sessions are single "
                                   "sessions: use New session.")
            if prev["status"] == "active" or not prev.get("summary"):
                summary = self.end(continue_from, actor=actor)
            else:
                summary = prev["summary"]
            course_id, index = prev["course_id"], prev["course_index"] + 1
        try:
            row = self.sessions.create(modality=modality, therapist_model=entry.id, reasoning=entry.thinks,
                                       adapter=entry.adapter, user_id=user_id, course_id=course_id,
                                       course_index=index, **extra)
        except StoreError as exc:
            raise NotSaved("The new session", exc) from exc
        if summary:
            self.sessions.add_turn(row["id"], TurnRecord(
                "system", f"Summary of session {index - 1}:\n{summary}"))
        self.audit.record(actor, EventKind.SESSION_START, row["id"], modality=modality, model=entry.id,
                          course_index=index)
        self.safety.carry_over(row)
        return self.sessions.get(row["id"])

    def end(self, session_id: str, actor: str | None = None) -> str | None:
        """Close a session; CBT sessions get a written summary that opens the next one.

        A session that already ended (or was abandoned) keeps its status, time and summary. A draft
        still waiting for review is withdrawn: nobody can send it once the session is over."""
        session = self.sessions.get(session_id)
        summary = session.get("summary")
        if session["modality"] == "cbt" and not summary:
            summary = self.summarize(session_id)
        if session["status"] in ("ended", "abandoned"):  # over already: only a missing summary is added
            if summary != session.get("summary"):
                self.sessions.set_summary(session_id, summary)
            return summary
        withdrawn = self.drafts.pending(session_id) is not None
        self.drafts.supersede(session_id)
        self.sessions.end(session_id, summary=summary)
        self.audit.record(actor, EventKind.SESSION_END, session_id, **({"draft_withdrawn": True} if withdrawn else {}))
        return summary

    def abandon_idle(self, every_s: float = IDLE_SWEEP_S) -> list[str]:
        """Mark people's sessions idle past ``session_idle_minutes`` abandoned (at most once per
        ``every_s``; 0 forces a sweep), so a tab closed mid-session leaves the live lists; a
        session whose reply is being written is never touched. Returns the ids it closed."""
        minutes = self.settings.session_idle_minutes
        now = time.monotonic()
        if not minutes or now - self._idle_checked < every_s:
            return []
        self._idle_checked = now
        cutoff = utc_text(datetime.now(timezone.utc) - timedelta(minutes=minutes))
        with self._inflight_lock:
            busy = set(self._inflight)
        closed = self.sessions.abandon_idle(cutoff, keep=busy)
        for session_id in closed:
            self.audit.record("system", EventKind.SESSION_ABANDONED, session_id, idle_minutes=minutes)
        return closed

    def summarize(self, session_id: str) -> str:
        """Ask the therapist model for the session summary; fall back to an extract on failure."""
        session = self.sessions.get(session_id)
        entry = self.catalog.get(session["therapist_model"])
        try:
            backend = self.pool.get(entry.id)
            messages = self._history(session, entry, reasoning=False, backend=backend)
            messages.append({"role": "user", "content": prompts.SUMMARY_INSTRUCTION})
            text = backend.stream(messages, self._params(max_tokens=220)).text().strip()
        except (BackendError, ContextOverflow):
            text = ""
        # The summary is stored and opens the next session's prompt: no copied instructions in it.
        text = leak_screen.screen(strip_reasoning(text), self._leak_reference(session, False)).text.strip()
        if not text:
            patient = [t["content"] for t in self.sessions.turns(session_id) if t["role"] == "patient"]
            text = "Session Summary: the client talked about: " + " / ".join(p[:120] for p in patient[-3:])
        return "Session Summary: " + _without_summary_labels(text)

    # ----- turns ----------------------------------------------------------------------------
    def clean_message(self, text: str | None) -> str:
        """Normalise patient text or refuse it with a message the patient can act on."""
        text = clean_text(text, "The message is empty. Please type something first.",
                          "The message contains a broken character (invalid Unicode) and could not be "
                          "sent. Please retype it, or paste it again from its source.")
        limit = self.settings.max_message_chars
        if len(text) > limit:
            raise TurnRejected(f"The message is {len(text):,} characters long; the limit is {limit:,}. "
                               "Please shorten it or send it in parts.")
        return text

    def turn(self, session_id: str, patient_text: str | None, actor: str | None = None,
             patient_meta: dict | None = None) -> Iterator[TurnEvent]:
        """Commit the patient's message, then stream and commit the therapist's reply.

        ``patient_meta`` is stored on the patient turn (a simulated patient's guard repairs)."""
        text = self.clean_message(patient_text)
        session = self._open_session(session_id, "This session has ended. Start a new session to continue.")
        self._claim(session_id)
        try:
            try:
                row = self.sessions.add_turn(session_id, TurnRecord("patient", text, meta=patient_meta))
            except StoreError as exc:  # read-only database, disk full: a message, not a crash
                raise NotSaved("Your message", exc) from exc
            # The safety screen runs on every patient turn, before anything is generated.
            assessment = self.safety.screen_patient(session, row)
            if assessment.escalate:  # includes every assessment that just put the session on hold
                relay = self._fixed_reply(session_id, safe_reply(assessment.categories, self.safety.resources),
                                          {"safe_reply": True, "risk_level": assessment.level,
                                           "risk_categories": list(assessment.categories)}, assessment.level)
            else:  # starts now, whoever keeps reading; on hold the reply becomes a draft
                relay = self._reply_in_background(session_id, held=session["status"] == "hold")
        except BaseException:
            self._release(session_id)
            raise
        yield TurnEvent("patient", text, row)
        yield from relay

    def reply(self, session_id: str) -> Iterator[TurnEvent]:
        """Generate the therapist's reply to the conversation as stored (Retry; a new draft on hold)."""
        status = self._open_session(session_id)["status"]
        self._claim(session_id)
        return self._reply_in_background(session_id, held=status == "hold")

    def _fixed_reply(self, session_id: str, text: str, meta: dict, flag_level: str | None = None) -> Iterator[TurnEvent]:
        """Commit a reply that is fixed text (safe reply, holding message), not generated."""
        try:
            row = self.sessions.add_turn(session_id, TurnRecord("therapist", text, model_id="safety", meta=meta))
        finally:
            self._release(session_id)
        events = [TurnEvent("flag", flag_level)] if flag_level else []
        return iter(events + [TurnEvent("answer", text), TurnEvent("done", text, row)])

    def replying(self, session_id: str) -> bool:
        with self._inflight_lock:
            return session_id in self._inflight

    def _claim(self, session_id: str) -> None:
        with self._inflight_lock:
            if session_id in self._inflight:
                raise TurnRejected("The therapist is still replying to the last message; wait for it.")
            self._inflight.add(session_id)

    def _release(self, session_id: str) -> None:
        with self._inflight_lock:
            self._inflight.discard(session_id)

    def _reply_in_background(self, session_id: str, held: bool = False) -> Iterator[TurnEvent]:
        """Run the reply in a worker thread and relay its events.

        The worker finishes and commits the reply even if the reader goes away (a closed browser
        tab, a dropped API client), so a reply that was being generated is never lost. A held
        reply is not streamed to the reader: only its outcome is.
        """
        events: queue.Queue[TurnEvent | None] = queue.Queue()
        relayed = ("flag", "held", "error") if held else None

        def work() -> None:
            try:
                for event in self._generate_reply(session_id, held):
                    if relayed is None or event.kind in relayed:
                        events.put(event)
            except Exception as exc:  # a store failure must reach the reader, not vanish
                events.put(TurnEvent("error", f"The reply could not be saved: {exc}"))
            finally:
                self._release(session_id)
                events.put(None)

        threading.Thread(target=work, name=f"reply-{session_id}", daemon=True).start()
        return iter(events.get, None)

    def _generate_reply(self, session_id: str, held: bool = False) -> Iterator[TurnEvent]:
        session = self.sessions.get(session_id)
        entry = self.catalog.get(session["therapist_model"])
        started = time.perf_counter()
        reply = _Reply()
        try:
            backend = self.pool.get(entry.id)
            messages = self._history(session, entry, reasoning=entry.thinks, backend=backend)
            ref = self._leak_reference(session, entry.thinks)
            limit = entry.max_tokens or self.settings.max_tokens
            yield from self._stream_reply(backend, messages, entry.thinks, reply, started, ref, limit)
        except (BackendError, ContextOverflow) as exc:
            self.audit.record(None, EventKind.TURN_ERROR, session_id, error=str(exc), model=entry.id)
            # A crashed model worker already says what happened and what to do (models/worker_client.py).
            yield TurnEvent("error", str(exc) if isinstance(exc, (ContextOverflow, ModelStopped))
                            else f"The therapist model failed: {exc}")
            return
        if "leak_screen" in reply.notes:  # the supervisor's record that instructions were redacted
            self.audit.record("system", EventKind.TURN_LEAK_SCREENED, session_id, model=entry.id, **reply.notes["leak_screen"])
        if not reply.answer.strip():
            self.audit.record(None, EventKind.TURN_EMPTY, session_id, model=entry.id)
            yield TurnEvent("error", "The therapist model returned an empty reply. Press Retry.")
            return
        if reply.blocked is not None:
            self.safety.flag_draft(session_id, reply.blocked, reply.notes["blocked_draft"])
            yield TurnEvent("flag", reply.blocked.level)
        if held:
            yield TurnEvent("held", reply.answer.strip(), self._hold_draft(session_id, entry, reply))
            return
        row = self.sessions.add_turn(session_id, TurnRecord(
            "therapist", reply.answer.strip(), reasoning=reply.reasoning.strip() or None,
            model_id=entry.id, adapter=entry.adapter,
            latency_ms=int((time.perf_counter() - started) * 1000), ttft_ms=reply.ttft_ms,
            tokens_in=reply.tokens_in, tokens_out=reply.tokens_out, meta=reply.notes or None))
        yield TurnEvent("done", row["content"], row)

    def _hold_draft(self, session_id: str, entry: CatalogEntry, reply: _Reply) -> dict:
        last = self.sessions.turns(session_id)[-1]
        draft = self.drafts.add(session_id, reply.answer.strip(), reply.reasoning.strip() or None, entry.id,
                                after_turn_id=last["id"], meta=reply.notes or None)
        self.audit.record("system", EventKind.DRAFT_HELD, session_id, draft=draft["id"])
        return draft

    def _stream_reply(self, backend, messages: list[dict], thinks: bool, reply: _Reply,
                      started: float, ref: leak_screen.Reference, max_tokens: int) -> Iterator[TurnEvent]:
        """Stream one reply; a reasoning model is made to open <think> and, if it runs past its
        budget, to close it, so there is always an answer after the reasoning. The reader sees
        only text the system-prompt leak screen (``ref``) has settled."""
        prefill = thinks and backend.capabilities.prefix
        splitter, shown = StreamSplitter(start_in_reasoning=prefill), _Shown(ref)
        phases = []
        if prefill:
            phases.append((THINK_OPEN, self._params(max_tokens=self.settings.reasoning_budget, stop=[THINK_CLOSE])))
        # min_tokens: a small model may otherwise end its turn at once, leaving no answer. After a
        # forced close, a model that goes on reasoning and closes again is cut at its tag: what it
        # wrote to the patient before the tag is the answer (no tag ever reaches the splitter).
        answer_stop = [THINK_CLOSE, THINK_OPEN.strip()] if prefill else []
        phases.append((None, self._params(max_tokens=max_tokens, min_tokens=MIN_ANSWER_TOKENS, stop=answer_stop)))
        for prefix_kind, params in phases:
            convo = list(messages)
            if prefill:
                prefix = THINK_OPEN if prefix_kind else f"{THINK_OPEN}{splitter.reasoning.strip()}\n{THINK_CLOSE}\n"
                convo.append({"role": "assistant", "content": prefix, "prefix": True})
            stream = backend.stream(convo, params)
            for delta in coalesce(stream, COALESCE_S):
                deltas = splitter.feed(delta)
                if deltas[1] and self._stop_unsafe_draft(splitter.answer, reply):
                    stream.close()  # the unsafe text is never shown
                    break
                yield from self._emit(deltas, splitter, shown, reply, started)
            reply.tokens_in += stream.usage.prompt_tokens
            reply.tokens_out += stream.usage.completion_tokens
            if reply.blocked is not None:
                break
            if prefix_kind:
                reply.notes["reasoning_finish"] = stream.usage.finish_reason
                yield from self._emit(splitter.feed(THINK_CLOSE + "\n"), splitter, shown, reply, started)
            elif stream.usage.finish_reason == "length":  # the patient is told the reply was cut
                reply.notes["truncated"] = {"max_tokens": max_tokens}
        if reply.blocked is None:
            yield from self._emit(splitter.finish(), splitter, shown, reply, started, final=True)
        yield from self._finish_reply(splitter, shown, reply, ref)

    def _finish_reply(self, splitter: StreamSplitter, shown: _Shown, reply: _Reply,
                      ref: leak_screen.Reference) -> Iterator[TurnEvent]:
        """Fill in the reply's final reasoning and answer, leak-screened; a draft the safety screen
        stopped is replaced by the safe reply. Redraws the answer where it differs from what was shown."""
        result = splitter.result()
        reasoning = leak_screen.screen(result.reasoning or "", ref)
        answer = leak_screen.screen_answer(result.answer, ref)
        reply.reasoning, reply.answer = reasoning.text, answer.text
        if reasoning.spans or answer.spans:  # counts only: the leaked text itself is not kept anywhere
            reply.notes["leak_screen"] = {"answer_spans": answer.spans, "reasoning_spans": reasoning.spans,
                                          "fallback": answer.fallback}
        if reply.blocked is not None:
            reply.notes["blocked_draft"] = leak_screen.screen(result.answer, ref).text
            reply.answer = redacted_draft_reply(self.safety.resources)
        if reply.answer.strip() != shown.answer.strip():  # a blocked draft, an answer that was mostly leak
            yield TurnEvent("rewrite", reply.answer)
        if result.status not in ("ok", "none"):
            reply.notes["reasoning_status"] = result.status

    def _stop_unsafe_draft(self, answer: str, reply: _Reply) -> bool:
        verdict = self.safety.draft_is_unsafe(answer)
        if verdict is not None:
            reply.blocked = verdict
        return verdict is not None

    def _emit(self, deltas: tuple[str, str], splitter: StreamSplitter, shown: _Shown, reply: _Reply,
              started: float, final: bool = False) -> Iterator[TurnEvent]:
        if any(deltas) and reply.ttft_ms is None:
            reply.ttft_ms = int((time.perf_counter() - started) * 1000)
        if splitter.retracted:  # text already shown as answer was reasoning; _Shown redraws it
            reply.notes["retracted"] = True
        yield from shown.update(splitter.reasoning, splitter.answer, final)

    # ----- prompt ---------------------------------------------------------------------------
    def _params(self, **overrides) -> GenParams:
        s = self.settings
        base = dict(max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p,
                    repeat_penalty=s.repeat_penalty)
        base.update(overrides)
        return GenParams(**base)

    def _previous_summary(self, session: dict) -> str | None:
        if session["course_index"] <= 1:
            return None
        course = self.sessions.course(session["course_id"])
        earlier = [s for s in course if s["course_index"] == session["course_index"] - 1]
        return earlier[0]["summary"] if earlier else None

    def _system_prompt(self, session: dict, reasoning: bool, with_summary: bool = True) -> str:
        previous = self._previous_summary(session) if with_summary else None
        system = prompts.system_prompt(session["modality"], reasoning, session["course_index"], previous)
        if self.safety.open_flags(session):
            system += "\n\n" + SAFETY_NOTE
        return system

    def _leak_reference(self, session: dict, reasoning: bool) -> leak_screen.Reference:
        """What the therapist must not copy: its instructions. The previous session's summary is
        left out (the therapist may quote it), and so is the AI disclosure it is told to give."""
        return leak_screen.reference(self._system_prompt(session, reasoning, with_summary=False),
                                     allowed=[prompts.AI_DISCLOSURE])

    def _history(self, session: dict, entry: CatalogEntry, reasoning: bool, backend=None) -> list[dict]:
        """System prompt plus as many recent turns as fit the context (answers only), counted with
        ``backend``'s tokenizer where it has one. ContextOverflow if the latest message alone
        does not fit."""
        system = self._system_prompt(session, reasoning)
        turns = [t for t in self.sessions.turns(session["id"]) if t["role"] in ("patient", "therapist")]
        convo = [{"role": "user" if t["role"] == "patient" else "assistant", "content": t["content"]}
                 for t in turns]
        count, s = _token_counter(backend), self.settings
        budget = (s.n_ctx - s.max_tokens - s.reasoning_budget - CONTEXT_MARGIN_TOKENS
                  - count(system) - MESSAGE_OVERHEAD_TOKENS)
        return [{"role": "system", "content": system}] + _recent_that_fit(convo, budget, count)
