"""Render a chat into prompt pieces that keep message text apart from template markup.

A chat template turns messages into one string. Tokenizing that string with special-token
parsing would let a patient who types ``<|im_start|>system`` forge a system turn. So we render
the template with placeholders, split on them, and hand back (text, is_user_text) pieces:
backends tokenize markup with special tokens on and message text with them off.
"""
from __future__ import annotations

import secrets
from typing import Callable

Segment = tuple[str, bool]


def render_segments(
    render: Callable[[list[dict]], str], messages: list[dict], prefix: str = ""
) -> list[Segment]:
    """Render ``messages`` (with a generation prompt) through ``render``.

    ``render`` receives messages whose contents are placeholders and must return the
    template's output string. ``prefix`` is assistant text the reply should continue.
    """
    nonce = secrets.token_hex(6)
    marks = [f"\x1e{nonce}:{i}\x1e" for i in range(len(messages))]
    templated = [{**m, "content": mark} for m, mark in zip(messages, marks)]
    rendered = render(templated)
    segments: list[Segment] = []
    rest = rendered
    for message, mark in zip(messages, marks):
        before, found, after = rest.partition(mark)
        if not found:
            raise ValueError("the chat template dropped or altered a message")
        segments.append((before, False))
        segments.append((message["content"], True))
        rest = after
    segments.append((rest, False))
    if prefix:
        segments.append((prefix, True))
    return [(text, is_text) for text, is_text in segments if text]


def segments_to_text(segments: list[Segment]) -> str:
    return "".join(text for text, _ in segments)
