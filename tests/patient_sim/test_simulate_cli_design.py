"""``python -m patient_sim simulate``'s paired design from the shell: explicit persona ids x two
therapist variants x repeats, run two at a time, resumable; and ``--personas all``.

The embedded model needs tens of seconds per exchange on a busy CPU (test_simulate_cli covers it),
so here the CLI subprocess gets scripted models: the config file declares ``fake`` catalog entries
and a ``sitecustomize`` (on PYTHONPATH, tests/fakeapp.py) lets ``ModelPool`` build them. Argument parsing, planning,
the thread pool, the session engine and SQLite are the real ones.
"""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fakeapp import fake_env, write_site

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCRIPT = """
def _script(entry):
    if entry.id == "fake-patient":
        return lambda messages: "Mornings are the worst, I just lie there dreading the day."
    return lambda messages: f"({entry.id}) What shows up for you in those mornings?"
"""

CONFIG = """
preload_default = false
""" + "".join(f'\n[[models]]\nid = "{m}"\nbackend = "fake"\n' for m in ("fake-a", "fake-b", "fake-patient"))

SUMMARY = re.compile(r"^(\d+) planned: (\d+) run, (\d+) already done, (\d+) restarted after an interruption, "
                     r"(\d+) failed$", re.MULTILINE)


@pytest.fixture
def cli(tmp_path):
    site = write_site(tmp_path / "site", SCRIPT, CONFIG)
    data = tmp_path / "data"
    env = {**os.environ, **fake_env(site, FAKE_DELAY="0.02")}

    def simulate(*args: str) -> tuple[tuple[int, ...], str]:
        done = subprocess.run([sys.executable, "-m", "patient_sim", "--data-dir", str(data), "simulate",
                               "--patient-model", "fake-patient", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        counts = SUMMARY.search(done.stdout)
        assert counts, done.stdout
        return tuple(int(n) for n in counts.groups()), done.stdout

    simulate.db = data / "sessions.db"
    return simulate


def rows(db: Path, sql: str, args=()):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def max_overlap(spans: list[tuple[str, str]]) -> int:
    """Most sessions open at one moment (ISO timestamps, start inclusive, end exclusive)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    best = live = 0
    for _, step in edges:
        live += step
        best = max(best, live)
    return best


def test_paired_design_runs_every_pair_repeats_times_and_a_rerun_adds_nothing(cli):
    from patient_sim.personas import load_library
    library = sorted(p.id for p in load_library() if p.modality == "act")
    personas = [library[0], library[-1]]
    therapists, repeats, turns = ["fake-a", "fake-b"], 2, 2
    planned = len(personas) * len(therapists) * repeats
    args = ["--therapist", therapists[0], "--therapist", therapists[1], "--personas", ",".join(personas),
            "--repeats", str(repeats), "--concurrency", "2", "--turns", str(turns), "--study", "paired"]

    counts, _ = cli(*args)
    assert counts == (planned, planned, 0, 0, 0)
    sessions = rows(cli.db, "SELECT id, persona_id, therapist_model, variant, patient_model, simulated, status, "
                            "sim_key, created_utc, ended_utc FROM sessions WHERE study='paired'")
    assert len(sessions) == planned == len(rows(cli.db, "SELECT id FROM sessions"))
    pairs = Counter((s[1], s[2]) for s in sessions)
    assert pairs == {(p, t): repeats for p in personas for t in therapists}
    assert {s[7] for s in sessions} == {f"{p}|{t}|r{r}|s1" for p in personas for t in therapists
                                        for r in range(repeats)}
    for sid, persona, therapist, variant, patient_model, simulated, status, *_ in sessions:
        assert (variant, patient_model, simulated, status) == (therapist, "fake-patient", 1, "ended")
        stored = rows(cli.db, "SELECT role, model_id, content FROM turns WHERE session_id=? ORDER BY idx", (sid,))
        assert [r[0] for r in stored] == ["patient", "therapist"] * turns
        assert all(r[1] == therapist and r[2].startswith(f"({therapist})") for r in stored if r[0] == "therapist")
    assert max_overlap([(s[8], s[9]) for s in sessions]) == 2  # --concurrency 2: two at a time, never more

    total_turns = rows(cli.db, "SELECT COUNT(*) FROM turns")[0][0]
    counts, _ = cli(*args)
    assert counts == (planned, 0, planned, 0, 0)
    assert rows(cli.db, "SELECT COUNT(*) FROM sessions")[0][0] == planned
    assert rows(cli.db, "SELECT COUNT(*) FROM turns")[0][0] == total_turns == planned * turns * 2


def test_personas_all_plans_one_session_per_library_persona(cli):
    from patient_sim.personas import load_library
    expected = sorted(p.id for p in load_library() if p.modality in ("act", "any"))
    assert len(expected) >= 2
    counts, _ = cli("--therapist", "fake-a", "--personas", "all", "--turns", "1", "--concurrency", "2",
                    "--study", "everyone")
    assert counts == (len(expected), len(expected), 0, 0, 0)
    sessions = rows(cli.db, "SELECT persona_id, status FROM sessions WHERE study='everyone'")
    assert sorted(s[0] for s in sessions) == expected and {s[1] for s in sessions} == {"ended"}
    assert rows(cli.db, "SELECT COUNT(*) FROM turns")[0][0] == 2 * len(expected)


def test_persona_ids_keep_their_own_modality_unless_one_is_given(cli):
    from patient_sim.personas import load_library
    library = load_library()
    act = next(p.id for p in library if p.modality == "act")
    cbt = next(p.id for p in library if p.modality == "cbt")
    counts, _ = cli("--therapist", "fake-a", "--personas", f"{act},{cbt}", "--turns", "1", "--study", "own")
    assert counts[:2] == (2, 2)
    assert dict(rows(cli.db, "SELECT persona_id, modality FROM sessions WHERE study='own'")) == {act: "act", cbt: "cbt"}
    counts, _ = cli("--therapist", "fake-a", "--personas", cbt, "--turns", "1", "--modality", "act",
                    "--study", "forced")
    assert rows(cli.db, "SELECT modality FROM sessions WHERE study='forced'") == [("act",)]
