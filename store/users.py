"""Accounts and roles (patient, supervisor, admin), with passwords hashed by a slow KDF.

Passwords are hashed with scrypt from the standard library (memory-hard, salted per user) and
checked in constant time. ``authenticate`` runs exactly one scrypt per attempt whatever the outcome
(unknown user, disabled account, bad input, wrong or right password), so its timing does not say
which usernames exist. Throttling repeated failures is ``store.signin``'s job. Nothing here knows
about Gradio: the app asks ``authenticate`` (through ``store.signin.sign_in``).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading

from store.db import Store
from store.ids import new_id, utc_now

ROLES = ("patient", "supervisor", "admin")
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD = 8
MAX_CREDENTIAL = 1024  # longer input is refused unread: nobody types it, and it is only cost to hash


class UserError(ValueError):
    """A user operation cannot be done; the message says why."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)
    params = f"{_SCRYPT['n']}:{_SCRYPT['r']}:{_SCRYPT['p']}"
    return f"scrypt${params}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, params, salt_b64, digest_b64 = stored.split("$")
        n, r, p = (int(x) for x in params.split(":"))
    except (ValueError, AttributeError):
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest_b64)
    actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt_b64), n=n, r=r, p=p,
                            dklen=len(expected))
    return hmac.compare_digest(actual, expected)


_dummy_hash: str | None = None
_dummy_lock = threading.Lock()


def _dummy() -> str:
    """A real scrypt hash of a random secret, made once per process on first use (not at import,
    which would slow every CLI start), so unknown users cost one verify like known ones."""
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = hash_password(secrets.token_urlsafe(16))
        return _dummy_hash


def _usable(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_CREDENTIAL


class UserStore:
    def __init__(self, store: Store):
        self.store = store

    def add(self, username: str, password: str, role: str) -> dict:
        if not _USERNAME.match(username or ""):
            raise UserError("Usernames are 2-64 letters, digits or _ . @ -")
        if role not in ROLES:
            raise UserError(f"Role must be one of {', '.join(ROLES)}")
        if len(password or "") < MIN_PASSWORD:
            raise UserError(f"Passwords need at least {MIN_PASSWORD} characters")
        row = {"id": new_id(), "username": username, "password_hash": hash_password(password),
               "role": role, "disabled": 0, "created_utc": utc_now()}
        with self.store.write() as db:
            if db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
                raise UserError(f"User {username!r} already exists")
            db["users"].insert(row)
        return self.get(username)

    def get(self, username: str) -> dict:
        rows = list(self.store.db["users"].rows_where("username = ?", [username]))
        if not rows:
            raise UserError(f"No user {username!r}")
        return {k: v for k, v in rows[0].items() if k != "password_hash"}

    def list(self) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "password_hash"}
                for r in self.store.db["users"].rows_where(order_by="username")]

    def count(self) -> int:
        return self.store.db["users"].count

    def set_role(self, username: str, role: str) -> dict:
        if role not in ROLES:
            raise UserError(f"Role must be one of {', '.join(ROLES)}")
        return self._update(username, {"role": role})

    def set_disabled(self, username: str, disabled: bool) -> dict:
        return self._update(username, {"disabled": int(disabled)})

    def _update(self, username: str, values: dict) -> dict:
        user = self.get(username)
        with self.store.write() as db:
            db["users"].update(user["id"], values)
        return self.get(username)

    def authenticate(self, username: str, password: str) -> dict | None:
        """The user if the password matches and the account is enabled, else None.

        Exactly one scrypt in every case: the dummy hash stands in for a missing user or unusable
        input, and a disabled account is verified before it is refused.
        """
        dummy = _dummy()  # outside the timed part: the first call of a process makes it
        row = None
        if _usable(username) and _usable(password):
            rows = list(self.store.db["users"].rows_where("username = ?", [username]))
            row = rows[0] if rows else None
        stored = row["password_hash"] if row and row["password_hash"] else dummy
        ok = verify_password(password if _usable(password) else "", stored)
        if row is None or row["disabled"] or not ok:
            return None
        return {k: v for k, v in row.items() if k != "password_hash"}
