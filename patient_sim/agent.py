"""The simulated patient: any catalog model plays a persona, speaks first and stays in character.

The model sees the conversation from the patient's side (the therapist's turns as the other
speaker), a role-play brief built from the persona and its conversation style, and a reminder of
the rules small models break most. Each draft goes through the drift guard (``guard.py``);
an unrepairable one is generated again, a little hotter, up to ``max_attempts`` times.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from models.base import BackendError, GenParams
from patient_sim.guard import check_turn

OPENING_CUE = "(The session is starting. You speak first: tell the therapist, in your own words, what brings you here.)"
FALLBACK = "I'm not really sure what to say right now."
APPROACH = {"cbt": "cognitive behavioural therapy (CBT) for depression", "act": "acceptance and commitment therapy (ACT)"}


@dataclass
class PatientTurn:
    text: str
    repairs: dict = field(default_factory=dict)
    attempts: int = 1
    fallback: bool = False

    def meta(self, model_id: str) -> dict:
        return {"simulated_by": model_id, "guard": self.repairs, "attempts": self.attempts,
                **({"fallback": True} if self.fallback else {})}


def brief(persona, style_text: str, modality: str) -> str:
    """The patient model's system prompt."""
    return (f"You are role-playing a client in a {APPROACH.get(modality, 'therapy')} session with an AI therapist. "
            f"Stay in character as {persona.name} for the whole session.\n\n"
            f"Who you are:\n{persona.summary.strip()}\n\n"
            f"How you talk: {style_text.strip()}\n\n"
            "Rules: speak only as yourself, in the first person, in 1-4 sentences. Never describe actions or "
            "body language (no *sighs*, no [pauses]). Never write the therapist's words and never put a name "
            "or label before your words. Do not end or wrap up the session yourself; keep talking about your "
            "situation until the therapist closes it.")


class PatientAgent:
    def __init__(self, backend, persona, style_text: str, modality: str, model_id: str,
                 max_tokens: int = 120, temperature: float = 0.8, max_attempts: int = 3):
        self.backend = backend
        self.persona = persona
        self.model_id = model_id
        self.system = brief(persona, style_text, modality)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_attempts = max_attempts

    def messages(self, transcript: list[dict]) -> list[dict]:
        """The conversation seen from the patient's chair: the therapist is the other speaker."""
        out = [{"role": "system", "content": self.system}, {"role": "user", "content": OPENING_CUE}]
        for turn in transcript:
            if turn["role"] == "patient":
                out.append({"role": "assistant", "content": turn["content"]})
            elif turn["role"] == "therapist":
                out.append({"role": "user", "content": turn["content"]})
        if out[-1]["role"] == "assistant":  # never asked to continue its own turn
            out.append({"role": "user", "content": "(The therapist is listening. Go on.)"})
        return out

    def next_turn(self, transcript: list[dict], allow_ending: bool = False,
                  on_delta: Callable[[str], None] | None = None) -> PatientTurn:
        """Generate, guard and (if needed) regenerate the patient's next message."""
        repairs: dict[str, int] = {}
        messages = self.messages(transcript)
        last_text = ""
        said = next((t["content"] for t in reversed(transcript) if t["role"] == "therapist"), None)
        for attempt in range(1, self.max_attempts + 1):
            params = GenParams(max_tokens=self.max_tokens, temperature=self.temperature + 0.1 * (attempt - 1),
                               top_p=0.95, stop=["\nTherapist:", "\nTHERAPIST:"])
            raw = ""
            try:
                for delta in self.backend.stream(messages, params):
                    raw += delta
                    if on_delta:
                        on_delta(delta)
            except BackendError:
                repairs["backend_error"] = repairs.get("backend_error", 0) + 1
                continue
            result = check_turn(raw, allow_ending=allow_ending, therapist_said=said, brief=self.persona.summary)
            for kind, n in result.repairs.items():
                repairs[kind] = repairs.get(kind, 0) + n
            if not result.regenerate:
                return PatientTurn(result.text, repairs, attempt)
            last_text = result.text
            if on_delta:
                on_delta(None)  # tells a live view to clear the discarded draft
        if last_text:  # an echo is still the patient's own words: better than the stock line
            return PatientTurn(last_text, repairs, self.max_attempts)
        return PatientTurn(FALLBACK, repairs, self.max_attempts, fallback=True)
