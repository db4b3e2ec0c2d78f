"""Risk levels, categories and the ``RiskAssessment`` result shared by both screens."""
from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("none", "low", "moderate", "high", "imminent")
_RANK = {name: i for i, name in enumerate(LEVELS)}
CATEGORIES = ("self_harm", "harm_from_others", "harm_to_others", "means_seeking")


def max_level(*levels: str) -> str:
    """The most severe of the given levels ("none" for no arguments)."""
    best = "none"
    for lv in levels:
        if lv not in _RANK:
            raise ValueError(f"unknown risk level: {lv!r}")
        if _RANK[lv] > _RANK[best]:
            best = lv
    return best


def _ge(level: str, other: str) -> bool:
    return _RANK[level] >= _RANK[other]


@dataclass(frozen=True)
class RiskAssessment:
    level: str                          # one of LEVELS: the patient's own suicide/self-harm risk
    categories: tuple[str, ...] = ()    # self_harm, harm_from_others, harm_to_others, means_seeking
    matches: tuple[str, ...] = ()       # "rule_name: 'snippet'" reasons for the supervisor
    harm_to_others_level: str = "none"
    harm_from_others_level: str = "none"
    # A message the screen cannot read (language or script it does not cover) and found nothing in:
    # the supervisor is asked to read it (therapist/safety/screen.py).
    unscreened: bool = False
    learned: dict | None = None         # the learned layer's probabilities, for --explain and the flag

    @property
    def escalate(self) -> bool:
        return (_ge(self.level, "moderate") or "means_seeking" in self.categories
                or _ge(self.harm_to_others_level, "moderate")
                or _ge(self.harm_from_others_level, "moderate"))

    @property
    def hold(self) -> bool:
        return _ge(self.level, "high") or self.harm_to_others_level == "imminent"

    @property
    def flagged(self) -> bool:
        return self.level != "none" or bool(self.categories)


NONE = RiskAssessment("none")
