"""Consent rows: who accepted which version of the consent text, and when.

A row names the version and the SHA-256 of the exact text shown. Without accounts (single-researcher
mode) the researcher's consent is stored with no user id.
"""
from __future__ import annotations

from store.db import Store
from store.ids import new_id, utc_now


class ConsentStore:
    def __init__(self, store: Store):
        self.store = store

    def record(self, user_id: str | None, version: str, text_sha256: str) -> dict:
        row = {"id": new_id(), "user_id": user_id, "version": version, "text_sha256": text_sha256,
               "created_utc": utc_now()}
        with self.store.write() as db:
            db["consents"].insert(row)
        return row

    def has(self, user_id: str | None, version: str, text_sha256: str) -> bool:
        who = "user_id IS NULL" if user_id is None else "user_id = ?"
        args = [] if user_id is None else [user_id]
        row = self.store.db.execute(
            f"SELECT 1 FROM consents WHERE {who} AND version = ? AND text_sha256 = ? LIMIT 1",
            [*args, version, text_sha256]).fetchone()
        return row is not None
