"""Typed job specs (jobs/kinds.py): each spec's command line is read back by its own package's
parser to the spec's values, and a submitted spec is kept in the job's row and folder."""
from __future__ import annotations

import json
import time

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


SPECS = [SimulateJob(("demo-act-sft-plain", "default"), "sample:3", "default", 4, 2, 2, "pilot"),
         JudgeJob("tes", "default", "study:pilot", 3, True, False),
         StudyJob("/x/pilot.yaml", ("simulate", "judge"), ("turns=2", "rubrics=[tes]")),
         TrainingJob("sft", {"dataset": "d1", "output": "a1", "epochs": 1.0, "label": 'ACT: "warm" # v2'})]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_a_spec_file_expands_to_the_command_line_the_spec_stands_for(tmp_path, spec):
    from jobs.kinds import expand_job_spec, load_spec
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec.document()))
    assert load_spec(path) == spec
    argv, expected = _parse(spec)
    expanded = expand_job_spec(["--data-dir", "/tmp/d", "--job-spec", str(path), "--job-id", "J1"], argv[0])
    assert expanded[:len(spec.command_args())] == spec.command_args()
    parser = {"patient_sim": "patient_sim.__main__", "eval": "eval.__main__", "training": "training.__main__"}
    import importlib
    args = importlib.import_module(parser[argv[0]]).build_parser().parse_args(expanded)
    assert vars(args) == {**vars(expected), "job_id": "J1"}
    assert expand_job_spec(["x", "--y"], argv[0]) == ["x", "--y"]  # no flag: untouched


@pytest.mark.parametrize("document, message", [
    ({"spec": "judge", "rubric": "tes", "judge": "m", "sessions": "all", "shell": "rm"}, "no field(s) shell"),
    ({"spec": "judge", "rubric": "tes"}, "does not fit"),
    ({"spec": "nope"}, "names no known kind"),
    ({"spec": "simulate", "therapists": ["a"], "personas": "all", "patient_model": "a", "turns": 1},
     "is for python -m patient_sim, not eval"),
])
def test_a_spec_that_does_not_fit_is_refused_by_name(tmp_path, document, message):
    from jobs.kinds import JobSpecError, expand_job_spec
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(document))
    with pytest.raises(JobSpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        expand_job_spec(["--job-spec", str(path)], "eval")


def test_a_cli_given_a_bad_or_missing_spec_exits_2_naming_it(tmp_path, capsys):
    import eval.__main__ as eval_cli
    import training.__main__ as training_cli
    (tmp_path / "bad.json").write_text("{not json")
    assert eval_cli.main(["--data-dir", str(tmp_path), "--job-spec", str(tmp_path / "bad.json")]) == 2
    assert "does not read as JSON" in capsys.readouterr().err
    assert training_cli.main(["--job-spec", str(tmp_path / "none.json")]) == 2
    assert "no job spec at" in capsys.readouterr().err


def test_a_submitted_job_runs_from_its_spec_file(settings):
    """The child is started on spec.json alone, and what it did came from that file: its error
    names the judge that only the spec holds."""
    from jobs.runner import JobRunner
    from store.audit import AuditLog
    from store.db import Store
    from store.jobs import run_dir
    store = Store(settings.db_path)
    try:
        runner = JobRunner(store, settings.data_dir, AuditLog(store), settings)
        started = []
        spawn = runner._spawn
        runner._spawn = lambda argv, job_id, log: started.append(argv) or spawn(argv, job_id, log)
        spec = JudgeJob("tes", "no-such-model", "all")
        job = runner.submit(spec, "tester")
        folder = run_dir(settings.data_dir, job["id"])
        assert job["kind"] == "judge" and job["config"] == spec.record()
        assert job["process"]["argv"] == spec.argv(runner.data_dir)  # the row keeps what the spec stands for
        assert started == [["eval", "--data-dir", str(runner.data_dir), "--job-spec", str(folder / "spec.json")]]
        kept = json.loads((folder / "spec.json").read_text())
        assert kept == {"spec": "judge", "kind": "judge", **spec.record()} and kept["judge"] == "no-such-model"
        assert (folder / "spec.json").stat().st_mode & 0o077 == 0
        deadline = time.monotonic() + 120
        while runner.jobs.get(job["id"])["status"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, runner.tail_log(job["id"])
            time.sleep(0.2)
        ended = runner.jobs.get(job["id"])
        assert ended["status"] == "failed" and "no-such-model" in (ended["error"] or ""), ended
    finally:
        store.close()
