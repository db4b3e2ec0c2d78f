"""Inter-rater reliability statistics on plain lists and matrices (no database, no rubric).

ICC(2,1) and ICC(3,1) after Shrout & Fleiss from the two-way ANOVA mean squares; quadratic-weighted
Cohen's kappa over a fixed scale; Krippendorff's alpha (ordinal or interval, missing values, any
number of raters); Spearman's rho; Bland-Altman bias and limits. Undefined results are ``None``,
never NaN. ``eval/agreement.py`` applies them to ratings.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

LOA_Z = 1.96               # Bland-Altman: 95% of differences under a normal model
LEVELS = ("ordinal", "interval")
_REL_TOL = 1e-12           # below this (relative to the data's scale) a variance counts as zero


class AgreementError(ValueError):
    """Bad input to an agreement statistic or to the agreement command."""


# ---------------------------------------------------------------------------------------------
# Statistics on paired and matrix data


@dataclass(frozen=True)
class ICC:
    """Intraclass correlations of one subjects x raters table, with the mean squares behind them.

    ``icc2_1`` is absolute agreement (a rater who scores everyone one point higher is penalised);
    ``icc3_1`` is consistency (that rater is not). Either is ``None`` where its denominator is zero.
    """
    icc2_1: float | None
    icc3_1: float | None
    ms_rows: float | None = None
    ms_cols: float | None = None
    ms_error: float | None = None


def icc(matrix: Sequence[Sequence[float]]) -> ICC:
    """ICC(2,1) and ICC(3,1) of an n subjects x k raters table with no missing cells.

    Always returns an ``ICC`` so callers read one shape; its values are ``None`` when undefined:
    fewer than 2 subjects or raters, or no variance at all (a zero denominator). A negative value
    is kept: it means raters disagree more than chance, which is worth seeing, not hiding.
    """
    x = _complete_matrix(matrix)
    n, k = x.shape
    if n < 2 or k < 2:
        return ICC(None, None)
    grand = x.mean()
    ss_rows = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    ss_error = float(((x - grand) ** 2).sum()) - ss_rows - ss_cols
    ms_rows = ss_rows / (n - 1)
    ms_cols = ss_cols / (k - 1)
    ms_error = max(ss_error, 0.0) / ((n - 1) * (k - 1))  # rounding can leave a tiny negative
    tol = _REL_TOL * max(1.0, float((x ** 2).mean()))
    icc2 = _ratio(ms_rows - ms_error, ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n, tol)
    icc3 = _ratio(ms_rows - ms_error, ms_rows + (k - 1) * ms_error, tol)
    return ICC(icc2, icc3, ms_rows, ms_cols, ms_error)


def weighted_kappa(a: Sequence[int], b: Sequence[int], lo: int, hi: int) -> float | None:
    """Cohen's kappa with quadratic weights for two raters' integer scores on the scale lo..hi.

    Categories are the whole scale, not the values seen, so an unused scale point still counts as
    a place the raters could have disagreed. ``None`` when there are no pairs, the scale has one
    point, or the expected disagreement is zero (both raters used one and the same score).
    """
    a_idx, b_idx = _scale_indices(a, lo, hi), _scale_indices(b, lo, hi)
    if len(a_idx) != len(b_idx):
        raise AgreementError(f"paired scores differ in length: {len(a_idx)} and {len(b_idx)}")
    size = hi - lo + 1
    if not a_idx or size < 2:
        return None
    observed = np.zeros((size, size))
    np.add.at(observed, (a_idx, b_idx), 1.0)
    observed /= len(a_idx)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    points = np.arange(size)
    weights = (points[:, None] - points[None, :]) ** 2 / (size - 1) ** 2
    disagreement = float((weights * expected).sum())
    if disagreement <= _REL_TOL:
        return None
    return 1.0 - float((weights * observed).sum()) / disagreement


def krippendorff_alpha(matrix: Sequence[Sequence[float | None]], level: str = "ordinal",
                       categories: Sequence[float] | None = None) -> float | None:
    """Krippendorff's alpha of a units x raters table; ``None`` cells are missing ratings.

    Any number of raters; a unit with fewer than two ratings cannot show (dis)agreement and is left
    out, as Krippendorff prescribes. ``categories`` (ordinal: the scale in order) defaults to the
    values seen; for ordinal data unseen categories have no weight either way. ``None`` when fewer
    than two pairable values remain or only one value is in use (no expected disagreement).
    """
    if level not in LEVELS:
        raise AgreementError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    units = _pairable_units(matrix)
    values = sorted({v for unit in units for v in unit})
    cats = _alpha_categories(values, categories)
    if sum(len(unit) for unit in units) < 2:
        return None
    coincidences = _coincidences(units, {c: i for i, c in enumerate(cats)})
    marginals = coincidences.sum(axis=1)
    total = marginals.sum()
    delta = _ordinal_delta(marginals) if level == "ordinal" else _interval_delta(cats)
    observed = float((coincidences * delta).sum())
    expected = float((np.outer(marginals, marginals) * delta).sum()) / (total - 1)
    if expected <= _REL_TOL * max(1.0, float(delta.max())):
        return None
    return 1.0 - observed / expected


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rho; ``None`` under two pairs or when either side is constant (no ranks to compare)."""
    x, y = _paired_arrays(a, b)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    with warnings.catch_warnings():  # constant input is handled above; keep scipy quiet regardless
        warnings.simplefilter("ignore")
        rho = float(stats.spearmanr(x, y).statistic)
    return None if math.isnan(rho) else rho


@dataclass(frozen=True)
class BlandAltman:
    bias: float | None        # mean of a - b
    sd_diff: float | None     # sample SD of a - b
    loa_low: float | None     # bias - 1.96 SD
    loa_high: float | None    # bias + 1.96 SD


def bland_altman(a: Sequence[float], b: Sequence[float]) -> BlandAltman:
    """Mean bias (a minus b), SD of the differences and the 95% limits of agreement.

    One pair gives a bias but no SD (it needs two); no pairs give nothing.
    """
    x, y = _paired_arrays(a, b)
    if len(x) == 0:
        return BlandAltman(None, None, None, None)
    diff = x - y
    bias = float(diff.mean())
    if len(diff) < 2:
        return BlandAltman(bias, None, None, None)
    sd = float(diff.std(ddof=1))
    return BlandAltman(bias, sd, bias - LOA_Z * sd, bias + LOA_Z * sd)


# --- helpers for the statistics --------------------------------------------------------------


def _ratio(num: float, den: float, tol: float) -> float | None:
    return None if abs(den) <= tol else num / den


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise AgreementError(f"{where}: {value!r} is not a finite number")
    return float(value)


def _complete_matrix(matrix: Sequence[Sequence[float]]) -> np.ndarray:
    rows = [list(row) for row in matrix]
    if rows and len({len(row) for row in rows}) != 1:
        raise AgreementError("every subject needs a score from every rater (the table is ragged)")
    cells = [[_number(v, f"cell ({i}, {j})") for j, v in enumerate(row)] for i, row in enumerate(rows)]
    return np.array(cells, dtype=float).reshape(len(rows), len(rows[0]) if rows else 0)


def _paired_arrays(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    if len(a) != len(b):
        raise AgreementError(f"paired scores differ in length: {len(a)} and {len(b)}")
    x = np.array([_number(v, "first score") for v in a], dtype=float)
    y = np.array([_number(v, "second score") for v in b], dtype=float)
    return x, y


def _scale_indices(values: Sequence[int], lo: int, hi: int) -> list[int]:
    """Scores as 0-based positions on lo..hi; a score off the scale is a caller's bug, so it raises."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)) or hi < lo:
        raise AgreementError(f"the scale must be two integers lo <= hi, not {lo!r}..{hi!r}")
    out = []
    for v in values:
        number = _number(v, "score")
        if not number.is_integer() or not lo <= number <= hi:
            raise AgreementError(f"score {v!r} is not an integer on the scale {lo}..{hi}")
        out.append(int(number) - lo)
    return out


def _pairable_units(matrix: Sequence[Sequence[float | None]]) -> list[list[float]]:
    units = []
    for i, row in enumerate(matrix):
        unit = [_number(v, f"cell ({i}, {j})") for j, v in enumerate(row) if v is not None]
        if len(unit) >= 2:
            units.append(unit)
    return units


def _alpha_categories(values: list[float], categories: Sequence[float] | None) -> list[float]:
    if categories is None:
        return values
    cats = [_number(c, "category") for c in categories]
    if len(set(cats)) != len(cats):
        raise AgreementError("categories must not repeat")
    unknown = sorted(set(values) - set(cats))
    if unknown:
        raise AgreementError(f"values {unknown} are not among the categories {cats}")
    return cats


def _coincidences(units: list[list[float]], index: Mapping[float, int]) -> np.ndarray:
    """Krippendorff's coincidence matrix: every ordered pair of values within a unit, weighted 1/(m-1)."""
    size = len(index)
    out = np.zeros((size, size))
    for unit in units:
        counts = np.zeros(size)
        for v in unit:
            counts[index[v]] += 1
        # all ordered pairs of distinct ratings: counts x counts minus each rating paired with itself
        out += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    return out


def _interval_delta(cats: list[float]) -> np.ndarray:
    c = np.array(cats, dtype=float)
    return (c[:, None] - c[None, :]) ** 2


def _ordinal_delta(marginals: np.ndarray) -> np.ndarray:
    """delta(c, k) = (sum of n_g for g from c to k, minus (n_c + n_k) / 2) squared, cats in order."""
    cum = np.cumsum(marginals)
    size = len(marginals)
    delta = np.zeros((size, size))
    for i in range(size):
        for j in range(i + 1, size):
            between = cum[j] - cum[i] + marginals[i]
            delta[i, j] = delta[j, i] = (between - (marginals[i] + marginals[j]) / 2) ** 2
    return delta
