"""Conversation prefixes that end just before a therapist answer: the prompts that demo adapters
and the hf/llama.cpp parity check generate from (shared, so neither imports the other)."""
from __future__ import annotations

import json
from pathlib import Path


def _spread(items: list, n: int) -> list:
    """``n`` items picked at even steps over ``items`` (all of them when there are fewer)."""
    step = max(1, len(items) / n) if n > 0 else 1
    return [items[int(i * step)] for i in range(min(n, len(items)))]


def validation_prompts(dataset_dir: Path, n: int) -> list[list[dict]]:
    """``n`` conversation prefixes that end before a therapist answer, spread over the validation set."""
    prompts = []
    for line in (dataset_dir / "validation.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "prompt" in row:
            prompts.append(row["prompt"])
            continue
        messages = row["messages"]
        prompts += [messages[:i] for i, m in enumerate(messages) if m["role"] == "assistant" and i > 1]
    if not prompts:
        raise ValueError(f"{dataset_dir}: the validation split has no prompts")
    return _spread(prompts, n)
