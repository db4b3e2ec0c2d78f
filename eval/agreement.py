"""Agreement between raters: how closely an LLM judge tracks human raters, and humans each other.

A judge is only worth using as a stand-in for human raters once its scores are shown to agree with
theirs, so this module turns the ``ratings`` table into agreement statistics per rubric item and
per total:

- ICC(2,1) (two-way random effects, absolute agreement, single rater) and ICC(3,1) (consistency),
  after Shrout & Fleiss, from the two-way ANOVA mean squares;
- quadratic-weighted Cohen's kappa over the rubric's whole scale (items only);
- Krippendorff's alpha, ordinal for items and interval for totals, with missing values;
- Spearman's rho, and the Bland-Altman mean bias, SD of the differences and 95% limits.

Pairs are formed per comparison: each judge (one model in one run) against every human rating of
the same session, and every two distinct humans who rated the same session. The statistics are
pure functions in ``eval/reliability.py``; ``agreement`` builds the rows, ``agreement_for_store`` reads
the store, and ``add_agreement_parser`` / ``agreement_command`` are the CLI pieces that
``python -m eval agreement`` wires in.

Undefined statistics are ``None``, never NaN: fewer than two pairs, no variance to explain, a
single category in use. A table shows them as "-".
"""
from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from eval.reliability import (AgreementError, BlandAltman, ICC, bland_altman, icc,  # noqa: F401 (re-exported)
                              krippendorff_alpha, spearman, weighted_kappa)
from eval.rubrics import Rubric, load_user_rubric

HUMAN_VS_HUMAN = "human vs human"
PRIMARY = "total"          # the primary total's key in a rating, next to the named totals
_RUN_PREFIX = 8            # shortest run id prefix shown in a judge's label

# ---------------------------------------------------------------------------------------------
# Pairing ratings into comparisons


@dataclass(frozen=True)
class AgreementRow:
    """One comparison on one target. ``bias`` is first minus second (judge minus human)."""
    comparison: str
    target: str
    target_kind: str          # item | total
    n: int                    # pairs
    icc2: float | None = None
    icc3: float | None = None
    kappa: float | None = None
    alpha: float | None = None
    spearman: float | None = None
    bias: float | None = None
    sd_diff: float | None = None
    loa_low: float | None = None
    loa_high: float | None = None


@dataclass(frozen=True)
class _Target:
    id: str
    kind: str                 # item | total
    source: str               # where a rating keeps it: scores | totals | total


def agreement(ratings: Iterable[Mapping[str, Any]], rubric: Rubric) -> list[AgreementRow]:
    """Agreement rows for every judge vs the humans, then human vs human; [] when nothing is rated.

    Only ratings of this rubric at its current version are used (a new version may mean different
    scores). Failed ratings contribute nothing, partial ones the items they have. A judge is one
    model in one run; with several ratings of a session by one rater (a judge without a run) the
    latest counts. Judge vs human pairs each judge rating with every human rating of its session;
    their alpha treats each pair as a unit. Human vs human pairs every two distinct raters of a
    session (first = lower rater id); their alpha uses the sessions x raters table with gaps.
    """
    usable = [r for r in ratings if r.get("rubric_id") == rubric.id
              and r.get("rubric_version", rubric.version) in (None, rubric.version)]
    if not usable:
        return []
    judges, humans = _group(usable)
    labels = _judge_labels(list(judges))
    targets = _targets(rubric)
    rows = []
    for key in sorted(judges, key=lambda k: (k[0], k[1] or "")):
        for target in targets:
            pairs = _judge_pairs(judges[key], humans, target)
            rows.append(_row(labels[key], target, pairs, [list(p) for p in pairs], rubric))
    if humans:
        for target in targets:
            rows.append(_row(HUMAN_VS_HUMAN, target, _human_pairs(humans, target),
                             _human_matrix(humans, target), rubric))
    return rows


def _group(ratings: list[Mapping[str, Any]]):
    """judges: (rater_id, run id) -> session -> rating; humans: session -> rater_id -> rating."""
    judges: dict[tuple[str, str | None], dict[str, Mapping]] = {}
    humans: dict[str, dict[str, Mapping]] = {}
    # later ratings overwrite earlier ones, so go in the order they were last written
    for r in sorted(ratings, key=lambda r: r.get("updated_utc") or r.get("created_utc") or ""):
        if r.get("rater_kind") == "judge":
            judges.setdefault((r["rater_id"], r.get("judge_run_id")), {})[r["session_id"]] = r
        elif r.get("rater_kind") == "human":
            humans.setdefault(r["session_id"], {})[r["rater_id"]] = r
    return judges, humans


def _judge_labels(keys: list[tuple[str, str | None]]) -> dict[tuple[str, str | None], str]:
    """'judge <model> (run <prefix>…)': the prefix grows until no two runs share one."""
    runs = sorted({run for _, run in keys if run})
    width = _RUN_PREFIX
    # ULIDs of runs started in the same few hundred ms share their first 8 characters
    while len({run[:width] for run in runs}) < len(runs):
        width += 1
    labels = {}
    for rater, run in keys:
        if not run:
            labels[(rater, run)] = f"judge {rater}"
        else:
            more = "…" if len(run) > width else ""
            labels[(rater, run)] = f"judge {rater} (run {run[:width]}{more})"
    return labels


def _targets(rubric: Rubric) -> list[_Target]:
    out = [_Target(it.id, "item", "scores") for it in rubric.items]
    out += [_Target(t.id, "total", "totals") for t in rubric.totals]
    if PRIMARY not in {t.id for t in rubric.totals}:  # a total named 'total' already is the primary
        out.append(_Target(PRIMARY, "total", "total"))
    return out


def _value(rating: Mapping[str, Any], target: _Target) -> float | None:
    if rating.get("status") == "failed":
        return None
    if target.source == "total":
        value = rating.get("total")
    else:
        value = (rating.get(target.source) or {}).get(target.id)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        return None
    return value


def _judge_pairs(judged: Mapping[str, Mapping], humans: Mapping[str, Mapping[str, Mapping]],
                 target: _Target) -> list[tuple[float, float]]:
    pairs = []
    for session in sorted(judged):
        mine = _value(judged[session], target)
        if mine is None:
            continue
        for rater in sorted(humans.get(session, {})):
            theirs = _value(humans[session][rater], target)
            if theirs is not None:
                pairs.append((mine, theirs))
    return pairs


def _human_pairs(humans: Mapping[str, Mapping[str, Mapping]], target: _Target) -> list[tuple[float, float]]:
    pairs = []
    for session in sorted(humans):
        scored = [v for rater in sorted(humans[session])
                  if (v := _value(humans[session][rater], target)) is not None]
        pairs += [(scored[i], later) for i in range(len(scored)) for later in scored[i + 1:]]
    return pairs


def _human_matrix(humans: Mapping[str, Mapping[str, Mapping]], target: _Target) -> list[list[float | None]]:
    raters = sorted({rater for per_session in humans.values() for rater in per_session})
    return [[_value(humans[session][rater], target) if rater in humans[session] else None
             for rater in raters] for session in sorted(humans)]


def _row(comparison: str, target: _Target, pairs: list[tuple[float, float]],
         alpha_matrix: list[list[float | None]], rubric: Rubric) -> AgreementRow:
    if len(pairs) < 2:
        return AgreementRow(comparison, target.id, target.kind, len(pairs))
    first, second = [p[0] for p in pairs], [p[1] for p in pairs]
    scale = list(range(rubric.scale_min, rubric.scale_max + 1))
    if target.kind == "item":
        kappa = weighted_kappa(first, second, rubric.scale_min, rubric.scale_max)
        alpha = krippendorff_alpha(alpha_matrix, "ordinal", scale)
    else:  # totals may be fractional (means, weighted sums): no categories to weight
        kappa = None
        alpha = krippendorff_alpha(alpha_matrix, "interval")
    both = icc([list(p) for p in pairs])
    ba = bland_altman(first, second)
    return AgreementRow(comparison, target.id, target.kind, len(pairs), icc2=both.icc2_1, icc3=both.icc3_1,
                        kappa=kappa, alpha=alpha, spearman=spearman(first, second), bias=ba.bias,
                        sd_diff=ba.sd_diff, loa_low=ba.loa_low, loa_high=ba.loa_high)


# ---------------------------------------------------------------------------------------------
# Reading the store


def load_ratings(store, rubric: Rubric, study: str | None = None,
                 judge_run_id: str | None = None) -> list[dict]:
    """The rubric's ratings, limited to a study's sessions and to one judge run (humans all kept).

    An unknown study or run is an error rather than an empty table: it is most likely a typo.
    """
    from store.ratings import RatingStore  # the statistics above need no database
    from store.sessions import SessionStore

    ratings = RatingStore(store)
    rows = ratings.list(rubric_id=rubric.id)
    if study is not None:
        # filtered here rather than in SQL: a large study would exceed SQLite's bound-variable limit
        sessions = {s["id"] for s in SessionStore(store).in_study(study)}
        if not sessions:
            known = SessionStore(store).facets()["study"]
            raise AgreementError(f"no sessions in study {study!r}; studies: {', '.join(known) or 'none'}")
        rows = [r for r in rows if r["session_id"] in sessions]
    if judge_run_id is not None:
        run = ratings.run(judge_run_id)  # RatingError (a ValueError) when there is no such run
        if run["rubric_id"] != rubric.id:
            raise AgreementError(f"judge run {judge_run_id} used rubric {run['rubric_id']!r}, not {rubric.id!r}")
        rows = [r for r in rows if r["rater_kind"] == "human" or r["judge_run_id"] == judge_run_id]
    return rows


def agreement_for_store(store, rubric: Rubric, study: str | None = None,
                        judge_run_id: str | None = None) -> list[AgreementRow]:
    """``agreement`` over the store's ratings of ``rubric`` (see ``load_ratings`` for the filters)."""
    return agreement(load_ratings(store, rubric, study, judge_run_id), rubric)


# ---------------------------------------------------------------------------------------------
# Output


_TABLE = (("comparison", "comparison"), ("target", "target"), ("n", "n"), ("ICC(2,1)", "icc2"),
          ("kappa_w", "kappa"), ("alpha", "alpha"), ("rho", "spearman"), ("bias", "bias"))
_TEXT_COLUMNS = 2          # the first columns are left-aligned text, the rest right-aligned numbers


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, str)):
        return str(value)
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text  # a bias of -0.001 is no bias at two decimals


def format_table(rows: Iterable[AgreementRow]) -> str:
    """A plain-text table, columns aligned; undefined statistics shown as '-'."""
    header = [title for title, _ in _TABLE]
    body = [[_cell(getattr(row, attr)) for _, attr in _TABLE] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < _TEXT_COLUMNS else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(cells) for cells in body)])


def rows_as_dicts(rows: Iterable[AgreementRow]) -> list[dict[str, Any]]:
    """Rows as plain dicts (unrounded, None kept) for CSV, JSON or a UI dataframe."""
    return [asdict(row) for row in rows]


def write_csv(rows: Iterable[AgreementRow], path: Path | str) -> None:
    columns = [f.name for f in fields(AgreementRow)]
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows_as_dicts(rows))  # None becomes an empty cell
    except OSError as exc:
        raise AgreementError(f"cannot write {path}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# CLI pieces (wired into ``python -m eval`` by eval/__main__.py)


def add_agreement_parser(sub, name: str = "agreement") -> argparse.ArgumentParser:
    """Add the agreement subcommand to an ``add_subparsers()`` object and return its parser."""
    parser = sub.add_parser(name, help="judge-human and human-human agreement on a rubric",
                            description="Agreement between the LLM judge and human raters, and between "
                                        "humans, per rubric item and total.")
    parser.add_argument("--rubric", required=True, metavar="ID", help="rubric id, e.g. tes")
    parser.add_argument("--study", metavar="NAME", help="only sessions of this study")
    parser.add_argument("--judge-run", dest="judge_run", metavar="RUN_ID",
                        help="only this judge run (human ratings are all kept)")
    parser.add_argument("--csv", metavar="FILE", type=Path, help="also write the rows as CSV")
    return parser


def agreement_command(args: argparse.Namespace, ctx: Any) -> int:
    """Print the agreement table for ``args.rubric``; ``ctx`` has ``store`` and ``settings``."""
    rubric = load_user_rubric(args.rubric, ctx.settings.data_dir)
    ratings = load_ratings(ctx.store, rubric, study=args.study, judge_run_id=args.judge_run)
    rows = agreement(ratings, rubric)
    scope = f" in study {args.study}" if args.study else ""
    other = sum(1 for r in ratings if r.get("rubric_version") not in (None, rubric.version))
    if other:  # said first, so an empty table is not mistaken for no ratings at all
        print(f"({other} rating(s) of other versions of {rubric.id} left out; this is version {rubric.version})")
    if not rows:
        print(f"no ratings for rubric {rubric.id}{scope} yet")
        return 0
    print(f"Agreement on {rubric.name} ({rubric.id} v{rubric.version}){scope}; "
          f"bias = first minus second (judge minus human)")
    print(format_table(rows))
    if args.csv:
        write_csv(rows, args.csv)
        print(f"wrote {len(rows)} rows to {args.csv}")
    return 0
