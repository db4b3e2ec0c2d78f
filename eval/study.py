"""A comparison study from one file: simulate, judge, analyse, report (each stage resumable).

A study (``eval/studies/*.yaml``, or the user's own file) names therapist variants (catalog ids),
standardized patients (persona ids, one per archetype, ``sample:N``, every stored persona, or an
imported profile file), session length, repeats, the patient model, judge models and rubrics. The
design is paired: every persona meets every variant ``repeats`` times, as in the ACT study.

``python -m eval study --config FILE [key=value ...] [--stages simulate,judge,analyse]``:

1. **simulate**: ``patient_sim.batch`` with ``study=<name>``; a finished session is never re-run.
2. **judge**: ``eval.runs.run_judge`` per judge x rubric over ``study:<name>``; a run continues
   where it stopped and rates only what it has not.
3. **analyse**: per-session scores (judge ratings that parsed completely, human ratings kept
   apart), ``eval.stats`` per score, and the report folder ``<data dir>/studies/<name>/``
   (``scores.csv``, ``descriptives.csv``, ``tests.csv``, PNG plots, ``report.md``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from vocabulary import SESSION_MODALITIES

if TYPE_CHECKING:  # annotations only
    from models.catalog import Catalog
    from store.personas import PersonaStore

STUDIES_DIR = Path(__file__).resolve().parent / "studies"
STAGES = ("simulate", "judge", "analyse")


class StudyError(ValueError):
    pass


@dataclass
class Variant:
    id: str                              # catalog id of the therapist model
    label: str = ""                      # name in tables and plots (default: the id)


@dataclass
class StudyConfig:
    name: str                            # groups the sessions (sessions.study) and names the report
    modality: str = "act"                # act | cbt
    variants: list = field(default_factory=list)   # catalog ids, or {id, label} mappings
    personas: str | list = "archetypes"  # archetypes | all | sample:N | file:PATH | [ids]
    turns: int = 6                       # exchanges per session
    repeats: int = 1
    course_sessions: int = 1             # CBT: consecutive sessions per course
    patient_model: str = "default"
    judges: list = field(default_factory=lambda: ["default"])
    rubrics: list = field(default_factory=lambda: ["tes"])
    include_reasoning: bool = False      # show the judge the therapist's reasoning too
    concurrency: int = 1
    seed: int = 0
    description: str = ""

    def variant_list(self) -> list[Variant]:
        out = []
        for v in self.variants:
            out.append(Variant(**v) if isinstance(v, dict) else Variant(str(v)))
        return out

    def labels(self) -> dict[str, str]:
        return {v.id: v.label or v.id for v in self.variant_list()}


def study_path(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    for candidate in (path, STUDIES_DIR / name_or_path, STUDIES_DIR / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"study {name_or_path!r}: no such file (shipped ones are in {STUDIES_DIR})")


def load_study(name_or_path: str, overrides: list[str] | None = None) -> StudyConfig:
    """The study file plus ``key=value`` overrides, checked before anything runs."""
    from jobs.specs import RecipeError, load_recipe
    try:
        config = load_recipe(StudyConfig, study_path(name_or_path), overrides)
    except RecipeError as exc:
        raise StudyError(str(exc)) from None
    check_study(config)
    return config


def check_study(config: StudyConfig) -> None:
    problems = []
    if config.modality not in SESSION_MODALITIES:
        problems.append("modality must be act or cbt")
    variants = config.variant_list()
    if len(variants) < 2:
        problems.append("a study compares at least 2 variants")
    if len({v.id for v in variants}) != len(variants):
        problems.append("variant ids repeat")
    if config.turns < 1 or config.repeats < 1:
        problems.append("turns and repeats must be at least 1")
    if not config.judges or not config.rubrics:
        problems.append("name at least one judge and one rubric")
    if problems:
        raise StudyError(f"study {config.name!r}: " + "; ".join(problems))


def check_models(catalog: Catalog, data_dir: str | Path, config: StudyConfig) -> None:
    """Every model and rubric exists (catalog, rubric files) before the first session runs."""
    from eval.rubrics import load_user_rubric
    missing = []
    for model_id in [v.id for v in config.variant_list()] + [config.patient_model, *config.judges]:
        try:
            catalog.get(model_id)
        except (KeyError, LookupError, ValueError):
            missing.append(model_id)
    if missing:
        raise StudyError(f"study {config.name!r}: not in the model catalog: {', '.join(sorted(set(missing)))} "
                         f"(python -m models list shows what is)")
    for rubric_id in config.rubrics:
        load_user_rubric(rubric_id, data_dir)


def resolve_study_personas(personas: PersonaStore, config: StudyConfig) -> list:
    """The standardized patients of the study (stored, so a re-run finds the same ones)."""
    from patient_sim.batch import resolve_personas
    spec = config.personas
    if isinstance(spec, list):
        return [personas.get(str(pid)) for pid in spec]
    spec = str(spec).strip()
    if spec == "archetypes":  # one persona per archetype, the library's first of each
        chosen: dict[str, object] = {}
        for persona in personas.list(modality=config.modality):
            if persona.archetype and persona.source == "library":
                chosen.setdefault(persona.archetype, persona)
        if not chosen:
            raise StudyError(f"no {config.modality} personas with an archetype; use sample:N or ids")
        return [chosen[a] for a in sorted(chosen)]
    if spec.startswith("file:"):
        from patient_sim.importer import import_profiles
        imported = import_profiles(Path(spec[5:]).expanduser())
        personas.upsert_many(imported)
        return imported
    return resolve_personas(personas, spec, config.seed, config.modality)


def simulate_stage(services, config: StudyConfig, reporter=None, log: Callable[[str], None] = print):
    from patient_sim.batch import plan, run_batch
    personas = resolve_study_personas(services.personas, config)
    specs = plan(personas, [v.id for v in config.variant_list()], config.patient_model, config.turns,
                 config.repeats, config.name, config.modality, config.course_sessions)
    log(f"simulate: {len(personas)} personas x {len(config.variants)} variants x {config.repeats} repeats "
        f"= {len(specs)} sessions of {config.turns} exchanges")
    summary = run_batch(services.engine, specs, config.concurrency, reporter=reporter)
    log(f"simulate: {summary.line()}")
    return summary


def judge_stage(services, config: StudyConfig, reporter=None, log: Callable[[str], None] = print) -> list[dict]:
    from eval.rubrics import load_user_rubric
    from eval.runs import JudgeRunSpec, run_judge, run_line
    runs = []
    for judge in config.judges:
        for rubric_id in config.rubrics:
            rubric = load_user_rubric(rubric_id, services.settings.data_dir)
            spec = JudgeRunSpec(rubric.id, judge, f"study:{config.name}", config.concurrency,
                                config.include_reasoning)
            run = run_judge(services.store, services.pool, services.audit, spec, rubric, created_by="study",
                            reporter=reporter, show_progress=True)
            log(f"judge: {run_line(run)}")
            runs.append(run)
    return runs


class _StageReporter:
    """A job reporter whose progress also names the stage (the Admin jobs table shows where it is)."""

    def __init__(self, reporter, stage: str):
        self._reporter, self._stage = reporter, stage

    def progress(self, done, total, **extra):
        self._reporter.progress(done, total, stage=self._stage, **extra)

    def __getattr__(self, name):
        return getattr(self._reporter, name)


def run_study(services, config: StudyConfig, stages: tuple[str, ...] = STAGES, reporter=None,
              log: Callable[[str], None] = print) -> dict:
    """Run (or resume) the chosen stages in order; return what each produced."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise StudyError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    check_models(services.catalog, services.settings.data_dir, config)
    out: dict = {"study": config.name}
    for number, stage in enumerate(stages, 1):
        staged = _StageReporter(reporter, f"{number}/{len(stages)} {stage}") if reporter is not None else None
        if staged is not None:
            staged.progress(0, 1)
        log(f"== stage {number}/{len(stages)}: {stage}")
        if stage == "simulate":
            out["simulate"] = simulate_stage(services, config, staged, log).line()
        elif stage == "judge":
            out["judge"] = [r["id"] for r in judge_stage(services, config, staged, log)]
        else:
            from eval.report import write_report
            out["report"] = str(write_report(services.store, services.settings.data_dir, config, log=log))
    return out


def config_dict(config: StudyConfig) -> dict:
    return json.loads(json.dumps(asdict(config), default=str))


# --- command line (python -m eval study) --------------------------------------------------------

def register_cli(sub, name: str):
    p = sub.add_parser(name, help="run or resume a whole study: simulate, judge, analyse, report")
    p.add_argument("--config", required=True, help="study YAML (a path, or a file name in eval/studies/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="study values to override (turns=4)")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of simulate,judge,analyse")
    p.add_argument("--job-id", default=None, help="(set by the Admin tab's job runner)")
    return p


