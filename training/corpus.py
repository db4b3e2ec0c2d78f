"""The canonical transcript format every training step reads and writes (JSON Lines).

One line is one session::

    {"id": "act-01", "dataset": "seed", "synthetic": true, "modality": "act" | "cbt",
     "patient_id": "act-p01", "session_index": 1, "phase": null | "assessment" | ...,
     "persona": {...}, "previous_summary": null | "...", "summary": null | "...",
     "turns": [{"role": "patient", "content": "..."},
               {"role": "therapist", "content": "...", "reasoning": "..."}, ...]}

Turns alternate, the patient first, the therapist last. ``reasoning`` is the therapist's private
thinking for that answer (ACT); ``summary`` is a CBT session's summary, carried into the next
session as its ``previous_summary``. The seed corpus (``training/data/seed/*.jsonl``) was written
for this project and is synthetic; datagen appends new sessions in the same format.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from vocabulary import SESSION_MODALITIES

SEED_DIR = Path(__file__).resolve().parent / "data" / "seed"
MODALITIES = SESSION_MODALITIES
PHASES = ("assessment", "initial", "middle", "termination")


class CorpusError(ValueError):
    """A transcript file or record is malformed; the message names the file, line and problem."""


@dataclass
class Turn:
    role: str
    content: str
    reasoning: str | None = None


@dataclass
class Transcript:
    id: str
    modality: str
    patient_id: str
    turns: list[Turn]
    session_index: int = 1
    phase: str | None = None
    persona: dict = field(default_factory=dict)
    previous_summary: str | None = None
    summary: str | None = None
    dataset: str = "seed"
    synthetic: bool = True

    def to_json(self) -> str:
        data = asdict(self)
        data["turns"] = [{k: v for k, v in t.items() if v is not None} for t in data["turns"]]
        return json.dumps(data, ensure_ascii=False)

    @property
    def therapist_turns(self) -> list[Turn]:
        return [t for t in self.turns if t.role == "therapist"]


def _text(value, where: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CorpusError(f"{where}: expected non-empty text")
    return value.strip()


def _turns(raw, where: str) -> list[Turn]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise CorpusError(f"{where}: 'turns' must be a list of at least two turns")
    turns = []
    for i, item in enumerate(raw):
        here = f"{where}, turn {i + 1}"
        if not isinstance(item, dict) or item.get("role") not in ("patient", "therapist"):
            raise CorpusError(f"{here}: each turn needs a role of patient or therapist")
        expected = "patient" if i % 2 == 0 else "therapist"
        if item["role"] != expected:
            raise CorpusError(f"{here}: turns must alternate starting with the patient; expected {expected}")
        unknown = set(item) - {"role", "content", "reasoning"}
        if unknown:
            raise CorpusError(f"{here}: unknown key(s) {sorted(unknown)}")
        reasoning = _text(item.get("reasoning"), f"{here} reasoning", optional=True)
        if reasoning and item["role"] != "therapist":
            raise CorpusError(f"{here}: only therapist turns carry reasoning")
        turns.append(Turn(item["role"], _text(item.get("content"), f"{here} content"), reasoning))
    if turns[-1].role != "therapist":
        raise CorpusError(f"{where}: the last turn must be the therapist's")
    return turns


def parse_record(obj, where: str) -> Transcript:
    """A validated Transcript from one decoded JSON line."""
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: a line must hold a JSON object")
    known = {"id", "dataset", "synthetic", "modality", "patient_id", "session_index", "phase", "persona",
             "previous_summary", "turns", "summary"}
    unknown = set(obj) - known
    if unknown:
        raise CorpusError(f"{where}: unknown key(s) {sorted(unknown)}")
    if obj.get("modality") not in MODALITIES:
        raise CorpusError(f"{where}: modality must be one of {MODALITIES}")
    if obj.get("phase") is not None and obj["phase"] not in PHASES:
        raise CorpusError(f"{where}: phase must be one of {PHASES} or null")
    index = obj.get("session_index", 1)
    if not isinstance(index, int) or isinstance(index, bool) or index < 1:
        raise CorpusError(f"{where}: session_index must be a whole number from 1")
    if not isinstance(obj.get("persona", {}), dict):
        raise CorpusError(f"{where}: persona must be an object")
    return Transcript(
        id=_text(obj.get("id"), f"{where} id"), modality=obj["modality"],
        patient_id=_text(obj.get("patient_id"), f"{where} patient_id"),
        turns=_turns(obj.get("turns"), where), session_index=index, phase=obj.get("phase"),
        persona=obj.get("persona") or {}, previous_summary=_text(obj.get("previous_summary"), where, True),
        summary=_text(obj.get("summary"), f"{where} summary", True), dataset=obj.get("dataset") or "seed",
        synthetic=bool(obj.get("synthetic", True)))


def load_file(path: Path) -> list[Transcript]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read: {exc}") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{number}: not JSON ({exc.msg})") from None
        out.append(parse_record(obj, f"{path}:{number}"))
    return out


def load_corpus(paths: Iterable[str | Path]) -> list[Transcript]:
    """Every transcript of the files (a directory means its ``*.jsonl``); ids must be unique."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("*.jsonl"))
        elif p.is_file():
            files.append(p)
        else:
            raise CorpusError(f"{p}: no such file or directory")
    transcripts, seen = [], {}
    for f in files:
        for t in load_file(f):
            if t.id in seen:
                raise CorpusError(f"{f}: transcript id {t.id!r} already in {seen[t.id]}")
            seen[t.id] = f
            transcripts.append(t)
    if not transcripts:
        raise CorpusError("no transcripts found in " + ", ".join(map(str, paths)))
    return transcripts


def seed_corpus(modality: str | None = None) -> list[Transcript]:
    transcripts = load_corpus([SEED_DIR])
    return [t for t in transcripts if modality in (None, t.modality)]


def corpus_sha256(transcripts: Iterable[Transcript]) -> str:
    digest = hashlib.sha256()
    for t in sorted(transcripts, key=lambda t: t.id):
        digest.update(t.to_json().encode("utf-8") + b"\n")
    return digest.hexdigest()


def append_transcript(path: str | Path, transcript: Transcript) -> None:
    """Append one session and fsync it, so a resumable writer never loses a finished session."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(transcript.to_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
