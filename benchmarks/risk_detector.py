"""Metrics of the deterministic risk detector (therapist/safety/) on the hand-written corpus.

Run: ``python -m benchmarks.risk_detector [--corpus PATH] [--misses]``.

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
    """Rows of (level, categories, text) from a TSV with header ``level\\tcategories\\ttext``."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header != ["level", "categories", "text"]:
            raise ValueError(f"bad corpus header: {header}")
        for n, line in enumerate(fh, start=2):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3 or parts[0] not in _RANK or not parts[2].strip():
                raise ValueError(f"{path}:{n}: bad row {line!r}")
            cats = tuple(c for c in parts[1].split(",") if c)
            rows.append((parts[0], cats, parts[2]))
    return rows


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--misses", action="store_true", help="list missed rows, false positives and over-calls")
    args = ap.parse_args(argv)
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
