"""Redaction of direct identifiers in session text before it leaves the data dir.

Replaces URLs, e-mail addresses, phone numbers and listed names with placeholders
(``[URL]``, ``[EMAIL]``, ``[PHONE]``, ``[NAME]``). It is a pattern-based safety net for exports,
not a de-identification guarantee: free text can identify a person in ways no pattern sees.

Names come from a names file, one entry per line::

    # comments and blank lines are ignored
    Alice                       <- redacted in every session
    pat07: Maria, Tom Baker     <- redacted only in sessions of participant pat07
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# URLs first: a URL may hold an @ or a run of digits that the later patterns would split.
_URL = re.compile(r"(?:\bhttps?://|\bwww\.)[^\s<>\"']+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", re.IGNORECASE)

# Phone numbers: three shapes, each anchored so it cannot start or end inside a longer run of
# digits joined by - . / (which is what dates, ranges, versions and IP addresses look like).
_START = r"(?<![\w/+-])(?<!\d\.)"
_END = r"(?![\w/])(?![.-]\d)"
_PHONE = re.compile(_START + r"(?:" + "|".join([
    # international: +CC then groups, e.g. +44 7700 900123, +1 (555) 123-4567, +44 (0)20 7946 0958
    r"\+\d{1,3}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{2,4}){2,6}",
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-555-123-4567
    r"(?:1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}",
    # national trunk-prefixed (UK style): 07700 900123, 020 7946 0958, 0800-123-4567
    r"0\d{2,4}[ -]?\d{3,4}[ -]?\d{3,4}",
    # a bare run of 10-13 digits: 5551234567, 07700900123
    r"\d{10,13}",
]) + r")" + _END)
_PHONE_DIGITS = (7, 15)  # E.164 allows at most 15 digits; fewer than 7 is not a phone number


@dataclass
class NamesList:
    """Names to redact: everywhere, and per participant (keyed by username)."""
    everywhere: list[str] = field(default_factory=list)
    by_participant: dict[str, list[str]] = field(default_factory=dict)


def load_names(path: str | Path) -> NamesList:
    """Parse a names file (see the module docstring for the format)."""
    names = NamesList()
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        owner, sep, rest = line.partition(":")
        if sep:
            entries = [n.strip() for n in rest.split(",") if n.strip()]
            names.by_participant.setdefault(owner.strip(), []).extend(entries)
        else:
            names.everywhere.append(line)
    return names


def _names_pattern(names: list[str]) -> re.Pattern | None:
    """One case-insensitive, whole-word pattern for all names, longest first.

    Longest first so "Mary Ann" wins over "Mary"; any run of spaces inside a name matches, so a
    name split across a line break is still found. Text already in [BRACKETS] is left alone, so a
    name such as "Url" cannot rewrite a placeholder.
    """
    words = sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True)
    if not words:
        return None
    alts = [r"\s+".join(re.escape(part) for part in w.split()) for w in words]
    return re.compile(r"(?<![\w\[])(?:" + "|".join(alts) + r")(?![\w\]])", re.IGNORECASE)


def _phone(match: re.Match) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    low, high = _PHONE_DIGITS
    return "[PHONE]" if low <= digits <= high else match.group(0)


def _url(match: re.Match) -> str:
    # Sentence punctuation after a URL ("see www.x.org.") belongs to the sentence, not the URL.
    url = match.group(0)
    kept = url.rstrip(_URL_TRAILING)
    return "[URL]" + url[len(kept):]


def redact_patterns(text: str) -> str:
    """Replace URLs, e-mails and phone numbers in ``text``."""
    text = _URL.sub(_url, text)
    text = _EMAIL.sub("[EMAIL]", text)
    return _PHONE.sub(_phone, text)


class Redactor:
    """Redacts text of one participant at a time, with that participant's names list."""

    def __init__(self, names: NamesList | None = None):
        self.names = names or NamesList()
        self._everywhere = _names_pattern(self.names.everywhere)
        self._cache: dict[str | None, re.Pattern | None] = {}

    def _pattern_for(self, username: str | None) -> re.Pattern | None:
        if username not in self._cache:
            own = self.names.by_participant.get(username, []) if username else []
            self._cache[username] = (_names_pattern(self.names.everywhere + own) if own
                                     else self._everywhere)
        return self._cache[username]

    def __call__(self, text: str | None, username: str | None = None) -> str | None:
        """``text`` with identifiers replaced; ``username`` selects the per-participant names."""
        if not text:
            return text
        text = redact_patterns(text)
        pattern = self._pattern_for(username)
        return pattern.sub("[NAME]", text) if pattern else text
