"""The backend contract: generation parameters, the streaming interface and its errors.

Every model backend (llama.cpp, transformers, OpenAI-compatible, fake) implements
``stream(messages, params) -> TextStream``; callers never care which one they hold.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol


class BackendError(RuntimeError):
    """A model could not produce output; the message is meant for the user."""


class ModelNotFoundError(BackendError):
    """A configured model or adapter file does not exist."""


class BackendUnavailableError(BackendError):
    """The Python package a backend needs is not installed."""


STOPPED_MESSAGE = "The model stopped unexpectedly; your message is saved. Press Retry."


class ModelStopped(BackendError):
    """The model worker process died (crash, abort, OOM kill) while this request was in flight.

    The message is for the patient; ``detail`` says how the process ended."""

    def __init__(self, detail: str = ""):
        super().__init__(STOPPED_MESSAGE)
        self.detail = detail


@dataclass
class GenParams:
    """Sampling settings shared by every backend.

    ``json_schema`` asks for output constrained to that JSON schema (grammar on
    llama.cpp, ``response_format`` on OpenAI endpoints, validate-and-retry elsewhere).
    """

    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    json_schema: dict | None = None
    repeat_penalty: float = 1.1
    min_tokens: int = 0  # end-of-turn is not allowed before this many tokens (where supported)
    # Evaluate the whole prompt from scratch instead of reusing cached state: reusing a prefix
    # computed in other batch sizes shifts the logits slightly, which can flip a greedy choice,
    # so a judge asks for this to give the same prompt the same answer every time.
    fresh: bool = False


@dataclass
class Usage:
    """Token accounting for one call, filled in while the stream runs."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens reused from the KV / prompt cache
    finish_reason: str | None = None


class TextStream(Iterator[str]):
    """An iterator of text deltas that also carries the call's ``usage``.

    Backends build the generator with ``usage`` in scope and fill it as they go, so
    the numbers are final once the iterator is exhausted.
    """

    def __init__(self, make: Callable[[Usage], Iterator[str]]):
        self.usage = Usage()
        self._it = make(self.usage)

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        return next(self._it)

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close:
            close()

    def text(self) -> str:
        """Drain the stream and return the whole output."""
        return "".join(self)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do besides streaming text, declared by each backend class, so callers
    read it instead of probing for attributes."""
    prefix: bool = False               # continues a trailing assistant "prefix" message (opens <think>)
    json_schema: bool = False          # enforces GenParams.json_schema (a grammar, response_format)
    token_count: bool = False          # count_tokens(text) is the model's own count
    context_tokens: int | None = None  # the context the model was loaded with, where known


class ChatBackend(Protocol):
    """One loaded model. ``messages`` are ``{"role", "content"}`` dicts.

    A final ``{"role": "assistant", "content": ..., "prefix": True}`` message asks the
    backend to continue that text (used to open a ``<think>`` block) when
    ``capabilities.prefix``; the prefix itself is not repeated in the stream.

    ``count_tokens(text) -> int`` (when ``capabilities.token_count``) is the model's own token
    count for message text. The session engine uses it to decide which old turns to drop; without
    it, it estimates from the number of characters.
    """

    id: str
    capabilities: Capabilities

    def stream(self, messages: list[dict], params: GenParams) -> TextStream: ...


def split_prefix(messages: list[dict]) -> tuple[list[dict], str]:
    """Separate a trailing assistant ``prefix`` message from the conversation."""
    if messages and messages[-1].get("role") == "assistant" and messages[-1].get("prefix"):
        return [dict(m) for m in messages[:-1]], messages[-1].get("content", "")
    return [dict(m) for m in messages], ""


def clean_messages(messages: list[dict]) -> list[dict[str, Any]]:
    """Keep only the keys chat templates understand."""
    return [{"role": m["role"], "content": m.get("content") or ""} for m in messages]


def coalesce(deltas: Iterable[str], window_s: float) -> Iterator[str]:
    """The same text in pieces at most every ``window_s`` seconds; the first piece at once.

    Why: each piece a stream hands on wakes threads (and, across the model worker's socket, a
    process) and is screened before it is shown; per token, on a fast CPU, that work took the
    cores away from the model generating the next token. Text arriving slower than ``window_s``
    passes piece by piece, unchanged."""
    held, last = "", None
    for delta in deltas:
        held += delta
        now = time.perf_counter()
        if last is None or now - last >= window_s:
            yield held
            held, last = "", now
    if held:
        yield held
