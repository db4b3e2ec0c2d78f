"""The batch runner: personas x therapist variants x repeats (a paired design), resumable.

Every combination has a key (persona|therapist|repeat|course session) stored on its session
row. On a re-run a finished combination is skipped, and an interrupted one (killed mid-run) is
marked ``abandoned`` and run again from the start, so nothing is duplicated or half-counted.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from patient_sim.simulate import ACTOR, SimSpec, patient_turns, run_session
from vocabulary import EventKind, SESSION_MODALITIES, session_modality

if TYPE_CHECKING:  # annotations only
    from store.personas import PersonaStore
    from store.sessions import SessionStore
    from therapist.session import SessionEngine


@dataclass
class BatchSummary:
    planned: int = 0
    ran: int = 0
    skipped: int = 0
    restarted: int = 0
    failed: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str) -> None:
        """Add one to ``ran``, ``skipped`` or ``restarted``; workers of a concurrent batch share it."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def line(self) -> str:
        return (f"{self.planned} planned: {self.ran} run, {self.skipped} already done, "
                f"{self.restarted} restarted after an interruption, {len(self.failed)} failed")


def plan(personas, therapists: list[str], patient_model: str, turns: int, repeats: int = 1,
         study: str | None = None, modality: str | None = None, course_sessions: int = 1) -> list[SimSpec]:
    """The paired design: every persona meets every therapist variant, ``repeats`` times."""
    specs = []
    for persona in personas:
        mode = modality or session_modality(persona.modality)
        for repeat in range(repeats):
            for therapist in therapists:
                specs.append(SimSpec(persona, therapist, patient_model, turns, mode, study, repeat,
                                     course_sessions if mode == "cbt" else 1))
    return specs


def existing(sessions: SessionStore, spec: SimSpec, course_index: int) -> tuple[dict | None, list[dict]]:
    """(the finished session of this combination or None, unfinished ones to set aside)."""
    rows = sessions.with_sim_key(spec.key(course_index), spec.study)
    done = [r for r in rows if r["status"] == "ended" and patient_turns(sessions, r["id"]) >= spec.turns]
    return (done[0] if done else None), [r for r in rows if not done or r["id"] != done[0]["id"]]


def run_spec(engine: SessionEngine, spec: SimSpec, summary: BatchSummary) -> None:
    """Run (or resume) one combination: each session of its course in order (the engine's store
    and audit log record the sessions set aside)."""
    previous = None
    for index in range(1, spec.course_sessions + 1):
        finished, stale = existing(engine.sessions, spec, index)
        if finished:
            previous = finished["id"]
            summary.count("skipped")
            continue
        for row in stale:
            engine.sessions.set_status(row["id"], "abandoned")
            engine.audit.record(ACTOR, EventKind.SIMULATION_RESTART, row["id"], key=spec.key(index))
            summary.count("restarted")
        previous = run_session(engine, spec, course_index=index, continue_from=previous)["id"]
        summary.count("ran")


def run_batch(engine: SessionEngine, specs: list[SimSpec], concurrency: int = 1, reporter=None,
              show_progress: bool = True) -> BatchSummary:
    from tqdm import tqdm
    summary = BatchSummary(planned=sum(s.course_sessions for s in specs))
    bar = tqdm(total=len(specs), desc="simulating", unit="combo", disable=not show_progress)
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        futures = {pool.submit(run_spec, engine, spec, summary): spec for spec in specs}
        for done_count, future in enumerate(as_completed(futures), start=1):
            spec = futures[future]
            try:
                future.result()
            except Exception as exc:  # one broken combination never stops the batch
                summary.failed.append((spec.key(), str(exc)))
                engine.audit.record(ACTOR, EventKind.SIMULATION_FAILED, None, key=spec.key(), error=type(exc).__name__)
            bar.update(1)
            if reporter is not None:
                reporter.progress(done_count, len(specs), ran=summary.ran, skipped=summary.skipped,
                                  failed=len(summary.failed))
    except BaseException:
        # Cancelled (SIGTERM, Ctrl-C): drop the queued sessions instead of running them all, as a
        # plain ``with`` block would. The ones already running finish before this returns (the
        # interpreter would wait for them at exit anyway), so a re-run in the same process never
        # restarts a session that is still being written; a re-run resumes the rest.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    bar.close()
    return summary


def resolve_personas(personas: PersonaStore, spec: str, seed: int = 0, modality: str | None = "act") -> list:
    """``all`` | ``sample:N`` (reproducible by seed, stored so a re-run finds the same ids) | ids.

    ``all`` is every stored persona of the modality (the library, samples and imports); ``all`` and
    ``sample:N`` are ACT when no modality is given, ids keep their personas' own modality."""
    from patient_sim.sampler import sample_personas
    spec = (spec or "").strip()
    ids_only = not (spec == "all" or spec.startswith("sample:"))
    modality = modality or ("act" if not ids_only else None)
    if spec == "all":
        return personas.list(modality=modality) + personas.list(modality="any")
    if spec.startswith("sample:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"--personas {spec!r}: expected sample:N with a whole number N") from None
        sampled = sample_personas(n, seed, modality)
        personas.upsert_many(sampled)
        return sampled
    ids = [p.strip() for p in spec.split(",") if p.strip()]
    if not ids:
        raise ValueError("--personas is empty: use all, sample:N or persona ids")
    return [personas.get(pid) for pid in ids]


def add_simulate_parser(sub, name: str = "simulate"):
    p = sub.add_parser(name, help="run simulated sessions: personas x therapist variants x repeats")
    p.add_argument("--therapist", action="append", required=True, help="catalog id (repeat for several variants)")
    p.add_argument("--personas", default="sample:4", help="all | sample:N | id,id,...")
    p.add_argument("--patient-model", default="default", help="catalog id of the model playing the patient")
    p.add_argument("--turns", type=int, default=6, help="exchanges per session")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--study", default=None, help="a name that groups the sessions (and keys the resume)")
    p.add_argument("--modality", choices=SESSION_MODALITIES, default=None,
                   help="session modality (default: ACT for all / sample:N, each persona's own for ids)")
    p.add_argument("--course-sessions", type=int, default=1, help="CBT: consecutive sessions per course")
    p.add_argument("--seed", type=int, default=0, help="seed for sample:N")
    p.add_argument("--job-id", default=None, help="(set by the Admin tab's job runner)")
    return p
