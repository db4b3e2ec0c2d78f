"""Agreement statistics (eval/agreement.py): hand-computed ICC, kappa, alpha, rho and bias on small
tables, undefined cases as None, pairing of judge and human ratings from a real store, and the CLI."""
from __future__ import annotations

import argparse
import csv
import itertools
import math
import random
from types import SimpleNamespace

import pytest

from eval.agreement import (
    HUMAN_VS_HUMAN, AgreementError, AgreementRow, agreement, agreement_command, agreement_for_store,
    add_agreement_parser, bland_altman, format_table, icc, krippendorff_alpha, rows_as_dicts, spearman,
    weighted_kappa,
)
from eval.rubrics import RubricError, load_rubric
from store.db import Store
from store.ratings import RatingError, RatingStore
from store.sessions import SessionStore

TES = load_rubric("tes")  # 9 items scored 1-7; totals: 'mean' (primary), so also 'total'

# 5 subjects x 2 raters, used by several hand computations below
A = [1, 2, 3, 4, 5]
B = [2, 2, 4, 4, 6]


# ---------------------------------------------------------------------------------------------
# Statistics, by hand


def test_icc_two_way_by_hand():
    # grand mean 3.3; row means 1.5 2 3.5 4 5.5; column means 3 and 3.6
    # SS rows = 2 * (1.8² + 1.3² + 0.2² + 0.7² + 2.2²) = 2 * 10.3 = 20.6   -> MSR = 20.6 / 4 = 5.15
    # SS cols = 5 * (0.3² + 0.3²) = 0.9                                    -> MSC = 0.9 / 1 = 0.9
    # SS total = 10.45 (column A) + 11.65 (column B) = 22.1
    # SS error = 22.1 - 20.6 - 0.9 = 0.6                                   -> MSE = 0.6 / 4 = 0.15
    # ICC(3,1) = (5.15 - 0.15) / (5.15 + 0.15) = 5 / 5.3
    # ICC(2,1) = (5.15 - 0.15) / (5.15 + 0.15 + 2 * (0.9 - 0.15) / 5) = 5 / 5.6
    result = icc([[a, b] for a, b in zip(A, B)])
    assert result.ms_rows == pytest.approx(5.15) and result.ms_cols == pytest.approx(0.9)
    assert result.ms_error == pytest.approx(0.15)
    assert result.icc3_1 == pytest.approx(5 / 5.3) and result.icc3_1 == pytest.approx(0.943396, abs=1e-6)
    assert result.icc2_1 == pytest.approx(5 / 5.6) and result.icc2_1 == pytest.approx(0.892857, abs=1e-6)


def test_icc_absolute_agreement_penalises_a_constant_offset_and_consistency_does_not():
    # rater 2 = rater 1 + 2: perfectly consistent (ICC(3,1) = 1), not in absolute agreement.
    # rows 1..4 vs 3..6: MSE = 0, MSR = 2 * var of row means (2.5,3.5,4.5,5.5: SS 5, /3) = 10/3,
    # MSC = 4 * (1² + 1²) / 1 = 8 -> ICC(2,1) = (10/3) / (10/3 + 2 * 8 / 4) = (10/3) / (22/3) = 10/22
    result = icc([[x, x + 2] for x in (1, 2, 3, 4)])
    assert result.icc3_1 == pytest.approx(1.0)
    assert result.icc2_1 == pytest.approx(10 / 22)


def test_icc_is_none_when_undefined_never_nan():
    assert icc([[3, 4]]) == icc([]) == icc([[1], [2]])  # one subject, none, one rater
    assert icc([[3, 4]]).icc2_1 is None and icc([[1], [2]]).icc3_1 is None
    flat = icc([[4, 4, 4]] * 3)  # no variance anywhere: 0 / 0
    assert flat.icc2_1 is None and flat.icc3_1 is None
    # 2 x 2 with MSR = MSC = 0 and MSE > 0: ICC(2,1)'s denominator is 0; ICC(3,1) = -MSE / MSE
    cross = icc([[1, 0], [0, 1]])
    assert cross.icc2_1 is None and cross.icc3_1 == pytest.approx(-1.0)
    with pytest.raises(AgreementError):
        icc([[1, 2], [3, None]])
    with pytest.raises(AgreementError):
        icc([[1, 2], [3]])


def test_quadratic_weighted_kappa_by_hand():
    # observed: mean squared difference = ((1-2)² + 0 + (3-4)² + 0 + (5-6)²) / 5 = 3/5
    # expected: mean over all 25 (a_i, b_j) of (a_i - b_j)², by row of a:
    #   a=1: 1+1+9+9+25 = 45; a=2: 0+0+4+4+16 = 24; a=3: 1+1+1+1+9 = 13; a=4: 4+4+0+0+4 = 12;
    #   a=5: 9+9+1+1+1 = 21  -> 115 / 25 = 4.6
    # the weights' 1/(K-1)² cancels: kappa = 1 - 0.6 / 4.6 = 20/23
    assert weighted_kappa(A, B, 1, 7) == pytest.approx(20 / 23)
    assert weighted_kappa(A, B, 1, 7) == pytest.approx(0.869565, abs=1e-6)
    assert weighted_kappa(A, A, 1, 7) == pytest.approx(1.0)
    # a rater who always answers the other's mirror image: 1<->5, 2<->4, 3<->3
    # observed (16+4+0+4+16)/5 = 8; expected: both marginals uniform on 1..5: 2 * var(2) = 4 -> 1 - 8/4
    assert weighted_kappa(A, [6 - x for x in A], 1, 5) == pytest.approx(-1.0)


def test_kappa_uses_the_whole_scale_and_rejects_scores_off_it():
    # scale points nobody used are still categories; quadratic weights make the result the same
    # whatever unused points surround the data, so a wider scale gives the same kappa
    assert weighted_kappa(A, B, 0, 10) == pytest.approx(weighted_kappa(A, B, 1, 6))
    with pytest.raises(AgreementError):
        weighted_kappa(A, B, 1, 5)  # 6 is off a 1-5 scale
    with pytest.raises(AgreementError):
        weighted_kappa([1.5, 2], [1, 2], 1, 5)
    with pytest.raises(AgreementError):
        weighted_kappa([1, 2], [1], 1, 5)


def test_kappa_is_none_when_undefined():
    assert weighted_kappa([], [], 1, 7) is None
    assert weighted_kappa([4, 4, 4], [4, 4, 4], 1, 7) is None  # no expected disagreement
    assert weighted_kappa([1, 1], [1, 1], 1, 1) is None        # a one-point scale


# units (rows) x 3 raters, None = missing
ALPHA_TABLE = [[1, 2, None],
               [2, 2, 3],
               [3, 3, None],
               [1, None, None],     # one rating: not pairable, left out
               [None, 3, 1]]


def test_krippendorff_alpha_interval_by_hand():
    # coincidences (each ordered pair in a unit weighted 1/(m-1)):
    #   unit 1: (1,2),(2,1) x1; unit 2 (2,2,3): (2,2) 2 x 1/2, (2,3) 2 x 1/2, (3,2) 2 x 1/2;
    #   unit 3: (3,3) 2 x1; unit 5: (3,1),(1,3) x1
    #   o = [[0,1,1],[1,1,1],[1,1,2]] -> n_1 = 2, n_2 = 3, n_3 = 4, n = 9
    # interval delta = (c-k)²: sum o*delta = 2*1 (1-2) + 2*4 (1-3) + 2*1 (2-3) = 12
    # sum n_c n_k delta = 2 * (2*3*1 + 2*4*4 + 3*4*1) = 100
    # alpha = 1 - (n - 1) * 12 / 100 = 1 - 0.96 = 0.04
    assert krippendorff_alpha(ALPHA_TABLE, "interval") == pytest.approx(0.04)


def test_krippendorff_alpha_ordinal_by_hand():
    # ordinal delta(c,k) = (n_c + ... + n_k - (n_c + n_k)/2)² with n = (2, 3, 4):
    #   d(1,2) = (5/2)² = 6.25, d(2,3) = (7/2)² = 12.25, d(1,3) = (9 - 3)² = 36
    # sum o*delta = 2*6.25 + 2*36 + 2*12.25 = 109
    # sum n_c n_k delta = 2 * (6*6.25 + 8*36 + 12*12.25) = 945
    # alpha = 1 - 8 * 109 / 945 = 73/945
    assert krippendorff_alpha(ALPHA_TABLE, "ordinal") == pytest.approx(73 / 945)
    # unused scale points have n_g = 0, so they change nothing
    assert krippendorff_alpha(ALPHA_TABLE, "ordinal", categories=[0, 1, 2, 3, 4]) == pytest.approx(73 / 945)


def test_krippendorff_alpha_matches_the_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units,
    # missing values; the paper gives ordinal .815 and interval .849
    n = None
    observers = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
                 [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
                 [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
                 [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    units = [list(u) for u in zip(*observers)]
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)


def _alpha_by_pairs(units, level):
    """Alpha as 1 - D_o / D_e from pair averages, independent of the coincidence-matrix code."""
    units = [[v for v in u if v is not None] for u in units]
    units = [u for u in units if len(u) >= 2]
    values = sorted(v for u in units for v in u)
    counts = {c: values.count(c) for c in set(values)}

    def delta(c, k):
        if level == "interval":
            return (c - k) ** 2
        lo, hi = min(c, k), max(c, k)
        return (sum(m for g, m in counts.items() if lo <= g <= hi) - (counts[c] + counts[k]) / 2) ** 2
    d_o = sum(delta(u[i], u[j]) / (len(u) - 1) for u in units for i, j in itertools.permutations(range(len(u)), 2))
    d_e = sum(delta(c, k) for c, k in itertools.permutations(values, 2)) / (len(values) - 1)
    return 1 - d_o / d_e


@pytest.mark.parametrize("level", ["ordinal", "interval"])
def test_krippendorff_alpha_agrees_with_a_brute_force_formula(level):
    rng = random.Random(7)
    for _ in range(20):
        units = [[rng.choice([None, 1, 2, 3, 4, 5, 6]) for _ in range(4)] for _ in range(12)]
        assert krippendorff_alpha(units, level) == pytest.approx(_alpha_by_pairs(units, level))


def test_krippendorff_alpha_undefined_and_bad_input():
    assert krippendorff_alpha([[3, 3], [3, 3], [3, None]]) is None  # one value in use
    assert krippendorff_alpha([[1, None], [None, 2]]) is None       # nothing pairable
    assert krippendorff_alpha([]) is None
    with pytest.raises(AgreementError):
        krippendorff_alpha(ALPHA_TABLE, "nominal")
    with pytest.raises(AgreementError):
        krippendorff_alpha(ALPHA_TABLE, "ordinal", categories=[1, 2])  # 3 is not a category


def test_spearman_by_hand_and_when_undefined():
    # ranks of A: 1..5; ranks of B (2,2,4,4,6): 1.5, 1.5, 3.5, 3.5, 5; both mean 3
    # deviations A: -2 -1 0 1 2; B: -1.5 -1.5 0.5 0.5 2
    # sum of products = 3 + 1.5 + 0 + 0.5 + 4 = 9; sums of squares 10 and 9 -> rho = 9 / sqrt(90)
    assert spearman(A, B) == pytest.approx(9 / math.sqrt(90))
    assert spearman(A, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman(A, [4] * 5) is None and spearman([1], [2]) is None and spearman([], []) is None


def test_bland_altman_by_hand():
    # differences A - B: -1 0 -1 0 -1 -> bias -0.6; deviations -0.4 0.6 -0.4 0.6 -0.4,
    # squares sum 1.2, / 4 = 0.3 -> SD = sqrt(0.3); limits -0.6 -/+ 1.96 sqrt(0.3)
    ba = bland_altman(A, B)
    assert ba.bias == pytest.approx(-0.6) and ba.sd_diff == pytest.approx(math.sqrt(0.3))
    assert ba.loa_low == pytest.approx(-0.6 - 1.96 * math.sqrt(0.3))
    assert ba.loa_high == pytest.approx(-0.6 + 1.96 * math.sqrt(0.3))
    one = bland_altman([3], [1])
    assert one.bias == 2 and one.sd_diff is None and one.loa_low is None
    assert bland_altman([], []).bias is None


# ---------------------------------------------------------------------------------------------
# Pairing ratings from a store


def _uniform(value, items=None):
    """Every TES item (or the given ones) scored ``value``."""
    return {it.id: value for it in TES.items if items is None or it.id in items}


def _save(ratings, session, rater, kind, scores, run=None, status="ok", version=1):
    scored = TES.score(scores)
    return ratings.save(session_id=session, rater_id=rater, rater_kind=kind, rubric_id="tes",
                        rubric_version=version, scores=scored["items"], totals=scored["totals"],
                        total=scored["total"], status=status, judge_run_id=run)


@pytest.fixture
def rated(tmp_path):
    """Three sessions of study x, one of study y, a judge run with a partial rating, three humans."""
    store = Store(tmp_path / "s.db")
    sessions, ratings = SessionStore(store), RatingStore(store)
    s1, s2, s3 = (sessions.create(modality="act", therapist_model="default", reasoning=False, study="x")["id"]
                  for _ in range(3))
    other = sessions.create(modality="act", therapist_model="default", reasoning=False, study="y")["id"]
    run = ratings.create_run("tes", "default", "all", {}, None)["id"]
    _save(ratings, s1, "default", "judge", _uniform(5), run)
    _save(ratings, s2, "default", "judge", _uniform(3), run)
    first_four = [it.id for it in TES.items[:4]]
    _save(ratings, s3, "default", "judge", _uniform(6, first_four), run, status="partial")
    # humans saved out of name order: pairs must still be ordered by rater id
    for session, by_rater in ((s1, {"bob": 5, "alice": 4}), (s2, {"carol": 4, "bob": 2, "alice": 3}),
                              (s3, {"alice": 7})):
        for rater, value in by_rater.items():
            _save(ratings, session, rater, "human", _uniform(value))
    _save(ratings, other, "default", "judge", _uniform(1), run)   # study y: left out by study="x"
    _save(ratings, other, "dave", "human", _uniform(7))
    yield SimpleNamespace(store=store, ratings=ratings, run=run, s1=s1, s2=s2, s3=s3, first_four=first_four)
    store.close()


def _rows(rows, comparison):
    return {row.target: row for row in rows if row.comparison == comparison}


def test_judge_vs_human_pairs_each_judge_rating_with_every_human_of_its_session(rated):
    rows = agreement_for_store(rated.store, TES, study="x")
    judge = next(r.comparison for r in rows if r.comparison.startswith("judge"))
    assert judge == f"judge default (run {rated.run[:8]}…)"
    by_target = _rows(rows, judge)
    # targets: the 9 items, the 'mean' total and the primary 'total'
    assert list(by_target) == [it.id for it in TES.items] + ["mean", "total"]
    assert by_target["concern"].target_kind == "item" and by_target["total"].target_kind == "total"
    # judge, human per session: s1 (5,4) (5,5); s2 (3,3) (3,2) (3,4); s3 (6,7) only where it scored
    full = [(5, 4), (5, 5), (3, 3), (3, 2), (3, 4)]
    with_partial = full + [(6, 7)]
    concern, acceptance = by_target["concern"], by_target["acceptance"]
    assert concern.n == 6 and acceptance.n == 5
    assert by_target["mean"].n == by_target["total"].n == 5  # the partial rating has no total
    # bias judge minus human: (1 + 0 + 0 + 1 - 1 - 1) / 6 = 0 and (1 + 0 + 0 + 1 - 1) / 5 = 0.2
    assert concern.bias == pytest.approx(0.0) and acceptance.bias == pytest.approx(0.2)
    first, second = zip(*with_partial)
    assert concern.icc2 == pytest.approx(icc(with_partial).icc2_1)
    assert concern.icc3 == pytest.approx(icc(with_partial).icc3_1)
    assert concern.kappa == pytest.approx(weighted_kappa(first, second, 1, 7))
    assert concern.alpha == pytest.approx(krippendorff_alpha(with_partial, "ordinal", range(1, 8)))
    assert concern.spearman == pytest.approx(spearman(first, second))
    assert concern.sd_diff == pytest.approx(bland_altman(first, second).sd_diff)
    # totals: no kappa (a mean may be fractional), interval alpha
    assert by_target["total"].kappa is None
    assert by_target["total"].alpha == pytest.approx(krippendorff_alpha(full, "interval"))


def test_human_vs_human_pairs_distinct_raters_in_id_order(rated):
    rows = _rows(agreement_for_store(rated.store, TES, study="x"), HUMAN_VS_HUMAN)
    concern = rows["concern"]
    # s1 (alice 4, bob 5); s2 (alice 3, bob 2), (alice 3, carol 4), (bob 2, carol 4); s3 alice alone
    pairs = [(4, 5), (3, 2), (3, 4), (2, 4)]
    assert concern.n == 4
    assert concern.bias == pytest.approx((-1 + 1 - 1 - 2) / 4)  # first (lower id) minus second
    assert concern.icc2 == pytest.approx(icc(pairs).icc2_1)
    # alpha over sessions x (alice, bob, carol) with gaps, not over the pairs
    matrix = [[4, 5, None], [3, 2, 4], [7, None, None]]
    by_session = krippendorff_alpha(matrix, "ordinal", range(1, 8))
    assert concern.alpha == pytest.approx(by_session)
    assert by_session != pytest.approx(krippendorff_alpha(pairs, "ordinal", range(1, 8)))
    assert rows["total"].n == 4 and rows["total"].kappa is None


def test_study_and_run_filters(rated):
    everything = agreement_for_store(rated.store, TES)
    judge = next(r.comparison for r in everything if r.comparison.startswith("judge"))
    # study y adds one judge-human pair (1 vs 7) for every target
    assert _rows(everything, judge)["acceptance"].n == 6
    assert _rows(agreement_for_store(rated.store, TES, study="x"), judge)["acceptance"].n == 5
    second = rated.ratings.create_run("tes", "other-judge", "all", {}, None)["id"]
    _save(rated.ratings, rated.s1, "other-judge", "judge", _uniform(6), second)
    both = {r.comparison for r in agreement_for_store(rated.store, TES)}
    assert len(both) == 3 and HUMAN_VS_HUMAN in both
    only = sorted({r.comparison for r in agreement_for_store(rated.store, TES, judge_run_id=second)})
    assert only[0] == HUMAN_VS_HUMAN and only[1].startswith(f"judge other-judge (run {second[:8]}")
    assert len(only) == 2
    with pytest.raises(AgreementError, match="no sessions in study 'z'.*x, y"):
        agreement_for_store(rated.store, TES, study="z")
    with pytest.raises(RatingError):
        agreement_for_store(rated.store, TES, judge_run_id="nope")
    ctrs_run = rated.ratings.create_run("ctrs", "default", "all", {}, None)["id"]
    with pytest.raises(AgreementError, match="ctrs"):
        agreement_for_store(rated.store, TES, judge_run_id=ctrs_run)


def test_runs_started_together_get_distinct_labels():
    ratings = [{"rubric_id": "tes", "rubric_version": 1, "rater_kind": "judge", "rater_id": "m",
                "judge_run_id": run, "session_id": "s", "status": "ok", "scores": {}, "totals": {}}
               for run in ("01HXAAAAAAAAAAAAAAAAAAAAAA", "01HXAAAAABAAAAAAAAAAAAAAAA")]
    labels = sorted({row.comparison for row in agreement(ratings, TES)})
    assert labels == ["judge m (run 01HXAAAAAA…)", "judge m (run 01HXAAAAAB…)"]


def test_partial_failed_other_versions_and_too_few_pairs(tmp_path):
    store = Store(tmp_path / "s.db")
    ratings = RatingStore(store)
    session = SessionStore(store).create(modality="act", therapist_model="default", reasoning=False)["id"]
    failed_run = ratings.create_run("tes", "broken", "all", {}, None)["id"]
    # a failed rating keeps whatever scores it was given, yet must contribute nothing
    _save(ratings, session, "broken", "judge", _uniform(4), failed_run, status="failed")
    _save(ratings, session, "alice", "human", _uniform(4))
    _save(ratings, session, "bob", "human", _uniform(5), version=2)  # another rubric version
    rows = agreement(ratings.list(rubric_id="tes"), TES)
    judge = _rows(rows, f"judge broken (run {failed_run[:8]}…)")
    assert judge["concern"].n == 0 and judge["concern"].icc2 is None
    humans = _rows(rows, HUMAN_VS_HUMAN)
    assert humans["concern"].n == 0  # bob's version-2 rating is not paired with alice
    _save(ratings, session, "carol", "human", _uniform(3))
    one_pair = _rows(agreement(ratings.list(rubric_id="tes"), TES), HUMAN_VS_HUMAN)["concern"]
    assert one_pair.n == 1
    assert all(getattr(one_pair, f) is None for f in ("icc2", "icc3", "kappa", "alpha", "spearman", "bias",
                                                      "sd_diff"))
    assert agreement([], TES) == [] and agreement(ratings.list(rubric_id="tes"), load_rubric("ctrs")) == []
    store.close()


def test_constant_scores_give_none_not_nan():
    # the judge and both humans give 4 everywhere: nothing varies, so nothing can agree or not
    rows = [{"rubric_id": "tes", "rubric_version": 1, "rater_kind": kind, "rater_id": rater, "judge_run_id": run,
             "session_id": session, "status": "ok", "scores": _uniform(4), "totals": {"mean": 4.0},
             "total": 4.0} for session in ("a", "b", "c")
            for kind, rater, run in (("judge", "m", "R1"), ("human", "alice", None), ("human", "bob", None))]
    for row in agreement(rows, TES):
        assert row.n == (3 if row.comparison == HUMAN_VS_HUMAN else 6)  # judge: 3 sessions x 2 humans
        assert (row.icc2, row.icc3, row.kappa, row.alpha, row.spearman) == (None,) * 5
        assert row.bias == 0 and row.sd_diff == 0


# ---------------------------------------------------------------------------------------------
# Output and CLI


def test_format_table_and_dicts():
    rows = [AgreementRow("judge m (run 01ABCDEF…)", "concern", "item", 12, icc2=0.8349, kappa=None,
                         alpha=0.7, spearman=-0.0001, bias=-0.25),
            AgreementRow(HUMAN_VS_HUMAN, "total", "total", 1)]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["comparison", "target", "n", "ICC(2,1)", "kappa_w", "alpha", "rho", "bias"]
    assert len({len(line) for line in lines}) == 1  # aligned
    assert lines[2].split()[-6:] == ["12", "0.83", "-", "0.70", "0.00", "-0.25"]
    assert lines[3].split()[-6:] == ["1", "-", "-", "-", "-", "-"]
    as_dicts = rows_as_dicts(rows)
    assert as_dicts[0]["icc2"] == 0.8349 and as_dicts[0]["kappa"] is None and as_dicts[1]["n"] == 1
    assert set(as_dicts[0]) >= {"comparison", "target", "target_kind", "n", "icc2", "icc3", "kappa", "alpha",
                                "spearman", "bias", "sd_diff"}


def _parse(argv):
    parser = argparse.ArgumentParser(prog="eval")
    add_agreement_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_prints_the_table_and_writes_csv(rated, tmp_path, capsys):
    ctx = SimpleNamespace(store=rated.store, settings=SimpleNamespace(data_dir=tmp_path))
    out_csv = tmp_path / "agreement.csv"
    args = _parse(["agreement", "--rubric", "tes", "--study", "x", "--judge-run", rated.run,
                   "--csv", str(out_csv)])
    assert agreement_command(args, ctx) == 0
    out = capsys.readouterr().out
    assert "ICC(2,1)" in out and HUMAN_VS_HUMAN in out and f"run {rated.run[:8]}" in out
    with open(out_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 11 and f"wrote {len(rows)} rows" in out
    concern = next(r for r in rows if r["target"] == "concern" and r["comparison"].startswith("judge"))
    assert concern["n"] == "6" and float(concern["bias"]) == pytest.approx(0.0)
    assert next(r for r in rows if r["target"] == "total")["kappa"] == ""  # None -> empty cell


def test_cli_with_no_ratings_and_bad_input(tmp_path, capsys):
    store = Store(tmp_path / "s.db")
    ctx = SimpleNamespace(store=store, settings=SimpleNamespace(data_dir=tmp_path))
    assert agreement_command(_parse(["agreement", "--rubric", "tes"]), ctx) == 0
    assert "no ratings for rubric tes yet" in capsys.readouterr().out
    with pytest.raises(RubricError):
        agreement_command(_parse(["agreement", "--rubric", "no-such-rubric"]), ctx)
    with pytest.raises(ValueError):
        agreement_command(_parse(["agreement", "--rubric", "tes", "--study", "nowhere"]), ctx)
    with pytest.raises(SystemExit):
        _parse(["agreement"])  # --rubric is required
    store.close()
