"""Datagen: a teacher model writes new synthetic sessions from sampled personas, as the studies did.

For each persona the teacher plays both sides in turn: the patient (in character, first, never
ending early; narration is repaired by the patient guard) and the therapist (the session's system
prompt with reasoning: ``<think>`` then a brief answer). An optional reviewer model reads every
turn against the ACT study's rules and answers ACCEPT or REVISE with feedback; a sent-back turn is
rewritten with the feedback, at most ``max_revisions`` times. CBT personas get a course of
``course_sessions`` consecutive sessions, each ending with a summary carried into the next.

Output: ``<data dir>/corpus/<dataset>.jsonl`` in the canonical format (``training/corpus.py``),
one finished session appended (and fsynced) at a time, so an interrupted run resumes where it
stopped: sessions already in the file are skipped. ``python -m training datagen --config R``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from training.corpus import Transcript, Turn, append_transcript, load_file

REVIEW_RULES = ("Check the {side} turn: it responds to what was just said; one focus; concise (1-4 sentences); "
                "varied wording; no stage directions or labels; {extra} Answer ACCEPT, or REVISE: followed "
                "by one sentence of feedback.")
THERAPIST_EXTRA = "reasoning of 50-150 words inside <think></think> that justifies the answer; faithful to the approach."
PATIENT_EXTRA = "realistic for this person; does not try to end the session."


@dataclass
class DatagenConfig:
    dataset: str                    # output: <data dir>/corpus/<dataset>.jsonl
    teacher: str = "default"        # catalog model that writes both sides
    reviewer: str = ""              # optional catalog model that accepts or sends back each turn
    modality: str = "act"           # act | cbt
    personas: int = 4               # how many sampled personas (one session, or one CBT course, each)
    course_sessions: int = 1        # CBT: consecutive sessions per persona
    turns: int = 12                 # turns per session (patient + therapist), even
    seed: int = 0
    max_revisions: int = 2
    max_tokens: int = 220


def corpus_path(data_dir: Path, dataset: str) -> Path:
    return Path(data_dir) / "corpus" / f"{dataset}.jsonl"


class Writer:
    """Writes one session with a teacher (and maybe a reviewer): ``ask(messages) -> text``."""

    def __init__(self, config: DatagenConfig, ask_teacher: Callable, ask_reviewer: Callable | None = None):
        self.config, self.teacher, self.reviewer = config, ask_teacher, ask_reviewer
        self.revisions = 0

    def _reviewed(self, side: str, write: Callable[[str | None], str], context: str) -> str:
        text = write(None)
        for _ in range(self.config.max_revisions if self.reviewer else 0):
            rules = REVIEW_RULES.format(side=side, extra=THERAPIST_EXTRA if side == "therapist" else PATIENT_EXTRA)
            verdict = (self.reviewer([{"role": "system", "content": rules},
                                      {"role": "user", "content": f"{context}\n\nTurn to review:\n{text}"}]) or "")
            if not verdict.strip().upper().startswith("REVISE"):
                break
            self.revisions += 1
            text = write(verdict.split(":", 1)[-1].strip())
        return text

    def patient_turn(self, persona, history: list[Turn]) -> str:
        from patient_sim.guard import check_turn
        said = history[-1].content if history else None
        context = "\n".join(f"{t.role}: {t.content}" for t in history[-6:])

        def write(feedback):
            prompt = (f"You play this person in a therapy session: {persona.summary} Style: {persona.style}. "
                      "Write only their next words to the therapist, in the first person, 1-4 sentences.")
            if feedback:
                prompt += f" Reviewer feedback to follow: {feedback}"
            for _ in range(3):
                guarded = check_turn(self.teacher([{"role": "system", "content": prompt},
                                                   {"role": "user", "content": context or "(The session begins.)"}]),
                                     therapist_said=said, brief=persona.summary)
                if guarded.text and not guarded.regenerate:
                    return guarded.text
            return "I'm not sure where to start."
        return self._reviewed("patient", write, context)

    def therapist_turn(self, system: str, history: list[Turn]) -> Turn:
        from therapist.reasoning import split_reasoning
        messages = [{"role": "system", "content": system}] + [
            {"role": "user" if t.role == "patient" else "assistant", "content": t.content} for t in history]

        def write(feedback):
            extra = [{"role": "system", "content": f"Reviewer feedback on your last try: {feedback}"}] if feedback else []
            return self.teacher(messages + extra)
        split = split_reasoning(self._reviewed("therapist", write, history[-1].content))
        return Turn("therapist", split.answer.strip() or "Tell me more about that.", (split.reasoning or "").strip() or None)

    def session(self, persona, index: int, previous_summary: str | None, sid: str) -> Transcript:
        from therapist.prompts import SUMMARY_INSTRUCTION, cbt_phase, system_prompt
        modality = self.config.modality
        system = system_prompt(modality, True, index, previous_summary)
        turns: list[Turn] = []
        while len(turns) < self.config.turns:
            turns.append(Turn("patient", self.patient_turn(persona, turns)))
            turns.append(self.therapist_turn(system, turns))
        summary = None
        if modality == "cbt":
            transcript = "\n".join(f"{t.role}: {t.content}" for t in turns)
            summary = self.teacher([{"role": "system", "content": SUMMARY_INSTRUCTION},
                                    {"role": "user", "content": transcript}]).strip() or None
        return Transcript(id=sid, modality=modality, patient_id=persona.id, turns=turns, session_index=index,
                          phase=cbt_phase(index).name if modality == "cbt" else None,
                          persona={"name": persona.name, "summary": persona.summary, "style": persona.style,
                                   **({"archetype": persona.archetype} if persona.archetype else {})},
                          previous_summary=previous_summary, summary=summary, dataset=self.config.dataset)


def generate(config: DatagenConfig, data_dir: Path, ask_teacher: Callable, ask_reviewer: Callable | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Write every planned session not yet in the output file; returns counts."""
    from patient_sim.sampler import sample_personas
    if config.turns < 2 or config.turns % 2:
        raise ValueError("turns must be an even number of at least 2")
    path = corpus_path(data_dir, config.dataset)
    done = {t.id: t for t in load_file(path)} if path.exists() else {}
    writer = Writer(config, ask_teacher, ask_reviewer)
    plan = [(p, i) for p in sample_personas(config.personas, config.seed, config.modality)
            for i in range(1, (config.course_sessions if config.modality == "cbt" else 1) + 1)]
    written, previous = 0, {}
    for n, (persona, index) in enumerate(plan, 1):
        sid = f"{config.dataset}-{persona.id}-s{index:02d}"
        if sid in done:
            previous[persona.id] = done[sid].summary
        else:
            t = writer.session(persona, index, previous.get(persona.id), sid)
            append_transcript(path, t)
            previous[persona.id] = t.summary
            written += 1
        if progress:
            progress(n, len(plan))
    return {"path": str(path), "planned": len(plan), "written": written, "skipped": len(plan) - written,
            "revisions": writer.revisions}
