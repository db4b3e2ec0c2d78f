"""A study end to end with scripted models: simulate (paired design), judge, analyse, report; the
second run resumes instead of repeating; bad study files are refused before anything runs; the
shipped study files load; and the Study tab's handlers launch a job and show a report."""
from __future__ import annotations

import csv
import json
import random
import re
from types import SimpleNamespace

import pytest

from eval.rubrics import load_rubric
from eval.study import StudyConfig, StudyError, load_study, run_study
from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from services import build_services

TES = load_rubric("tes")
VARIANTS = {"ther-low": 2, "ther-mid": 4, "ther-high": 6}  # the score a judge gives each variant


_NOISE = random.Random(0)


def judge_reply(messages):
    """Score by the variant whose words are in the transcript, with a little deterministic noise."""
    text = messages[-1]["content"]
    base = next(score for model, score in VARIANTS.items() if f"[{model}]" in text)
    noise = _NOISE.choice((-1, 0, 1))
    return json.dumps({it.id: {"rationale": "seen", "score": max(1, min(7, base + (noise if i % 2 else 0)))}
                       for i, it in enumerate(TES.items)})


@pytest.fixture
def svc(settings):
    services = build_services(settings)
    for model in [*VARIANTS, "patient", "judge"]:
        services.catalog.add(CatalogEntry(model, model, "fake", source="test"))
    for model in VARIANTS:
        services.pool.register(model, FakeBackend(model, replies=lambda m, model=model: f"[{model}] Tell me more."))
    services.pool.register("patient", FakeBackend("patient", replies=lambda m: "I feel stuck and tired."))
    services.pool.register("judge", FakeBackend("judge", replies=judge_reply))
    yield services
    services.store.close()


def config(**changes) -> StudyConfig:
    values = dict(name="mini", modality="act", variants=[{"id": m, "label": m.split("-")[1]} for m in VARIANTS],
                  personas="archetypes", turns=1, repeats=1, patient_model="patient", judges=["judge"],
                  rubrics=["tes"])
    return StudyConfig(**{**values, **changes})


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_study_runs_every_stage_and_resumes(svc):
    logs = []
    out = run_study(svc, config(), log=logs.append)
    sessions = list(svc.store.db["sessions"].rows_where("study = 'mini'"))
    personas = {s["persona_id"] for s in sessions}
    assert len(personas) == 4 and len(sessions) == 12  # 4 archetypes x 3 variants, paired
    assert {(p, m) for p in personas for m in VARIANTS} == {(s["persona_id"], s["therapist_model"]) for s in sessions}
    ratings = list(svc.store.db["ratings"].rows_where("rubric_id = 'tes'"))
    assert len(ratings) == 12 and {r["status"] for r in ratings} == {"ok"}

    folder = svc.settings.data_dir / "studies" / "mini"
    scores = read_csv(folder / "scores.csv")
    assert len(scores) == 12 and {r["variant"] for r in scores} == {"low", "mid", "high"}
    desc = {r["variant"]: r for r in read_csv(folder / "descriptives.csv") if r["score"] == "tes.mean"}
    assert float(desc["low"]["mean"]) < float(desc["mid"]["mean"]) < float(desc["high"]["mean"])
    tests = read_csv(folder / "tests.csv")
    assert any(t["test"].startswith("Wald") and float(t["p"]) < 0.001 for t in tests if t["score"] == "tes.mean")
    report = (folder / "report.md").read_text()
    assert "12 simulated" in report and "`ther-high`" in report and "Tell me more" not in report
    assert re.search(r"!\[box_judge_judge_tes\]\(box_judge_judge_tes\.png\)", report)
    assert (folder / "box_judge_judge_tes.png").stat().st_size > 1000
    assert (folder / "items_judge_judge_tes.png").stat().st_size > 1000
    assert out["report"].endswith("report.md") and any("stage 3/3: analyse" in line for line in logs)

    run_study(svc, config(), log=logs.append)  # everything is there: nothing is simulated or rated again
    assert len(list(svc.store.db["sessions"].rows_where("study = 'mini'"))) == 12
    assert len(list(svc.store.db["ratings"].rows_where("rubric_id = 'tes'"))) == 12
    assert any("0 run, 12 already done" in line for line in logs)


def test_partial_ratings_are_dropped_and_counted(svc):
    replies = iter([json.dumps({it.id: {"rationale": "", "score": 3} for it in TES.items[:4]})] * 50)
    svc.pool.register("judge", FakeBackend("judge", replies=lambda m: next(replies)))
    run_study(svc, config(name="partial", variants=list(VARIANTS)[:2]), log=lambda line: None)
    folder = svc.settings.data_dir / "studies" / "partial"
    dropped = read_csv(folder / "dropped.csv")
    assert len(dropped) == 8 and {d["status"] for d in dropped} == {"partial"}
    assert "Ratings dropped: 8" in (folder / "report.md").read_text()


@pytest.mark.parametrize("change, message", [
    ({"variants": ["ther-low"]}, "at least 2 variants"),
    ({"variants": ["ther-low", "ther-low"]}, "repeat"),
    ({"modality": "dbt"}, "modality"),
    ({"turns": 0}, "turns"),
])
def test_bad_studies_are_refused(change, message):
    from eval.study import check_study
    with pytest.raises(StudyError, match=message):
        check_study(config(**change))


def test_unknown_models_are_refused_before_any_session(svc):
    with pytest.raises(StudyError, match="no-such-model"):
        run_study(svc, config(variants=["ther-low", "no-such-model"]), log=lambda line: None)
    assert list(svc.store.db["sessions"].rows_where("study = 'mini'")) == []


def test_shipped_study_files_load_with_overrides():
    act = load_study("act_thinking_therapist.yaml", ["turns=4", "rubrics=[tes]"])
    assert len(act.variant_list()) == 6 and act.turns == 4 and act.rubrics == ["tes"]
    assert {v.id for v in act.variant_list()} >= {"default", "default-think", "demo-act-orpo-think"}
    cbt = load_study("cbt_depression")
    assert cbt.modality == "cbt" and cbt.rubrics == ["ctrs"]
    with pytest.raises(StudyError, match="unknown"):
        load_study("act_thinking_therapist.yaml", ["colour=blue"])


def test_study_tab_launches_a_job_and_shows_the_report(svc):
    from ui.access import Access
    from ui.study_tab import StudyHandlers
    import gradio as gr
    svc.users.add("boss", "a-long-password", "admin")
    svc.users.add("pat", "a-long-password", "patient")
    svc.sign_in = True
    h = StudyHandlers(svc, Access(svc))
    admin, patient = SimpleNamespace(username="boss"), SimpleNamespace(username="pat")
    with pytest.raises(gr.Error):
        h.launch(h.study_files()[0][1], "", ["simulate"], request=patient)
    path = dict((label.split(" ")[0], p) for label, p in h.study_files())["act_thinking_therapist"]
    # Issue 19 (4): the whole study is long work: the first press only shows its size
    from eval.estimate import persona_count
    n = 6 * persona_count(svc.personas, load_study(path, ["turns=2"]).personas, "act")
    note, confirm = h.launch(path, "turns=2\nrubrics=[tes]", ["simulate"], None, request=admin)
    assert f"{n} simulated session(s), {2 * n} exchanges" in note and "press **Launch study job** again" in note
    assert svc.jobs.jobs.list() == [] and confirm
    # a different launch is not confirmed by that press
    assert h.launch(path, "turns=3\nrubrics=[tes]", ["simulate"], confirm, request=admin)[0].startswith("**act")
    assert svc.jobs.jobs.list() == []
    note, confirm = h.launch(path, "turns=2\nrubrics=[tes]", ["simulate"], confirm, request=admin)
    assert note.startswith("Launched study job") and confirm is None, note
    job_id = note.split("`")[1]
    job = svc.jobs.jobs.get(job_id)
    assert job["kind"] == "study" and job["config"]["overrides"] == ["turns=2", "rubrics=[tes]"]
    assert "--stages" in job["process"]["argv"] and "turns=2" in job["process"]["argv"]
    svc.jobs.cancel(job_id, "boss")
    assert "Not launched" in h.launch(path, "rm -rf /", ["simulate"], request=admin)[0]
    run_study(svc, config(), log=lambda line: None)
    choices = h.reports(admin)
    assert "mini" in choices["choices"] or ("mini", "mini") in choices["choices"]
    text, desc, tests, plots = h.show("mini", admin)
    assert "Study report: mini" in text and len(plots) == 2
    assert desc["visible"] and tests["visible"] and len(desc["value"]) and len(tests["value"])
    empty = h.show("../..", admin)
    assert empty[0].startswith("*No study report yet.*") and "analyse" in empty[0]
    assert empty[1]["visible"] is False and empty[2]["visible"] is False  # no "1 2 3" header tables


def test_study_cli_refuses_bad_input_with_exit_2(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvariants: [default, nope-model]\nrubrics: [tes]\n")
    cases = [(["--config", "no-such-study.yaml"], "no such file"),
             (["--config", str(bad)], "nope-model"),
             (["--config", "act_thinking_therapist.yaml", "--stages", "simulate,dance"], "unknown stage"),
             (["--config", "act_thinking_therapist.yaml", "turns=0"], "turns")]
    for extra, message in cases:
        out = subprocess.run([sys.executable, "-m", "eval", "--data-dir", str(tmp_path / "data"), "study", *extra],
                             cwd=root, capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and message in out.stderr, (extra, out.stderr[-800:])
    assert not (tmp_path / "data" / "studies").exists()
