"""Identifiers and timestamps used in every table: ULIDs and UTC ISO-8601 strings."""
from __future__ import annotations

from datetime import datetime, timezone

from ulid import ULID


def new_id() -> str:
    """A sortable unique id (ULID) as text."""
    return str(ULID())


def utc_now() -> str:
    """Current UTC time, ISO-8601 with milliseconds and a Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
