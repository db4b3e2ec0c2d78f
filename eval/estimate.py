"""The size of long work before it starts: sessions, exchanges, judge calls, and the time they
should take on this machine, from the rates measured here (each model's median reply time in the
store, each judge's time per session in its finished runs).

The Admin tabs show it with every launch and ask for a second press when the work is large
(``needs_confirmation``); a selection that matches nothing is refused before anything starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from store.ratings import RatingStore
from store.sessions import SessionStore

if TYPE_CHECKING:  # annotations only
    from eval.study import StudyConfig
    from store.db import Store
    from store.personas import PersonaStore

CONFIRM_SESSIONS = 8      # more sessions than this, or
CONFIRM_SECONDS = 600.0   # an estimate above 10 minutes (or none at all), asks for a second press


@dataclass
class WorkSize:
    sessions: int = 0           # sessions simulated
    exchanges: int = 0          # patient message + therapist reply pairs
    judge_calls: int = 0        # sessions x judges x rubrics
    seconds: float = 0.0        # the estimate from measured rates (the measured part of the work)
    unmeasured: list[str] = field(default_factory=list)  # models with no rate yet on this machine

    def line(self) -> str:
        parts = []
        if self.sessions:
            parts.append(f"{self.sessions} simulated session(s), {self.exchanges} exchanges")
        if self.judge_calls:
            parts.append(f"{self.judge_calls} judge call(s)")
        text = ", ".join(parts) or "nothing to do"
        if self.seconds:
            text += f"; about {_duration(self.seconds)} on this machine"
        if self.unmeasured:
            text += (f" ({'not counting ' if self.seconds else 'no estimate: '}{', '.join(sorted(set(self.unmeasured)))}"
                     " not yet timed here: a short pilot measures them)")
        return text

    def needs_confirmation(self) -> bool:
        return (self.sessions > CONFIRM_SESSIONS or self.seconds > CONFIRM_SECONDS
                or bool(self.unmeasured and (self.sessions or self.judge_calls)))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _add_replies(size: WorkSize, sessions: SessionStore, model_id: str, replies: int) -> None:
    rate = sessions.reply_seconds(model_id)
    if rate is None:
        size.unmeasured.append(model_id)
    else:
        size.seconds += rate * replies


def simulation_size(store: Store, therapists: list[str], patient_model: str, personas: int, turns: int,
                    repeats: int = 1, course_sessions: int = 1) -> WorkSize:
    """Every persona meets every therapist ``repeats`` times (a course counts each session)."""
    sessions = SessionStore(store)
    per_therapist = personas * repeats * course_sessions
    size = WorkSize(sessions=per_therapist * len(therapists), exchanges=per_therapist * len(therapists) * turns)
    for therapist in therapists:
        _add_replies(size, sessions, therapist, per_therapist * turns)
    # The simulated patient writes one message per exchange; its rate as a reply model stands in.
    _add_replies(size, sessions, patient_model, size.exchanges)
    return size


def judge_size(store: Store, judges: list[str], rubrics: list[str], n_sessions: int) -> WorkSize:
    ratings = RatingStore(store)
    size = WorkSize(judge_calls=n_sessions * len(judges) * len(rubrics))
    for judge in judges:
        for rubric in rubrics:
            rate = ratings.judge_seconds(judge, rubric)
            if rate is None:
                size.unmeasured.append(f"{judge} on {rubric}")
            else:
                size.seconds += rate * n_sessions
    return size


def persona_count(personas: PersonaStore, spec: str | list, modality: str) -> int:
    """How many personas a selection names (a study's ``personas``, or ``--personas`` of a
    simulation: archetypes | all | sample:N | file:PATH | ids), without storing any."""
    if isinstance(spec, list):
        return len(spec)
    spec = str(spec).strip()
    if spec == "archetypes":
        return len({p.archetype for p in personas.list(modality=modality)
                    if p.archetype and p.source == "library"})
    if spec.startswith("sample:"):
        return int(spec.split(":", 1)[1])
    if spec.startswith("file:"):
        from pathlib import Path

        from patient_sim.importer import import_profiles
        return len(import_profiles(Path(spec[5:]).expanduser()))
    if spec == "all":
        return len(personas.list(modality=modality)) + len(personas.list(modality="any"))
    return len([p for p in spec.split(",") if p.strip()])


def study_size(store: Store, personas: PersonaStore, config: StudyConfig, stages: list[str]) -> WorkSize:
    """The stages chosen of a study: its simulations, then one judge call per session, judge and rubric."""
    n_personas = persona_count(personas, config.personas, config.modality)
    therapists = [v.id for v in config.variant_list()]
    course = config.course_sessions if config.modality == "cbt" else 1
    sessions = n_personas * len(therapists) * config.repeats * course
    size = WorkSize()
    if "simulate" in stages:
        size = simulation_size(store, therapists, config.patient_model, n_personas, config.turns, config.repeats,
                               course)
    if "judge" in stages:
        judged = judge_size(store, list(config.judges), list(config.rubrics), sessions)
        size.judge_calls, size.seconds = judged.judge_calls, size.seconds + judged.seconds
        size.unmeasured += judged.unmeasured
    return size
