"""Judge-run rates on simulated smoke sessions: how often answers are ok / partial / failed, and
how long a rating takes, per rubric, with any catalog judge.

    python -m benchmarks.judge_runs [--sessions 6] [--turns 4] [--judge default] [--rubrics tes,ctrs,act-fm]

Simulates the sessions into a temporary data dir (``python -m patient_sim simulate``), then runs
``python -m eval judge`` once per rubric, exactly as a user would, and prints the stored counts.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.figures import Figure, add_figures_argument, write_figures  # noqa: E402


def run(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", *args], cwd=ROOT, check=True, capture_output=True, text=True,
                   env={**os.environ, "THERALAB_MAX_TOKENS": "60"})


def main() -> int:
    parser = argparse.ArgumentParser(description="judge-run rates on smoke sessions")
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--judge", default="default")
    parser.add_argument("--rubrics", default="tes,ctrs,act-fm")
    add_figures_argument(parser)
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory() as data:
        run(["patient_sim", "--data-dir", data, "simulate", "--therapist", "default", "--personas",
             f"sample:{args.sessions}", "--turns", str(args.turns), "--study", "smoke"])
        for rubric in args.rubrics.split(","):
            started = time.perf_counter()
            run(["eval", "--data-dir", data, "judge", "--rubric", rubric, "--judge", args.judge,
                 "--sessions", "study:smoke"])
            seconds = time.perf_counter() - started
            with sqlite3.connect(Path(data) / "sessions.db") as db:
                ok, partial, failed, total = db.execute(
                    "SELECT n_ok, n_partial, n_failed, n_total FROM judge_runs WHERE rubric_id = ?", [rubric]).fetchone()
                attempts = db.execute("SELECT AVG(json_extract(detail_json, '$.attempts')) FROM ratings "
                                      "WHERE rubric_id = ?", [rubric]).fetchone()[0]
                problems = [r[0] for r in db.execute(
                    "SELECT json_extract(detail_json, '$.problems[0]') FROM ratings WHERE rubric_id = ? "
                    "AND status != 'ok'", [rubric]).fetchall()]
            print(f"{rubric}: {total} sessions, ok {ok} ({100 * ok / total:.0f}%), partial {partial} "
                  f"({100 * partial / total:.0f}%), failed {failed} ({100 * failed / total:.0f}%), "
                  f"{attempts:.2f} attempts per rating, {seconds / total:.1f} s per rating (incl. start-up)")
            for problem in problems:
                print(f"    not ok: {problem}")
            figures.append(Figure(f"judge sessions per hour ({rubric}, judge {args.judge}, {args.turns}-exchange "
                                  f"sessions; {ok}/{total} parsed complete)", 3600 * total / seconds, None, "",
                                  "sessions/h", "judge_runs"))
    write_figures(args.figures, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
