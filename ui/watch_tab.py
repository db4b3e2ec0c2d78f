"""Watch tab: a simulated patient and a therapist model talk live; Start / Pause / Step / Stop.

The run happens in a background thread through the same session engine as a human session, so
it is stored like any session and finishes even if the page is closed. The page only watches:
it drains the run's event queue and redraws the conversation as both sides stream.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import gradio as gr

from services import Services
from ui.access import SUPERVISORS, Access
from ui.chat_view import ANSWER_LABEL, reasoning_message, render_turns
from vocabulary import EventKind, session_modality

@dataclass
class WatchRun:
    control: object
    events: queue.Queue = field(default_factory=queue.Queue)
    session_id: str | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)


class WatchHandlers:
    def __init__(self, services: Services, access: Access):
        self.s = services
        self.access = access
        self.runs: dict[str, WatchRun] = {}  # one run per browser session (its session hash)

    def persona_choices(self) -> list[tuple[str, str]]:
        return [(f"{p.name} · {p.archetype or p.modality.upper()} · {p.style} ({p.id})", p.id)
                for p in self.s.personas.list()]

    def model_choices(self, modality: str | None = None) -> list[tuple[str, str]]:
        return [(e.label, e.id) for e in self.s.catalog.entries(modality)]

    def sample(self, seed, request: gr.Request = None):
        """Sample one new persona (reproducible by seed), store it, and select it."""
        self.access.require(request, SUPERVISORS, "watch.sample")
        from patient_sim.sampler import sample_personas
        persona = sample_personas(1, int(seed or 0), "act")[0]
        self.s.personas.upsert(persona)
        return gr.update(choices=self.persona_choices(), value=persona.id), f"Sampled **{persona.name}**: {persona.summary}"

    def start(self, persona_id, therapist, patient_model, turns, show, request: gr.Request = None):
        """Yields (chat, status) while the session runs."""
        who = self.access.require(request, SUPERVISORS, "watch.start")
        from patient_sim.simulate import RunControl, SimSpec
        try:
            persona = self.s.personas.get(persona_id)
            entry = self.s.catalog.get(therapist)
            self.s.catalog.get(patient_model)
        except Exception as exc:
            yield [], f"**Cannot start:** {exc}"
            return
        key = getattr(request, "session_hash", None) or "local"
        if key in self.runs and not self.runs[key].finished.is_set():
            yield gr.update(), "A session is already running here: stop it first."
            return
        modality = session_modality(entry.modality, session_modality(persona.modality))
        run = self.runs[key] = WatchRun(RunControl())
        spec = SimSpec(persona, therapist, patient_model, int(turns), modality, study="watch")
        threading.Thread(target=self._work, args=(run, spec), name=f"watch-{key}", daemon=True).start()
        self.s.audit.record(who.username, EventKind.WATCH_START, None, persona=persona_id, therapist=therapist,
                            patient_model=patient_model, turns=int(turns))
        yield from self._follow(run, bool(show))

    def _work(self, run: WatchRun, spec) -> None:
        from patient_sim.simulate import run_session
        try:
            run_session(self.s.engine, spec, on_event=lambda kind, value: run.events.put((kind, value)), control=run.control)
        except Exception as exc:  # shown on the page; the stored turns stay
            run.error = str(exc)
        finally:
            run.finished.set()
            run.events.put(("finished", None))

    def _follow(self, run: WatchRun, show: bool):
        patient_live, reasoning, answer = "", "", ""
        while True:
            kind, value = run.events.get()
            if kind == "session":
                run.session_id = value["id"]
            elif kind == "patient_delta":
                patient_live = "" if value is None else patient_live + value
            elif kind == "patient":
                patient_live, reasoning, answer = "", "", ""
            elif kind == "therapist":
                reasoning, answer = self._therapist(value, reasoning, answer)
            elif kind == "finished":
                break
            if run.events.qsize() > 4:
                continue  # a backlog of deltas: redraw once it is drained
            yield self._chat(run, show, patient_live, reasoning, answer), self._status(run)
        yield self._chat(run, show, "", "", ""), self._status(run)

    @staticmethod
    def _therapist(event, reasoning: str, answer: str) -> tuple[str, str]:
        if event.kind == "reasoning":
            return reasoning + event.text, answer
        if event.kind == "answer":
            return reasoning, answer + event.text
        if event.kind == "rewrite":
            return reasoning, event.text
        return "", ""  # done / flag / error: the stored turn takes over

    def _chat(self, run: WatchRun, show: bool, patient_live: str, reasoning: str, answer: str) -> list[dict]:
        msgs, _ = render_turns(self.s.sessions.turns(run.session_id), show) if run.session_id else ([], [])
        if patient_live:
            msgs.append({"role": "user", "content": patient_live})
        if show and reasoning:
            msgs.append(reasoning_message(reasoning, pending=not answer))
        if answer:
            label = f"{ANSWER_LABEL}\n\n" if show and reasoning else ""  # as render_turns draws it
            msgs.append({"role": "assistant", "content": label + answer})
        return msgs

    def _status(self, run: WatchRun) -> str:
        if run.error:
            return f"**Stopped with an error:** {run.error}"
        state = "finished" if run.finished.is_set() else \
            "stopping…" if run.control.stopped else \
            "paused (press Resume or Step)" if run.control.paused else "running"
        return f"Session `{run.session_id or '…'}` · {state} · stored like any session (study `watch`)."

    def control(self, action: str, request: gr.Request = None):
        self.access.require(request, SUPERVISORS, f"watch.{action}")
        run = self.runs.get(getattr(request, "session_hash", None) or "local")
        if run is None:
            return "Start a session first."
        getattr(run.control, action)()
        return {"pause": "Paused after the current exchange.", "resume": "Running.",
                "step": "One more exchange, then paused.", "stop": "Stopping after the current exchange."}[action]

    def pause(self, request: gr.Request = None):
        return self.control("pause", request)

    def resume(self, request: gr.Request = None):
        return self.control("resume", request)

    def step(self, request: gr.Request = None):
        return self.control("step", request)

    def stop(self, request: gr.Request = None):
        return self.control("stop", request)


def build_watch(services: Services, access: Access) -> None:
    h = WatchHandlers(services, access)
    personas = h.persona_choices()
    with gr.Row():
        persona = gr.Dropdown(personas, value=personas[0][1] if personas else None, label="Persona", scale=3)
        seed = gr.Number(0, label="Seed", precision=0, scale=1)
        sample = gr.Button("Sample a new persona", scale=1)
    with gr.Row():
        models = h.model_choices()
        therapist = gr.Dropdown(models, value="default", label="Therapist model")
        patient = gr.Dropdown(models, value="default", label="Patient model (plays the persona)")
        turns = gr.Slider(1, 30, value=6, step=1, label="Exchanges")
        show = gr.Checkbox(True, label="Show therapist reasoning")
    chat = gr.Chatbot(label="Simulated session (patient on the right)", height=460, elem_id="watch-chat")
    with gr.Row():
        start = gr.Button("Start", variant="primary")
        pause = gr.Button("Pause")
        resume = gr.Button("Resume")
        step = gr.Button("Step")
        stop = gr.Button("Stop", variant="stop")
    status = gr.Markdown(elem_id="watch-status")
    sample.click(h.sample, seed, [persona, status], api_name="watch_sample")
    start.click(h.start, [persona, therapist, patient, turns, show], [chat, status], api_name="watch_start")
    for button, handler, name in ((pause, h.pause, "watch_pause"), (resume, h.resume, "watch_resume"),
                                  (step, h.step, "watch_step"), (stop, h.stop, "watch_stop")):
        button.click(handler, None, status, api_name=name)
