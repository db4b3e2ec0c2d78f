"""Personas: the people simulated patients play, one row each, identified by ``profile_hash``.

The store knows personas only as records (plain dicts with at least ``id``, ``name``,
``modality``, ``style``, ``profile_hash`` and ``source``); the whole record is kept as JSON in
``profile_json`` so nothing the persona carries is lost. ``patient_sim`` owns the ``Persona``
class and passes its converter (``decode``) and its shipped library (``library``) in, so the
dependency runs patient_sim -> store only. ``patient_sim.personas.persona_store(store)`` builds
one wired that way.

Storing is idempotent by ``profile_hash``: the same person imported twice is one row. The table
has no unique index on it, so the check runs inside the write transaction (``BEGIN IMMEDIATE``
holds the write lock, so two writers cannot both miss and both insert).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Callable, Iterable

from store.db import Store
from store.ids import utc_now

log = logging.getLogger(__name__)

_COLUMNS = ("id", "name", "modality", "archetype", "style", "profile_hash", "source")
_REQUIRED = ("id", "name", "modality", "style", "profile_hash", "source")


class PersonaNotFound(KeyError):
    pass


class PersonaStoreError(ValueError):
    """A persona record cannot be stored as given (missing fields, an id reused for another person)."""


def to_record(persona: Any) -> dict:
    """A plain dict from a record, an object with ``to_dict()``, or a dataclass."""
    if isinstance(persona, dict):
        return dict(persona)
    if hasattr(persona, "to_dict"):
        return dict(persona.to_dict())
    if dataclasses.is_dataclass(persona) and not isinstance(persona, type):
        return dataclasses.asdict(persona)
    raise PersonaStoreError(f"cannot store a {type(persona).__name__} as a persona")


class PersonaStore:
    def __init__(self, store: Store, *, decode: Callable[[dict], Any] | None = None,
                 library: Callable[[], Iterable[Any]] | None = None):
        self.store = store
        self.decode = decode or (lambda record: record)
        self.library = library

    # -- writes -----------------------------------------------------------------------------

    def upsert(self, persona: Any) -> tuple[dict, bool]:
        """Store a persona unless the same person (profile_hash) is there; return (row, created)."""
        record = self._checked(persona)
        with self.store.write() as db:
            return self._upsert_in(db, record)

    def upsert_many(self, personas: Iterable[Any]) -> tuple[int, int]:
        """Store several in one transaction (all or nothing); return (created, skipped)."""
        records = [self._checked(p) for p in personas]  # validate all before writing any
        created = skipped = 0
        with self.store.write() as db:
            for record in records:
                _, new = self._upsert_in(db, record)
                created, skipped = created + new, skipped + (not new)
        return created, skipped

    def ensure_library(self, personas: Iterable[Any] | None = None) -> int:
        """Insert the shipped personas that are missing; return how many were added.

        A shipped persona whose id is stored for a different profile (it was edited without a new
        id) is skipped with a warning rather than failing the app's start: the stored version is the
        one earlier sessions used, so it stays.
        """
        if personas is None:
            if self.library is None:
                raise PersonaStoreError("no persona library was given to this PersonaStore")
            personas = self.library()
        records = [self._checked(p) for p in personas]
        created, stale = 0, []
        with self.store.write() as db:
            for record in records:
                if self._id_taken_by_other(db, record):
                    stale.append(record["id"])
                    continue
                created += self._upsert_in(db, record)[1]
        if stale:
            log.warning("shipped personas %s differ from the stored ones with the same id; the stored ones "
                        "are kept (give an edited persona a new id)", ", ".join(stale))
        return created

    @staticmethod
    def _id_taken_by_other(db, record: dict) -> bool:
        row = db.execute("SELECT profile_hash FROM personas WHERE id = ?", [record["id"]]).fetchone()
        return bool(row) and row[0] != record["profile_hash"]

    def _upsert_in(self, db, record: dict) -> tuple[dict, bool]:
        existing = db.execute("SELECT * FROM personas WHERE profile_hash = ? ORDER BY created_utc LIMIT 1",
                              [record["profile_hash"]]).fetchone()
        if existing:
            return self._row(db, existing), False
        if db.execute("SELECT 1 FROM personas WHERE id = ?", [record["id"]]).fetchone():
            # Sessions point at persona ids: an id must keep meaning the same person forever.
            # An edited library persona needs a new id.
            raise PersonaStoreError(f"persona id {record['id']!r} is already stored for a different "
                                    "profile; give the changed persona a new id")
        row = {key: record.get(key) for key in _COLUMNS}
        row["profile_json"] = json.dumps(record, ensure_ascii=False, sort_keys=True)
        row["created_utc"] = utc_now()
        db["personas"].insert(row)
        return row, True

    @staticmethod
    def _row(db, values: tuple) -> dict:
        names = [d[0] for d in db.execute("SELECT * FROM personas LIMIT 0").description]
        return dict(zip(names, values))

    @staticmethod
    def _checked(persona: Any) -> dict:
        record = to_record(persona)
        missing = [key for key in _REQUIRED if not record.get(key)]
        if missing:
            raise PersonaStoreError(f"persona {record.get('id', '?')!r} lacks {', '.join(missing)}")
        return record

    # -- reads ------------------------------------------------------------------------------

    def get(self, persona_id: str) -> Any:
        rows = list(self.store.db["personas"].rows_where("id = ?", [persona_id]))
        if not rows:
            raise PersonaNotFound(persona_id)
        return self._decode(rows[0])

    def get_row(self, persona_id: str) -> dict:
        rows = list(self.store.db["personas"].rows_where("id = ?", [persona_id]))
        if not rows:
            raise PersonaNotFound(persona_id)
        return rows[0]

    def list(self, modality: str | None = None, source: str | None = None) -> list[Any]:
        """Stored personas in id order, optionally only one modality and/or source."""
        where, args = [], []
        for column, value in (("modality", modality), ("source", source)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        rows = self.store.db["personas"].rows_where(" AND ".join(where) or None, args, order_by="id")
        return [self._decode(row) for row in rows]

    def _decode(self, row: dict) -> Any:
        return self.decode(json.loads(row["profile_json"]))
