"""A scripted backend for deterministic unit tests of the logic around a model.

Never a default and never offered in the UI: it exists so tests can pin exact model output
(malformed reasoning, failures mid-stream) that a real model would only produce by chance.
"""
from __future__ import annotations

import re
from collections import deque
from typing import Callable, Iterator

from models.base import BackendError, Capabilities, GenParams, TextStream, Usage, split_prefix


class FakeBackend:
    capabilities = Capabilities(prefix=True, json_schema=True)

    def __init__(self, id: str = "fake", replies: list[str] | Callable[[list[dict]], str] | None = None,
                 fail_after: int | None = None):
        self.id = id
        self._replies = replies if callable(replies) else deque(replies or [])
        self.fail_after = fail_after  # raise after this many deltas (simulates a crash mid-stream)
        self.honor_max_tokens = False  # True: stop at params.max_tokens words, finish_reason "length"
        self.calls: list[tuple[list[dict], GenParams]] = []

    def queue(self, *replies: str) -> None:
        self._replies.extend(replies)

    def _next_reply(self, messages: list[dict]) -> str:
        if callable(self._replies):
            return self._replies(messages)
        if not self._replies:
            raise BackendError("fake backend has no scripted reply left")
        return self._replies.popleft()

    def stream(self, messages: list[dict], params: GenParams) -> TextStream:
        self.calls.append(([dict(m) for m in messages], params))
        _, prefix = split_prefix(messages)
        reply = self._next_reply(messages)
        if prefix and reply.startswith(prefix):
            reply = reply[len(prefix):]
        if self.honor_max_tokens and params.max_tokens:
            return TextStream(lambda usage: self._capped(self._deltas(reply, messages, usage), params.max_tokens, usage))
        return TextStream(lambda usage: self._deltas(reply, messages, usage))

    @staticmethod
    def _capped(deltas: Iterator[str], limit: int, usage: Usage) -> Iterator[str]:
        for i, piece in enumerate(deltas):
            if i >= limit:
                usage.finish_reason = "length"
                return
            yield piece

    def _deltas(self, reply: str, messages: list[dict], usage: Usage) -> Iterator[str]:
        usage.prompt_tokens = sum(len(m.get("content", "").split()) for m in messages)
        for i, piece in enumerate(re.findall(r"\S+\s*|\s+", reply)):
            if self.fail_after is not None and i >= self.fail_after:
                raise BackendError("fake backend failed mid-stream")
            usage.completion_tokens += 1
            yield piece
        usage.finish_reason = "stop"
