"""Judge runs: which sessions a selection picks, one stored rating per session with its status,
counts recomputed from the ratings, resume without re-rating, a crash leaves a truthful row; and
``python -m eval judge`` on the real embedded model over simulated smoke sessions."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from eval.rubrics import load_rubric
from eval.runs import JudgeRunSpec, RunError, run_judge, run_line, select_sessions
from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from services import build_services
from store.ratings import RatingStore
from store.sessions import TurnRecord

ROOT = Path(__file__).resolve().parents[2]
TES = load_rubric("tes")


def full(score=5):
    return json.dumps({it.id: {"rationale": "ok", "score": score} for it in TES.items})


def add_session(svc, study="s1", status="ended", text="I feel stuck."):
    row = svc.sessions.create(modality="act", therapist_model="default", reasoning=False, study=study, simulated=True)
    svc.sessions.add_turn(row["id"], TurnRecord("patient", text))
    svc.sessions.add_turn(row["id"], TurnRecord("therapist", "What does stuck feel like?", reasoning="explore"))
    if status != "active":
        svc.sessions.end(row["id"], status=status)
    return row["id"]


@pytest.fixture
def svc(settings):
    services = build_services(settings)
    services.catalog.add(CatalogEntry("judge", "judge", "fake", source="test"))
    yield services
    services.store.close()


def use_judge(svc, replies):
    backend = FakeBackend("judge", replies=replies)
    svc.pool.register("judge", backend)
    return backend


def test_selections_pick_ended_sessions_and_refuse_bad_specs(svc):
    a, b = add_session(svc, "s1"), add_session(svc, "s2")
    live, gone = add_session(svc, "s1", status="active"), add_session(svc, "s1", status="abandoned")
    assert select_sessions(svc.store, "all") == [a, b]
    assert select_sessions(svc.store, "study:s1") == [a]
    assert select_sessions(svc.store, f"{live},{a},{gone}") == [live, a]  # explicit ids: any status but abandoned
    for bad in ("study:", "some; sql", "", f"{a},NOPE"):
        with pytest.raises(RunError):
            select_sessions(svc.store, bad)


def test_a_run_stores_one_rating_per_session_with_status_and_counts(svc):
    ids = [add_session(svc) for _ in range(3)]
    bad_then_partial = json.dumps({it.id: {"rationale": "", "score": 4} for it in TES.items[:5]})
    replies = iter([full(6), "no json at all", "still none", "nope", bad_then_partial, "x", "y"])
    backend = use_judge(svc, lambda messages: next(replies))
    run = run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "judge", "study:s1"), TES)
    assert (run["status"], run["n_ok"], run["n_failed"], run["n_partial"], run["n_total"]) == ("done", 1, 1, 1, 3)
    rows = RatingStore(svc.store).list("tes", judge_run_id=run["id"])
    assert sorted(r["session_id"] for r in rows) == sorted(ids)
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["scores"] == {} and failed["detail"]["raw"] == ["no json at all", "still none", "nope"]
    ok = next(r for r in rows if r["status"] == "ok")
    assert ok["total"] == 6.0 and ok["rubric_version"] == TES.version and ok["rater_id"] == "judge"
    assert "explore" not in backend.calls[0][0][1]["content"]  # reasoning hidden unless asked
    assert "3/3 rated: 1 ok (33%), 1 partial (33%), 1 failed (33%)" in run_line(run)
    audit = [r["action"] for r in svc.audit.recent(action="judge.run_done")]
    assert audit == ["judge.run_done"]


def test_the_same_command_continues_the_run_and_rates_only_what_is_new(svc):
    add_session(svc)
    backend = use_judge(svc, lambda m: full(3))
    first = run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "judge", "all"), TES)
    again = run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "judge", "all"), TES)
    assert again["id"] == first["id"] and len(backend.calls) == 1
    add_session(svc)
    more = run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "judge", "all"), TES)
    assert more["id"] == first["id"] and more["n_ok"] == 2 and len(backend.calls) == 2
    other = run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "judge", "all", include_reasoning=True), TES)
    assert other["id"] != first["id"] and "explore" in backend.calls[-1][0][1]["content"]
    fresh = run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "judge", "all", new_run=True), TES)
    assert fresh["id"] not in (first["id"], other["id"]) and fresh["n_ok"] == 2


def test_a_crash_mid_run_keeps_what_was_rated_and_the_next_run_finishes(svc):
    ids = [add_session(svc) for _ in range(3)]
    calls = {"n": 0}

    def flaky(messages):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("judge process fell over")
        return full(4)
    use_judge(svc, flaky)
    with pytest.raises(RuntimeError):
        run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "judge", "all"), TES)
    ratings = RatingStore(svc.store)
    broken = ratings.runs()[0]
    # the session after the crash may already be under way in the worker when the run stops
    assert broken["status"] == "failed" and "fell over" in broken["error"] and 1 <= broken["n_ok"] <= 2
    run = run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "judge", "all"), TES)
    assert run["id"] == broken["id"] and run["status"] == "done" and run["n_ok"] == 3
    assert sorted(r["session_id"] for r in ratings.list(judge_run_id=run["id"])) == sorted(ids)


def test_stop_event_ends_the_run_as_cancelled(svc):
    for _ in range(4):
        add_session(svc)
    stop = threading.Event()

    def stop_after_first(messages):
        stop.set()
        return full(2)
    use_judge(svc, stop_after_first)
    run = run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "judge", "all"), TES, stop=stop)
    assert run["status"] == "cancelled" and run["n_ok"] == 1


def test_unknown_judge_model_writes_nothing(svc):
    add_session(svc)
    with pytest.raises(ValueError, match="no-such-model"):  # CatalogError, a ValueError: the CLI exits 2
        run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "no-such-model", "all"), TES)
    assert RatingStore(svc.store).runs() == []


def test_judge_cli_on_the_embedded_model_rates_smoke_sessions_in_range(tmp_path):
    """The issue's must-show: a judge run with the embedded model over simulated smoke sessions
    stores one rating per session with a status, every score inside the rubric's range."""
    env = {**os.environ, "THERALAB_MAX_TOKENS": "30"}
    sim = subprocess.run([sys.executable, "-m", "patient_sim", "--data-dir", str(tmp_path), "simulate",
                          "--therapist", "default", "--personas", "sample:2", "--turns", "2", "--study", "smoke"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert sim.returncode == 0, sim.stderr[-2000:]
    judge = subprocess.run([sys.executable, "-m", "eval", "--data-dir", str(tmp_path), "judge", "--rubric", "tes",
                            "--judge", "default", "--sessions", "study:smoke"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert judge.returncode == 0, judge.stderr[-2000:]
    assert "2/2 rated" in judge.stdout
    svc = build_services(__import__("config").load_settings(["--data-dir", str(tmp_path)], env={}))
    try:
        ratings = RatingStore(svc.store).list("tes", rater_kind="judge")
        assert len(ratings) == 2 and all(r["status"] in ("ok", "partial", "failed") for r in ratings)
        assert all(TES.scale_min <= v <= TES.scale_max for r in ratings for v in r["scores"].values())
        assert sum(r["status"] != "failed" for r in ratings) >= 1  # the grammar makes failures rare
    finally:
        svc.store.close()
    again = subprocess.run([sys.executable, "-m", "eval", "--data-dir", str(tmp_path), "judge", "--rubric", "tes",
                            "--judge", "default", "--sessions", "study:smoke"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "2/2 rated" in again.stdout  # resumed: nothing judged twice
    bad = subprocess.run([sys.executable, "-m", "eval", "--data-dir", str(tmp_path), "judge", "--rubric", "nope",
                          "--judge", "default"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_eval_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "eval", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("rubrics", "judge", "runs", "import-transcripts", "agreement"):
        assert command in out.stdout
