"""A study's results: per-session scores, statistics, plots and a Markdown report on disk.

``study_scores`` turns the study's ratings into one row per (session, rater): judge ratings from
the latest run of each judge x rubric over ``study:<name>`` that parsed completely (partial and
failed ones are dropped, with the reason, and counted in the report), and human ratings averaged
per session over raters. Every total and subscale of the rubric becomes a column
``<rubric>.<score>``. ``write_report`` analyses each score per rater with ``eval.stats`` and
writes ``<data dir>/studies/<name>/``: ``scores.csv``, ``descriptives.csv``, ``tests.csv``,
``box_<rater>_<rubric>.png``, ``items_<rater>_<rubric>.png`` and ``report.md``.
"""
from __future__ import annotations

import csv
import re
import time
from pathlib import Path
from typing import Callable

from store.db import Store
from store.sessions import SessionStore


def report_dir(data_dir: Path, study: str) -> Path:
    return Path(data_dir) / "studies" / re.sub(r"[^A-Za-z0-9_.-]+", "_", study)


def _latest_runs(ratings, config) -> list[dict]:
    selection = f"study:{config.name}"
    latest = {}
    for run in ratings.runs(limit=500):  # newest first
        key = (run["judge_model"], run["rubric_id"])
        if run["selection"] == selection and key[0] in config.judges and key[1] in config.rubrics:
            latest.setdefault(key, run)
    return list(latest.values())


def _score_columns(rubric, scores: dict) -> dict:
    result = rubric.score(scores)
    return {**{f"{rubric.id}.{k}": v for k, v in result["totals"].items()},
            **{f"{rubric.id}.{k}": v for k, v in result["subscales"].items()}}


def study_scores(store: Store, data_dir: str | Path, config) -> tuple[list[dict], list[dict]]:
    """(rows, dropped): one row per session and rater with every score column; dropped ratings."""
    from eval.rubrics import load_user_rubric
    from store.ratings import RatingStore
    ratings = RatingStore(store)
    sessions = {s["id"]: s for s in SessionStore(store).in_study(config.name, simulated=True, status="ended")}
    labels = config.labels()
    rubrics = {r: load_user_rubric(r, data_dir) for r in config.rubrics}
    rows: dict[tuple[str, str], dict] = {}
    dropped = []

    def row_for(sid: str, rater: str) -> dict:
        s = sessions[sid]
        return rows.setdefault((sid, rater), {
            "session": sid, "rater": rater, "variant": labels.get(s["therapist_model"], s["therapist_model"]),
            "model": s["therapist_model"], "subject": s["persona_id"], "key": s.get("sim_key") or ""})

    for run in _latest_runs(ratings, config):
        rubric = rubrics[run["rubric_id"]]
        for r in ratings.list(rubric.id, judge_run_id=run["id"]):
            if r["session_id"] not in sessions:
                continue
            if r["status"] != "ok":
                problems = (r.get("detail") or {}).get("problems") or [r["status"]]
                dropped.append({"session": r["session_id"], "rater": f"judge:{run['judge_model']}",
                                "rubric": rubric.id, "status": r["status"], "reason": str(problems[0])[:200]})
                continue
            row_for(r["session_id"], f"judge:{run['judge_model']}").update(_score_columns(rubric, r["scores"]))
    _add_human_means(ratings, rubrics, sessions, row_for)
    return list(rows.values()), dropped


def _add_human_means(ratings, rubrics, sessions, row_for) -> None:
    for rubric in rubrics.values():
        by_session: dict[str, list[dict]] = {}
        for r in ratings.list(rubric.id, rater_kind="human", session_ids=list(sessions)):
            if r["status"] == "ok":
                by_session.setdefault(r["session_id"], []).append(_score_columns(rubric, r["scores"]))
        for sid, columns in by_session.items():
            means = {k: sum(c[k] for c in columns) / len(columns) for k in columns[0]}
            row_for(sid, "human").update(means, n_raters=len(columns))


def score_names(rows: list[dict]) -> list[str]:
    names = []
    for row in rows:
        names += [k for k in row if "." in k and k not in names]
    return names


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def box_plot(rows: list[dict], score: str, order: list[str], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    data = [[r[score] for r in rows if r["variant"] == v and r.get(score) is not None] for v in order]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(order)), 4.0))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(order) + 1), [f"{v}\n(n={len(d)})" for v, d in zip(order, data)], fontsize=8)
    ax.set_ylabel(score)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def item_heatmap(store: Store, config, rater: str, rubric, path: Path) -> Path | None:
    """Mean score of every rubric item per variant (rows: items, columns: variants)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from store.ratings import RatingStore
    ratings = RatingStore(store)
    runs = [r for r in _latest_runs(ratings, config) if f"judge:{r['judge_model']}" == rater
            and r["rubric_id"] == rubric.id]
    if not runs:
        return None
    model_of = {s["id"]: s["therapist_model"] for s in SessionStore(store).in_study(config.name)}
    labels, order = config.labels(), [v.label or v.id for v in config.variant_list()]
    sums: dict[tuple[str, str], list[float]] = {}
    for r in ratings.list(rubric.id, judge_run_id=runs[0]["id"]):
        if r["status"] == "ok" and r["session_id"] in model_of:
            variant = labels.get(model_of[r["session_id"]], model_of[r["session_id"]])
            for item, value in r["scores"].items():
                sums.setdefault((item, variant), []).append(value)
    if not sums:
        return None
    items = [it.id for it in rubric.items]
    grid = [[(sum(v) / len(v)) if (v := sums.get((i, var))) else float("nan") for var in order] for i in items]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(order) + 3), max(3.0, 0.28 * len(items) + 1.5)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=rubric.scale_min, vmax=rubric.scale_max)
    ax.set_xticks(range(len(order)), order, fontsize=8, rotation=20, ha="right")
    ax.set_yticks(range(len(items)), [f"{n}. {i}" for n, i in enumerate(items, 1)], fontsize=7)
    ax.set_title(f"{rubric.name}: mean item score per variant ({rater})", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(store: Store, data_dir: str | Path, config, log: Callable[[str], None] = print) -> Path:
    """Analyse the study's scores and write the report folder; return its report.md."""
    from eval import stats, stats_tables
    from eval.rubrics import load_user_rubric
    folder = report_dir(data_dir, config.name)
    folder.mkdir(parents=True, exist_ok=True)
    rows, dropped = study_scores(store, data_dir, config)
    write_csv(folder / "scores.csv", rows or [{"session": ""}])
    order = [v.label or v.id for v in config.variant_list()]
    rubrics = {r: load_user_rubric(r, data_dir) for r in config.rubrics}
    sections, descriptives, tests, plots = [], [], [], []
    for rater in sorted({r["rater"] for r in rows}):
        mine = [r for r in rows if r["rater"] == rater]
        present = [v for v in order if any(r["variant"] == v for r in mine)]
        if len(present) < 2:
            continue
        import pandas as pd
        for result in stats.analyse(pd.DataFrame(mine), score_names(mine), "variant", "subject", variants=present):
            sections.append((rater, result.score, stats_tables.to_markdown(result)))
            descriptives += [{"rater": rater, **d} for d in stats_tables.descriptive_rows(result)]
            tests += [{"rater": rater, **t} for t in stats_tables.test_rows(result)]
        for rubric in rubrics.values():
            primary = f"{rubric.id}.{rubric.primary}"
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", rater)
            if any(r.get(primary) is not None for r in mine):
                plots.append(box_plot(mine, primary, order, folder / f"box_{safe}_{rubric.id}.png",
                                      f"{rubric.name}: {rubric.primary} by variant ({rater})"))
            heat = item_heatmap(store, config, rater, rubric, folder / f"items_{safe}_{rubric.id}.png")
            if heat:
                plots.append(heat)
    write_csv(folder / "descriptives.csv", descriptives or [{"rater": ""}])
    write_csv(folder / "tests.csv", tests or [{"rater": ""}])
    write_csv(folder / "dropped.csv", dropped or [{"session": ""}])
    text = _markdown(SessionStore(store), config, rows, dropped, sections, plots, rubrics)
    (folder / "report.md").write_text(text, encoding="utf-8")
    log(f"analyse: {len(rows)} scored sessions, {len(dropped)} ratings dropped; report in {folder}")
    return folder / "report.md"


def _markdown(sessions_store: SessionStore, config, rows, dropped, sections, plots, rubrics) -> str:
    sessions = sessions_store.in_study(config.name, simulated=True)
    status = {}
    for s in sessions:
        status[s["status"]] = status.get(s["status"], 0) + 1
    personas = sorted({s["persona_id"] for s in sessions})
    lines = [f"# Study report: {config.name}", "", config.description.strip(), "",
             f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "", "## Design", "",
             f"- Modality: {config.modality.upper()}; {len(personas)} standardized patients "
             f"({config.personas if isinstance(config.personas, str) else 'listed ids'}), "
             f"{config.repeats} repeat(s), {config.turns} exchanges per session; patient model "
             f"`{config.patient_model}`.",
             "- Variants: " + "; ".join(f"**{v.label or v.id}** = `{v.id}`" for v in config.variant_list()) + ".",
             f"- Sessions: {len(sessions)} simulated (" + ", ".join(f"{n} {k}" for k, n in sorted(status.items()))
             + "); only ended sessions are scored.",
             "- Judges: " + ", ".join(f"`{j}`" for j in config.judges) + "; rubrics: "
             + ", ".join(f"{r.name} `{r.id}` v{r.version}" for r in rubrics.values()) + ".",
             f"- Scored (session x rater): {len(rows)}. Ratings dropped: {len(dropped)}"
             + (" (" + ", ".join(sorted({f"{d['status']}: {d['reason'][:80]}" for d in dropped})[:5]) + ")"
                if dropped else "") + ".",
             "", "Statistics per score: descriptives, the linear mixed model `score ~ C(variant)` with a "
             "random intercept per patient (REML), omnibus Wald chi-square, pairwise contrasts with "
             "Holm-Sidak adjustment, and nonparametric companions (see `tests.csv`).", ""]
    for path in plots:
        lines += [f"![{path.stem}]({path.name})", ""]
    for rater, score, text in sections:
        heading = f"## {score}"
        text = text.replace(heading, f"{heading} ({rater})", 1) if text.startswith(heading) else \
            f"{heading} ({rater})\n\n{text}"
        lines += [text, ""]
    return "\n".join(lines)
