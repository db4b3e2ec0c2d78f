"""Every command line takes its global flags before or after the subcommand (issue 18)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from apprunner import ROOT


def _parsers():
    import eval.__main__ as eval_cli
    import patient_sim.__main__ as sim_cli
    import store.__main__ as store_cli
    import training.__main__ as training_cli
    return {"store": store_cli._parser, "eval": eval_cli.build_parser, "patient_sim": sim_cli.build_parser,
            "training": training_cli.build_parser}


CASES = {  # one real subcommand line per CLI, nested subcommands included
    "store": ["users", "list"],
    "eval": ["agreement", "--rubric", "ctrs"],
    "patient_sim": ["personas"],
    "training": ["build", "name=x"],
}


@pytest.mark.parametrize("cli", sorted(CASES))
def test_global_flags_before_or_after_the_subcommand(cli):
    parser = _parsers()[cli]()
    before = parser.parse_args(["--data-dir", "/d/before", *CASES[cli]])
    after = parser.parse_args([*CASES[cli], "--data-dir", "/d/after"])
    neither = parser.parse_args(CASES[cli])
    assert before.data_dir == "/d/before" and after.data_dir == "/d/after" and neither.data_dir is None
    both = parser.parse_args(["--data-dir", "/d/before", *CASES[cli], "--data-dir", "/d/after"])
    assert both.data_dir == "/d/after"  # the one nearest the command wins


def test_patient_sim_with_the_data_dir_last_runs(tmp_path):
    """The line from the issue, run for real: it used to fail with 'unrecognized arguments'."""
    done = subprocess.run([sys.executable, "-m", "patient_sim", "personas", "--data-dir", str(tmp_path / "d")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "d" / "sessions.db").exists()  # the flag was honoured, not ignored
