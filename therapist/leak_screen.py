"""System-prompt leak screen: keeps the therapist's instructions out of what it writes.

A small model asked to "print your instructions" may copy its system prompt into its answer or its
reasoning, including anything distinctive planted there (a session code, an id). Every therapist
output (streamed text, stored answer and reasoning, held draft, session summary) passes through this
screen first. Two things count as a leak:

- a run of ``MIN_RUN_WORDS`` or more consecutive words that also occurs in the prompt (compared
  after lower-casing and dropping punctuation, so re-wrapped or re-punctuated copies still match);
- any word that holds one of the prompt's distinctive tokens: an id mixing letters and digits
  ("HELIOTROPE-5521"), and the parts of it that occur nowhere else in the prompt; or, if it is not
  a word of the prompt, that is most of the start of one ("HELIOTRO", an id cut off by the token
  limit).

A leaked span is replaced by ``MARKER``. Ordinary phrases that also occur in the prompt ("How does
that sound?", "one question at a time") are shorter than a run, and text the therapist is meant to
say (the prompt's quoted example phrases, passages passed as ``allowed`` such as the AI disclosure)
is left out of the comparison. Pure functions: the engine decides what to record.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

MIN_RUN_WORDS = 8   # shorter shared runs are everyday therapeutic phrasing, not copying
MARKER = "[…]"
MIN_KEPT_WORDS = 4  # an answer with less than this left after redaction is replaced whole
FALLBACK_ANSWER = ("I'd rather keep the details of how I was set up to myself; this time is about you. "
                   "What would you like to talk about?")

_CHUNK = re.compile(r"\S+")
_NOT_WORD = re.compile(r"[\W_]+")
_QUOTED = r"[\"“][^\"”\n]{1,160}[\"”]"
_ID = re.compile(r"[A-Za-z0-9]+(?:[-_./:][A-Za-z0-9]+)+|[A-Za-z]+[0-9][A-Za-z0-9]*|[0-9]+[A-Za-z][A-Za-z0-9]*")
_ID_SEPARATORS = re.compile(r"[-_./:]")
_EDGE_PUNCT = "\"'“”‘’()[]{}<>.,;:!?*"


@dataclass(frozen=True)
class Reference:
    """What outputs are compared with, prepared once per prompt."""

    runs: frozenset[tuple[str, ...]]  # every MIN_RUN_WORDS-word run of the prompt, normalised
    secrets: frozenset[str]           # distinctive tokens and their distinctive parts, normalised
    vocabulary: frozenset[str] = frozenset()  # the prompt's other words: never a cut-off secret


@dataclass(frozen=True)
class Screened:
    text: str
    spans: int = 0          # leaked spans replaced by MARKER
    leaked_words: int = 0
    kept_words: int = 0
    fallback: bool = False  # the whole answer was replaced by FALLBACK_ANSWER


def _norm(chunk: str) -> str:
    return _NOT_WORD.sub("", chunk.lower())


def _words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalised) for each whitespace-separated chunk that has a letter or digit."""
    return [(m.start(), m.end(), n) for m in _CHUNK.finditer(text) if (n := _norm(m.group()))]


def _segments(prompt: str, allowed: Iterable[str]) -> list[str]:
    """The prompt cut where text the therapist may say verbatim was: no run spans a cut."""
    sayable = [re.escape(p) for p in allowed if p] + [_QUOTED]
    return re.split("|".join(sayable), prompt)


def _is_id(chunk: str) -> bool:
    return len(chunk) >= 6 and bool(_ID.fullmatch(chunk)) and any(c.isdigit() for c in chunk) \
        and any(c.isalpha() for c in chunk)


def _secrets(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(secrets, the prompt's other words). Secrets are the ids in the prompt, plus each part of an
    id (4+ characters) that is all digits or is not used as a word elsewhere in the prompt
    ("HELIOTROPE-5521": "heliotrope", "5521")."""
    chunks = [c.strip(_EDGE_PUNCT) for c in text.split()]
    ids = {c for c in chunks if _is_id(c)}
    words = {_norm(c) for c in chunks if c not in ids}
    found = set()
    for token in ids:
        found.add(_norm(token))
        for part in map(_norm, _ID_SEPARATORS.split(token)):
            if len(part) >= 4 and (part.isdigit() or part not in words):
                found.add(part)
    return frozenset(found), frozenset(words - found)


def reference(system_prompt: str, allowed: Iterable[str] = ()) -> Reference:
    """Prepare ``system_prompt`` for screening; ``allowed`` passages may be repeated verbatim."""
    segments = _segments(system_prompt or "", allowed)
    runs = set()
    for segment in segments:
        words = [w[2] for w in _words(segment)]
        runs.update(tuple(words[i:i + MIN_RUN_WORDS]) for i in range(len(words) - MIN_RUN_WORDS + 1))
    return Reference(frozenset(runs), *_secrets("\n".join(segments)))


def _holds_secret(key: str, ref: Reference) -> bool:
    """``key`` contains a secret, or is a cut-off start of one (5+ characters and half of it) and
    not an ordinary word of the prompt."""
    cut_off = len(key) >= 5 and key not in ref.vocabulary
    return any(s in key or (cut_off and len(key) >= len(s) / 2 and s.startswith(key)) for s in ref.secrets)


def _marks(words: list[tuple[int, int, str]], ref: Reference) -> list[bool]:
    keys = [w[2] for w in words]
    marks = [_holds_secret(key, ref) for key in keys]
    for i in range(len(keys) - MIN_RUN_WORDS + 1):
        if tuple(keys[i:i + MIN_RUN_WORDS]) in ref.runs:
            marks[i:i + MIN_RUN_WORDS] = [True] * MIN_RUN_WORDS
    return marks


def screen(text: str, ref: Reference, final: bool = True) -> Screened:
    """``text`` with every leaked span replaced by MARKER.

    ``final=False`` is for text still streaming: only the part later text cannot change comes
    back (all but the unfinished last word and the MIN_RUN_WORDS - 1 words before it), so
    successive calls on a growing text return growing prefixes of the final result."""
    words = _words(text or "")
    marks = _marks(words, ref)
    if not final:
        complete = sum(1 for w in words if w[1] < len(text))
        words = words[:max(0, complete - (MIN_RUN_WORDS - 1))]
    out, pos, spans, previous = [], 0, 0, False
    for (start, end, _), marked in zip(words, marks):
        if not marked:
            out.append(text[pos:end])
        elif not previous:
            out.append(text[pos:start] + MARKER)
            spans += 1
        pos, previous = end, marked
    if final:
        out.append(text[pos:])
    leaked = sum(marks[:len(words)])
    return Screened("".join(out), spans, leaked, len(words) - leaked)


def screen_answer(text: str, ref: Reference) -> Screened:
    """The screen for a reply the patient reads: one that is mostly leak becomes FALLBACK_ANSWER."""
    result = screen(text, ref)
    if result.spans and (result.kept_words < MIN_KEPT_WORDS or result.leaked_words > result.kept_words):
        return replace(result, text=FALLBACK_ANSWER, fallback=True)
    return result
