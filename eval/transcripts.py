"""Import plain-text therapy transcripts made elsewhere, so they can be judged and analysed.

Transcripts released with published studies (or written by hand) are stored as ended sessions
of a study and variant, exactly like simulated ones, so the judge, ratings and exports treat
them the same way. ``python -m eval import-transcripts DIR --study NAME --variant NAME``.

File format (UTF-8 text; a byte-order mark and Windows line endings are fine)::

    Patient: I keep replaying the argument with my sister.

    Therapist Thinking: Fusion with the story; try noticing it rather than solving it.

    Therapist: It sounds like your mind keeps pulling you back there.
    What do you notice when it does?

    Patient: Mostly that I feel tense.

    And tired, honestly.

    **Therapist:** <think>Validate first.</think>Tense and tired. That makes sense.

* A turn is a block of lines, usually separated from the next by blank lines. It starts
  with a speaker label followed by a colon: ``Patient:`` or ``Client:`` for the patient,
  ``Therapist:``, ``Counselor:`` or ``Counsellor:`` for the therapist. Labels are
  case-insensitive and may be in markdown bold (``**Therapist:**`` or ``**Therapist**:``).
  The text may start on the label's line or on the lines below it.
* A label at the start of any line starts a new turn, so files without blank lines between
  turns read right too; a paragraph without a label continues the previous turn. A line such
  as ``Narrator:`` or ``Note:`` is not a label, just text.
* Reasoning for a therapist turn is written either as a ``Therapist Thinking:`` block (any
  therapist label + ``Thinking``), which belongs to the next Therapist turn, or as
  ``<think>...</think>`` inside the therapist turn, which is taken out of the turn's text.
  Both may be used; the reasoning parts are joined.
* A file is refused (with its name and, where it helps, a line number) if it is not UTF-8,
  is empty, has text before the first label, has a turn with no text, has a Thinking block
  not followed by a Therapist turn, has an unclosed ``<think>`` or a stray ``</think>``, or
  lacks either a Patient or a Therapist turn.

A directory imports every ``*.txt`` and ``*.md`` file directly in it, sorted by name, except
hidden files and ``README.*``; a single file path is imported whatever its extension.

Every file is parsed before anything is stored. Unless ``skip_bad`` is set, one bad file
stops the whole import and nothing is stored; all sessions, turns and the audit row are then
written in one transaction. A session's ``sim_key`` is ``import:<sha256 of the file>``, so a
file already imported into the study is skipped, which makes re-running an import safe.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from store.audit import AuditLog
from store.db import Store
from store.ids import new_id, utc_now
from store.sessions import SessionStore
from vocabulary import EventKind, SESSION_MODALITIES

MODALITIES = SESSION_MODALITIES
SUFFIXES = (".txt", ".md")
ROLE_OF = {"patient": "patient", "client": "patient",
           "therapist": "therapist", "counselor": "therapist", "counsellor": "therapist"}

_WHO = r"(?P<who>patient|client|therapist|counsell?or)(?:\s+(?P<thinking>thinking))?"
# Three spellings of a label; a bold marker after the colon is only eaten when it closes
# one opened before the label, so "Patient: **really** bad" keeps its own bold text.
_LABELS = [re.compile(p, re.IGNORECASE) for p in (
    rf"^\s*(?P<b>\*\*|__){_WHO}\s*:\s*(?P=b)(?P<rest>.*)$",
    rf"^\s*(?P<b>\*\*|__){_WHO}\s*(?P=b)\s*:(?P<rest>.*)$",
    rf"^\s*{_WHO}\s*:(?P<rest>.*)$",
)]
_THINK = re.compile(r"<think>(.*?)</think>", re.IGNORECASE | re.DOTALL)


class TranscriptImportError(ValueError):
    """The import cannot go ahead; nothing was stored."""


class TranscriptFormatError(ValueError):
    """One transcript breaks the format; ``line`` is 1-based, or None for the whole file."""

    def __init__(self, problem: str, line: int | None = None):
        self.problem, self.line = problem, line
        super().__init__(f"line {line}: {problem}" if line else problem)


@dataclass
class ParsedTurn:
    role: str                      # patient | therapist
    content: str
    reasoning: str | None = None
    line: int = 0                  # where the turn's label is, for tracing back to the file


@dataclass
class Transcript:
    name: str
    sha256: str
    turns: list[ParsedTurn]


@dataclass
class ImportSummary:
    imported: list = field(default_factory=list)   # (file, session_id, n_turns)
    skipped: list = field(default_factory=list)    # files already imported into the study
    bad: list = field(default_factory=list)        # (file, problem)

    def line(self) -> str:
        n_turns = sum(n for _, _, n in self.imported)
        return (f"imported {len(self.imported)} transcripts ({n_turns} turns), "
                f"skipped {len(self.skipped)} already imported, {len(self.bad)} bad")


@dataclass
class _Block:
    """A turn being assembled: its lines, with the file line of each (None between blocks)."""
    role: str
    thinking: bool
    line: int
    lines: list = field(default_factory=list)
    line_nos: list = field(default_factory=list)

    def add(self, text: str, line_no: int | None) -> None:
        self.lines.append(text)
        self.line_nos.append(line_no)

    def text(self) -> str:
        return "\n".join(self.lines).strip()


def _label(line: str) -> tuple[str, bool, str] | None:
    """(role, is_thinking, rest of the line) if the line starts with a known label."""
    for pattern in _LABELS:
        m = pattern.match(line)
        if m:
            role = ROLE_OF[m["who"].lower()]
            if m["thinking"] and role != "therapist":
                return None  # "Patient Thinking:" is not a label we know: plain text
            return role, bool(m["thinking"]), m["rest"].strip()
    return None


def _paragraphs(text: str) -> list[tuple[int, list[str]]]:
    """Blank-line separated blocks as (first line number, lines)."""
    blocks, current, start = [], [], 0
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not current:
                start = number
            current.append(line.rstrip())
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _blocks(text: str) -> list[_Block]:
    """Group lines into labelled blocks: a label at the start of any line starts a new turn (so
    files without blank lines between turns read right); an unlabelled paragraph continues the
    previous turn."""
    out: list[_Block] = []
    for start, lines in _paragraphs(text):
        for offset, line in enumerate(lines):
            label = _label(line)
            if label:
                role, thinking, rest = label
                out.append(_Block(role, thinking, start + offset))
                out[-1].add(rest, start + offset)
            elif not out:
                raise TranscriptFormatError("text before the first speaker label "
                                            "(expected 'Patient:' or 'Therapist:')", start)
            else:
                if offset == 0:
                    out[-1].add("", None)  # keeps the paragraph break inside the turn
                out[-1].add(line, start + offset)
    return out


def _line_at(block: _Block, index: int) -> int:
    """The file line of a character offset in the block's joined text."""
    row = "\n".join(block.lines)[:index].count("\n")
    # A separator row has no line of its own; the paragraph after it does.
    return next((n for n in block.line_nos[row:] if n is not None), block.line)


def _split_think(block: _Block) -> tuple[str, str | None]:
    """Take <think>...</think> parts out of a therapist block: (content, reasoning)."""
    raw = "\n".join(block.lines)
    # Blank out the closed pairs (same length, so offsets still map to lines) to find strays.
    masked = _THINK.sub(lambda m: " " * len(m.group(0)), raw)
    for tag, problem in (("<think>", "unclosed <think>"), ("</think>", "</think> without <think>")):
        stray = re.search(tag, masked, re.IGNORECASE)
        if stray:
            raise TranscriptFormatError(problem, _line_at(block, stray.start()))
    reasoning = "\n\n".join(p for p in (m.group(1).strip() for m in _THINK.finditer(raw)) if p)
    content = re.sub(r"\n{3,}", "\n\n", _THINK.sub("", raw)).strip()
    return content, reasoning or None


def parse_transcript(text: str) -> list[ParsedTurn]:
    """The turns of one transcript, in order; raises TranscriptFormatError."""
    text = text.removeprefix("\ufeff")  # a byte-order mark would hide the first label
    if not text.strip():
        raise TranscriptFormatError("the file is empty")
    turns: list[ParsedTurn] = []
    pending: _Block | None = None  # a Thinking block waiting for its therapist turn
    for block in _blocks(text):
        if pending and not (block.role == "therapist" and not block.thinking):
            raise TranscriptFormatError("'Therapist Thinking:' is not followed by a Therapist turn",
                                        pending.line)
        if block.thinking:
            if not block.text():
                raise TranscriptFormatError("'Therapist Thinking:' has no text", block.line)
            pending = block
            continue
        content, reasoning = (_split_think(block) if block.role == "therapist"
                              else (block.text(), None))
        if not content:
            raise TranscriptFormatError(f"the {block.role} turn has no text", block.line)
        if pending:
            reasoning = "\n\n".join(r for r in (pending.text(), reasoning) if r)
            pending = None
        turns.append(ParsedTurn(block.role, content, reasoning, block.line))
    if pending:
        raise TranscriptFormatError("'Therapist Thinking:' is not followed by a Therapist turn",
                                    pending.line)
    _require_both_roles(turns)
    return turns


def _require_both_roles(turns: list[ParsedTurn]) -> None:
    roles = {t.role for t in turns}
    for role in ("patient", "therapist"):
        if role not in roles:
            raise TranscriptFormatError(f"no {role.capitalize()} turn")


def read_transcript(path: Path) -> Transcript:
    """Read and parse one file; errors are TranscriptFormatError (without the file name)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # tolerate the BOM some Windows editors write
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise TranscriptFormatError("not UTF-8 text (save it as UTF-8)", line) from None
    return Transcript(path.name, hashlib.sha256(data).hexdigest(), parse_transcript(text))


def transcript_files(path: str | Path) -> list[Path]:
    """The files to import: the path itself, or the transcript files in a directory."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TranscriptImportError(f"{path}: no such file or directory")
    files = sorted(p for p in path.iterdir()
                   if p.is_file() and p.suffix.lower() in SUFFIXES
                   and not p.name.startswith(".") and p.stem.lower() != "readme")
    if not files:
        raise TranscriptImportError(f"{path}: no transcript files (*.txt, *.md) in this directory")
    return files


def _parse_all(files: list[Path]) -> tuple[list[Transcript], list[tuple[str, str]]]:
    good, bad = [], []
    for path in files:
        try:
            good.append(read_transcript(path))
        except TranscriptFormatError as exc:
            bad.append((path.name, str(exc)))
        except OSError as exc:
            bad.append((path.name, f"cannot read the file: {exc.strerror or exc}"))
    return good, bad


def _check_options(study: str, variant: str, modality: str) -> None:
    if not (study or "").strip():
        raise TranscriptImportError("a study name is required")
    if not (variant or "").strip():
        raise TranscriptImportError("a variant name is required")
    if modality not in MODALITIES:
        raise TranscriptImportError(f"modality must be one of {', '.join(MODALITIES)}, not {modality!r}")


def _session_row(t: Transcript, study: str, variant: str, modality: str) -> dict:
    now = utc_now()
    session_id = new_id()
    return {
        "id": session_id, "user_id": None, "modality": modality,
        "therapist_model": f"imported:{variant}", "adapter": None,
        "reasoning": int(any(turn.reasoning for turn in t.turns if turn.role == "therapist")),
        "course_id": session_id, "course_index": 1, "status": "ended", "simulated": 0,
        "persona_id": None, "patient_model": None, "study": study, "variant": variant,
        "sim_key": f"import:{t.sha256}", "created_utc": now, "ended_utc": now,
        "meta_json": json.dumps({"source": "import", "file": t.name, "sha256": t.sha256}),
    }


def _turn_rows(session: dict, t: Transcript) -> list[dict]:
    return [{
        "id": new_id(), "session_id": session["id"], "idx": idx, "role": turn.role,
        "content": turn.content, "reasoning": turn.reasoning,
        "model_id": session["therapist_model"] if turn.role == "therapist" else None,
        "created_utc": utc_now(), "meta_json": json.dumps({"line": turn.line}),
    } for idx, turn in enumerate(t.turns)]


def import_transcripts(store: Store, audit: AuditLog, path: str | Path, study: str, variant: str,
                       modality: str = "act", actor: str = "cli", skip_bad: bool = False) -> ImportSummary:
    """Store every transcript under ``path`` as an ended session of ``study``/``variant``.

    All or nothing: bad files stop the import (unless ``skip_bad``) before anything is written,
    and the sessions, turns and audit row are written in one transaction.
    """
    _check_options(study, variant, modality)
    transcripts, bad = _parse_all(transcript_files(path))
    if bad and not skip_bad:
        listing = "\n".join(f"  {name}: {problem}" for name, problem in bad)
        raise TranscriptImportError(f"{len(bad)} bad transcript file(s), nothing was imported "
                                    f"(fix them or use --skip-bad):\n{listing}")
    summary = ImportSummary(bad=bad)
    with store.write() as db:
        for t in transcripts:
            # Checked inside the transaction (which holds the write lock), so a second file
            # with the same bytes in this batch, or a concurrent import, is skipped too.
            session = _session_row(t, study, variant, modality)
            if not SessionStore.insert_new(db, session, _turn_rows(session, t)):
                summary.skipped.append(t.name)
                continue
            summary.imported.append((t.name, session["id"], len(t.turns)))
        # Nested in the same transaction: the audit row exists exactly when the import does.
        audit.record(actor, EventKind.TRANSCRIPTS_IMPORT, None, study=study, variant=variant,
                     imported=len(summary.imported), skipped=len(summary.skipped), bad=len(bad))
    return summary


def add_import_parser(sub, name: str = "import-transcripts"):
    """Add the import command to an argparse subparsers object; returns the new parser."""
    parser = sub.add_parser(name, help="store plain-text transcripts as ended sessions of a study",
                            description="Import Patient:/Therapist: transcripts (see eval/transcripts.py "
                                        "for the format). Nothing is stored if any file is bad, "
                                        "unless --skip-bad; files already imported are skipped.")
    parser.add_argument("path", help="a transcript file, or a directory of *.txt / *.md transcripts")
    parser.add_argument("--study", required=True, help="study the sessions belong to")
    parser.add_argument("--variant", required=True, help="variant (condition) label, e.g. the source model")
    parser.add_argument("--modality", choices=MODALITIES, default="act")
    parser.add_argument("--skip-bad", action="store_true", help="import the good files and list the bad ones")
    return parser


def import_command(args, ctx) -> int:
    """Run the import for parsed ``args``; ``ctx.store`` is the Store.

    Returns 0 when the import went through, including when --skip-bad left bad files out (they
    are listed on stderr): something was stored, unlike an error exit. A refused import raises
    TranscriptImportError (a ValueError) and stores nothing.
    """
    summary = import_transcripts(ctx.store, AuditLog(ctx.store), args.path, args.study, args.variant,
                                 modality=args.modality, skip_bad=args.skip_bad)
    print(summary.line())
    for name, problem in summary.bad:
        print(f"bad file skipped: {name}: {problem}", file=sys.stderr)
    return 0
