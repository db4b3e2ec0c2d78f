"""Datagen with scripted teacher and reviewer (the logic: turns, reasoning split, review loop,
CBT summaries carried, resume), and one real session written by the embedded model via the CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from training.corpus import load_file
from training.datagen import DatagenConfig, corpus_path, generate

ROOT = Path(__file__).resolve().parents[2]


def teacher(messages):
    system = messages[0]["content"]
    if system.startswith("You play"):
        return "*sighs* I just feel stuck at work."
    if system.startswith("The session is over"):
        return "Session Summary: we talked about feeling stuck; homework: one small walk."
    return "<think>" + "Notice the stuckness and stay curious. " * 8 + "</think>What does stuck feel like?"


def test_sessions_are_written_reviewed_and_resumed(tmp_path):
    verdicts = iter(["REVISE: shorter please", "ACCEPT"] * 200)
    config = DatagenConfig(dataset="gen", modality="cbt", personas=2, course_sessions=2, turns=4)
    result = generate(config, tmp_path, teacher, lambda m: next(verdicts))
    sessions = load_file(corpus_path(tmp_path, "gen"))
    assert result["written"] == 4 and len(sessions) == 4 and result["revisions"] > 0
    first = sessions[0]
    assert [t.role for t in first.turns] == ["patient", "therapist"] * 2
    assert first.turns[0].content == "I just feel stuck at work."  # narration repaired by the guard
    assert first.turns[1].content == "What does stuck feel like?" and first.turns[1].reasoning.startswith("Notice")
    assert first.summary.startswith("Session Summary") and sessions[1].previous_summary == first.summary
    assert (first.phase, sessions[1].session_index) == ("assessment", 2)
    again = generate(config, tmp_path, teacher)
    assert again["written"] == 0 and again["skipped"] == 4 and len(load_file(corpus_path(tmp_path, "gen"))) == 4


def test_datagen_cli_with_the_embedded_teacher(tmp_path):
    out = subprocess.run([sys.executable, "-m", "training", "--data-dir", str(tmp_path), "datagen",
                          "--config", "datagen-act.yaml", "personas=1", "turns=2", "max_tokens=60"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    sessions = load_file(corpus_path(tmp_path, "act-gen"))
    assert len(sessions) == 1 and [t.role for t in sessions[0].turns] == ["patient", "therapist"]
    assert all(t.content.strip() for t in sessions[0].turns)
