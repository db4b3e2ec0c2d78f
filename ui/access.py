"""Who is calling, and may they: the server-side role check every UI handler starts with.

Hiding a tab is not a control: a client can call any endpoint directly. So each handler asks
``Access`` for the caller (from Gradio's signed-in username), and a refused call raises an error
for the client and leaves an ``access.denied`` row in the audit log.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import gradio as gr

from services import Services
from store.signin import SignInThrottle, sign_in
from store.users import UserError
from ui.guard import CLIENT_ADDRESS
from vocabulary import EventKind

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
NOT_YOURS = "This is not your session, or it does not exist."


class Access:
    def __init__(self, services: Services, throttle: SignInThrottle | None = None):
        self.services = services
        self.audit = services.audit
        self.throttle = throttle or SignInThrottle()

    async def login(self, username: str, password: str) -> bool:
        """Gradio's auth callable: throttled per username and per client address (which the
        same-origin guard puts in ``CLIENT_ADDRESS``), one key derivation whatever the outcome,
        and every attempt in the audit log (store/signin.py). The key derivation runs in a thread
        so a sign-in does not stall every other request on the event loop."""
        result = await asyncio.to_thread(sign_in, self.services.users, self.throttle, self.audit,
                                         username, password, CLIENT_ADDRESS.get())
        return result.ok

    def who(self, request: gr.Request | None, action: str = "app") -> Principal:
        if not self.services.sign_in:
            return RESEARCHER
        username = getattr(request, "username", None) if request is not None else None
        try:
            user = self.services.users.get(username) if username else None
        except UserError:
            user = None
        if user is None or user["disabled"]:
            self.audit.record(username or "anonymous", EventKind.ACCESS_DENIED, None, endpoint=action,
                              reason="not signed in or account disabled")
            raise gr.Error("Please sign in again: this account is not active.")
        return Principal(user["username"], user["id"], user["role"])

    def require(self, request: gr.Request | None, roles: tuple[str, ...], action: str,
                target: str | None = None) -> Principal:
        who = self.who(request, action)
        if who.role not in roles:
            self.audit.record(who.username, EventKind.ACCESS_DENIED, target, endpoint=action, role=who.role)
            raise gr.Error(f"Your role ({who.role}) may not do this.")
        return who

    def session_for(self, request: gr.Request | None, session_id: str, action: str) -> tuple[Principal, dict]:
        """The caller and the session, if they may act on it: its patient, or a supervisor."""
        from store.sessions import SessionNotFound
        who = self.who(request, action)
        try:
            session = self.services.sessions.get(session_id)
        except SessionNotFound:
            session = None
        if session is None or (not who.supervises and session["user_id"] != who.user_id):
            # One answer for "no such session" and "someone else's", so a caller cannot probe ids.
            self.audit.record(who.username, EventKind.ACCESS_DENIED, str(session_id), endpoint=action, role=who.role,
                              reason="unknown session" if session is None else "not this user's session")
            raise gr.Error(NOT_YOURS)
        return who, session

    def record_read(self, who: Principal, session: dict) -> None:
        """Audit a transcript read by someone other than its patient (simulations have none)."""
        if session["user_id"] != who.user_id and not session["simulated"]:
            self.audit.record(who.username, EventKind.SESSION_READ, session["id"])
