"""The patient risk screen as the session engine runs it: rules as the floor, context, learned layer.

``screen_message(text, context)``:

1. the deterministic rules on the message (``assess_patient``): the floor, never lowered;
2. the rules on the earlier patient turns joined with this one: a level counts when the
   combination is higher than the message alone and the earlier turns alone ("I keep thinking
   about ending it" two turns ago, then "I've got them right here now" is high);
3. the learned layer (``learned.py``), which can only raise the level or add categories;
4. coverage: a message in a language or script the screen does not read gets no learned reading
   and, when the rules find nothing either, is marked ``unscreened`` so the supervisor reads it
   (never a silent "none"). A message with no letters or digits is not given to the learned layer.
"""
from __future__ import annotations

import dataclasses

from therapist.safety.encoder import coverage
from therapist.safety.learned import CONTEXT_TURNS, LEARNED, LearnedScreen, LearnedVerdict
from therapist.safety.levels import CATEGORIES, LEVELS, RiskAssessment, max_level
from therapist.safety.patient import assess_patient

# A category the learned layer finds raises that kind's own level to at least this.
LEARNED_OTHERS_LEVEL = "moderate"


def _rank(level: str) -> int:
    return LEVELS.index(level)


def _with_context(rules: RiskAssessment, text: str, context: list[str]) -> RiskAssessment:
    """Raise to what the rules find in the earlier turns plus this one, where that is more."""
    earlier = " . ".join(context[-CONTEXT_TURNS:])
    if not earlier.strip():
        return rules
    joined, alone = assess_patient(earlier + " . " + text), assess_patient(earlier)
    if _rank(joined.level) <= max(_rank(rules.level), _rank(alone.level)):
        return rules
    cats = tuple(c for c in CATEGORIES if c in set(rules.categories) | {"self_harm"} | (set(joined.categories) - set(alone.categories)))
    return dataclasses.replace(rules, level=joined.level, categories=cats,
                               matches=rules.matches + (f"context: {joined.level} with the earlier turns",))


def _with_learned(base: RiskAssessment, verdict: LearnedVerdict) -> RiskAssessment:
    """The higher of the two, category by category; nothing is ever lowered."""
    learned = {"level": verdict.level, "at_least": verdict.at_least, "categories": verdict.category_p,
               "status": verdict.status}
    if verdict.status != "ok":
        return dataclasses.replace(base, learned=learned,
                                   matches=base.matches + (f"learned layer {verdict.status}",))
    level = max_level(base.level, verdict.level)
    cats = set(base.categories) | set(verdict.categories)
    if level != "none":
        cats.add("self_harm")
    to_level, from_level = base.harm_to_others_level, base.harm_from_others_level
    if "harm_to_others" in verdict.categories:
        to_level = max_level(to_level, LEARNED_OTHERS_LEVEL)
    if "harm_from_others" in verdict.categories:
        from_level = max_level(from_level, LEARNED_OTHERS_LEVEL)
    raised = (level != base.level or cats != set(base.categories) or to_level != base.harm_to_others_level
              or from_level != base.harm_from_others_level)
    return dataclasses.replace(
        base, level=level, categories=tuple(c for c in CATEGORIES if c in cats),
        harm_to_others_level=to_level, harm_from_others_level=from_level, learned=learned,
        matches=base.matches + (verdict.why if raised else ()))


def screen_message(text: str, context: list[str] | tuple[str, ...] = (),
                   learned: LearnedScreen | None = LEARNED) -> RiskAssessment:
    """The full patient screen; ``learned=None`` is the rules (with context) alone."""
    context = [c for c in context if c and c.strip()]
    result = _with_context(assess_patient(text), text, context)
    covered, why = coverage(text)
    # The learned layer's reading of a language it was not trained on is noise either way: it is
    # not used, and the supervisor is asked to read the message instead.
    if learned is not None and covered and any(ch.isalnum() for ch in text):
        result = _with_learned(result, learned.assess(text, context))
    if not covered and not result.flagged:
        result = dataclasses.replace(result, unscreened=True, matches=result.matches + (f"unscreened: {why}",))
    return result
