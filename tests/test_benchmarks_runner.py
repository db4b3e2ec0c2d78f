"""``python -m benchmarks``: the figure rows, the table and the README block it writes.

The benchmarks themselves measure time and run outside the test suite; here a real benchmark
(``cold_start``, one round: our app against a bare Gradio app) runs through the runner, so the
whole path from a benchmark process to the README table is exercised once.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import __main__ as runner
from benchmarks.figures import Figure, markdown_table, read_figures, write_figures

ROOT = Path(__file__).resolve().parents[1]


def test_figures_round_trip_and_ratio(tmp_path):
    path = tmp_path / "f.jsonl"
    write_figures(path, [Figure("a", 2.0, 4.0, "<= 1.1", "s", "x"), Figure("b", 7.0, None, "", "", "y")])
    write_figures(None, [Figure("ignored", 1.0)])  # no path: nothing written, no error
    rows = read_figures(path)
    assert [r["figure"] for r in rows] == ["a", "b"]
    assert rows[0]["ratio"] == 0.5 and rows[1]["ratio"] is None
    table = markdown_table(rows)
    assert "| a | 2.00 s | 4.00 s | **0.50** | <= 1.1 | `x` |" in table
    assert "| b | 7.00 | — | — | — | `y` |" in table


def test_readme_block_is_replaced_and_a_missing_block_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{runner.BEGIN}\nold table\n{runner.END}\noutro\n")
    runner.write_readme("new table", readme)
    assert readme.read_text() == f"intro\n{runner.BEGIN}\nnew table\n{runner.END}\noutro\n"
    readme.write_text("no markers")
    with pytest.raises(SystemExit, match="no <!-- benchmarks:begin -->"):
        runner.write_readme("t", readme)


def test_unknown_benchmark_names_are_refused():
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "nope"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown benchmark" in result.stderr


def test_the_runner_runs_a_real_benchmark_into_a_table(tmp_path, monkeypatch):
    """cold_start, one round: our app and a bare Gradio app each serve their first page."""
    figures = tmp_path / "figures.jsonl"
    assert runner.run_all(["cold_start"], quick=True, figures=figures) == []
    [row] = read_figures(figures)
    assert row["source"] == "cold_start" and row["ours"] > 0 and row["baseline"] > 0
    assert row["ratio"] == pytest.approx(row["ours"] / row["baseline"], rel=1e-2)


def test_rerunning_some_benchmarks_keeps_the_other_rows_with_their_dates():
    old = [{"figure": "cold", "ours": 4.0, "source": "cold_start", "measured": "2026-11-01, 2 cores"},
           {"figure": "turns", "ours": 50.0, "source": "turn_latency", "measured": "2026-11-01, 2 cores"}]
    new = [{"figure": "cold", "ours": 3.0, "source": "cold_start"}]
    rows = runner.merge_rows(old, new, ["cold_start"], "2026-11-26, 2 cores")
    # turn_latency keeps its old row; cold_start's row is the new one; BENCHMARKS order is kept
    assert [(r["source"], r["ours"], r["measured"]) for r in rows] == [
        ("turn_latency", 50.0, "2026-11-01, 2 cores"), ("cold_start", 3.0, "2026-11-26, 2 cores")]
    table = markdown_table(rows)
    assert table.splitlines()[0].endswith("| measured |")
    assert "| `turn_latency` | 2026-11-01, 2 cores |" in table


def test_table_only_rebuilds_the_table_from_the_kept_rows_without_running_anything():
    kept = read_figures(runner.RESULTS)
    assert kept, "benchmarks/results.jsonl holds the last measured rows"
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--table"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "==" not in result.stdout  # no benchmark ran
    for row in kept:
        assert f"| {row['figure']} |" in result.stdout and row["measured"] in result.stdout
