"""Reading JSON out of model text: the first JSON object, wherever the model put it.

Constrained decoding (llama.cpp grammars, OpenAI json_schema) gives clean JSON; other backends
may wrap it in code fences or prose, so every reader of structured output goes through here.
"""
from __future__ import annotations

import json


class NoJSONObject(ValueError):
    """The text holds no JSON object."""


def extract_json_object(raw: str) -> dict:
    """The first JSON object in ``raw``; tolerates code fences and text before or after it."""
    decoder = json.JSONDecoder()
    start = raw.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(raw, start)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            return obj
        start = raw.find("{", start + 1)
    raise NoJSONObject("no JSON object in the output")
