"""Accounts and roles (patient, supervisor, admin), with passwords hashed by a slow KDF.

Passwords are hashed with scrypt from the standard library (memory-hard, salted per user) and
checked in constant time. Nothing here knows about Gradio: the app asks ``authenticate``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from store.db import Store
from store.ids import new_id, utc_now

ROLES = ("patient", "supervisor", "admin")
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD = 8


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
        """The user if the password matches and the account is enabled, else None."""
        rows = list(self.store.db["users"].rows_where("username = ?", [username or ""]))
        if not rows:
            verify_password(password or "", hash_password("timing-equaliser"))  # same cost either way
            return None
        row = rows[0]
        if row["disabled"] or not verify_password(password or "", row["password_hash"]):
            return None
        return {k: v for k, v in row.items() if k != "password_hash"}
