"""Study statistics (eval/stats.py) against values computed here by hand: descriptives, the balanced
mixed model (fixed effects = differences of means, REML variance components = ANOVA estimators, Wald
chi-square = b' V^-1 b), Holm-Sidak and Holm, Friedman and Kruskal-Wallis by their rank formulas,
rank-biserial effect sizes; the optimizer fallback on data where lbfgs fails by itself; the CLI."""
from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from eval.__main__ import main
from eval.stats import (
    StatsError, analyse, descriptives, mixed_model, nonparametric, rank_biserial_paired,
    rank_biserial_unpaired,
)
from eval.stats_tables import to_markdown, write_csv

VARIANTS = ["A", "B", "C"]
# 6 subjects x 3 variants, balanced; no ties within a subject (so Friedman needs no tie correction)
SCORES = {"p1": (20, 24, 17), "p2": (25, 26, 21), "p3": (17, 22, 18),
          "p4": (28, 29, 26), "p5": (21, 26, 20), "p6": (27, 26, 22)}
# the same variant effects with the subjects pulled together: subject variance 0.4 by ANOVA, and
# lbfgs raises "Singular matrix" on it with statsmodels 0.15 / scipy 1.17 / numpy 2.4
SMALL_SUBJECT = {"p1": (22, 26, 19), "p2": (24, 25, 20), "p3": (20, 25, 21),
                 "p4": (25, 26, 23), "p5": (21, 26, 20), "p6": (26, 25, 21)}
# subjects pulled further: the ANOVA subject variance is negative, so REML sits on the boundary
# (0); lbfgs raises and bfgs stops without converging, powell converges
BOUNDARY = {"p1": (22, 26, 19), "p2": (24, 25, 20), "p3": (21, 26, 22),
            "p4": (24, 25, 22), "p5": (22, 27, 21), "p6": (25, 24, 20)}


def long_table(scores: dict, variant_col="model", subject_col="persona", score_col="score") -> pd.DataFrame:
    return pd.DataFrame([{subject_col: s, variant_col: v, score_col: float(x)}
                         for s, xs in scores.items() for v, x in zip(VARIANTS, xs)])


def anova(scores: dict) -> dict:
    """Two-way additive ANOVA (subject + variant) of a complete subjects x variants table, by hand."""
    y = np.array(list(scores.values()), dtype=float)
    n, k = y.shape
    grand, subj, var = y.mean(), y.mean(axis=1), y.mean(axis=0)
    ss_subject = k * ((subj - grand) ** 2).sum()
    ss_variant = n * ((var - grand) ** 2).sum()
    ss_error = ((y - grand) ** 2).sum() - ss_subject - ss_variant
    ms_subject, ms_error = ss_subject / (n - 1), ss_error / ((n - 1) * (k - 1))
    return {"n": n, "k": k, "means": var, "ss_subject": ss_subject, "ss_variant": ss_variant,
            "ss_error": ss_error, "ms_error": ms_error, "subject_var": (ms_subject - ms_error) / k}


def holm_sidak(p: list[float]) -> list[float]:
    """Step-down Sidak: the i-th smallest p becomes 1 - (1 - p)^(m - i), kept monotone."""
    order = sorted(range(len(p)), key=p.__getitem__)
    out, running = [0.0] * len(p), 0.0
    for i, j in enumerate(order):
        running = max(running, 1 - (1 - p[j]) ** (len(p) - i))
        out[j] = min(running, 1.0)
    return out


def holm(p: list[float]) -> list[float]:
    order = sorted(range(len(p)), key=p.__getitem__)
    out, running = [0.0] * len(p), 0.0
    for i, j in enumerate(order):
        running = max(running, (len(p) - i) * p[j])
        out[j] = min(running, 1.0)
    return out


@pytest.fixture(scope="module")
def result():
    (res,) = analyse(long_table(SCORES), ["score"], "model", "persona")
    return res


# ---------------------------------------------------------------------------------------------
# Descriptives and the balanced mixed model, by hand


def test_descriptives_by_hand(result):
    for d, column in zip(result.descriptives, zip(*SCORES.values())):
        n = len(column)
        mean = sum(column) / n
        sd = math.sqrt(sum((x - mean) ** 2 for x in column) / (n - 1))
        assert (d.n, d.min, d.max) == (6, min(column), max(column))
        assert d.mean == pytest.approx(mean, abs=1e-12) and d.sd == pytest.approx(sd, abs=1e-12)
    a = result.descriptives[0]  # A: 20 25 17 28 21 27, mean 23, SS 94, SD sqrt(18.8)
    assert a.m_sd == "23.00 (4.34)" and a.sd == pytest.approx(math.sqrt(18.8))
    assert descriptives(long_table(SCORES), "score", "model")[1].mean == pytest.approx(25.5)


def test_fixed_effects_are_differences_of_means(result):
    m, a = result.mixed, anova(SCORES)
    assert m.ok and m.method == "lbfgs" and [x.ok for x in m.attempts] == [True]
    means = a["means"]  # 23, 25.5, 20.6667
    assert [f.term for f in m.fixed] == ["Intercept", "B", "C"]
    assert [f.estimate for f in m.fixed] == pytest.approx([means[0], means[1] - means[0], means[2] - means[0]],
                                                          abs=1e-6)
    assert [m.means[v] for v in VARIANTS] == pytest.approx(list(means), abs=1e-6)
    # Var(mean_i - mean_j) = 2 sigma_e^2 / n; Var(mean_A) = (sigma_s^2 + sigma_e^2) / n
    se_diff = math.sqrt(2 * a["ms_error"] / a["n"])
    se_intercept = math.sqrt((a["subject_var"] + a["ms_error"]) / a["n"])
    assert [f.se for f in m.fixed] == pytest.approx([se_intercept, se_diff, se_diff], rel=1e-4)
    b = m.fixed[1]  # B - A = 2.5
    assert b.z == pytest.approx(2.5 / se_diff, rel=1e-4)
    assert (b.ci_low, b.ci_high) == pytest.approx((2.5 - 1.959964 * se_diff, 2.5 + 1.959964 * se_diff), rel=1e-4)
    assert b.p == pytest.approx(math.erfc(abs(b.z) / math.sqrt(2)), rel=1e-9)


def test_reml_variance_components_equal_anova(result):
    m, a = result.mixed, anova(SCORES)
    assert a["ms_error"] == pytest.approx(19.7 / 9) and a["subject_var"] == pytest.approx(9 + 1 / 3)
    assert m.residual_var == pytest.approx(a["ms_error"], rel=1e-4)
    assert m.subject_var == pytest.approx(a["subject_var"], rel=1e-4)
    icc = a["subject_var"] / (a["subject_var"] + a["ms_error"])
    assert m.icc == pytest.approx(icc, rel=1e-4) and m.icc == pytest.approx(0.81, abs=0.001)


def test_wald_chi_square_by_hand(result):
    m, a = result.mixed, anova(SCORES)
    n, k, s2 = a["n"], a["k"], a["ms_error"]
    b = np.array([a["means"][1] - a["means"][0], a["means"][2] - a["means"][0]])
    # Var(b_i) = 2 s2 / n, Cov(b_i, b_j) = Var(mean_A) within subjects = s2 / n
    v = s2 / n * (np.eye(k - 1) + np.ones((k - 1, k - 1)))
    chi2 = float(b @ np.linalg.solve(v, b))
    assert chi2 == pytest.approx(a["ss_variant"] / s2)  # the same thing, the ANOVA way
    assert (m.wald.test, m.wald.df, m.wald.n) == ("Wald chi2", 2, 18)
    assert m.wald.statistic == pytest.approx(chi2, rel=1e-4) and m.wald.statistic == pytest.approx(32.03, abs=0.01)
    assert m.wald.p == pytest.approx(math.exp(-chi2 / 2), rel=1e-3)  # chi-square with 2 df


def test_contrasts_and_holm_sidak_by_hand(result):
    # three p-values by hand: sorted .01 .03 .04 -> 1-.99^3 = .029701, 1-.97^2 = .0591, max(.0591, .04)
    assert holm_sidak([0.04, 0.01, 0.03]) == pytest.approx([0.0591, 0.029701, 0.0591])
    m, a = result.mixed, anova(SCORES)
    assert [(c.first, c.second) for c in m.contrasts] == [("A", "B"), ("A", "C"), ("B", "C")]
    means = dict(zip(VARIANTS, a["means"]))
    se = math.sqrt(2 * a["ms_error"] / a["n"])
    for c in m.contrasts:
        assert c.estimate == pytest.approx(means[c.first] - means[c.second], abs=1e-6)
        assert c.se == pytest.approx(se, rel=1e-4)
        assert c.p == pytest.approx(math.erfc(abs(c.estimate / se) / math.sqrt(2)), rel=1e-3)
    assert [c.p_adj for c in m.contrasts] == pytest.approx(holm_sidak([c.p for c in m.contrasts]), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Nonparametric companions


def test_friedman_by_rank_formula_and_paired_pairwise(result):
    npr = result.nonparametric
    assert npr.paired and npr.averaged_cells == 0 and npr.n_subjects == 6
    ranks = [sorted(row).index(x) + 1 for row in SCORES.values() for x in row]  # no ties within a row
    rank_sums = [sum(ranks[j::3]) for j in range(3)]
    n, k = 6, 3
    friedman = 12 / (n * k * (k + 1)) * sum(r * r for r in rank_sums) - 3 * n * (k + 1)
    assert rank_sums == [12, 17, 7] and friedman == pytest.approx(25 / 3)
    assert (npr.omnibus.test, npr.omnibus.df) == ("Friedman", 2)
    assert npr.omnibus.statistic == pytest.approx(friedman)
    assert npr.omnibus.p == pytest.approx(math.exp(-friedman / 2))
    ab = npr.pairwise[0]
    # A - B = -4 -1 -5 -1 -5 +1; |d| ranks: the three 1s share 2, 4 is 4, the 5s share 5.5
    # R+ = 2, R- = 19: r = (2 - 19) / 21
    assert (ab.first, ab.second, ab.test) == ("A", "B", "Wilcoxon signed-rank")
    assert ab.rank_biserial == pytest.approx(-17 / 21) and ab.statistic == 2
    assert [r.p_adj for r in npr.pairwise] == pytest.approx(holm([r.p for r in npr.pairwise]))


def test_rank_biserial_by_hand_on_tiny_cases():
    # paired: d = 2 -1 4 0 -> zero left out; |d| ranks 2, 1, 3; R+ = 5, R- = 1 -> (5 - 1) / 6
    assert rank_biserial_paired([3, 5, 8, 6], [1, 6, 4, 6]) == pytest.approx(2 / 3)
    assert rank_biserial_paired([1, 6, 4, 6], [3, 5, 8, 6]) == pytest.approx(-2 / 3)
    assert rank_biserial_paired([1, 2], [1, 2]) is None
    # unpaired: x = 1 4 6, y = 2 3; x beats y in 0 + 2 + 2 = 4 of 6 pairs -> 2 * 4 / 6 - 1 = 1/3
    assert rank_biserial_unpaired(4, 3, 2) == pytest.approx(1 / 3)
    df = pd.DataFrame({"v": ["x"] * 3 + ["y"] * 2, "s": list("abcde"), "y": [1, 4, 6, 2, 3]})
    (pair,) = nonparametric(df, "y", "v", "s").pairwise
    assert (pair.test, pair.statistic, pair.n_first, pair.n_second) == ("Mann-Whitney U", 4, 3, 2)
    assert pair.rank_biserial == pytest.approx(1 / 3)


def test_unpaired_design_takes_kruskal_wallis_and_mann_whitney():
    # nine subjects, each seen by one variant: ranks A 1 2 4, B 3 6 7, C 5 8 9 (no ties)
    values = {"A": [10, 11, 14], "B": [13, 16, 17], "C": [15, 18, 19]}
    df = pd.DataFrame([{"variant": v, "subject": f"{v}{i}", "y": x}
                       for v, xs in values.items() for i, x in enumerate(xs)])
    (res,) = analyse(df, "y", "variant", "subject")
    npr = res.nonparametric
    assert not npr.paired and "not paired: 9 of 9 subjects lack some variant" in npr.note
    big_n = 9
    h = 12 / (big_n * (big_n + 1)) * (7 ** 2 / 3 + 16 ** 2 / 3 + 22 ** 2 / 3) - 3 * (big_n + 1)
    assert (npr.omnibus.test, npr.omnibus.df, npr.omnibus.n) == ("Kruskal-Wallis", 2, 9)
    assert npr.omnibus.statistic == pytest.approx(h) and h == pytest.approx(76 / 15)
    ab = npr.pairwise[0]  # A beats B in 1 of 9 pairs (14 > 13): U_A = 1, r = 2/9 - 1
    assert (ab.test, ab.statistic, ab.rank_biserial) == ("Mann-Whitney U", 1, pytest.approx(2 / 9 - 1))
    assert [r.p_adj for r in npr.pairwise] == pytest.approx(holm([r.p for r in npr.pairwise]))
    assert res.mixed.ok and res.mixed.means["C"] == pytest.approx(52 / 3, abs=1e-6)


def test_repeats_are_averaged_for_the_paired_tests():
    df = long_table(SCORES)
    extra = pd.DataFrame([{"persona": "p1", "model": "A", "score": 30.0}])  # p1 x A: (20 + 30) / 2 = 25
    npr = nonparametric(pd.concat([df, extra]), "score", "model", "persona")
    assert npr.paired and npr.averaged_cells == 1 and "1 subject x variant cells had repeated sessions" in npr.note
    # A - B becomes +1 -1 -5 -1 -5 +1: ranks of the 1s share 2.5, the 5s 5.5; R+ = 5, R- = 16
    assert npr.pairwise[0].rank_biserial == pytest.approx((5 - 16) / 21)


def test_missing_scores_are_dropped_and_counted():
    df = long_table(SCORES).astype({"score": object})
    df.loc[(df.persona == "p2") & (df.model == "C"), "score"] = ""
    df.loc[(df.persona == "p3") & (df.model == "C"), "score"] = None
    df.loc[len(df)] = {"persona": None, "model": "A", "score": 5}
    (res,) = analyse(df, ["score"], "model", "persona")
    assert (res.n_rows, res.n_used, res.n_dropped) == (19, 16, 3)
    assert res.dropped == {"missing subject": 1, "missing score": 2} and res.dropped_by_variant == {"C": 2}
    assert [d.n for d in res.descriptives] == [6, 6, 4]
    assert not res.nonparametric.paired and res.nonparametric.omnibus.test == "Kruskal-Wallis"
    assert "16 of 19 rows used; dropped: 1 missing subject, 2 missing score" in to_markdown(res)


def test_bad_tables_raise_clear_errors():
    df = long_table(SCORES)
    with pytest.raises(StatsError, match="column\\(s\\) not in the table: nope"):
        analyse(df, ["score", "nope"], "model", "persona")
    with pytest.raises(StatsError, match="'score' is not numeric: 1 value\\(s\\) such as 'high'"):
        analyse(df.astype({"score": object}).assign(score=lambda d: d.score.where(d.index != 3, "high")),
                "score", "model", "persona")
    with pytest.raises(StatsError, match="at least 2 variants with scores; found 1 \\(A\\)"):
        analyse(df[df.model == "A"], "score", "model", "persona")
    with pytest.raises(StatsError, match="reference variant 'Z'"):
        mixed_model(df, "score", "model", "persona", reference="Z")


# ---------------------------------------------------------------------------------------------
# Optimizer fallback, on data where lbfgs fails by itself (no monkeypatching needed)


def _direct_fit(scores: dict, method: str):
    from statsmodels.regression.mixed_linear_model import MixedLM
    df = long_table(scores)
    exog = np.column_stack([np.ones(len(df)), df.model == "B", df.model == "C"]).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boundary and Hessian notes on BOUNDARY
        fit = MixedLM(df.score.to_numpy(), exog, groups=df.persona.to_numpy()).fit(reml=True, method=method)
    assert fit.converged
    return fit


def test_lbfgs_singular_matrix_falls_back_to_bfgs(monkeypatch):
    """When lbfgs raises LinAlgError (it does on SMALL_SUBJECT with some CPUs' BLAS kernels, not with
    others, so the failure is made certain here), bfgs gives the fit that powell gives directly, and
    the ANOVA values."""
    from statsmodels.regression.mixed_linear_model import MixedLM
    real_fit = MixedLM.fit

    def fit(self, *args, method=None, **kwargs):
        if method == "lbfgs":
            raise np.linalg.LinAlgError("Singular matrix")
        return real_fit(self, *args, method=method, **kwargs)
    monkeypatch.setattr(MixedLM, "fit", fit)
    m = mixed_model(long_table(SMALL_SUBJECT), "score", "model", "persona")
    assert m.ok and m.method == "bfgs"
    lbfgs, bfgs = m.attempts
    assert (lbfgs.method, lbfgs.ok, lbfgs.error) == ("lbfgs", False, "LinAlgError: Singular matrix")
    assert (bfgs.method, bfgs.ok, bfgs.error) == ("bfgs", True, None)
    other = _direct_fit(SMALL_SUBJECT, "powell")
    assert [f.estimate for f in m.fixed] == pytest.approx(list(other.fe_params), abs=1e-4)
    assert m.subject_var == pytest.approx(float(np.asarray(other.cov_re)[0, 0]), abs=1e-4)
    assert m.residual_var == pytest.approx(other.scale, abs=1e-4)
    a = anova(SMALL_SUBJECT)
    assert (m.subject_var, m.residual_var) == pytest.approx((a["subject_var"], a["ms_error"]), abs=1e-4)
    assert a["subject_var"] == pytest.approx(0.4)
    text = to_markdown(analyse(long_table(SMALL_SUBJECT), "score", "model", "persona"))
    assert "Optimizer: bfgs (after lbfgs failed)" in text
    assert "| lbfgs | failed | LinAlgError: Singular matrix" in text and "| bfgs | used | - |" in text


def test_boundary_fit_after_lbfgs_raises_and_bfgs_does_not_converge():
    """On BOUNDARY lbfgs raises and bfgs reports no convergence; powell's fit matches nelder-mead's
    and the by-hand boundary REML: subject variance 0, residual = pooled (SS_subject + SS_error) / 15."""
    m = mixed_model(long_table(BOUNDARY), "score", "model", "persona")
    assert m.method == "powell" and [(a.method, a.ok) for a in m.attempts] == [
        ("lbfgs", False), ("bfgs", False), ("powell", True)]
    assert m.attempts[0].error == "LinAlgError: Singular matrix"
    assert m.attempts[1].error == "did not converge"
    assert any("failed to converge" in w for w in m.attempts[1].warnings)
    other = _direct_fit(BOUNDARY, "nm")
    assert [f.estimate for f in m.fixed] == pytest.approx(list(other.fe_params), abs=1e-4)
    assert (m.subject_var, m.residual_var) == pytest.approx((float(np.asarray(other.cov_re)[0, 0]), other.scale), abs=1e-4)
    a = anova(BOUNDARY)
    assert a["subject_var"] < 0
    assert m.subject_var == pytest.approx(0, abs=1e-6)
    assert m.residual_var == pytest.approx((a["ss_subject"] + a["ss_error"]) / 15, abs=1e-6)


@pytest.fixture(scope="module")
def no_noise():
    """Scores with no residual variance at all: every optimizer fails (about 4 s, so shared)."""
    return analyse(long_table({f"p{i}": (1, 2, 3) for i in range(6)}), "score", "model", "persona")


def test_no_optimizer_fits_scores_without_noise(no_noise):
    (res,) = no_noise
    m = res.mixed
    assert not m.ok and m.method is None and m.wald is None and m.contrasts == []
    assert [a.method for a in m.attempts] == ["lbfgs", "bfgs", "powell", "nm", "cg"]
    assert all(not a.ok and a.error for a in m.attempts)
    assert "could not be fitted with any optimizer" in to_markdown(res)
    assert res.nonparametric.omnibus.statistic == pytest.approx(12)  # every subject ranks C > B > A


# ---------------------------------------------------------------------------------------------
# CSV and the command line


def _rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_cli_writes_tables_and_report(tmp_path, capsys):
    table = long_table(SCORES, variant_col="therapist", subject_col="profile", score_col="act fm")
    table["tes"] = table["act fm"] / 4
    table.to_csv(tmp_path / "scores.csv", index=False)
    out = tmp_path / "out"
    rc = main(["--data-dir", str(tmp_path / "data"), "stats", "--csv", str(tmp_path / "scores.csv"),
               "--variant-col", "therapist", "--subject-col", "profile", "--score-col", "act fm",
               "--score-col", "tes", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0 and "## act fm" in printed and "## tes" in printed and "Omnibus Wald chi2(2) = 32.03" in printed
    assert sorted(p.name for p in out.iterdir()) == ["descriptives.csv", "report.md", "tests.csv"]
    desc = _rows(out / "descriptives.csv")
    assert [(r["score"], r["variant"], r["m_sd"]) for r in desc[:3]] == [
        ("act fm", "A", "23.00 (4.34)"), ("act fm", "B", "25.50 (2.35)"), ("act fm", "C", "20.67 (3.20)")]
    tests = _rows(out / "tests.csv")
    wald = [r for r in tests if r["family"] == "omnibus"]
    assert [(r["score"], r["df"]) for r in wald] == [("act fm", "2"), ("tes", "2")]
    assert float(wald[0]["statistic"]) == pytest.approx(float(wald[1]["statistic"]), rel=1e-3)  # scale-free
    families = [r["family"] for r in tests if r["score"] == "act fm"]
    assert families == ["fixed effect"] * 3 + ["omnibus"] + ["contrast"] * 3 + ["variance component"] * 3 + [
        "nonparametric omnibus"] + ["nonparametric pairwise"] * 3
    assert "# Statistics for scores.csv" in (out / "report.md").read_text()


@pytest.mark.parametrize("change, message", [
    ("no file", "no such file"),
    ("bad column", "column(s) not in the table: score"),
    ("text score", "'score' is not numeric"),
    ("one variant", "at least 2 variants"),
])
def test_cli_bad_input_exits_2(tmp_path, capsys, change, message):
    table = long_table(SCORES)
    if change == "bad column":
        table = table.rename(columns={"score": "total"})
    elif change == "text score":
        table["score"] = table["score"].astype(object)
        table.loc[0, "score"] = "n/a?"
    elif change == "one variant":
        table = table[table.model == "B"]
    path = tmp_path / "scores.csv"
    if change != "no file":
        table.to_csv(path, index=False)
    rc = main(["--data-dir", str(tmp_path / "data"), "stats", "--csv", str(path), "--variant-col", "model",
               "--subject-col", "persona", "--score-col", "score", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_write_csv_when_the_mixed_model_failed(tmp_path, no_noise):
    _, tests = write_csv(no_noise, tmp_path / "csv")
    rows = _rows(tests)
    assert rows[0]["family"] == "mixed model" and rows[0]["note"].startswith("no optimizer converged: lbfgs:")
    assert rows[1]["family"] == "nonparametric omnibus" and float(rows[1]["statistic"]) == pytest.approx(12)
