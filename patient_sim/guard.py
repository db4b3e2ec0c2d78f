"""The drift guard: keeps a simulated patient's turn in character.

Small models playing a patient drift in predictable ways: they narrate actions (``*sighs*``,
``[pauses]``), write the therapist's lines, prefix labels, or wrap the session up early. The
guard finds each violation, repairs what can be cut out cleanly, and says when a turn must be
generated again. Every repair is counted, so drift is measurable per model.
"""
from __future__ import annotations

import re
from difflib import SequenceMatcher
from dataclasses import dataclass, field

KINDS = ("narration", "speaks_as_therapist", "label", "ends_session", "echo", "empty")
ECHO_RATIO = 0.6  # this similar to the therapist's last message = parroting, not a patient's answer

# *sighs*, [pauses], (long pause) / (laughs nervously): a whole-token action aside.
_NARRATION = re.compile(r"\*[^*\n]{1,80}\*|\[[^\]\n]{1,80}\]|"
                        r"\((?:[a-z]+ly )?(?:sighs?|pauses?|laughs?|cries|crying|sobs?|shrugs?|nods?|"
                        r"looks?|smiles?|frowns?|hesitates?|long pause|silence|takes a (?:deep )?breath|"
                        r"tears up|voice (?:shaking|breaking|cracking))[^)\n]{0,60}\)", re.IGNORECASE)
_OTHER_LABEL = re.compile(r"(?:^|\n)\s*(?:\*\*)?(?:therapist|counsell?or|ai therapist|assistant|dr\.? \w+)"
                          r"(?:\*\*)?\s*:", re.IGNORECASE)
_OWN_LABEL = re.compile(r"^\s*(?:\*\*)?(?:patient|client|me|user)(?:\*\*)?\s*:\s*", re.IGNORECASE)
_ENDING = re.compile(r"[^.!?\n]*\b(?:good ?bye|bye for now|see you (?:next|soon|later)|talk (?:to you )?"
                     r"(?:next|soon|later)|(?:that'?s|this is) (?:all|enough) for today|let'?s (?:end|stop|wrap) "
                     r"(?:here|there|it|up|this)|(?:thanks?|thank you) (?:so much )?for (?:the|this|today'?s) "
                     r"session|i (?:have|need|got) to go now|end (?:the|our|this) session)\b[^.!?\n]*[.!?]?",
                     re.IGNORECASE)


@dataclass
class GuardResult:
    text: str                                   # the repaired text ('' when nothing usable is left)
    repairs: dict = field(default_factory=dict)  # kind -> count
    regenerate: bool = False                    # True: the turn cannot be repaired, generate again


def check_turn(text: str, allow_ending: bool = False, therapist_said: str | None = None,
               brief: str | None = None) -> GuardResult:
    """Repair one patient turn; ``allow_ending`` near the planned end of the session.

    ``therapist_said`` is the therapist's last message: small models tend to parrot it back,
    which speaks with the therapist's voice and cannot be repaired, only generated again. ``brief``
    is the persona text the patient was given: reciting it ("You are Denise, 45...") is no answer
    either."""
    repairs: dict[str, int] = {}

    def count(kind: str, n: int = 1) -> None:
        if n:
            repairs[kind] = repairs.get(kind, 0) + n

    text = (text or "").strip()
    text, n = _OWN_LABEL.subn("", text, count=1)
    count("label", n)
    other = _OTHER_LABEL.search(text)
    if other:  # everything from the therapist's label on was written for the other side
        text = text[:other.start()].strip()
        count("speaks_as_therapist")
    text, n = _NARRATION.subn("", text)
    count("narration", n)
    if not allow_ending:
        text, n = _ENDING.subn("", text)
        count("ends_session", n)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"\s+([,.!?])", r"\1", text).strip(" \n-–—")
    if not re.search(r"[A-Za-z]{2}", text):
        count("empty")
        return GuardResult("", repairs, regenerate=True)
    if (therapist_said and _echoes(text, therapist_said)) or (brief and _recites(text, brief)):
        count("echo")
        return GuardResult(text, repairs, regenerate=True)
    return GuardResult(text, repairs)


def _recites(text: str, brief: str) -> bool:
    """Second-person narration or a long run of words copied from the brief."""
    if re.match(r"\s*you(?:'re| are)\b", text, re.IGNORECASE):
        return True
    a, b = text.lower().split(), brief.lower().split()
    match = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return match.size >= 8


def _echoes(text: str, other: str) -> bool:
    a, b = text.lower().split(), other.lower().split()
    if len(a) >= 6 and a[:6] == b[:6]:
        return True
    return SequenceMatcher(None, a, b).ratio() >= ECHO_RATIO
