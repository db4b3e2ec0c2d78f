"""Turn stored turns into Gradio chat messages, with reasoning as a collapsible block.

Pure functions of the stored rows, so "Show reasoning" can redraw a session without
generating anything again.
"""
from __future__ import annotations

REASONING_TITLE = "Reasoning (never shown to the patient)"
SUMMARY_TITLE = "Previous session summary"


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
            if show_reasoning and turn.get("reasoning"):
                messages.append(reasoning_message(turn["reasoning"]))
                turn_ids.append(None)
            messages.append({"role": "assistant", "content": turn["content"]})
            turn_ids.append(turn["id"])
    return messages, turn_ids
