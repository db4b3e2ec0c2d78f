"""Identifiers and timestamps used in every table: ULIDs and UTC ISO-8601 strings."""
from __future__ import annotations

from datetime import datetime, timezone

from ulid import ULID


def new_id() -> str:
    """A sortable unique id (ULID) as text."""
    return str(ULID())


def utc_now() -> str:
    """Current UTC time, ISO-8601 with milliseconds and a Z."""
    return utc_text(datetime.now(timezone.utc))


def utc_text(moment: datetime) -> str:
    """An aware datetime as the tables store times: UTC ISO-8601 with milliseconds and a Z."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
