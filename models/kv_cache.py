"""Prompt cache for a shared llama.cpp model: park a conversation's KV state when another one
takes the model, and bring it back when that conversation continues.

llama.cpp already reuses the KV prefix of the conversation it evaluated last, so one session
alone never re-reads its context. This cache is for interleaved conversations on one model
(a therapist and a simulated patient on one base, several human sessions): it saves state only
at a switch, not after every turn, and only the used KV cells (llama-cpp-python's own
``LlamaRAMCache`` also copies the logits of every prompt token, ~100 MB a turn here).
"""
from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass


def common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass
class _Parked:
    tokens: tuple[int, ...]
    blob: bytes


class KVStateCache:
    """LRU of parked KV states within a byte budget, found by longest common token prefix."""

    def __init__(self, capacity_bytes: int):
        self.capacity_bytes = capacity_bytes
        self._items: OrderedDict[tuple[int, ...], _Parked] = OrderedDict()
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def best(self, tokens: list[int]) -> tuple[_Parked | None, int]:
        best, best_len = None, 0
        for parked in self._items.values():
            n = common_prefix(parked.tokens, tokens)
            if n > best_len:
                best, best_len = parked, n
        return best, best_len

    def put(self, tokens: list[int], blob: bytes) -> None:
        key = tuple(tokens)
        # A parked state that is a prefix of this one is superseded by it.
        for old in [k for k in self._items if len(k) <= len(key) and key[:len(k)] == k]:
            self._drop(old)
        self._items[key] = _Parked(key, blob)
        self.size_bytes += len(blob)
        while self.size_bytes > self.capacity_bytes and len(self._items) > 1:
            self._drop(next(iter(self._items)))

    def touch(self, parked: _Parked) -> None:
        # ``parked`` may have been evicted meanwhile (parking the current state can push it out of
        # the budget); it is live in the context now and gets parked again at the next switch.
        if parked.tokens in self._items:
            self._items.move_to_end(parked.tokens)

    def _drop(self, key: tuple[int, ...]) -> None:
        self.size_bytes -= len(self._items.pop(key).blob)


def save_kv(llm) -> bytes:
    """The context state (used KV cells) of a ``llama_cpp.Llama``."""
    import llama_cpp
    size = llama_cpp.llama_state_get_size(llm._ctx.ctx)
    buf = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_get_data(llm._ctx.ctx, buf, size)
    return ctypes.string_at(buf, written)


def load_kv(llm, parked: _Parked) -> None:
    import llama_cpp
    buf = (ctypes.c_uint8 * len(parked.blob)).from_buffer_copy(parked.blob)
    if llama_cpp.llama_state_set_data(llm._ctx.ctx, buf, len(parked.blob)) != len(parked.blob):
        raise RuntimeError("llama.cpp refused a saved KV state")
    n = len(parked.tokens)
    llm.input_ids[:n] = parked.tokens
    llm.n_tokens = n
    llm._requires_eval = True  # logits must come from a fresh decode, not the restored state


class ConversationSwitcher:
    """Decides, before each generation, whether to park the current state and restore another."""

    def __init__(self, llm, capacity_bytes: int):
        self.llm = llm
        self.parked = KVStateCache(capacity_bytes)
        self._last_root = 0  # length of the last prompt without its assistant prefill

    def prepare(self, tokens: list[int], prefill: int = 0) -> int:
        """Make the KV state the best start for ``tokens``; return how many tokens it covers.

        ``prefill`` is how many trailing tokens are assistant prefill (an opened ``<think>``):
        the next turn of the same conversation diverges there, which is not a switch.
        """
        llm = self.llm
        current = llm.input_ids[: llm.n_tokens].tolist()
        live = common_prefix(current, tokens)
        continuing = self._last_root > 0 and live >= self._last_root
        parked, parked_len = self.parked.best(tokens)
        if current and not continuing and live < len(current):
            # Another conversation is about to overwrite this one's KV: park it first.
            self.parked.put(current, save_kv(llm))
            if parked_len > live:
                load_kv(llm, parked)
                self.parked.touch(parked)
                live = parked_len
        elif not current and parked_len:
            load_kv(llm, parked)
            live = parked_len
        self._last_root = len(tokens) - prefill
        return live
