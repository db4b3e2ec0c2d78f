"""``python -m eval``: rubrics, LLM-judge runs, transcript import and agreement, from the shell.

    rubrics                                       list every rubric (shipped and the user's own)
    judge --rubric ID --judge MODEL --sessions all|study:NAME|ID,... [--concurrency C]
                                                  rate sessions with a catalog model (resumable)
    runs [--rubric ID]                            list judge runs with their ok/partial/failed counts
    import-transcripts PATH --study S --variant V  store plain-text transcripts as sessions
    agreement --rubric ID [--study S]             judge-human and human-human agreement
    stats --csv FILE --variant-col C --subject-col C --score-col C [--score-col C ...] [--out DIR]
                                                  mixed model, contrasts and nonparametric tests on a score table
    study --config FILE [key=value ...] [--stages simulate,judge,analyse]
                                                  run or resume a whole study and write its report

Exit codes: 0 done, 1 some rubric file did not load (``rubrics``), 2 bad input (nothing stored). A subcommand is a
``register(sub, name)`` function and a ``run(args, ctx)`` handler, listed in ``COMMANDS``.
"""
from __future__ import annotations

import sys

from jobs import cli
from jobs.cli import Command, Context


def _extra_dirs(ctx: Context) -> list:
    from eval.rubrics import user_rubrics_dir
    return [user_rubrics_dir(ctx.settings.data_dir)]


# --- rubrics ---------------------------------------------------------------------------------


def _register_rubrics(sub, name: str):
    return sub.add_parser(name, help="list rubrics: shipped ones and those in <data dir>/rubrics",
                          description="A rubric file that does not load is listed with its problem.")


def _run_rubrics(args, ctx: Context) -> int:
    from eval.rubrics import scan_rubrics
    rubrics, errors = scan_rubrics(_extra_dirs(ctx))
    for r in rubrics:
        print(f"{r.id:<10} v{r.version}  {len(r.items):>2} items  {r.scale_min}-{r.scale_max}  "
              f"{r.modality:<4} {r.name}  ({r.path})")
    for error in errors:
        print(f"not loaded: {error}", file=sys.stderr)
    return 1 if errors else 0


# --- judge -----------------------------------------------------------------------------------


def _register_judge(sub, name: str):
    p = sub.add_parser(name, help="rate sessions on a rubric with an LLM judge (a judge run)",
                       description="Every judgement is stored as it is made. Running the same command "
                                   "again continues the latest run with the same rubric, judge, selection "
                                   "and settings, rating only what it has not; --new-run starts afresh.")
    p.add_argument("--rubric", required=True, help="rubric id (see `python -m eval rubrics`)")
    p.add_argument("--judge", required=True, help="catalog model id of the judge")
    p.add_argument("--sessions", default="all", help="all | study:NAME | id,id,... (default all: ended sessions)")
    p.add_argument("--concurrency", type=int, default=1, help="judgements at once (helps with endpoints)")
    p.add_argument("--include-reasoning", action="store_true", help="show the judge the therapist's reasoning")
    p.add_argument("--max-retries", type=int, default=2, help="retries after an invalid answer (default 2)")
    p.add_argument("--new-run", action="store_true", help="never resume; start a new run")
    p.add_argument("--job-id", default=None, help="(set by the Admin tab's job runner)")
    return p


def _run_judge(args, ctx: Context) -> int:
    from eval.rubrics import load_rubric
    from eval.runs import JudgeRunSpec, run_judge, run_line
    from services import build_services
    from jobs.reporter import JobReporter
    if not 1 <= args.concurrency <= 32 or not 0 <= args.max_retries <= 10:
        raise ValueError("--concurrency must be 1-32 and --max-retries 0-10")
    rubric = load_rubric(args.rubric, _extra_dirs(ctx))
    spec = JudgeRunSpec(rubric.id, args.judge, args.sessions.strip(), args.concurrency,
                        args.include_reasoning, args.max_retries, args.new_run)
    services = build_services(ctx.settings)
    reporter = JobReporter.from_args(args.job_id, ctx.settings.data_dir, services.store)
    reporter.on_cancel()
    with reporter.guard():
        created_by = services.jobs.jobs.get(args.job_id)["created_by"] if args.job_id else "cli"
        try:
            run = run_judge(services.store, services.pool, services.audit, spec, rubric,
                            created_by=created_by or "cli", job_id=args.job_id, reporter=reporter,
                            show_progress=sys.stderr.isatty())
        except (LookupError, ValueError) as exc:  # bad model or selection: nothing was rated
            reporter.fail(str(exc))
            raise
        print(run_line(run))
        reporter.done({"run_id": run["id"], "ok": run["n_ok"], "partial": run["n_partial"],
                       "failed": run["n_failed"], "line": run_line(run)})
    return 0


def _register_runs(sub, name: str):
    p = sub.add_parser(name, help="list judge runs")
    p.add_argument("--rubric", help="only this rubric")
    return p


def _run_runs(args, ctx: Context) -> int:
    from eval.runs import run_line, settle_runs
    from store.ratings import RatingStore
    settle_runs(ctx.store)
    runs = RatingStore(ctx.store).runs(args.rubric)
    for run in runs:
        print(run_line(run))
    if not runs:
        print("no judge runs yet")
    return 0


# --- import and agreement (their own modules hold parser and handler) ------------------------


def _register_import(sub, name: str):
    from eval.transcripts import add_import_parser
    return add_import_parser(sub, name)


def _run_import(args, ctx: Context) -> int:
    from eval.transcripts import import_command
    return import_command(args, ctx)


def _register_agreement(sub, name: str):
    from eval.agreement import add_agreement_parser
    return add_agreement_parser(sub, name)


def _run_agreement(args, ctx: Context) -> int:
    from eval.agreement import agreement_command
    return agreement_command(args, ctx)


# --- stats on a score table from elsewhere (eval/stats.py holds the handler) -------------------


def _register_stats(sub, name: str):
    p = sub.add_parser(name, help="study statistics on a CSV of per-session scores",
                       description="Per score column: descriptives per variant, the mixed model score ~ "
                                   "C(variant) with a random intercept per subject (REML; omnibus Wald "
                                   "chi-square, Holm-Sidak pairwise contrasts, ICC) and nonparametric tests "
                                   "(Friedman/Wilcoxon if paired, else Kruskal-Wallis/Mann-Whitney; Holm).")
    p.add_argument("--csv", required=True, metavar="FILE", help="one row per session")
    p.add_argument("--variant-col", required=True, metavar="C", help="column naming the variant (model)")
    p.add_argument("--subject-col", required=True, metavar="C", help="column naming the patient profile / persona")
    p.add_argument("--score-col", required=True, action="append", metavar="C",
                   help="a score column; repeat for several")
    p.add_argument("--reference", metavar="V", help="reference variant of the fixed effects (default: first sorted)")
    p.add_argument("--out", metavar="DIR", help="also write descriptives.csv, tests.csv and report.md here")
    return p


def _run_stats(args, ctx: Context) -> int:
    from eval.stats_tables import stats_command
    return stats_command(args)


# --- study --------------------------------------------------------------------------------------

def _register_study(sub, name: str):
    from eval.study import register_cli
    return register_cli(sub, name)


def _run_study(args, ctx: Context) -> int:
    from eval.study import load_study, run_study
    from services import build_services  # an entry point: the one place Services is built
    from jobs.reporter import JobReporter
    config = load_study(args.config, args.overrides)
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    services = build_services(ctx.settings)
    try:
        reporter = JobReporter.from_args(args.job_id, ctx.settings.data_dir, services.store)
        reporter.on_cancel()
        with reporter.guard():
            out = run_study(services, config, stages, reporter, log=lambda line: print(line, flush=True))
            reporter.done(out)
        print(f"study {config.name}: done" + (f"; report: {out['report']}" if "report" in out else ""))
        return 0
    finally:
        services.store.close()


COMMANDS: dict[str, Command] = {
    "rubrics": Command(_register_rubrics, _run_rubrics),
    "judge": Command(_register_judge, _run_judge),
    "runs": Command(_register_runs, _run_runs),
    "import-transcripts": Command(_register_import, _run_import),
    "agreement": Command(_register_agreement, _run_agreement),
    "stats": Command(_register_stats, _run_stats),
    "study": Command(_register_study, _run_study),
}


def build_parser():
    return cli.build_parser("python -m eval", "TheraLab evaluation: rubrics, LLM judge runs, transcript import, "
                            "agreement, statistics, studies", COMMANDS)


def main(argv: list[str] | None = None) -> int:
    # RubricError, RunError, CatalogError, transcript and agreement errors are ValueErrors.
    return cli.run_main(build_parser(), COMMANDS, argv, (LookupError, ValueError, FileNotFoundError))


if __name__ == "__main__":
    sys.exit(main())
