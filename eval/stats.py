"""Statistics for comparison studies: which therapist variant scores better, and how sure is that.

The input is a long table with one row per session: a variant column (the therapist model or
condition), a subject column (the standardized patient profile / persona the session was run with)
and one or more score columns (e.g. an ACT-FM consistency total, a TES mean). For each score this
module gives, as in the ACT "Thinking Therapist" study:

- descriptives per variant: n, mean, SD (ddof=1), min, max and "M (SD)";
- the linear mixed model ``score ~ C(variant)`` with a random intercept per subject, fitted by REML
  with statsmodels' ``MixedLM``. Optimizers are tried in the order of ``OPTIMIZERS``; one fails if it
  raises (e.g. ``LinAlgError: Singular matrix``, which ``lbfgs`` hits on small crossed designs with
  current numpy/scipy), returns non-finite fixed effects, covariance or variances, or reports no
  convergence. Every attempt is recorded. From the fit: fixed effects with SE, z, p and 95% CI; the
  omnibus Wald chi-square ``b' V^-1 b`` over the variant terms (df = k - 1); every pairwise contrast
  of model-based means (first minus second) with Holm-Sidak adjusted p; the subject and residual
  variances and the ICC of subjects;
- nonparametric companions: on a paired design (every subject has every variant; repeated sessions
  of a subject x variant are averaged first, and the result says so) Friedman and pairwise Wilcoxon
  signed-rank tests, otherwise Kruskal-Wallis and pairwise Mann-Whitney U tests, Holm-adjusted, with
  rank-biserial effect sizes. Sign convention for every pairwise effect: positive means the first
  variant of the pair scores higher (matched-pairs r = (R+ - R-) / (R+ + R-) of first minus second;
  Mann-Whitney r = 2 U_first / (n1 n2) - 1 = 1 - 2 U_second / (n1 n2)).

``analyse`` runs all of it per score; ``eval/stats_tables.py`` presents the results (``to_markdown``,
``write_csv`` / ``write_report``) and holds ``stats_command`` (``python -m eval stats``). Undefined statistics are ``None``, never NaN.
Bad input raises ``StatsError`` (a ``ValueError``). pandas, scipy and statsmodels are imported inside
the functions, so ``import eval.stats`` stays cheap.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

OPTIMIZERS = ("lbfgs", "bfgs", "powell", "nm", "cg")
Z95 = 1.959963984540054  # standard normal 97.5% quantile


class StatsError(ValueError):
    """The table cannot be analysed as asked (missing column, non-numeric scores, < 2 variants...)."""


# ---------------------------------------------------------------------------------------------
# Result types


@dataclass(frozen=True)
class Descriptive:
    variant: str
    n: int
    mean: float | None
    sd: float | None          # ddof = 1; None for n < 2
    min: float | None
    max: float | None

    @property
    def m_sd(self) -> str:
        return f"{_num(self.mean)} ({_num(self.sd)})"


@dataclass(frozen=True)
class Attempt:
    """One optimizer tried on the mixed model; ``error`` says why it was not used."""
    method: str
    ok: bool
    error: str | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class FixedEffect:
    term: str                 # "Intercept" (the reference variant's mean) or a variant: variant minus reference
    estimate: float
    se: float
    z: float | None           # None when the SE is 0
    p: float | None
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Contrast:
    first: str
    second: str
    estimate: float           # model-based mean of first minus that of second
    se: float
    z: float | None
    p: float | None
    p_adj: float | None       # Holm-Sidak over all pairs
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Omnibus:
    test: str                 # "Wald chi2" | "Friedman" | "Kruskal-Wallis" | "Wilcoxon signed-rank"
    statistic: float | None
    df: int | None
    p: float | None
    n: int                    # observations (mixed, Kruskal-Wallis) or subjects (Friedman, Wilcoxon)


@dataclass(frozen=True)
class Pairwise:
    first: str
    second: str
    test: str                 # "Wilcoxon signed-rank" | "Mann-Whitney U"
    statistic: float | None   # scipy's: min(R+, R-) for Wilcoxon, U of first for Mann-Whitney
    p: float | None
    p_adj: float | None       # Holm over all pairs
    rank_biserial: float | None  # positive: first scores higher
    n_first: int
    n_second: int


@dataclass
class MixedResult:
    ok: bool                  # False: no optimizer gave a usable fit; see attempts
    method: str | None        # the optimizer whose fit is reported
    attempts: list[Attempt]
    reference: str
    variants: list[str]
    n_obs: int
    n_subjects: int
    means: dict[str, float] = field(default_factory=dict)   # model-based mean per variant
    fixed: list[FixedEffect] = field(default_factory=list)
    wald: Omnibus | None = None
    contrasts: list[Contrast] = field(default_factory=list)
    subject_var: float | None = None
    residual_var: float | None = None
    icc: float | None = None
    llf: float | None = None  # REML log-likelihood


@dataclass
class NonparametricResult:
    paired: bool
    note: str                 # how the design was read (and what was averaged)
    averaged_cells: int       # subject x variant cells with > 1 session, averaged (paired only)
    n_subjects: int
    omnibus: Omnibus | None
    pairwise: list[Pairwise]


@dataclass
class ScoreResult:
    score: str
    variant_col: str
    subject_col: str
    variants: list[str]
    n_rows: int               # rows in the table given
    n_used: int
    dropped: dict[str, int]   # reason -> rows, e.g. {"missing score": 3}
    dropped_by_variant: dict[str, int]  # missing scores per variant
    descriptives: list[Descriptive]
    mixed: MixedResult
    nonparametric: NonparametricResult

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Input


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _clean(x: Any) -> float | None:
    """A finite float, else None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def check_columns(df: "pd.DataFrame", columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StatsError(f"column(s) not in the table: {', '.join(missing)} "
                         f"(columns are: {', '.join(map(str, df.columns))})")


def numeric_scores(df: "pd.DataFrame", score: str) -> "pd.Series":
    """The score column as floats; empty cells become NaN, any other non-number is an error."""
    import pandas as pd
    values = pd.to_numeric(df[score], errors="coerce").astype(float)
    bad = df[score].notna() & values.isna() & (df[score].astype(str).str.strip() != "")
    if bad.any():
        examples = ", ".join(repr(v) for v in df.loc[bad, score].astype(str).unique()[:3])
        raise StatsError(f"score column {score!r} is not numeric: {int(bad.sum())} value(s) such as {examples}")
    return values


def prepare(df: "pd.DataFrame", score: str, variant_col: str, subject_col: str,
            variants: Sequence[str] | None = None) -> tuple["pd.DataFrame", list[str], dict[str, int], dict[str, int]]:
    """Columns ``score``, ``variant``, ``subject`` (labels as str) of the usable rows, the variant order
    (given, else sorted), rows dropped per reason and missing scores per variant."""
    import pandas as pd
    check_columns(df, [score, variant_col, subject_col])
    data = pd.DataFrame({"score": numeric_scores(df, score),
                         "variant": df[variant_col].where(df[variant_col].isna(), df[variant_col].astype(str)),
                         "subject": df[subject_col].where(df[subject_col].isna(), df[subject_col].astype(str))})
    dropped: dict[str, int] = {}
    for column, reason in (("variant", "missing variant"), ("subject", "missing subject")):
        dropped[reason] = int(data[column].isna().sum())
        data = data[data[column].notna()]
    order = [str(v) for v in variants] if variants else sorted(data["variant"].unique())
    unlisted = ~data["variant"].isin(order)
    dropped["variant not analysed"] = int(unlisted.sum())
    data = data[~unlisted]
    missing = data["score"].isna()
    dropped["missing score"] = int(missing.sum())
    by_variant = {v: int(n) for v, n in data.loc[missing, "variant"].value_counts().items()}
    data = data[~missing].reset_index(drop=True)
    present = [v for v in order if (data["variant"] == v).any()]
    if len(present) < 2:
        raise StatsError(f"score {score!r} needs at least 2 variants with scores; found {len(present)} "
                         f"({', '.join(present) or 'none'}) in column {variant_col!r}")
    if variants and len(present) < len(order):
        raise StatsError(f"no {score!r} scores for variant(s): {', '.join(v for v in order if v not in present)}")
    return data, present, {k: n for k, n in dropped.items() if n}, by_variant


# ---------------------------------------------------------------------------------------------
# Descriptives


def descriptives(df: "pd.DataFrame", score: str, variant_col: str, subject_col: str | None = None,
                 variants: Sequence[str] | None = None) -> list[Descriptive]:
    """Per variant (in order): n, mean, SD (ddof=1), min, max of the non-missing scores."""
    if subject_col is None:  # descriptives need no subjects
        df = df.assign(__subject__="s")
        subject_col = "__subject__"
    data, order, _, _ = prepare(df, score, variant_col, subject_col, variants)
    return _descriptives(data, order)


def _descriptives(data: "pd.DataFrame", order: list[str]) -> list[Descriptive]:
    out = []
    for v in order:
        x = data.loc[data["variant"] == v, "score"]
        out.append(Descriptive(v, int(len(x)), _clean(x.mean()), _clean(x.std(ddof=1)) if len(x) > 1 else None,
                               _clean(x.min()), _clean(x.max())))
    return out


# ---------------------------------------------------------------------------------------------
# Mixed model


def _design(data: "pd.DataFrame", order: list[str], reference: str):
    """Treatment coding, as ``C(variant)`` with ``reference`` as the base: intercept + one dummy per other variant."""
    import numpy as np
    others = [v for v in order if v != reference]
    columns = [np.ones(len(data))] + [(data["variant"] == v).to_numpy(dtype=float) for v in others]
    return np.column_stack(columns), others


def _fit_problem(fit) -> str | None:
    """Why a returned fit is unusable, or None."""
    import numpy as np
    k = fit.k_fe
    problems = []
    values = [np.asarray(fit.fe_params, dtype=float), np.asarray(fit.cov_params(), dtype=float)[:k, :k],
              np.asarray(fit.cov_re, dtype=float), np.asarray([fit.scale], dtype=float)]
    if not all(np.isfinite(v).all() for v in values):
        problems.append("non-finite estimates or covariance")
    if not fit.converged:
        problems.append("did not converge")
    return "; ".join(problems) or None


def _try_fit(make_model, method: str):
    """(fit or None, Attempt) for one optimizer; statsmodels' warnings are kept in the attempt, not shown."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = make_model().fit(reml=True, method=method)
            problem = _fit_problem(fit)
        except Exception as exc:  # LinAlgError, ValueError, ... from inside the optimizer
            fit, problem = None, f"{type(exc).__name__}: {exc}"
    notes = tuple(dict.fromkeys(" ".join(str(w.message).split()) for w in caught
                                if not issubclass(w.category, RuntimeWarning)))  # numpy's inf/nan chatter
    return (None if problem else fit), Attempt(method, problem is None, problem, notes)


def fit_mixed(data: "pd.DataFrame", order: list[str], reference: str, methods: Sequence[str] = OPTIMIZERS):
    """Fit ``score ~ C(variant)`` + random intercept per subject (REML) on prepared data, trying each
    optimizer in turn. Returns (statsmodels fit or None, non-reference variants, attempts)."""
    from statsmodels.regression.mixed_linear_model import MixedLM
    exog, others = _design(data, order, reference)
    endog, groups = data["score"].to_numpy(dtype=float), data["subject"].to_numpy()
    attempts = []
    for method in methods:
        fit, attempt = _try_fit(lambda: MixedLM(endog, exog, groups=groups), method)
        attempts.append(attempt)
        if fit is not None:
            return fit, others, attempts
    return None, others, attempts


def _z_row(estimate: float, se: float) -> tuple[float | None, float | None, float, float]:
    """z, two-sided normal p (None when the SE is 0), 95% CI."""
    from scipy import stats
    if not se > 0:
        return None, None, estimate, estimate
    z = estimate / se
    return z, float(2 * stats.norm.sf(abs(z))), estimate - Z95 * se, estimate + Z95 * se


def _wald(b, cov, n_obs: int) -> Omnibus:
    """Omnibus Wald chi-square b' V^-1 b over the variant terms, df = their number."""
    import numpy as np
    from scipy import stats
    try:
        chi2 = float(b @ np.linalg.solve(cov, b))
    except np.linalg.LinAlgError:
        return Omnibus("Wald chi2", None, len(b), None, n_obs)
    return Omnibus("Wald chi2", chi2, len(b), float(stats.chi2.sf(chi2, len(b))), n_obs)


def _contrasts(order: list[str], others: list[str], beta, cov) -> list[Contrast]:
    """Every pair (first before second in ``order``): first minus second, Holm-Sidak adjusted."""
    import numpy as np
    from statsmodels.stats.multitest import multipletests
    rows = []
    for first, second in itertools.combinations(order, 2):
        c = np.zeros(len(beta))
        for variant, sign in ((first, 1.0), (second, -1.0)):
            if variant in others:
                c[1 + others.index(variant)] = sign
        estimate, se = float(c @ beta), float(math.sqrt(max(c @ cov @ c, 0.0)))
        rows.append((first, second, estimate, se, *_z_row(estimate, se)))
    known = [i for i, r in enumerate(rows) if r[5] is not None]
    adjusted = dict(zip(known, multipletests([rows[i][5] for i in known], method="holm-sidak")[1])) if known else {}
    return [Contrast(f, s, e, se, z, p, _clean(adjusted.get(i)), lo, hi)
            for i, (f, s, e, se, z, p, lo, hi) in enumerate(rows)]


def _mixed_from_fit(fit, data, order: list[str], reference: str, others: list[str], attempts) -> MixedResult:
    import numpy as np
    k = fit.k_fe
    beta = np.asarray(fit.fe_params, dtype=float)
    cov = np.asarray(fit.cov_params(), dtype=float)[:k, :k]
    se = np.sqrt(np.diag(cov))
    fixed = [FixedEffect(term, float(b), float(s), *_z_row(float(b), float(s)))
             for term, b, s in zip(["Intercept", *others], beta, se)]
    means = {v: float(beta[0] + (beta[1 + others.index(v)] if v in others else 0.0)) for v in order}
    subject_var, residual_var = float(np.asarray(fit.cov_re)[0, 0]), float(fit.scale)
    total = subject_var + residual_var
    return MixedResult(True, attempts[-1].method, attempts, reference, order, len(data), data["subject"].nunique(),
                       means, fixed, _wald(beta[1:], cov[1:, 1:], len(data)), _contrasts(order, others, beta, cov),
                       subject_var, residual_var, subject_var / total if total > 0 else None, _clean(fit.llf))


def mixed_model(df: "pd.DataFrame", score: str, variant_col: str, subject_col: str, reference: str | None = None,
                variants: Sequence[str] | None = None, methods: Sequence[str] = OPTIMIZERS) -> MixedResult:
    """The study's mixed model on one score; ``reference`` defaults to the first variant."""
    data, order, _, _ = prepare(df, score, variant_col, subject_col, variants)
    return _mixed(data, order, reference, methods)


def _mixed(data, order: list[str], reference: str | None, methods: Sequence[str] = OPTIMIZERS) -> MixedResult:
    reference = order[0] if reference is None else str(reference)
    if reference not in order:
        raise StatsError(f"reference variant {reference!r} is not among the variants ({', '.join(order)})")
    fit, others, attempts = fit_mixed(data, order, reference, methods)
    if fit is None:
        return MixedResult(False, None, attempts, reference, order, len(data), data["subject"].nunique())
    return _mixed_from_fit(fit, data, order, reference, others, attempts)


# ---------------------------------------------------------------------------------------------
# Nonparametric companions


def rank_biserial_paired(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Matched-pairs rank-biserial of x - y: (R+ - R-) / (R+ + R-), zero differences left out."""
    import numpy as np
    from scipy.stats import rankdata
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    d = d[d != 0]
    if not len(d):
        return None
    ranks = rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def rank_biserial_unpaired(u_first: float, n1: int, n2: int) -> float:
    """From the Mann-Whitney U of the first sample: 2 U1 / (n1 n2) - 1 (positive: first higher)."""
    return 2.0 * u_first / (n1 * n2) - 1.0


def _safe(test, *args, **kwargs) -> tuple[float | None, float | None]:
    """(statistic, p) of a scipy test, None for what is undefined (all values tied, too few...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = test(*args, **kwargs)
        except ValueError:
            return None, None
    return _clean(result[0]), _clean(result[1])


def _holm(pairs: list[Pairwise]) -> list[Pairwise]:
    from statsmodels.stats.multitest import multipletests
    known = [i for i, row in enumerate(pairs) if row.p is not None]
    if known:
        adjusted = multipletests([pairs[i].p for i in known], method="holm")[1]
        for i, a in zip(known, adjusted):
            pairs[i] = replace(pairs[i], p_adj=float(a))
    return pairs


def _paired(wide: "pd.DataFrame", order: list[str]) -> tuple[Omnibus | None, list[Pairwise]]:
    from scipy import stats
    n = len(wide)
    pairs = []
    for first, second in itertools.combinations(order, 2):
        statistic, p = _safe(stats.wilcoxon, wide[first], wide[second])
        pairs.append(Pairwise(first, second, "Wilcoxon signed-rank", statistic, p, None,
                              rank_biserial_paired(wide[first], wide[second]), n, n))
    if len(order) >= 3:
        statistic, p = _safe(stats.friedmanchisquare, *(wide[v] for v in order))
        omnibus = Omnibus("Friedman", statistic, len(order) - 1, p, n)
    else:  # Friedman needs three variants; with two the signed-rank test is the omnibus
        omnibus = Omnibus("Wilcoxon signed-rank", pairs[0].statistic, None, pairs[0].p, n)
    return omnibus, _holm(pairs)


def _unpaired(data: "pd.DataFrame", order: list[str]) -> tuple[Omnibus | None, list[Pairwise]]:
    from scipy import stats
    groups = {v: data.loc[data["variant"] == v, "score"].to_numpy() for v in order}
    pairs = []
    for first, second in itertools.combinations(order, 2):
        x, y = groups[first], groups[second]
        statistic, p = _safe(stats.mannwhitneyu, x, y, alternative="two-sided")
        r = rank_biserial_unpaired(statistic, len(x), len(y)) if statistic is not None else None
        pairs.append(Pairwise(first, second, "Mann-Whitney U", statistic, p, None, r, len(x), len(y)))
    statistic, p = _safe(stats.kruskal, *groups.values())
    return Omnibus("Kruskal-Wallis", statistic, len(order) - 1, p, len(data)), _holm(pairs)


def nonparametric(df: "pd.DataFrame", score: str, variant_col: str, subject_col: str,
                  variants: Sequence[str] | None = None) -> NonparametricResult:
    """Friedman + Wilcoxon on a paired design, else Kruskal-Wallis + Mann-Whitney; Holm-adjusted."""
    data, order, _, _ = prepare(df, score, variant_col, subject_col, variants)
    return _nonparametric(data, order)


def _nonparametric(data: "pd.DataFrame", order: list[str]) -> NonparametricResult:
    counts = data.groupby(["subject", "variant"]).size().unstack("variant").reindex(columns=order)
    n_subjects = len(counts)
    incomplete = int(counts.isna().any(axis=1).sum())
    if incomplete:
        note = (f"not paired: {incomplete} of {n_subjects} subjects lack some variant, so sessions are "
                f"treated as independent (Kruskal-Wallis, Mann-Whitney U)")
        return NonparametricResult(False, note, 0, n_subjects, *_unpaired(data, order))
    averaged = int((counts > 1).sum().sum())
    wide = data.groupby(["subject", "variant"])["score"].mean().unstack("variant")[order]
    note = f"paired: all {n_subjects} subjects have every variant (Friedman, Wilcoxon signed-rank)"
    if averaged:
        note += f"; {averaged} subject x variant cells had repeated sessions, averaged per cell first"
    return NonparametricResult(True, note, averaged, n_subjects, *_paired(wide, order))


# ---------------------------------------------------------------------------------------------
# Everything, per score


def analyse(df: "pd.DataFrame", scores: str | Sequence[str], variant_col: str, subject_col: str,
            variants: Sequence[str] | None = None, reference: str | None = None,
            methods: Sequence[str] = OPTIMIZERS) -> list[ScoreResult]:
    """One ``ScoreResult`` per score column, in the order given. Rows missing the score (or the
    variant or subject) are dropped for that score and counted."""
    scores = [scores] if isinstance(scores, str) else list(scores)
    if not scores:
        raise StatsError("no score column given")
    check_columns(df, [*scores, variant_col, subject_col])
    results = []
    for score in scores:
        data, order, dropped, by_variant = prepare(df, score, variant_col, subject_col, variants)
        results.append(ScoreResult(score, variant_col, subject_col, order, len(df), len(data), dropped, by_variant,
                                   _descriptives(data, order), _mixed(data, order, reference, methods),
                                   _nonparametric(data, order)))
    return results
