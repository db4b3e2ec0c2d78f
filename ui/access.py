"""Who is calling, and may they: the server-side role check every UI handler starts with.

Hiding a tab is not a control: a client can call any endpoint directly. So each handler asks
``Access`` for the caller (from Gradio's signed-in username), and a refused call raises an error
for the client and leaves an ``access.denied`` row in the audit log.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from services import Services
from store.users import UserError

SUPERVISORS = ("supervisor", "admin")
EVERYONE = ("patient", "supervisor", "admin")


@dataclass(frozen=True)
class Principal:
    username: str
    user_id: str | None  # None for the single researcher (no accounts)
    role: str

    @property
    def supervises(self) -> bool:
        return self.role in SUPERVISORS


RESEARCHER = Principal("researcher", None, "admin")


class Access:
    def __init__(self, services: Services):
        self.services = services
        self.audit = services.audit

    def login(self, username: str, password: str) -> bool:
        """Gradio's auth callable: every attempt, good or bad, is in the audit log."""
        user = self.services.users.authenticate(username, password)
        self.audit.record(username or "anonymous", "auth.login" if user else "auth.login_failed", None)
        return user is not None

    def who(self, request: gr.Request | None, action: str = "app") -> Principal:
        if not self.services.sign_in:
            return RESEARCHER
        username = getattr(request, "username", None) if request is not None else None
        try:
            user = self.services.users.get(username) if username else None
        except UserError:
            user = None
        if user is None or user["disabled"]:
            self.audit.record(username or "anonymous", "access.denied", None, endpoint=action,
                              reason="not signed in or account disabled")
            raise gr.Error("Please sign in again: this account is not active.")
        return Principal(user["username"], user["id"], user["role"])

    def require(self, request: gr.Request | None, roles: tuple[str, ...], action: str,
                target: str | None = None) -> Principal:
        who = self.who(request, action)
        if who.role not in roles:
            self.audit.record(who.username, "access.denied", target, endpoint=action, role=who.role)
            raise gr.Error(f"Your role ({who.role}) may not do this.")
        return who

    def session_for(self, request: gr.Request | None, session_id: str, action: str) -> tuple[Principal, dict]:
        """The caller and the session, if they may act on it: its patient, or a supervisor."""
        from store.sessions import SessionNotFound
        who = self.who(request, action)
        try:
            session = self.services.sessions.get(session_id)
        except SessionNotFound:
            raise gr.Error("Unknown session.") from None
        if not who.supervises and session["user_id"] != who.user_id:
            self.audit.record(who.username, "access.denied", session_id, endpoint=action, role=who.role,
                              reason="not this user's session")
            raise gr.Error("This is not your session.")
        return who, session

    def record_read(self, who: Principal, session: dict) -> None:
        """Audit a transcript read by someone other than its patient (simulations have none)."""
        if session["user_id"] != who.user_id and not session["simulated"]:
            self.audit.record(who.username, "session.read", session["id"])
