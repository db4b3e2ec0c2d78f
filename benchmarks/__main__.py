"""Run every benchmark and write one table (figure, ours, baseline, ratio, target).

    python -m benchmarks [--only turn_latency,simulation,...] [--quick] [--readme]

Each benchmark runs in its own process (as a user would run it alone) and appends its figures to
one JSON-lines file; the table is printed, saved to ``benchmarks/results.md`` and, with
``--readme``, written into README.md between the ``benchmarks:begin`` / ``benchmarks:end``
markers. ``--quick`` uses smaller settings (minutes instead of tens of minutes; noisier). Run it on
an otherwise idle machine: the benchmarks measure time.
"""
from __future__ import annotations

import argparse
import datetime
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
}
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"


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


def write_readme(table: str, readme: Path = ROOT / "README.md") -> None:
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} block to fill")
    head, rest = text.split(BEGIN, 1)
    readme.write_text(head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller settings (noisier)")
    parser.add_argument("--readme", action="store_true", help="also write the table into README.md")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {list(BENCHMARKS)}")
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.jsonl"
        failed = run_all(names, args.quick, figures)
        rows = read_figures(figures)
    stamp = (f"Measured {datetime.date.today().isoformat()} with `python -m benchmarks"
             f"{' --quick' if args.quick else ''}` on {os.cpu_count()} CPU cores ({platform.machine()}).")
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
