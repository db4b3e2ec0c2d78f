"""Metrics of the risk screen: the deterministic rules on their hand-written corpus, and the whole
screen (rules + context + learned layer) on the validation split and the frozen test split.

Run: ``python -m benchmarks.risk_detector [--corpus PATH] [--misses]`` (the rules), or
``python -m benchmarks.risk_detector --screen [--misses]`` (the whole screen, with latency).

At-risk rows are rows with a level above "none" or any category. For a level row, "caught" means
the predicted level is at least the labelled level; exact accuracy needs the same level. Category
rows (harm to / from others, means-seeking) are caught when the predicted categories include the
labelled ones. Negatives are rows labelled "none" with no category; a false positive is a negative
with any flag (predicted level above "none" or any category).

Per-level false-positive rate at level L (``level_fpr``): of all rows whose labelled level is below
L (category-only rows count with their labelled level, "none"), the share predicted at L or above;
``n`` is that denominator. ``hard_neg_fpr`` is the same share over the hard negatives only (level
"none", no category), so its denominator is the same for every L. Per category (``categories``),
recall is labelled rows whose predicted categories include it, and ``fp`` counts rows not labelled
with it that are predicted with it (out of ``neg_n``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from therapist.safety import CATEGORIES, LEVELS, assess_patient  # noqa: E402

CORPUS = ROOT / "tests" / "therapist" / "risk_corpus.tsv"
_RANK = {lv: i for i, lv in enumerate(LEVELS)}


def load_corpus(path: Path = CORPUS) -> list[tuple[str, tuple[str, ...], str]]:
    """Rows of (level, categories, text) of a corpus TSV (checked by ``therapist.safety.corpus``)."""
    from therapist.safety.corpus import load
    return [(row.level, row.categories, row.text) for row in load(Path(path))]


def evaluate(rows, assess=None):
    """Per-level recall/exact accuracy/false-positive rate, category recall and false positives,
    overall detection and negatives' FPR. ``assess`` (text -> RiskAssessment) defaults to the
    detector; tests pass a stub to check the arithmetic."""
    assess = assess or assess_patient
    per_level = {lv: {"n": 0, "caught": 0, "exact": 0} for lv in LEVELS[1:]}
    level_fpr = {lv: {"n": 0, "fp": 0} for lv in LEVELS[1:]}
    hard_neg_fpr = {lv: {"n": 0, "fp": 0} for lv in LEVELS[1:]}
    cats = {c: {"n": 0, "caught": 0, "neg_n": 0, "fp": 0} for c in CATEGORIES}
    neg = {"n": 0, "fp": 0}
    at_risk = {"n": 0, "detected": 0}
    misses, false_pos, overcalls = [], [], []
    for level, categories, text in rows:
        a = assess(text)
        if _RANK[a.level] > _RANK[level] or set(a.categories) - set(categories):
            overcalls.append((level, categories, text, a))
        flagged = a.level != "none" or bool(a.categories)
        hard_negative = level == "none" and not categories
        for lv in LEVELS[1:]:
            if _RANK[level] < _RANK[lv]:
                hit = _RANK[a.level] >= _RANK[lv]
                level_fpr[lv]["n"] += 1
                level_fpr[lv]["fp"] += hit
                if hard_negative:
                    hard_neg_fpr[lv]["n"] += 1
                    hard_neg_fpr[lv]["fp"] += hit
        for c, cs in cats.items():
            if c not in categories:
                cs["neg_n"] += 1
                cs["fp"] += c in a.categories
        if level == "none" and not categories:
            neg["n"] += 1
            if flagged:
                neg["fp"] += 1
                false_pos.append((level, categories, text, a))
            continue
        at_risk["n"] += 1
        ok = True
        if level != "none":
            s = per_level[level]
            s["n"] += 1
            if _RANK[a.level] >= _RANK[level]:
                s["caught"] += 1
            else:
                ok = False
            if a.level == level:
                s["exact"] += 1
            detected = a.level != "none"
        else:
            detected = flagged
        for c in categories:
            cs = cats.setdefault(c, {"n": 0, "caught": 0, "neg_n": 0, "fp": 0})
            cs["n"] += 1
            if c in a.categories:
                cs["caught"] += 1
            elif c != "self_harm":
                ok = False
        if detected:
            at_risk["detected"] += 1
        if not ok or not detected:
            misses.append((level, categories, text, a))
    return {"per_level": per_level, "level_fpr": level_fpr, "hard_neg_fpr": hard_neg_fpr,
            "categories": cats, "negatives": neg, "at_risk": at_risk,
            "misses": misses, "false_positives": false_pos, "overcalls": overcalls}


def _pct(a, b):
    return f"{100.0 * a / b:6.1f}%" if b else "    n/a"


def _frac(a, b):
    return f"{a}/{b} = {_pct(a, b).strip()}"


def format_table(r) -> list[str]:
    """The printed report of ``evaluate``'s result, one string per line."""
    hn = next(iter(r["hard_neg_fpr"].values()))["n"]
    out = ["Self-harm level L: recall = labelled L, predicted >= L; exact = predicted == L;",
           "FPR = labelled below L, predicted >= L (n = labelled below L);",
           f"hard-neg FPR = labelled none with no category (n = {hn}), predicted >= L.",
           f"{'level':<10}{'n':>5}{'recall(>=)':>12}{'exact':>10}{'n<L':>7}{'FP':>5}{'FPR':>9}"
           f"{'hard-neg FP':>13}{'FPR':>9}"]
    for lv, s in r["per_level"].items():
        f, h = r["level_fpr"][lv], r["hard_neg_fpr"][lv]
        out.append(f"{lv:<10}{s['n']:>5}{_pct(s['caught'], s['n']):>12}{_pct(s['exact'], s['n']):>10}"
                   f"{f['n']:>7}{f['fp']:>5}{_pct(f['fp'], f['n']):>9}{h['fp']:>13}{_pct(h['fp'], h['n']):>9}")
    out += ["", "Category: recall = labelled rows predicted with it; FP = rows not labelled with it, "
            "predicted with it.",
            f"{'category':<18}{'n':>5}{'recall':>10}{'not lab.':>10}{'FP':>5}{'FPR':>9}"]
    for c, s in sorted(r["categories"].items()):
        out.append(f"{c:<18}{s['n']:>5}{_pct(s['caught'], s['n']):>10}{s['neg_n']:>10}{s['fp']:>5}"
                   f"{_pct(s['fp'], s['neg_n']):>9}")
    ar, ng = r["at_risk"], r["negatives"]
    out += ["", f"at-risk rows detected (any flag):       {_frac(ar['detected'], ar['n'])}",
            f"hard negatives with any flag (FPR):     {_frac(ng['fp'], ng['n'])}"]
    return out


FROZEN_TEST = ROOT / "tests" / "therapist" / "data" / "risk_test_frozen.tsv"


def _screen_sets():
    """(name, rows) for the validation split the thresholds were chosen on, and the frozen test."""
    from therapist.safety.corpus import load, load_all
    from training.risk import RiskTrainConfig, ordinary_rows, split
    config = RiskTrainConfig()
    rows = load_all([ROOT / p for p in config.data]) + ordinary_rows([ROOT / p for p in config.ordinary])
    _, dev = split(rows, config.dev_fraction, config.seed)  # the same split as python -m training risk
    sets = [("validation", dev)]
    if FROZEN_TEST.is_file():
        sets.append(("frozen test", load(FROZEN_TEST)))
    return sets


def _latency_ms(screen, texts, rounds: int = 3) -> float:
    import statistics
    import time
    for t in texts[:5]:
        screen(t)  # warm: the encoder and head load once
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for t in texts:
            screen(t)
        samples.append((time.perf_counter() - started) * 1000 / len(texts))
    return statistics.median(samples)


def screen_report(show_misses: bool, figures_path=None) -> list[str]:
    from benchmarks.figures import Figure, write_figures
    from therapist.safety.learned import LEARNED
    from therapist.safety.metrics import evaluate as evaluate_screen
    from therapist.safety.screen import screen_message
    lines, figures = [], []
    sets = _screen_sets()
    for name, rows in sets:
        for label, learned in (("rules + context", None), ("rules + context + learned", LEARNED)):
            r = evaluate_screen(rows, learned=learned, keep_misses=show_misses)
            s = r["summary"]
            lines.append(f"{name:<12} {label:<26} at-risk recall {s['at_risk_recall']['rate']:.3f} "
                         f"(n {s['at_risk_recall']['n']}), hard negatives >= moderate "
                         f"{s['hard_negatives_moderate_or_above']['rate']:.3f} (n "
                         f"{s['hard_negatives_moderate_or_above']['n']}), unscreened {r['unscreened']}")
            lines.append("    levels: " + ", ".join(f"{lv} {v['hit']}/{v['n']}" for lv, v in r["levels"].items())
                         + "; categories: " + ", ".join(f"{c} {v['hit']}/{v['n']}" for c, v in r["categories"].items())
                         + "; languages: " + ", ".join(f"{k} {v['hit']}/{v['n']}" for k, v in r["languages"].items()))
            # Never the frozen test's rows: looking at its misses would be tuning on it.
            if show_misses and learned is not None and name == "validation":
                for row, a in r["misses"]:
                    lines.append(f"      MISS want {row.level}/{','.join(row.categories)} got {a.level}/"
                                 f"{','.join(a.categories)}: {row.text[:140]}")
                for row, a in r["false_alarm_rows"]:
                    lines.append(f"      FALSE ALARM {a.level}/{','.join(a.categories)}: {row.text[:140]}")
            if learned is not None:
                figures.append(Figure(f"risk screen at-risk recall on the {name} split, with the learned layer "
                                      "vs rules alone", s["at_risk_recall"]["rate"], None, ">= 0.97", "",
                                      "risk_detector"))
    texts = [row.text for row in sets[0][1]][:200]
    full = _latency_ms(lambda t: screen_message(t, ("I have had a hard week.",)), texts)
    rules = _latency_ms(lambda t: screen_message(t, ("I have had a hard week.",), learned=None), texts)
    lines.append(f"latency per message (warm, one earlier turn as context): {full:.1f} ms with the learned "
                 f"layer, {rules:.1f} ms rules alone (target: at most 30 ms added)")
    figures.append(Figure("risk screen per message, warm: rules + learned layer vs rules alone", full, rules,
                          "<= +30 ms", "ms", "risk_detector"))
    write_figures(figures_path, figures)
    return lines


def main(argv=None) -> int:
    from benchmarks.figures import add_figures_argument
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--misses", action="store_true", help="list missed rows, false positives and over-calls")
    ap.add_argument("--screen", action="store_true",
                    help="the whole screen on the validation and frozen test splits, with latency")
    add_figures_argument(ap)
    args = ap.parse_args(argv)
    if args.screen or args.figures:
        for line in screen_report(args.misses, args.figures):
            print(line)
        return 0
    r = evaluate(load_corpus(args.corpus))
    for line in format_table(r):
        print(line)
    if args.misses:
        for title, items in (("MISSES", r["misses"]), ("FALSE POSITIVES", r["false_positives"]),
                             ("OVER-CALLS (level above the label, or an unlabelled category)", r["overcalls"])):
            print(f"\n{title}")
            for level, cats, text, a in items:
                print(f"  want {level}/{','.join(cats) or '-'} got {a.level}/{','.join(a.categories) or '-'}: {text}")
                for m in a.matches:
                    print(f"      {m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
