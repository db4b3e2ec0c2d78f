"""Patient screen: scan each sentence against the rules, then combine hits into a ``RiskAssessment``."""
from __future__ import annotations

import re
from dataclasses import dataclass

from therapist.safety.cues import (_ACCESS, _CURRENT, _DISTRESS, _FICTION, _FROM_IMMINENT, _FROM_PAST,
                                   _GOODBYE_PRETEXT, _HYPERBOLE_COULD, _JOKE, _JUST_NOW, _METHOD, _OTHERS_PLAN,
                                   _RECENT, _REMOTE, _REPORTED, _RESOLVED, _STRONG_TIMING, _THIRD_SUBJ, _TIMING,
                                   _clause_tail, _negated)
from therapist.safety.levels import NONE, RiskAssessment, _ge, max_level
from therapist.safety.normalize import _DQUOTED, _SQUOTED, _finish, _split_sentences, normalize
from therapist.safety.rules import RULES, _Rule

def _strip_quotes(text: str) -> tuple[str, bool]:
    """Drop quoted spans if the rest of the message says they are someone else's words/fiction."""
    spans = [m.span() for m in _DQUOTED.finditer(text)] + [m.span() for m in _SQUOTED.finditer(text)]
    if not spans:
        return text, False
    outside = text
    for a, b in sorted(spans, reverse=True):
        outside = outside[:a] + " " + outside[b:]
    out_fin = _finish(outside)
    if _REPORTED.search(out_fin) or _FICTION.search(out_fin) or _JOKE.search(out_fin):
        return outside, True
    return text, False


@dataclass
class _Hit:
    rule: _Rule
    level: str
    snippet: str
    sentence: str
    historical: bool = False


def _snippet(s: str, m: re.Match) -> str:
    a, b = max(0, m.start() - 20), min(len(s), m.end() + 20)
    return s[a:b].strip()[:120]


def _scan(sentences: list[str]) -> list[_Hit]:
    hits: list[_Hit] = []
    for sent in sentences:
        joke = bool(_JOKE.search(sent))
        fiction = bool(_FICTION.search(sent))
        for rule in RULES:
            for m in rule.pattern.finditer(sent):
                core = m.start("core") if "core" in rule.pattern.groupindex else m.start()
                prefix = sent[:core]
                if "n" in rule.flags and _negated(prefix):
                    continue
                if "r" in rule.flags and _REPORTED.search(prefix):
                    continue
                if "f" in rule.flags and fiction and not re.search(r"\b(?:i feel|how i feel|i relate|me too)\b", sent):
                    continue
                if "j" in rule.flags and joke:
                    continue
                if "s" in rule.flags and _THIRD_SUBJ.search(_clause_tail(prefix, 8)):
                    continue
                if rule.name == "want_to_die" and joke and m.group("core").startswith("wanted"):
                    continue  # "the presentation was so bad I wanted to die lol"
                level = rule.level
                if "J" in rule.flags and joke:
                    level = "low"
                historical = False
                if "t" in rule.flags:
                    if _JUST_NOW.search(sent) and rule.name != "attempt":
                        level = "imminent"
                    elif _RECENT.search(sent):
                        level = max_level(level, "high")
                if "h" in rule.flags or rule.category == "self_harm":
                    historical = bool(_REMOTE.search(sent)) and not _CURRENT.search(sent)
                hits.append(_Hit(rule, level, _snippet(sent, m), sent, historical))
                break
    return hits


def assess_patient(text) -> RiskAssessment:
    """Screen one patient message. Never raises; empty/odd input -> level "none"."""
    try:
        return _assess(text)
    except Exception:  # pragma: no cover - a screen must never take the session down
        return RiskAssessment("none", (), ("detector_error",))


def _assess(text) -> RiskAssessment:
    raw = normalize(text)
    if not raw.strip():
        return NONE
    raw, quotes_dropped = _strip_quotes(raw)
    norm = _finish(raw)
    if not norm:
        return NONE
    sentences = _split_sentences(norm)
    hits = _scan(sentences)
    notes: list[str] = []
    if quotes_dropped:
        notes.append("context: quoted words attributed to someone else / fiction were not scored")

    self_hits = [h for h in hits if h.rule.category == "self_harm"]
    distress = bool(_DISTRESS.search(norm))
    if not distress and not any("c" not in h.rule.flags for h in self_hits):
        self_hits = []  # "I want to end it" with no crisis context: likely a relationship/job
    means_hits = [h for h in hits if h.rule.category == "means_seeking"]
    to_hits = [h for h in hits if h.rule.category == "harm_to_others"]
    from_hits = [h for h in hits if h.rule.category == "harm_from_others"]

    timing = bool(_TIMING.search(norm))

    level, current, history = _self_level(self_hits, norm, timing, notes)
    level, means_kept = _means_level(means_hits, level, norm, distress, timing, bool(self_hits), bool(current),
                                     notes)
    to_level = _to_others_level(to_hits, norm, timing, notes)
    from_level = _from_others_level(from_hits, norm)

    cats = []
    if level != "none":
        cats.append("self_harm")
    if means_kept:
        cats.append("means_seeking")
    if to_level != "none":
        cats.append("harm_to_others")
    if from_level != "none":
        cats.append("harm_from_others")
    matches = [f"{h.rule.name}[{h.level}]: '{h.snippet}'"
               for h in (current + history + means_kept + to_hits + from_hits)]
    if means_kept and distress:
        matches.append("context: distress cue with means-seeking")
    if timing and (level == "imminent" or to_level == "imminent"):
        matches.append("context: timing cue (tonight / now / about to)")
    if to_level != "none":
        matches.append(f"harm_to_others_level={to_level}")
    if from_level != "none":
        matches.append(f"harm_from_others_level={from_level}")
    matches.extend(notes)
    return RiskAssessment(level, tuple(cats), _unique(matches), to_level, from_level)


def _unique(matches: list[str]) -> tuple[str, ...]:
    """Keep unique, in order."""
    seen, uniq = set(), []
    for m in matches:
        if m not in seen:
            seen.add(m)
            uniq.append(m)
    return tuple(uniq)


def _self_level(self_hits: list[_Hit], norm: str, timing: bool,
                notes: list[str]) -> tuple[str, list[_Hit], list[_Hit]]:
    """The patient's own level from the self-harm hits: (level, current hits, history hits still scored)."""
    level = "none"
    current = [h for h in self_hits if not h.historical]
    history = [h for h in self_hits if h.historical]
    if current:
        level = max_level(*(h.level for h in current))
        if history:
            level = max_level(level, "low")
    elif history:
        if _RESOLVED.search(norm) and not _CURRENT.search(norm):
            notes.extend(f"history (reported resolved, not scored): {h.rule.name}: '{h.snippet}'" for h in history)
            history = []
        else:
            level = "low"
            if _CURRENT.search(norm) and not _RESOLVED.search(norm):
                level = "moderate"
    if current and _METHOD.search(norm):
        if any(h.rule.name in ("wish_dead", "want_to_die", "kill_myself", "suicidal", "end_it_all", "kms",
                               "no_reason_to_live", "cant_go_on", "sleep_not_wake") for h in current):
            level = max_level(level, "moderate")
    if _ge(level, "moderate") and current and _ACCESS.search(norm) and _METHOD.search(norm):
        level = max_level(level, "high")
    if _ge(level, "moderate") and current and timing:
        level = "imminent"
    elif level == "low" and current and _STRONG_TIMING.search(norm):
        level = "high"   # "I want to die tonight": a wish with a time attached
    return level, current, history


def _means_level(means_hits: list[_Hit], level: str, norm: str, distress: bool, timing: bool,
                 any_self: bool, any_current: bool, notes: list[str]) -> tuple[str, list[_Hit]]:
    """Raise ``level`` for means-seeking: (new level, means hits kept)."""
    means_kept = []
    for h in means_hits:
        if "c" in h.rule.flags and not (distress or any_self):
            continue  # tallest buildings / train times / rope with no crisis context: ordinary questions
        means_kept.append(h)
    if means_kept:
        mlevel = max_level(*(h.level for h in means_kept))
        if distress or any_current:
            mlevel = max_level(mlevel, "high")
        if timing and (distress or any_current):
            mlevel = "imminent"
        level = max_level(level, mlevel)
        if _GOODBYE_PRETEXT.search(norm):
            notes.append("pretext ('for a project/story/friend') does not lower means-seeking")
    return level, means_kept


def _to_others_level(to_hits: list[_Hit], norm: str, timing: bool, notes: list[str]) -> str:
    """Level of harm the patient may do to others."""
    to_level = "none"
    for h in to_hits:
        lv = h.level
        if _HYPERBOLE_COULD.search(h.sentence) and not _OTHERS_PLAN.search(norm):
            notes.append(f"hyperbole (not scored): {h.rule.name}: '{h.snippet}'")
            continue
        if _OTHERS_PLAN.search(norm):
            lv = max_level(lv, "high")
        if timing:
            lv = "imminent"
        to_level = max_level(to_level, lv)
    return to_level


def _from_others_level(from_hits: list[_Hit], norm: str) -> str:
    """Level of harm others may do to the patient."""
    from_level = "none"
    for h in from_hits:
        lv = h.level
        if _FROM_PAST.search(h.sentence) and not _CURRENT.search(h.sentence):
            lv = "low"
        elif h.rule.name == "told_to_die" and "bullied" in h.snippet and not re.search(r"kill|die|kms|kys", h.snippet):
            lv = "low"
        elif _FROM_IMMINENT.search(norm):
            lv = "imminent"
        from_level = max_level(from_level, lv)
    return from_level
