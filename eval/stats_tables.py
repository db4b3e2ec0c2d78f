"""How study statistics are shown and saved: Markdown tables, CSV files, ``python -m eval stats``.

``to_markdown`` renders one or more ``eval.stats.ScoreResult`` for people; ``descriptive_rows`` and
``test_rows`` flatten them (one row per variant, and one per test, contrast or variance component,
with a ``family`` column) for ``write_csv`` / ``write_report``; ``stats_command`` is the CLI handler.
"""
from __future__ import annotations

import csv
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from eval.stats import MixedResult, NonparametricResult, ScoreResult, StatsError, _num, analyse

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


# ---------------------------------------------------------------------------------------------
# Presentation: Markdown and CSV


def _p(p: float | None) -> str:
    return "-" if p is None else "< .001" if p < 0.001 else f"{p:.3f}"


def _p_eq(p: float | None) -> str:
    """'p < .001', 'p = 0.042' or 'p -'."""
    text = _p(p)
    return f"p {text}" if text[0] in "<-" else f"p = {text}"


def _table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_descriptives(result: ScoreResult) -> str:
    means = result.mixed.means
    return _table(["Variant", "n", "M (SD)", "Range", "Model mean"],
                  [(d.variant, d.n, d.m_sd, f"{_num(d.min)}-{_num(d.max)}", _num(means.get(d.variant)))
                   for d in result.descriptives])


def _md_mixed(m: MixedResult) -> list[str]:
    if not m.ok:
        return [f"The mixed model could not be fitted with any optimizer ({', '.join(a.method for a in m.attempts)}); "
                "see the attempts below."]
    failed = [a.method for a in m.attempts if not a.ok]
    w = m.wald
    out = [f"Optimizer: {m.method}" + (f" (after {', '.join(failed)} failed)" if failed else "")
           + f"; {m.n_obs} sessions, {m.n_subjects} subjects; reference variant: {m.reference}.",
           f"Omnibus Wald chi2({w.df}) = {_num(w.statistic)}, {_p_eq(w.p)}",
           "", "Fixed effects (variant terms: variant minus reference)", "",
           _table(["Term", "Estimate", "SE", "z", "p", "95% CI"],
                  [(f.term, _num(f.estimate), _num(f.se), _num(f.z), _p(f.p), f"[{_num(f.ci_low)}, {_num(f.ci_high)}]")
                   for f in m.fixed]),
           "", "Pairwise contrasts of model-based means (first minus second), Holm-Sidak adjusted", "",
           _table(["Contrast", "Estimate", "SE", "z", "p", "p (Holm-Sidak)", "95% CI"],
                  [(f"{c.first} - {c.second}", _num(c.estimate), _num(c.se), _num(c.z), _p(c.p), _p(c.p_adj),
                    f"[{_num(c.ci_low)}, {_num(c.ci_high)}]") for c in m.contrasts]),
           "", "Variance components", "",
           _table(["Component", "Estimate"], [("Subject (random intercept) variance", _num(m.subject_var, 3)),
                                              ("Residual variance", _num(m.residual_var, 3)),
                                              ("ICC (subject share)", _num(m.icc, 3))])]
    return out


def _md_nonparametric(np_: NonparametricResult) -> list[str]:
    o = np_.omnibus
    df = f"({o.df})" if o.df is not None else ""
    return [f"Design: {np_.note}.", f"{o.test}{df} = {_num(o.statistic)}, {_p_eq(o.p)}", "",
            "Pairwise, Holm adjusted; rank-biserial r > 0: first variant scores higher", "",
            _table(["Pair", "Test", "Statistic", "p", "p (Holm)", "Rank-biserial r"],
                   [(f"{r.first} vs {r.second}", r.test, _num(r.statistic), _p(r.p), _p(r.p_adj),
                     _num(r.rank_biserial)) for r in np_.pairwise])]


def _md_attempts(m: MixedResult) -> str:
    return _table(["Optimizer", "Result", "Error / warnings"],
                  [(a.method, "used" if a.ok and a.method == m.method else "ok" if a.ok else "failed",
                    "; ".join(filter(None, [a.error, *a.warnings])) or "-") for a in m.attempts])


def to_markdown(result: ScoreResult | Sequence[ScoreResult]) -> str:
    """Tables a human reads, one section per score."""
    if not isinstance(result, ScoreResult):
        return "\n\n".join(to_markdown(r) for r in result)
    dropped = ", ".join(f"{n} {reason}" for reason, n in result.dropped.items()) or "none"
    parts = [f"## {result.score}", "",
             f"{result.n_used} of {result.n_rows} rows used; dropped: {dropped}. "
             f"Variants: {result.variant_col}; subjects: {result.subject_col}.", "",
             "### Descriptives", "", _md_descriptives(result), "",
             "### Mixed model: score ~ C(variant) + random intercept per subject (REML)", "",
             *_md_mixed(result.mixed), "",
             "### Nonparametric tests", "", *_md_nonparametric(result.nonparametric), "",
             "### Optimizer attempts", "", _md_attempts(result.mixed)]
    return "\n".join(parts) + "\n"


DESCRIPTIVE_COLUMNS = ["score", "variant", "n", "mean", "sd", "min", "max", "m_sd", "model_mean"]
TEST_COLUMNS = ["score", "family", "test", "term", "estimate", "se", "statistic", "df", "p", "p_adj",
                "p_adj_method", "ci_low", "ci_high", "effect_size", "n", "note"]


def descriptive_rows(result: ScoreResult) -> list[dict[str, Any]]:
    return [{"score": result.score, **asdict(d), "m_sd": d.m_sd, "model_mean": result.mixed.means.get(d.variant)}
            for d in result.descriptives]


def _mixed_rows(r: ScoreResult) -> list[dict[str, Any]]:
    m = r.mixed
    base = {"score": r.score, "note": f"REML, optimizer {m.method}"}
    if not m.ok:
        return [{"score": r.score, "family": "mixed model", "test": "MixedLM",
                 "note": "no optimizer converged: " + "; ".join(f"{a.method}: {a.error}" for a in m.attempts)}]
    rows = [{**base, "family": "fixed effect", "test": "z", "term": f.term, "estimate": f.estimate, "se": f.se,
             "statistic": f.z, "p": f.p, "ci_low": f.ci_low, "ci_high": f.ci_high, "n": m.n_obs} for f in m.fixed]
    w = m.wald
    rows.append({**base, "family": "omnibus", "test": w.test, "term": "variant", "statistic": w.statistic,
                 "df": w.df, "p": w.p, "n": w.n})
    rows += [{**base, "family": "contrast", "test": "z", "term": f"{c.first} - {c.second}", "estimate": c.estimate,
              "se": c.se, "statistic": c.z, "p": c.p, "p_adj": c.p_adj, "p_adj_method": "holm-sidak",
              "ci_low": c.ci_low, "ci_high": c.ci_high, "n": m.n_obs} for c in m.contrasts]
    rows += [{**base, "family": "variance component", "test": "REML", "term": term, "estimate": value, "n": m.n_obs}
             for term, value in (("subject variance", m.subject_var), ("residual variance", m.residual_var),
                                 ("ICC", m.icc))]
    return rows


def test_rows(result: ScoreResult) -> list[dict[str, Any]]:
    """One dict per test or contrast (keys ``TEST_COLUMNS``, absent ones empty)."""
    npr = result.nonparametric
    o = npr.omnibus
    rows = _mixed_rows(result)
    rows.append({"score": result.score, "family": "nonparametric omnibus", "test": o.test, "term": "variant",
                 "statistic": o.statistic, "df": o.df, "p": o.p, "n": o.n, "note": npr.note})
    rows += [{"score": result.score, "family": "nonparametric pairwise", "test": r.test,
              "term": f"{r.first} vs {r.second}", "statistic": r.statistic, "p": r.p, "p_adj": r.p_adj,
              "p_adj_method": "holm", "effect_size": r.rank_biserial, "n": r.n_first + r.n_second,
              "note": "rank-biserial r > 0: first higher"} for r in npr.pairwise]
    return rows


def _write(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)  # None and absent keys become empty cells
    except OSError as exc:
        raise StatsError(f"cannot write {path}: {exc}") from exc


def write_csv(results: Iterable[ScoreResult], folder: Path | str) -> list[Path]:
    """``descriptives.csv`` and ``tests.csv`` in ``folder`` (created); returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = list(results)
    paths = [folder / "descriptives.csv", folder / "tests.csv"]
    _write(paths[0], DESCRIPTIVE_COLUMNS, (row for r in results for row in descriptive_rows(r)))
    _write(paths[1], TEST_COLUMNS, (row for r in results for row in test_rows(r)))
    return paths


def write_report(results: Sequence[ScoreResult], folder: Path | str, title: str = "Statistics") -> list[Path]:
    """``write_csv`` plus ``report.md`` (the Markdown of every score)."""
    paths = write_csv(results, folder)
    report = Path(folder) / "report.md"
    try:
        report.write_text(f"# {title}\n\n" + to_markdown(results), encoding="utf-8")
    except OSError as exc:
        raise StatsError(f"cannot write {report}: {exc}") from exc
    return [*paths, report]


# ---------------------------------------------------------------------------------------------
# CLI handler (the parser is in eval/__main__.py)


def read_table(path: Path | str) -> "pd.DataFrame":
    import pandas as pd
    path = Path(path)
    if not path.is_file():
        raise StatsError(f"no such file: {path}")
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise StatsError(f"cannot read {path} as CSV: {exc}") from exc


def stats_command(args: Any) -> int:
    """``python -m eval stats``: print the Markdown; with ``--out``, write the CSVs and report.md."""
    table = read_table(args.csv)
    results = analyse(table, args.score_col, args.variant_col, args.subject_col, reference=args.reference)
    print(to_markdown(results))
    if args.out:
        for path in write_report(results, args.out, title=f"Statistics for {Path(args.csv).name}"):
            print(f"wrote {path}")
    return 0
