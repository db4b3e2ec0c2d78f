"""Metrics of the deterministic risk detector (therapist/safety/) on the hand-written corpus.

Run: ``python -m benchmarks.risk_detector [--corpus PATH] [--misses]``.

At-risk rows are rows with a level above "none" or any category. For a level row, "caught" means
the predicted level is at least the labelled level; exact accuracy needs the same level. Category
rows (harm to / from others, means-seeking) are caught when the predicted categories include the
labelled ones. Negatives are rows labelled "none" with no category; a false positive is a negative
with any flag (predicted level above "none" or any category).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from therapist.safety import LEVELS, assess_patient  # noqa: E402

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


def evaluate(rows):
    """Per-level recall/exact accuracy, category recall, overall detection and negatives' FPR."""
    per_level = {lv: {"n": 0, "caught": 0, "exact": 0} for lv in LEVELS[1:]}
    cats = {}
    neg = {"n": 0, "fp": 0}
    at_risk = {"n": 0, "detected": 0}
    misses, false_pos = [], []
    for level, categories, text in rows:
        a = assess_patient(text)
        flagged = a.level != "none" or bool(a.categories)
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
            cs = cats.setdefault(c, {"n": 0, "caught": 0})
            cs["n"] += 1
            if c in a.categories:
                cs["caught"] += 1
            elif c != "self_harm":
                ok = False
        if detected:
            at_risk["detected"] += 1
        if not ok or not detected:
            misses.append((level, categories, text, a))
    return {"per_level": per_level, "categories": cats, "negatives": neg, "at_risk": at_risk,
            "misses": misses, "false_positives": false_pos}


def _pct(a, b):
    return f"{100.0 * a / b:6.1f}%" if b else "    n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--misses", action="store_true", help="list missed rows and false positives")
    args = ap.parse_args(argv)
    r = evaluate(load_corpus(args.corpus))
    print(f"{'level':<10}{'n':>5}{'recall(>=)':>12}{'exact':>10}")
    for lv, s in r["per_level"].items():
        print(f"{lv:<10}{s['n']:>5}{_pct(s['caught'], s['n']):>12}{_pct(s['exact'], s['n']):>10}")
    print()
    print(f"{'category':<18}{'n':>5}{'recall':>10}")
    for c, s in sorted(r["categories"].items()):
        print(f"{c:<18}{s['n']:>5}{_pct(s['caught'], s['n']):>10}")
    ar, ng = r["at_risk"], r["negatives"]
    print()
    print(f"at-risk rows detected (any flag): {ar['detected']}/{ar['n']} = {_pct(ar['detected'], ar['n']).strip()}")
    print(f"negatives false-positive rate:   {ng['fp']}/{ng['n']} = {_pct(ng['fp'], ng['n']).strip()}")
    if args.misses:
        for title, items in (("MISSES", r["misses"]), ("FALSE POSITIVES", r["false_positives"])):
            print(f"\n{title}")
            for level, cats, text, a in items:
                print(f"  want {level}/{','.join(cats) or '-'} got {a.level}/{','.join(a.categories) or '-'}: {text}")
                for m in a.matches:
                    print(f"      {m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
