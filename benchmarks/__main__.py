"""Run every benchmark and write one table (figure, ours, baseline, ratio, target).

    python -m benchmarks [--only turn_latency,simulation,...] [--quick] [--readme]

Each benchmark runs in its own process (as a user would run it alone) and appends its figures to
one JSON-lines file; the table is printed, saved to ``benchmarks/results.md`` and, with
``--readme``, written into docs/performance.md between the ``benchmarks:begin`` /
``benchmarks:end`` markers. Rows are kept in ``benchmarks/results.jsonl``: running ``--only``
some benchmarks replaces their rows and keeps the others, each with the date it was measured.
``--quick`` uses smaller settings (minutes instead of tens of minutes; noisier). Run it on an
otherwise idle machine: the benchmarks measure time.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.figures import markdown_table, read_figures

ROOT = Path(__file__).resolve().parents[1]
# name -> (full arguments, quick arguments)
BENCHMARKS = {
    "turn_latency": ([], ["--trials", "3", "--turns", "10"]),
    "simulation": ([], ["--sessions", "2", "--turns", "2", "--long-turns", "6", "--repeats", "1"]),
    "training": (["--steps", "8", "--rounds", "3"], ["--steps", "4", "--rounds", "1"]),
    "judge_runs": (["--rubrics", "tes"], ["--sessions", "2", "--turns", "2", "--rubrics", "tes"]),
    "cold_start": ([], ["--rounds", "1"]),
    "load": ([], ["--messages", "2", "--alone", "1"]),
    "cpu_share": ([], ["--rounds", "1", "--replies", "2"]),
    "worker": ([], ["--rounds", "2", "--crashes", "1"]),
    "risk_detector": (["--screen"], ["--screen"]),
}
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
RESULTS = ROOT / "benchmarks" / "results.jsonl"
# the page whose benchmarks:begin / benchmarks:end block --readme fills (it was README.md once)
PERFORMANCE_DOC = ROOT / "docs" / "performance.md"


def run_all(names: list[str], quick: bool, figures: Path) -> list[str]:
    """Run each benchmark; return the names that failed (their output is shown)."""
    failed = []
    for name in names:
        full, small = BENCHMARKS[name]
        print(f"== {name}", flush=True)
        result = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *(small if quick else full),
                                 "--figures", str(figures)], cwd=ROOT, text=True, capture_output=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        print(result.stdout[-2000:], flush=True)
        if result.returncode != 0:
            print(result.stderr[-3000:], file=sys.stderr)
            failed.append(name)
    return failed


def merge_rows(previous: list[dict], new: list[dict], names: list[str], measured: str) -> list[dict]:
    """The rows of the benchmarks just run replace theirs; the other benchmarks' rows stay."""
    kept = [r for r in previous if r.get("source") not in names]
    order = list(BENCHMARKS)
    rows = kept + [{**r, "measured": measured} for r in new]
    return sorted(rows, key=lambda r: order.index(r["source"]) if r.get("source") in order else len(order))


def save_rows(rows: list[dict], path: Path = RESULTS) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_readme(table: str, readme: Path = PERFORMANCE_DOC) -> None:
    """Replace the table between the markers of ``readme`` (by default docs/performance.md)."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} block to fill")
    head, rest = text.split(BEGIN, 1)
    readme.write_text(head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller settings (noisier)")
    parser.add_argument("--readme", action="store_true",
                        help="also write the table into docs/performance.md")
    parser.add_argument("--table", action="store_true",
                        help="run nothing: rebuild the table (and, with --readme, the block in "
                             "docs/performance.md) from benchmarks/results.jsonl")
    args = parser.parse_args(argv)
    names = [] if args.table else args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {list(BENCHMARKS)}")
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.jsonl"
        failed = run_all(names, args.quick, figures)
        new = [r for r in read_figures(figures) if r.get("source") not in failed]
    measured = f"{datetime.date.today().isoformat()}{' --quick' if args.quick else ''}, {os.cpu_count()} cores"
    # a benchmark that failed keeps the rows of its last good run
    rows = merge_rows(read_figures(RESULTS), new, [n for n in names if n not in failed], measured)
    save_rows(rows)
    stamp = (f"Measured with `python -m benchmarks` on {platform.machine()} CPUs; the last column gives "
             "each row's date, `--quick` if used, and the core count.")
    table = stamp + "\n\n" + markdown_table(rows)
    print(table)
    (ROOT / "benchmarks" / "results.md").write_text(table + "\n", encoding="utf-8")
    if args.readme:
        write_readme(table)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
