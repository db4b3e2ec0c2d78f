"""Datasets from transcripts: SFT conversations, ORPO preference pairs, judge-SFT examples.

Every set is split into train and validation **by patient** (all sessions of one patient land on
one side), so validation loss measures how a model does with people it has not seen. Output goes
to ``<data dir>/datasets/<name>/`` as ``train.jsonl`` and ``validation.jsonl`` (loadable with
``datasets.load_dataset("json", data_files=...)``) and a ``manifest.json`` saying what it holds.

- ``sft``: ``{"messages": [system, user, assistant, ...]}``; with ``reasoning`` each assistant
  turn is ``<think>reasoning</think>`` then the answer, without it the answer alone.
- ``orpo``: one pair per therapist turn, in conversational form ``{"prompt": [...], "chosen":
  [assistant], "rejected": [assistant]}``; chosen is the transcript's answer, rejected is what
  the base model itself says in the same context (generated here, as in the ACT study).
- ``judge``: ``{"messages": [judge system, transcript, rating JSON]}`` from human ratings in the
  store, built with the judge's own prompt so a fine-tuned judge sees what ``eval judge`` sends.
"""
from __future__ import annotations

import json
import math
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from therapist.prompts import system_prompt
from therapist.reasoning import format_reasoning
from training.corpus import SEED_DIR, Transcript, corpus_sha256, load_corpus

KINDS = ("sft", "orpo", "judge")


@dataclass
class BuildConfig:
    name: str                                   # dataset folder under <data dir>/datasets/
    kind: str = "sft"                           # sft | orpo | judge
    sources: list[str] = field(default_factory=lambda: [str(SEED_DIR)])
    modality: str = "all"                       # cbt | act | all
    reasoning: bool = True                      # keep the therapist's reasoning (<think>) in answers
    val_fraction: float = 0.2                   # share of patients held out for validation
    seed: int = 0
    rejected_model: str = "default"             # orpo: catalog model whose own answers are "rejected"
    rejected_max_tokens: int = 160
    rubric: str = "tes"                         # judge: the rubric of the human ratings to learn
    limit: int = 0                              # use at most this many transcripts (0 = all): quick trials
    window: int = 4                             # exchanges per example (0 = whole sessions); see sft_records


def split_by_patient(items: list, patient_of: Callable, val_fraction: float, seed: int) -> tuple[list, list]:
    """(train, validation): a seeded choice of whole patients, at least one on each side if possible."""
    patients = sorted({patient_of(x) for x in items})
    rng = random.Random(seed)
    rng.shuffle(patients)
    n_val = min(len(patients) - 1, max(1, math.ceil(len(patients) * val_fraction))) if len(patients) > 1 else 0
    held = set(patients[:n_val])
    return [x for x in items if patient_of(x) not in held], [x for x in items if patient_of(x) in held]


def therapist_system(t: Transcript, reasoning: bool) -> str:
    return system_prompt(t.modality, reasoning, t.session_index, t.previous_summary)


def assistant_text(turn, reasoning: bool) -> str:
    if reasoning and turn.reasoning:
        return format_reasoning(turn.reasoning, turn.content)
    return turn.content


def _chat(t: Transcript, reasoning: bool) -> list[dict]:
    return [{"role": "user" if turn.role == "patient" else "assistant",
             "content": turn.content if turn.role == "patient" else assistant_text(turn, reasoning)}
            for turn in t.turns]


def sft_record(t: Transcript, reasoning: bool) -> dict:
    messages = [{"role": "system", "content": therapist_system(t, reasoning)}] + _chat(t, reasoning)
    return {"id": t.id, "patient_id": t.patient_id, "modality": t.modality, "messages": messages}


def sft_records(t: Transcript, reasoning: bool, window: int = 4) -> list[dict]:
    """The session in consecutive windows of ``window`` exchanges, each behind the system prompt.

    A whole 16-turn session with reasoning runs past 2,000 tokens; cut at a small model's training
    length, its later turns would never be learned. Windows keep every therapist turn inside the
    length, at the price of the context before the window (the system prompt still carries the
    session's phase and the previous summary)."""
    if window <= 0:
        return [sft_record(t, reasoning)]
    system = {"role": "system", "content": therapist_system(t, reasoning)}
    chat = _chat(t, reasoning)
    size = 2 * window
    return [{"id": f"{t.id}@{start // 2}", "patient_id": t.patient_id, "modality": t.modality,
             "messages": [system] + chat[start:start + size]} for start in range(0, len(chat), size)]


def orpo_records(t: Transcript, reasoning: bool, generate: Callable[[list[dict]], str],
                 window: int = 4) -> list[dict]:
    """One pair per therapist turn, its prompt the system prompt and up to ``window`` exchanges
    (0 = the whole history); ``generate(prompt messages)`` is the base model's own answer."""
    sft = sft_record(t, reasoning)["messages"]
    pairs = []
    for i, message in enumerate(sft):
        if message["role"] != "assistant":
            continue
        first = 1 if window <= 0 else max(1, i - 2 * window + 1)
        prompt = sft[:1] + sft[first:i]
        rejected = (generate(prompt) or "").strip() or "..."
        pairs.append({"id": f"{t.id}#{i}", "patient_id": t.patient_id, "modality": t.modality,
                      "prompt": prompt, "chosen": [message], "rejected": [{"role": "assistant", "content": rejected}]})
    return pairs


def judge_records(store, rubric) -> list[dict]:
    """One example per complete human rating on ``rubric``: the judge prompt in, the rating out."""
    from eval.judge import build_messages, delimiter_tag, format_transcript
    from store.ratings import RatingStore
    from store.sessions import SessionStore
    sessions = SessionStore(store)
    records = []
    for rating in RatingStore(store).list(rubric.id, rater_kind="human"):
        if rating["status"] != "ok" or len(rating["scores"]) != len(rubric.items):
            continue
        turns = [t for t in sessions.turns(rating["session_id"]) if t["role"] in ("patient", "therapist")]
        lines = format_transcript(turns)
        messages = build_messages(rubric, lines, delimiter_tag(lines, 1))
        answer = {it.id: {"rationale": "", "score": rating["scores"][it.id]} for it in rubric.items}
        messages.append({"role": "assistant", "content": json.dumps(answer)})
        session = sessions.get(rating["session_id"])
        records.append({"id": rating["id"], "patient_id": session.get("persona_id") or session.get("user_id")
                        or session["id"], "messages": messages})
    return records


def write_dataset(out_dir: Path, train: list[dict], validation: list[dict], manifest: dict) -> Path:
    """Write the three files through temporary names, so a crash never leaves half a dataset."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("validation.jsonl", validation)):
        tmp = out_dir / (name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out_dir / name)
    manifest = {**manifest, "n_train": len(train), "n_validation": len(validation)}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out_dir


def build(config: BuildConfig, data_dir: Path, generate: Callable[[list[dict]], str] | None = None,
          store=None, progress: Callable[[int, int], None] | None = None) -> Path:
    """Build the dataset the config describes; return its folder."""
    if config.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    manifest = {"name": config.name, "config": asdict(config)}
    if config.kind == "judge":
        from eval.rubrics import load_rubric
        records = judge_records(store, load_rubric(config.rubric))
        if len(records) < 2:
            raise ValueError(f"judge datasets need at least 2 complete human ratings on {config.rubric}; "
                             f"found {len(records)}")
    else:
        transcripts = [t for t in load_corpus(config.sources) if config.modality in ("all", t.modality)]
        transcripts = transcripts[:config.limit] if config.limit else transcripts
        if not transcripts:
            raise ValueError(f"no {config.modality} transcripts in {config.sources}")
        manifest["corpus_sha256"] = corpus_sha256(transcripts)
        records = []
        for i, t in enumerate(transcripts, 1):
            if config.kind == "sft":
                records += sft_records(t, config.reasoning, config.window)
            else:
                records += orpo_records(t, config.reasoning, generate, config.window)
            if progress:
                progress(i, len(transcripts))
    train, validation = split_by_patient(records, lambda r: r["patient_id"], config.val_fraction, config.seed)
    manifest["validation_patients"] = sorted({r["patient_id"] for r in validation})
    return write_dataset(Path(data_dir) / "datasets" / config.name, train, validation, manifest)
