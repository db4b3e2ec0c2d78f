"""How well the patient screen does on labelled messages: recall per level and category, false
alarms on hard negatives, and what it could not read.

An at-risk row is caught when the screen's level is at least the labelled one and its categories
include every labelled category other than ``self_harm`` (which follows the level). A hard
negative (level none, no category) is a false alarm at level L when the screen gives L or above,
and "flagged" when it gives anything at all. ``unscreened`` rows are counted apart: the supervisor
is asked to read them, which is not the same as the screen catching them.
"""
from __future__ import annotations

import time

from therapist.safety.corpus import Row
from therapist.safety.learned import LEARNED
from therapist.safety.levels import LEVELS

_UNSET = object()


def _caught(row: Row, result) -> bool:
    if LEVELS.index(result.level) < LEVELS.index(row.level):
        return False
    return all(c in result.categories for c in row.categories if c != "self_harm")


def _share(hit: int, n: int) -> dict:
    return {"n": n, "hit": hit, "rate": round(hit / n, 4) if n else None}


def evaluate(rows: list[Row], learned=_UNSET, keep_misses: bool = False) -> dict:
    """Metrics of ``screen_message`` on ``rows`` (``learned=None``: rules and context only)."""
    from therapist.safety.screen import screen_message
    learned = LEARNED if learned is _UNSET else learned
    results, started = [], time.perf_counter()
    for row in rows:
        results.append(screen_message(row.text, row.context, learned=learned))
    per_message_ms = (time.perf_counter() - started) * 1000 / max(len(rows), 1)
    risky = [(r, a) for r, a in zip(rows, results) if r.at_risk]
    negatives = [(r, a) for r, a in zip(rows, results) if not r.at_risk]
    levels = {lv: _share(sum(_caught(r, a) for r, a in risky if r.level == lv),
                         sum(1 for r, _ in risky if r.level == lv)) for lv in LEVELS[1:]}
    categories = {}
    for cat in ("harm_from_others", "harm_to_others", "means_seeking"):
        labelled = [(r, a) for r, a in risky if cat in r.categories]
        categories[cat] = _share(sum(cat in a.categories for _, a in labelled), len(labelled))
    false_alarms = {lv: _share(sum(LEVELS.index(a.level) >= LEVELS.index(lv) for _, a in negatives), len(negatives))
                    for lv in ("low", "moderate")}
    false_alarms["flagged"] = _share(sum(a.flagged for _, a in negatives), len(negatives))
    languages = {}
    for r, a in risky:
        key = "en" if r.lang == "en" else "other"
        entry = languages.setdefault(key, [0, 0])
        entry[0] += _caught(r, a)
        entry[1] += 1
    summary = {
        "at_risk_recall": _share(sum(_caught(r, a) for r, a in risky), len(risky)),
        "at_risk_caught_or_unscreened": _share(sum(_caught(r, a) or a.unscreened for r, a in risky), len(risky)),
        "hard_negatives_moderate_or_above": false_alarms["moderate"],
        "ms_per_message": round(per_message_ms, 2),
    }
    out = {"summary": summary, "levels": levels, "categories": categories, "false_alarms": false_alarms,
           "languages": {k: _share(*v) for k, v in languages.items()},
           "unscreened": sum(a.unscreened for a in results)}
    if keep_misses:
        out["misses"] = [(r, a) for r, a in risky if not _caught(r, a)]
        out["false_alarm_rows"] = [(r, a) for r, a in negatives if a.flagged]
    return out
