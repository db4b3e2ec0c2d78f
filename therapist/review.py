"""What a supervisor does to a live session: hold it, decide held drafts, write a reply.

Mixed into ``SessionEngine`` so that every turn, generated or written by a supervisor, is still
committed by the one engine; kept apart so the turn path stays readable.
"""
from __future__ import annotations

import re

from store.sessions import TurnRecord
from vocabulary import EventKind

# C0 controls but tab and newlines, DEL, and the bidi embeddings, overrides and isolates, which
# reorder what a supervisor reads ("\u202e" makes "gnitaeh" of a word). The plain direction
# marks (U+200E, U+200F, U+061C) stay: people typing right-to-left scripts use them.
CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


class TurnRejected(ValueError):
    """The input cannot start a turn; nothing was stored. The message is for the user."""


def clean_text(text: str | None, empty: str, broken: str) -> str:
    """Text with control characters removed and stripped, or TurnRejected(``empty``) when nothing
    is left and TurnRejected(``broken``) when it has no UTF-8 form (a lone surrogate from broken
    copy-paste), which the store could not save. Patient messages and supervisor replies share it."""
    if text is not None and not isinstance(text, str):
        raise TurnRejected("The message must be text.")
    text = CONTROL_CHARS.sub("", text or "").strip()
    if not text:
        raise TurnRejected(empty)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TurnRejected(broken) from None
    return text


ENDED = ("ended", "abandoned")


class ReviewActions:
    """Needs ``sessions``, ``drafts``, ``audit`` and ``settings`` from the engine."""

    def _open_session(self, session_id: str, message: str = "This session has ended.") -> dict:
        """The session, if turns may still be added to it."""
        session = self.sessions.get(session_id)
        if session["status"] in ENDED:
            raise TurnRejected(message)
        return session

    def set_hold(self, session_id: str, on: bool, actor: str | None) -> None:
        """Hold: replies wait as drafts for a supervisor. Release: replies go straight out again."""
        self._open_session(session_id)
        self.sessions.set_status(session_id, "hold" if on else "active")
        self.audit.record(actor, EventKind.SESSION_HOLD if on else "session.release", session_id)

    def decide_draft(self, draft_id: str, action: str, actor: str, text: str | None = None) -> dict | None:
        """approve | edit | replace | discard a held draft; returns the therapist turn sent, if any."""
        draft = self.drafts.get(draft_id)
        self._open_session(draft["session_id"])
        status = {"approve": "approved", "edit": "edited", "replace": "replaced", "discard": "discarded"}.get(action)
        if status is None:
            raise TurnRejected(f"Unknown action {action!r}.")
        final = draft["content"] if action == "approve" else None
        if action in ("edit", "replace"):
            final = self.clean_reply(text)
        row = None
        with self.sessions.store.write():  # the turn and the decision land together or not at all
            if final is not None:
                row = self.sessions.add_turn(draft["session_id"], TurnRecord(
                    "therapist", final, reasoning=draft["reasoning"] if action != "replace" else None,
                    model_id=draft["model_id"] if action == "approve" else "supervisor",
                    meta={"draft_id": draft_id, "review": status, "reviewed_by": actor}))
            self.drafts.mark(draft_id, status, actor, final, row["id"] if row else None)
        self.audit.record(actor, EventKind(f"draft.{status}"), draft["session_id"], draft=draft_id)
        return row

    def supervisor_reply(self, session_id: str, text: str | None, actor: str) -> dict:
        """A reply written by the supervisor, sent as the therapist's next turn."""
        self._open_session(session_id)
        final = self.clean_reply(text)
        pending = self.drafts.pending(session_id)
        if pending:
            return self.decide_draft(pending["id"], "replace", actor, final)
        row = self.sessions.add_turn(session_id, TurnRecord(
            "therapist", final, model_id="supervisor", meta={"review": "written", "reviewed_by": actor}))
        self.audit.record(actor, EventKind.SESSION_SUPERVISOR_REPLY, session_id, turn=row["id"])
        return row

    def clean_reply(self, text: str | None) -> str:
        text = clean_text(text, "The reply is empty.",
                          "The reply contains a broken character (invalid Unicode); please retype it.")
        if len(text) > self.settings.max_message_chars:
            raise TurnRejected(f"The reply is longer than {self.settings.max_message_chars:,} characters.")
        return text
