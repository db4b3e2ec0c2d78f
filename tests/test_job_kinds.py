"""Typed job specs (jobs/kinds.py): each spec's command line is read back by its own package's
parser to the spec's values, and a submitted spec is kept in the job's row and folder."""
from __future__ import annotations

import json

import pytest

from jobs.kinds import JudgeJob, SimulateJob, StudyJob, TrainingJob


def _parse(spec, data_dir="/tmp/d"):
    import eval.__main__ as eval_cli
    import patient_sim.__main__ as sim_cli
    import training.__main__ as training_cli
    argv = spec.argv(data_dir)
    parser = {"patient_sim": sim_cli.build_parser, "eval": eval_cli.build_parser,
              "training": training_cli.build_parser}[argv[0]]()
    return argv, parser.parse_args(argv[1:])


def test_a_simulation_spec_reads_back_field_by_field():
    spec = SimulateJob(("demo-act-sft-plain", "default"), "sample:3", "default", 4, 2, 2, "pilot")
    argv, args = _parse(spec)
    assert argv[:4] == ["patient_sim", "--data-dir", "/tmp/d", "simulate"]
    assert (args.therapist, args.personas, args.patient_model, args.turns, args.repeats, args.concurrency,
            args.study) == (["demo-act-sft-plain", "default"], "sample:3", "default", 4, 2, 2, "pilot")
    assert _parse(SimulateJob(("default",), "all", "default", 1))[1].study is None


@pytest.mark.parametrize("reasoning, new_run", [(False, False), (True, True)])
def test_a_judge_spec_reads_back_and_caps_concurrency(reasoning, new_run):
    _, args = _parse(JudgeJob("tes", "default", "study:pilot", 50, reasoning, new_run))
    assert (args.rubric, args.judge, args.sessions, args.concurrency) == ("tes", "default", "study:pilot", 8)
    assert (args.include_reasoning, args.new_run) == (reasoning, new_run)


def test_a_study_spec_keeps_its_overrides_in_order():
    _, args = _parse(StudyJob("/x/pilot.yaml", ("simulate", "judge"), ("turns=2", "rubrics=[tes]")))
    assert args.config == "/x/pilot.yaml" and args.stages == "simulate,judge"
    assert args.overrides == ["turns=2", "rubrics=[tes]"]


def test_a_training_label_with_yaml_syntax_arrives_as_the_same_text():
    from training.common import TrainConfig
    from training.recipes import load_recipe
    label = 'ACT: "warm" # v2, [test]'
    spec = TrainingJob("sft", {"dataset": "d1", "output": "a1", "epochs": 1.0, "reasoning": True, "label": label})
    argv, args = _parse(spec)
    assert argv[3] == "sft" and args.overrides == spec.overrides()
    config = load_recipe(TrainConfig, None, spec.overrides())
    assert (config.label, config.reasoning, config.epochs, config.output) == (label, True, 1.0, "a1")


def test_a_submitted_spec_is_kept_with_its_job(settings):
    from jobs.runner import JobRunner
    from store.audit import AuditLog
    from store.db import Store
    from store.jobs import run_dir
    store = Store(settings.db_path)
    try:
        runner = JobRunner(store, settings.data_dir, AuditLog(store), settings)
        spec = JudgeJob("tes", "no-such-model", "all")
        job = runner.submit(spec, "tester")
        assert job["kind"] == "judge" and job["config"] == spec.record()
        kept = json.loads((run_dir(settings.data_dir, job["id"]) / "spec.json").read_text())
        assert kept == {"kind": "judge", **spec.record()} and kept["judge"] == "no-such-model"
        assert (run_dir(settings.data_dir, job["id"]) / "spec.json").stat().st_mode & 0o077 == 0
        runner.cancel(job["id"], actor="tester")
    finally:
        store.close()
