"""The arithmetic of ``benchmarks/risk_detector.py``: per-level recall, exact level and false-positive
rate, and per-category recall / false positives, on a tiny hand-made list with stubbed predictions."""
from __future__ import annotations

from benchmarks.risk_detector import CORPUS, evaluate, format_table, load_corpus, main
from therapist.safety import LEVELS, RiskAssessment

SH = ("self_harm",)
# (true level, true categories, text) -> stubbed prediction
CASES = [
    (("none", (), "n1"), RiskAssessment("none")),
    (("none", (), "n2"), RiskAssessment("low", SH)),                                  # hard-neg FP at low
    (("none", ("harm_from_others",), "c1"),
     RiskAssessment("moderate", SH + ("harm_from_others",), harm_from_others_level="moderate")),
    (("low", SH, "l1"), RiskAssessment("high", SH)),                                  # over-call by two
    (("moderate", SH, "m1"), RiskAssessment("low", SH)),                              # miss
    (("high", SH, "h1"), RiskAssessment("imminent", SH)),                             # over-call by one
    (("imminent", SH, "i1"), RiskAssessment("imminent", SH)),
]
ROWS = [row for row, _ in CASES]
PRED = {row[2]: a for row, a in CASES}


def _result():
    return evaluate(ROWS, assess=PRED.__getitem__)


def test_per_level_false_positive_rate_denominators_and_counts():
    r = _result()
    # below low: n1 n2 c1; below moderate: + l1; below high: + m1; below imminent: + h1
    assert r["level_fpr"] == {
        "low": {"n": 3, "fp": 2},          # n2 (low), c1 (moderate)
        "moderate": {"n": 4, "fp": 2},     # c1 (moderate), l1 (high)
        "high": {"n": 5, "fp": 1},         # l1 (high); m1 is under-called
        "imminent": {"n": 6, "fp": 1},     # h1 (imminent)
    }
    assert r["hard_neg_fpr"] == {
        "low": {"n": 2, "fp": 1}, "moderate": {"n": 2, "fp": 0},
        "high": {"n": 2, "fp": 0}, "imminent": {"n": 2, "fp": 0},
    }


def test_per_level_recall_exact_and_categories():
    r = _result()
    assert r["per_level"] == {
        "low": {"n": 1, "caught": 1, "exact": 0},
        "moderate": {"n": 1, "caught": 0, "exact": 0},
        "high": {"n": 1, "caught": 1, "exact": 0},
        "imminent": {"n": 1, "caught": 1, "exact": 1},
    }
    cats = r["categories"]
    assert cats["harm_from_others"] == {"n": 1, "caught": 1, "neg_n": 6, "fp": 0}
    assert cats["harm_to_others"] == {"n": 0, "caught": 0, "neg_n": 7, "fp": 0}
    assert cats["self_harm"] == {"n": 4, "caught": 4, "neg_n": 3, "fp": 2}   # n2 and c1
    assert r["negatives"] == {"n": 2, "fp": 1}
    assert [x[2] for x in r["misses"]] == ["m1"]
    assert [x[2] for x in r["overcalls"]] == ["n2", "c1", "l1", "h1"]


def test_table_shows_denominators():
    lines = format_table(_result())
    row = {ln.split()[0]: ln.split() for ln in lines if ln.split() and ln.split()[0] in
           ("low", "moderate", "high", "imminent", "harm_from_others")}
    # level n recall exact n<L FP FPR hard-neg-FP FPR
    assert row["low"][4:] == ["3", "2", "66.7%", "1", "50.0%"]
    assert row["moderate"][1:] == ["1", "0.0%", "0.0%", "4", "2", "50.0%", "0", "0.0%"]
    assert row["imminent"][4:7] == ["6", "1", "16.7%"]
    assert row["harm_from_others"][1:] == ["1", "100.0%", "6", "0", "0.0%"]
    assert any("n = 2" in ln for ln in lines)


def test_benchmark_runs_on_the_corpus(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    rows = load_corpus(CORPUS)
    r = evaluate(rows)
    hard = r["negatives"]["n"]
    for lv in LEVELS[1:]:
        assert r["hard_neg_fpr"][lv]["n"] == hard
        assert r["level_fpr"][lv]["n"] == sum(1 for row in rows if LEVELS.index(row[0]) < LEVELS.index(lv))
    assert f"n = {hard}" in out and "harm_to_others" in out and "hard-neg FP" in out
