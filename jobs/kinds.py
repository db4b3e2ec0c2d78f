"""One typed spec per kind of job the app launches: simulate, judge, study, dataset build, training.

The Admin tabs fill a spec from their form and hand it to ``JobRunner.submit``. The runner writes
the spec as JSON into the job's folder (``runs/<id>/spec.json``, beside the app's resolved
``settings.json``) and starts ``python -m <package> --job-spec runs/<id>/spec.json``; the child
loads that file (``load_spec``) and ``expand_job_spec`` turns it into the package's own command
line, so the job runs exactly the spec the app submitted and its arguments are checked once, by
the package's parser. Only ``args`` spells a spec's flags and ``key=value`` overrides, and a test
checks that each package's parser reads back every field.

The specs hold values already checked by the form (catalog ids, names matched by a pattern); a
spec never carries a path or flag that a user typed as free text into argv, except the training
overrides, which the recipe loader checks key by key before the job starts.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

JOB_SPEC_FLAG = "--job-spec"


class JobSpecError(ValueError):
    """A spec file that is missing, is not JSON, or does not fit its kind."""


@dataclass(frozen=True)
class JobSpec:
    kind: ClassVar[str]
    module: ClassVar[str]
    command: ClassVar[str]

    def args(self) -> list[str]:
        raise NotImplementedError

    def command_args(self) -> list[str]:
        """``[command, ...]``: the package's subcommand and its arguments."""
        return [self.command, *self.args()]

    def argv(self, data_dir: str | Path) -> list[str]:
        """``[module, --data-dir, D, command, ...]``: the command line the spec stands for."""
        return [self.module, "--data-dir", str(data_dir), *self.command_args()]

    def document(self) -> dict[str, Any]:
        """What ``spec.json`` holds: the spec's class (``spec``), the row's kind and the fields."""
        return {"spec": self.kind, "kind": self.job_kind(), **self.record()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "JobSpec":
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - names)
        if unknown:
            raise JobSpecError(f"a {cls.kind} spec has no field(s) {', '.join(unknown)}")
        values = {k: tuple(v) if typing.get_origin(hints[k]) is tuple and isinstance(v, list) else v
                  for k, v in record.items()}
        try:
            return cls(**values)
        except TypeError as exc:
            raise JobSpecError(f"a {cls.kind} spec does not fit: {exc}") from None

    def job_kind(self) -> str:
        """The ``kind`` of the jobs row."""
        return self.kind

    def record(self) -> dict[str, Any]:
        """The spec's fields as plain JSON data (what the jobs row and spec.json keep)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass(frozen=True)
class SimulateJob(JobSpec):
    kind: ClassVar[str] = "simulate"
    module: ClassVar[str] = "patient_sim"
    command: ClassVar[str] = "simulate"
    therapists: tuple[str, ...]
    personas: str
    patient_model: str
    turns: int
    repeats: int = 1
    concurrency: int = 1
    study: str | None = None

    def args(self) -> list[str]:
        out = ["--personas", self.personas, "--patient-model", self.patient_model, "--turns", str(int(self.turns)),
               "--repeats", str(int(self.repeats)), "--concurrency", str(int(self.concurrency))]
        for therapist in self.therapists:
            out += ["--therapist", therapist]
        return out + (["--study", self.study] if self.study else [])


@dataclass(frozen=True)
class JudgeJob(JobSpec):
    kind: ClassVar[str] = "judge"
    module: ClassVar[str] = "eval"
    command: ClassVar[str] = "judge"
    rubric: str
    judge: str
    sessions: str
    concurrency: int = 1
    include_reasoning: bool = False
    new_run: bool = False

    def args(self) -> list[str]:
        out = ["--rubric", self.rubric, "--judge", self.judge, "--sessions", self.sessions,
               "--concurrency", str(max(1, min(8, int(self.concurrency))))]
        return out + (["--include-reasoning"] if self.include_reasoning else []) + (["--new-run"] if self.new_run else [])


@dataclass(frozen=True)
class StudyJob(JobSpec):
    kind: ClassVar[str] = "study"
    module: ClassVar[str] = "eval"
    command: ClassVar[str] = "study"
    config: str                       # the study file
    stages: tuple[str, ...]
    overrides: tuple[str, ...] = ()   # key=value lines, checked by the study loader first

    def args(self) -> list[str]:
        return ["--config", self.config, "--stages", ",".join(self.stages), *self.overrides]


@dataclass(frozen=True)
class TrainingJob(JobSpec):
    """``python -m training <method> key=value ...``: method is build, sft or orpo."""
    kind: ClassVar[str] = "training"
    module: ClassVar[str] = "training"
    command: ClassVar[str] = ""
    method: str
    settings: dict[str, Any] = field(default_factory=dict)

    def overrides(self) -> list[str]:
        # A JSON string is a YAML string whatever it holds (quotes, colons, '#'), so free text
        # such as an adapter's label arrives as the same text.
        return [f"{key}={json.dumps(value) if key == 'label' else value}" for key, value in self.settings.items()]

    def args(self) -> list[str]:
        return self.overrides()

    def command_args(self) -> list[str]:
        return [self.method, *self.args()]

    def job_kind(self) -> str:
        return self.method

    def record(self) -> dict[str, Any]:
        return {"method": self.method, "settings": dict(self.settings), "overrides": self.overrides()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "TrainingJob":
        method, settings = record.get("method"), record.get("settings", {})
        if not isinstance(method, str) or not isinstance(settings, dict):
            raise JobSpecError("a training spec needs a method and a settings object")
        return cls(method, settings)  # the overrides are derived again, never read back


SPECS: dict[str, type[JobSpec]] = {cls.kind: cls for cls in (SimulateJob, JudgeJob, StudyJob, TrainingJob)}


def load_spec(path: str | Path) -> JobSpec:
    """The spec a job's folder holds (``JobRunner.submit`` wrote it)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JobSpecError(f"no job spec at {path}") from None
    except (OSError, ValueError) as exc:
        raise JobSpecError(f"the job spec {path} does not read as JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("spec") not in SPECS:
        raise JobSpecError(f"the job spec {path} names no known kind (one of {', '.join(SPECS)})")
    fields = {k: v for k, v in document.items() if k not in ("spec", "kind")}
    return SPECS[document["spec"]].from_record(fields)


def expand_job_spec(argv: list[str], module: str) -> list[str]:
    """Replace ``--job-spec PATH`` by the command line of the spec in PATH; other arguments (the
    data directory, ``--job-id``) are kept after it. Without the flag, ``argv`` is returned as is."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == JOB_SPEC_FLAG or arg.startswith(JOB_SPEC_FLAG + "="):
            if "=" in arg:
                path, rest = arg.split("=", 1)[1], argv[:i] + argv[i + 1:]
            elif i + 1 < len(argv):
                path, rest = argv[i + 1], argv[:i] + argv[i + 2:]
            else:
                raise JobSpecError(f"{JOB_SPEC_FLAG} needs a file")
            spec = load_spec(path)
            if spec.module != module:
                raise JobSpecError(f"the job spec {path} is for python -m {spec.module}, not {module}")
            return [*spec.command_args(), *rest]
    return argv
