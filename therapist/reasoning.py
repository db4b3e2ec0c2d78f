"""Separate a therapist model's visible reasoning from the answer the patient sees.

Therapist models may "think out loud" before answering. That reasoning is stored for
the supervisor but must never reach the patient, so every reply goes through this
module before display. Accepted formats:

* canonical ``<think> ... </think>`` followed by the answer (tags case-insensitive);
* the studies' ``<|thinking|> ... <|answer|> ...``;
* transcript turns with ``Thinking:`` / ``Therapist Thinking:`` sections, through
  ``split_transcript_turn``.

``split_reasoning`` handles a finished reply, ``StreamSplitter`` a streamed one (tags
may be cut anywhere between chunks). Both run the same state machine, so a streamed
reply ends with exactly the split the whole text would give. ``format_reasoning`` is
the inverse, for writing training data and transcripts.

Malformed output is split on a best-effort basis and flagged through ``Split.status``
rather than rejected: the session must go on, and the supervisor can review the flag.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Split",
    "StreamSplitter",
    "format_reasoning",
    "split_reasoning",
    "split_transcript_turn",
    "strip_reasoning",
]

_OPENERS = ("<think>", "<|thinking|>")
# The studies' format has no closing tag: "<|answer|>" ends the reasoning instead.
_CLOSERS = ("</think>", "<|answer|>")
_TAGS = _OPENERS + _CLOSERS
_TAG_RE = re.compile("|".join(re.escape(tag) for tag in _TAGS), re.IGNORECASE)
_LONGEST_TAG = max(len(tag) for tag in _TAGS)
# Put between the contents of separate reasoning blocks so their sentences do not run together.
_BLOCK_SEPARATOR = "\n\n"

_THINK_HEADER = re.compile(r"^[ \t]*(?:therapist[ \t]+)?thinking[ \t]*:[ \t]*", re.IGNORECASE)
_ANSWER_HEADER = re.compile(r"^[ \t]*therapist[ \t]*:[ \t]*", re.IGNORECASE)


@dataclass(frozen=True)
class Split:
    """A reply split into stored reasoning and the patient-facing answer.

    ``reasoning`` is None only when the text had no reasoning markup at all (status
    "none"); otherwise it is the stripped reasoning, possibly "". ``status`` is one of
    "none", "ok" (one closed block), "unclosed" (a block was opened and never closed)
    or "malformed" (stray closing tag, text before the block, several or nested
    blocks; the split is still best effort).
    """

    reasoning: str | None
    answer: str
    status: str


def _partial_tag_start(buf: str) -> int:
    """Index where an unfinished tag may begin at the end of ``buf``; ``len(buf)`` if none.

    Full tags have already been consumed, so only a tail shorter than the longest tag
    can still grow into one; anything else ("a < b", "<thought") is plain text.
    """
    for i in range(max(0, len(buf) - _LONGEST_TAG + 1), len(buf)):
        if buf[i] == "<":
            tail = buf[i:].lower()
            if any(tag.startswith(tail) for tag in _TAGS):
                return i
    return len(buf)


class StreamSplitter:
    """Feed text deltas as they stream; get reasoning and answer deltas out, never leaking a partial tag into either.

    Text that might be the start of a tag is held back until the next delta shows
    whether it is one, so the answer stream never shows "<thi" and then has to take
    it back. One case cannot be decided while streaming: a closing tag with no opener
    reveals that answer text already handed out was reasoning. The splitter then
    moves that text into ``reasoning`` and sets ``retracted``; the caller must replace
    what it displayed with ``answer``. Pass ``start_in_reasoning=True`` when the
    prompt already opened the block (assistant prefill) to avoid that case.
    """

    def __init__(self, start_in_reasoning: bool = False) -> None:
        self._buf = ""  # held-back text that may be the start of a tag
        self._in = start_in_reasoning
        self._reasoning = ""
        self._answer = ""
        # Answer text after this index came after the last block and would become
        # reasoning if a stray closing tag follows.
        self._answer_mark = 0
        self._saw_markup = start_in_reasoning
        self._blocks = 1 if start_in_reasoning else 0
        self._block_has_content = False
        self._malformed = False
        self._retracted = False
        self._low_answer = 0  # shortest the answer got during the current feed()

    @property
    def in_reasoning(self) -> bool:
        """True while the text being streamed is reasoning."""
        return self._in

    @property
    def reasoning(self) -> str:
        """All reasoning so far (raw, not stripped; held-back text excluded)."""
        return self._reasoning

    @property
    def answer(self) -> str:
        """All answer so far (raw; held-back text excluded), after any retraction."""
        return self._answer

    @property
    def retracted(self) -> bool:
        """True once answer text already returned by ``feed`` was reclassified as reasoning."""
        return self._retracted

    def feed(self, delta: str) -> tuple[str, str]:
        """Consume one streamed delta; return the (reasoning_delta, answer_delta) it releases."""
        r0, a0 = len(self._reasoning), len(self._answer)
        self._low_answer = a0
        self._buf += delta
        while match := _TAG_RE.search(self._buf):
            self._emit(self._buf[: match.start()])
            self._buf = self._buf[match.end() :]
            self._on_tag(match.group().lower())
        cut = _partial_tag_start(self._buf)
        self._emit(self._buf[:cut])
        self._buf = self._buf[cut:]
        return self._deltas(r0, a0)

    def finish(self) -> tuple[str, str]:
        """End of stream: release held-back text, which can no longer become a tag."""
        r0, a0 = len(self._reasoning), len(self._answer)
        self._low_answer = a0
        self._emit(self._buf)
        self._buf = ""
        return self._deltas(r0, a0)

    def result(self) -> Split:
        """The split of everything fed so far, as ``split_reasoning`` would give it."""
        reasoning, answer = self._reasoning, self._answer
        # Held-back text counts as plain text, exactly as finish() would release it.
        if self._in:
            reasoning += self._buf
        else:
            answer += self._buf
        if not self._saw_markup:
            return Split(None, answer.strip(), "none")
        if self._in:
            status = "unclosed"
        else:
            status = "malformed" if self._malformed else "ok"
        return Split(reasoning.strip(), answer.strip(), status)

    def _deltas(self, r0: int, a0: int) -> tuple[str, str]:
        # Reasoning only ever grows; the answer can shrink on a retraction, and then
        # the delta restarts from the point it was cut back to.
        if self._low_answer < a0:
            self._retracted = True
        return self._reasoning[r0:], self._answer[self._low_answer :]

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self._in:
            self._reasoning += text
            self._block_has_content = self._block_has_content or bool(text.strip())
        else:
            self._answer += text

    def _open_block(self) -> None:
        if self._reasoning.strip():
            self._reasoning += _BLOCK_SEPARATOR
        self._blocks += 1
        self._in = True
        self._block_has_content = False

    def _on_tag(self, tag: str) -> None:
        self._saw_markup = True
        if tag in _OPENERS:
            if self._in:
                # An opener repeated at the very start of a block (a model echoing a
                # prefilled <think>) is harmless; one mid-block is a nesting we flatten.
                self._malformed = self._malformed or self._block_has_content
                return
            # Chatting before thinking, or a second block, is not the expected shape.
            if self._answer.strip() or self._blocks:
                self._malformed = True
            self._open_block()
            return
        if not self._in:
            # A closer with no open block: what came since the last block was
            # reasoning (typical of a model whose <think> was in the prompt).
            moved = self._answer[self._answer_mark :]
            self._answer = self._answer[: self._answer_mark]
            self._low_answer = min(self._low_answer, len(self._answer))
            self._malformed = True
            self._open_block()
            self._emit(moved)
        self._in = False
        self._answer_mark = len(self._answer)


def split_reasoning(text: str) -> Split:
    """Split a finished reply into reasoning and answer; see ``Split`` for the statuses."""
    splitter = StreamSplitter()
    splitter.feed(text)
    splitter.finish()
    return splitter.result()


def strip_reasoning(text: str) -> str:
    """Only the patient-facing answer of a reply."""
    return split_reasoning(text).answer


def format_reasoning(reasoning: str, answer: str, style: str = "think") -> str:
    """Join reasoning and answer into one reply text; the inverse of ``split_reasoning``.

    ``style`` is "think" (``<think>`` tags) or "studies" (``<|thinking|>``/``<|answer|>``).
    Without reasoning the answer is returned alone, since an empty block only adds noise.
    """
    if style not in ("think", "studies"):
        raise ValueError(f"unknown reasoning style {style!r}; expected 'think' or 'studies'")
    if not reasoning:
        return answer
    if style == "think":
        return f"<think>\n{reasoning}\n</think>\n{answer}"
    return f"<|thinking|>{reasoning}<|answer|>{answer}"


def _transcript_sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Group transcript lines into ("think" | "answer", body lines) by their headers."""
    sections: list[tuple[str, list[str]]] = [("answer", [])]  # text before any header
    for line in lines:
        if match := _THINK_HEADER.match(line):
            sections.append(("think", [line[match.end() :]]))
        elif match := _ANSWER_HEADER.match(line):
            sections.append(("answer", [line[match.end() :]]))
        else:
            sections[-1][1].append(line)
    return sections


def _split_at_blank_line(body: list[str]) -> tuple[str, str | None]:
    """Split a final thinking section with no "Therapist:" line after it.

    Transcripts without an answer header separate thinking from answer by a blank
    line. With no blank line, or nothing after it, the answer never came: None.
    """
    seen_text = False
    for i, line in enumerate(body):
        if line.strip():
            seen_text = True
        elif seen_text:
            rest = "\n".join(body[i + 1 :])
            if rest.strip():
                return "\n".join(body[:i]), rest
            break
    return "\n".join(body), None


def split_transcript_turn(text: str) -> Split:
    """Split a therapist turn from an imported transcript.

    The turn may begin with "Thinking:" / "Therapist Thinking:" section(s), followed
    by the answer (optionally prefixed "Therapist:"), or use reasoning tags.
    """
    lines = text.splitlines()
    if not any(_THINK_HEADER.match(line) for line in lines):
        return split_reasoning(_ANSWER_HEADER.sub("", text.lstrip(), count=1))
    sections = _transcript_sections(lines)
    reasoning: list[str] = []
    answer: list[str] = []
    thinks, malformed, unclosed = 0, False, False
    for i, (kind, body) in enumerate(sections):
        chunk = "\n".join(body)
        if kind == "answer":
            if chunk.strip():
                malformed = malformed or thinks == 0  # spoke before thinking
                answer.append(chunk)
            continue
        thinks += 1
        if i + 1 < len(sections):
            reasoning.append(chunk)  # the next header ends this section
            continue
        think_text, rest = _split_at_blank_line(body)
        reasoning.append(think_text)
        if rest is None:
            unclosed = True
        else:
            answer.append(rest)
    # Tags inside the answer would otherwise show reasoning to the patient.
    for j, part in enumerate(answer):
        inner = split_reasoning(part)
        if inner.status != "none":
            reasoning.append(inner.reasoning or "")
            answer[j] = inner.answer
            malformed = True
    status = "unclosed" if unclosed else "malformed" if malformed or thinks > 1 else "ok"
    return Split(_join(reasoning), _join(answer), status)


def _join(parts: list[str]) -> str:
    return _BLOCK_SEPARATOR.join(part.strip() for part in parts if part.strip())
