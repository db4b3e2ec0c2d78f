"""Labelled patient messages for the risk screen: one loader for every TSV the project keeps.

Two layouts: the rules' hand-written corpus (``level, categories, text``) and the learned layer's
data (``level, categories, lang, kind, context, text``; ``context`` is the session's earlier patient
turns joined with `` || ``). Training data lives in ``therapist/safety/data/``; the frozen test
split in ``tests/therapist/data/`` is read only to report on it, never to train or tune.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from therapist.safety.levels import CATEGORIES, LEVELS

DATA_DIR = Path(__file__).resolve().parent / "data"
FULL_HEADER = ["level", "categories", "lang", "kind", "context", "text"]
SHORT_HEADER = ["level", "categories", "text"]


class CorpusError(ValueError):
    """A corpus file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Row:
    level: str
    categories: tuple[str, ...]
    text: str
    lang: str = "en"
    kind: str = ""
    context: tuple[str, ...] = field(default_factory=tuple)
    source: str = ""

    @property
    def at_risk(self) -> bool:
        return self.level != "none" or bool(self.categories)


def _row(parts: list[str], header: list[str], where: str) -> Row:
    values = dict(zip(header, parts))
    level = values["level"].strip()
    cats = tuple(c.strip() for c in values["categories"].split(",") if c.strip())
    text = values["text"].strip()
    if level not in LEVELS or not text or any(c not in CATEGORIES for c in cats):
        raise CorpusError(f"{where}: bad row (level {level!r}, categories {cats}, text {text[:40]!r})")
    context = tuple(c.strip() for c in values.get("context", "").split(" || ") if c.strip())
    return Row(level, cats, text, values.get("lang", "en").strip() or "en", values.get("kind", "").strip(),
               context, where.rsplit(":", 1)[0])


def load(path: Path) -> list[Row]:
    """Every row of one TSV file, checked."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header not in (FULL_HEADER, SHORT_HEADER):
            raise CorpusError(f"{path}: unknown header {header}")
        for n, line in enumerate(fh, start=2):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != len(header):
                raise CorpusError(f"{path}:{n}: {len(parts)} fields, expected {len(header)}")
            rows.append(_row(parts, header, f"{path.name}:{n}"))
    return rows


def load_all(paths) -> list[Row]:
    rows: list[Row] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for path in paths:
        for row in load(Path(path)):
            key = (row.text.lower(), row.context)
            if key not in seen:  # the same message twice would sit on both sides of a split
                seen.add(key)
                rows.append(row)
    return rows


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
