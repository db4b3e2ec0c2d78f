"""One simulated session, run through the same session engine as a human one.

The simulated patient writes a message, the engine commits it, screens it for risk and streams
the therapist's reply, exactly as for a person at the keyboard; the session row is marked
simulated and linked to the persona, the therapist model and the patient model. A ``RunControl``
lets a viewer pause, step and stop between turns.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from patient_sim.agent import PatientAgent

if TYPE_CHECKING:  # annotations only: the engine is built by the caller
    from store.sessions import SessionStore
    from therapist.session import SessionEngine

ACTOR = "simulator"


class SimulationError(RuntimeError):
    """The session could not go on (the therapist model kept failing); the message says why."""


@dataclass
class SimSpec:
    persona: object            # patient_sim.personas.Persona
    therapist: str             # catalog id
    patient_model: str         # catalog id
    turns: int
    modality: str
    study: str | None = None
    repeat: int = 0
    course_sessions: int = 1   # CBT: consecutive sessions of one course, summaries carried over

    def key(self, course_index: int = 1) -> str:
        return f"{self.persona.id}|{self.therapist}|r{self.repeat}|s{course_index}"


class RunControl:
    """Pause / step / stop between turns, from another thread (the Watch tab's buttons)."""

    def __init__(self):
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        self._steps_left: int | None = None
        self.stopped = False

    def pause(self) -> None:
        self._running.clear()

    @property
    def paused(self) -> bool:
        """Paused (or pausing after the current exchange): no next exchange until resume or step."""
        return not self.stopped and not self._running.is_set()

    def resume(self) -> None:
        with self._lock:
            self._steps_left = None
        self._running.set()

    def step(self) -> None:
        """Let exactly one more exchange happen, then pause again."""
        with self._lock:
            self._steps_left = 1
        self._running.set()

    def stop(self) -> None:
        self.stopped = True
        self._running.set()

    def wait_turn(self) -> bool:
        """Block while paused; True when the next exchange may run, False once stopped."""
        while True:
            self._running.wait()
            if self.stopped:
                return False
            with self._lock:
                if self._steps_left is None:
                    return True
                if self._steps_left > 0:
                    self._steps_left -= 1
                    return True
                self._running.clear()  # the step is used up: pause until the next button


def run_session(engine: SessionEngine, spec: SimSpec, course_index: int = 1, continue_from: str | None = None,
                on_event: Callable[[str, object], None] | None = None,
                control: RunControl | None = None) -> dict:
    """Run one simulated session to its planned number of exchanges; return the session row.
    The engine brings the store, the catalog and the model pool the session needs."""
    from patient_sim.personas import STYLES
    emit = on_event or (lambda kind, value: None)
    control = control or RunControl()
    session = engine.start(spec.modality, spec.therapist, continue_from=continue_from, actor=ACTOR,
                           simulated=True, persona_id=spec.persona.id, patient_model=spec.patient_model,
                           study=spec.study, variant=spec.therapist, sim_key=spec.key(course_index),
                           meta={"planned_turns": spec.turns, "repeat": spec.repeat})
    emit("session", session)
    agent = PatientAgent(engine.pool.get(spec.patient_model), spec.persona,
                         STYLES.get(spec.persona.style, STYLES["plain"]), spec.modality, spec.patient_model)
    for k in range(spec.turns):
        if not control.wait_turn():
            break
        transcript = engine.sessions.turns(session["id"])
        patient = agent.next_turn(transcript, allow_ending=k == spec.turns - 1,
                                  on_delta=lambda d: emit("patient_delta", d))
        emit("patient", patient.text)
        _exchange(engine, session["id"], patient, spec.patient_model, emit)
    engine.end(session["id"], actor=ACTOR)
    final = engine.sessions.get(session["id"])
    emit("ended", final)
    return final


def _exchange(engine: SessionEngine, session_id: str, patient, patient_model: str, emit) -> None:
    """Commit the patient's turn and the therapist's reply; one retry if the model fails."""
    events = engine.turn(session_id, patient.text, actor=ACTOR, patient_meta=patient.meta(patient_model))
    last = None
    for event in events:
        emit("therapist", event)
        last = event
    if last is not None and last.kind == "error":
        for event in engine.reply(session_id):
            emit("therapist", event)
            last = event
        if last.kind == "error":
            raise SimulationError(last.text)


def patient_turns(sessions: SessionStore, session_id: str) -> int:
    return sum(1 for t in sessions.turns(session_id) if t["role"] == "patient")
