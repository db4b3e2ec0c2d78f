"""A tiny background job: the example of how a CLI reports to the jobs mechanism, used by tests.

    python -m jobs.demo --steps N --sleep S [--job-id ID] [--data-dir D] [--fail-at K]

It sleeps ``S`` seconds per step and reports each step; with ``--fail-at K`` it raises at step
``K`` so the job ends "failed" with that error. Without ``--job-id`` it just runs and prints.
Every real job CLI follows the same three lines: ``from_args``, ``on_cancel``, ``guard``.
"""
from __future__ import annotations

import argparse
import signal
import time

from config import load_settings
from jobs.reporter import JobReporter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds per step")
    parser.add_argument("--fail-at", type=int, help="raise an error at this step (1-based)")
    parser.add_argument("--ignore-term", action="store_true",
                        help="ignore SIGTERM (tests the SIGKILL escalation of a cancel)")
    parser.add_argument("--print-settings", action="store_true",
                        help="print the settings this job loaded, as JSON, before the first step")
    parser.add_argument("--job-id", help="report to this jobs row (set by JobRunner)")
    parser.add_argument("--data-dir", help="data directory (default ./data or THERALAB_DATA_DIR)")
    return parser


def run(args: argparse.Namespace, reporter: JobReporter) -> dict:
    for step in range(1, args.steps + 1):
        time.sleep(args.sleep)
        if args.fail_at == step:
            raise RuntimeError(f"demo failure at step {step}")
        reporter.progress(step, args.steps, loss=round(1.0 / step, 4))
        print(f"step {step}/{args.steps}", flush=True)
    return {"steps": args.steps}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings(["--data-dir", args.data_dir] if args.data_dir else [])
    reporter = JobReporter.from_args(args.job_id, settings.data_dir)
    if args.print_settings:
        from config import settings_json
        print("SETTINGS " + " ".join(settings_json(settings).split()), flush=True)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        reporter.on_cancel()  # SIGTERM -> JobCancelled -> guard() marks the job "cancelled"
    with reporter.guard():
        reporter.done(run(args, reporter))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
