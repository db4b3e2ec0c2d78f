"""One typed spec per kind of job the app launches: simulate, judge, study, dataset build, training.

The Admin tabs fill a spec from their form and hand it to ``JobRunner.submit``; only ``argv``
turns a spec into the command line of its package (``python -m patient_sim ... simulate ...``),
so the flags and ``key=value`` overrides are spelled in one place, and a test checks that each
package's own parser reads back every field. The runner stores the spec as JSON in the job's row
and folder (``runs/<id>/spec.json``) beside the app's resolved settings.

The specs hold values already checked by the form (catalog ids, names matched by a pattern); a
spec never carries a path or flag that a user typed as free text into argv, except the training
overrides, which the recipe loader checks key by key before the job starts.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class JobSpec:
    kind: ClassVar[str]
    module: ClassVar[str]
    command: ClassVar[str]

    def args(self) -> list[str]:
        raise NotImplementedError

    def argv(self, data_dir: str | Path) -> list[str]:
        """``[module, --data-dir, D, command, ...]``: what ``python -m`` runs (the runner adds --job-id)."""
        return [self.module, "--data-dir", str(data_dir), self.command, *self.args()]

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

    def argv(self, data_dir: str | Path) -> list[str]:
        return [self.module, "--data-dir", str(data_dir), self.method, *self.args()]

    def job_kind(self) -> str:
        return self.method

    def record(self) -> dict[str, Any]:
        return {"method": self.method, "settings": dict(self.settings), "overrides": self.overrides()}
