"""Turn stored turns into Gradio chat messages, with reasoning as a collapsible block.

Pure functions of the stored rows, so "Show reasoning" can redraw a session without
generating anything again.
"""
from __future__ import annotations

import json

REASONING_TITLE = "Reasoning (never shown to the patient)"
SUMMARY_TITLE = "Previous session summary"
ANSWER_LABEL = "**Reply (what the patient sees):**"  # sets the answer apart from the reasoning above it


def truncation_note(turn: dict) -> str:
    """A plain note under a reply that stopped at its length limit ('' otherwise)."""
    try:
        meta = json.loads(turn.get("meta_json") or "{}")
    except ValueError:
        return ""
    cut = meta.get("truncated") if isinstance(meta, dict) else None
    if not cut:
        return ""
    return (f"\n\n*(This reply reached the length limit of {cut.get('max_tokens', '?')} tokens and was cut off. "
            "The limit is set per model: max_tokens.)*")


def reasoning_message(text: str, pending: bool = False) -> dict:
    return {"role": "assistant", "content": text or "(empty)",
            "metadata": {"title": REASONING_TITLE, "status": "pending" if pending else "done"}}


def render_turns(turns: list[dict], show_reasoning: bool) -> tuple[list[dict], list[str | None]]:
    """Chat messages and, aligned with them, the turn id each message rates (None if unratable)."""
    messages: list[dict] = []
    turn_ids: list[str | None] = []
    for turn in turns:
        if turn["role"] == "system":
            messages.append({"role": "assistant", "content": turn["content"],
                             "metadata": {"title": SUMMARY_TITLE, "status": "done"}})
            turn_ids.append(None)
        elif turn["role"] == "patient":
            messages.append({"role": "user", "content": turn["content"]})
            turn_ids.append(None)
        else:
            content = turn["content"] + truncation_note(turn)
            if show_reasoning and turn.get("reasoning"):
                messages.append(reasoning_message(turn["reasoning"]))
                turn_ids.append(None)
                content = f"{ANSWER_LABEL}\n\n{content}"
            messages.append({"role": "assistant", "content": content})
            turn_ids.append(turn["id"])
    return messages, turn_ids
