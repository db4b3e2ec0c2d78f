"""Append-only audit trail: who did what to which record, and when."""
from __future__ import annotations

import json
from typing import Any

from store.db import Store
from store.ids import new_id, utc_now


class AuditLog:
    def __init__(self, store: Store):
        self.store = store

    def record(self, actor: str | None, action: str, target: str | None = None, **detail: Any) -> str:
        row_id = new_id()
        with self.store.write() as db:
            db["audit"].insert({
                "id": row_id, "actor": actor or "anonymous", "action": action, "target": target,
                "detail_json": json.dumps(detail, default=str) if detail else None,
                "created_utc": utc_now(),
            })
        return row_id

    def recent(self, limit: int = 100, action: str | None = None) -> list[dict]:
        where, args = ("action = ?", [action]) if action else (None, [])
        return list(self.store.db["audit"].rows_where(where, args, order_by="id desc", limit=limit))
