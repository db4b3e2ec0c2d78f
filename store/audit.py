"""Append-only audit trail: who did what to which record, and when.

Every value comes from somewhere we do not control (a typed username, a file path, an exception
message), so ``record`` cleans it first with ``clean_text``/``clean_detail``: lengths are capped
(a million-character username must not become a million-character row) and control characters are
written as visible ``\\uXXXX`` text, so a value cannot forge a new log line or reorder one on screen
with bidi controls.
"""
from __future__ import annotations

import json
import re
from typing import Any

from store.db import Store
from store.ids import new_id, utc_now
from vocabulary import EventKind

MAX_ACTOR = 64
MAX_ACTION = 64
MAX_TARGET = 4096  # targets include export file paths that erase reads back: PATH_MAX, not an id's size
MAX_DETAIL_STRING = 500
MAX_DETAIL_ITEMS = 50  # per list or dict: a huge list is cut, not stored whole
MAX_DETAIL_DEPTH = 4
MAX_DETAIL_JSON = 4000

# C0, DEL, C1, and the Unicode bidi controls (embeddings/overrides, isolates, marks, Arabic mark)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _escape(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


def clean_text(value: Any, limit: int) -> str:
    """``value`` as a string of at most about ``limit`` characters plus a ``…(+N chars)`` marker,
    with control and bidi characters escaped. Capped before escaping, so escaping never makes
    the work or the row unbounded (an escape is 6 characters)."""
    text = value if isinstance(value, str) else str(value)
    extra = len(text) - limit
    if extra > 0:
        text = text[:limit]
    text = _UNSAFE.sub(_escape, text)
    return f"{text}…(+{extra} chars)" if extra > 0 else text


def _clean_value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return clean_text(value, MAX_DETAIL_STRING)
    if depth >= MAX_DETAIL_DEPTH:
        return clean_text(value, MAX_DETAIL_STRING)
    if isinstance(value, dict):
        items = list(value.items())
        out = {clean_text(k, MAX_ACTOR): _clean_value(v, depth + 1) for k, v in items[:MAX_DETAIL_ITEMS]}
        if len(items) > MAX_DETAIL_ITEMS:
            out["…"] = f"+{len(items) - MAX_DETAIL_ITEMS} items"
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value) if not isinstance(value, (set, frozenset)) else sorted(value, key=str)
        out = [_clean_value(v, depth + 1) for v in items[:MAX_DETAIL_ITEMS]]
        if len(items) > MAX_DETAIL_ITEMS:
            out.append(f"…(+{len(items) - MAX_DETAIL_ITEMS} items)")
        return out
    return clean_text(value, MAX_DETAIL_STRING)  # what json.dumps(default=str) used to do


def clean_detail(detail: dict[str, Any]) -> str | None:
    """The detail as JSON of at most ``MAX_DETAIL_JSON`` characters (None when empty).

    Strings are capped and escaped one by one; if the whole is still too long it is replaced by
    one ``{"truncated": ...}`` object holding the start of the JSON, so the column stays valid JSON.
    """
    if not detail:
        return None
    text = json.dumps(_clean_value(detail, 0))
    if len(text) <= MAX_DETAIL_JSON:
        return text
    # The marker and JSON quoting of the prefix need room; escaping the prefix again can grow it,
    # so shrink until it fits (two passes at most in practice).
    room = MAX_DETAIL_JSON - 64
    while True:
        short = json.dumps({"truncated": f"{text[:room]}…(+{len(text) - room} chars)"})
        if len(short) <= MAX_DETAIL_JSON:
            return short
        room -= len(short) - MAX_DETAIL_JSON


class AuditLog:
    def __init__(self, store: Store):
        self.store = store

    def record(self, actor: str | None, action: EventKind | str, target: str | None = None, **detail: Any) -> str:
        """One audit row; ``action`` must be a ``vocabulary.EventKind`` (its member or its value)."""
        try:
            action = EventKind(action)
        except ValueError:
            raise ValueError(f"unknown audit event kind '{clean_text(action, MAX_ACTION)}': "
                             "add it to vocabulary.EventKind") from None
        row_id = new_id()
        with self.store.write() as db:
            db["audit"].insert({
                "id": row_id, "actor": clean_text(actor or "anonymous", MAX_ACTOR),
                "action": action.value,
                "target": None if target is None else clean_text(target, MAX_TARGET),
                "detail_json": clean_detail(detail),
                "created_utc": utc_now(),
            })
        return row_id

    def recent(self, limit: int = 100, action: str | None = None) -> list[dict]:
        where, args = ("action = ?", [action]) if action else (None, [])
        return list(self.store.db["audit"].rows_where(where, args, order_by="id desc", limit=limit))
