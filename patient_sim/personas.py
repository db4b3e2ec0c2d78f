"""Personas as data: who a simulated patient is and how they talk.

A ``Persona`` is everything the simulated patient needs to play a role: a short ``summary`` the
patient model is given, a conversation ``style`` (one of ``STYLES``), for ACT an ``archetype``
(one of ``ARCHETYPES``, after the ACT study), and the full structured ``profile``. Personas come
from the shipped library (``patient_sim/library/*.yaml``), the sampler, a teacher model, or the
studies' standardized-profile files; all of them are stored through ``store.personas``.

``profile_hash`` identifies the person, not the row: two personas with the same defining fields
are the same person, which is what makes imports and ``ensure_library`` idempotent.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vocabulary import MODALITY_OR_ANY

LIBRARY_DIR = Path(__file__).resolve().parent / "library"

MODALITIES = MODALITY_OR_ANY
SOURCES = ("library", "sampled", "imported", "teacher")
PSYCH_LEVELS = ("low", "moderate", "high")
SEVERITIES = ("mild", "moderate", "severe")
ENGAGEMENTS = ("low", "medium", "high")

# Library summaries must be long enough to carry a person and short enough to leave a small
# model's context for the conversation itself.
SUMMARY_WORDS = (80, 250)

STYLES: dict[str, str] = {
    "plain": (
        "Talk the way an ordinary person does in a first conversation with a professional: clear, "
        "everyday words, answers that fit the question, usually two to four sentences. Share what is "
        "asked and a little more when it matters to you, without rehearsed or clinical language."
    ),
    "upset": (
        "You are irritable and on edge today. Your answers are short and sometimes sharp; you push back "
        "on suggestions, point out what has not worked before, and can sound blaming or sarcastic. "
        "Underneath you are hurting, and you soften a little only when you truly feel understood, "
        "never because you are told to calm down."
    ),
    "verbose": (
        "You say a lot. Your answers run long, with details, examples and background the therapist did "
        "not ask for, and you circle back to add things you forgot. You are not evasive: you are trying "
        "to make sure you are understood, and you may need to be gently interrupted to get to the point."
    ),
    "reserved": (
        "You give little away. Answers are brief, often a few words or a single sentence, and you rarely "
        "volunteer anything. You open up slowly and only when questions are specific and feel safe; "
        "pauses, 'I don't know' and 'it's fine' are common for you."
    ),
    "tangential": (
        "Your mind wanders. You start answering and drift to a related story, a person, or something that "
        "happened this week, and you lose the thread of the question. You do come back to the point when "
        "the therapist steers you, and the side stories often hold something that matters."
    ),
    "pleasing": (
        "You want to be a good client and to be liked. You agree quickly, thank the therapist often, say "
        "suggestions sound great, and play down your own problems or objections. You find it hard to say "
        "when something does not fit, so real doubts come out only indirectly or late."
    ),
}

ARCHETYPES: dict[str, dict[str, str]] = {
    "Hopeless Skeptic": {
        "interaction_style": "Argumentative/Resistant",
        "description": (
            "You doubt that therapy, or anything, can help; you argue with suggestions, list what has "
            "already failed and treat hope as naive. The resistance protects you from another disappointment."
        ),
        "psych_mindedness": "low",
    },
    "Intellectualizer": {
        "interaction_style": "Intellectualizing",
        "description": (
            "You talk about feelings instead of having them: you analyse, explain and quote ideas and "
            "research, and stay in your head when asked what you feel in your body or in the moment."
        ),
        "psych_mindedness": "moderate",
    },
    "Anxious Fortune-Teller": {
        "interaction_style": "Catastrophizing/Future-focused",
        "description": (
            "You live in the next disaster: you jump from the present to what could go wrong, ask for "
            "certainty and reassurance, and find it hard to stay with what is happening now."
        ),
        "psych_mindedness": "moderate",
    },
    "Overwhelmed Avoider": {
        "interaction_style": "Vague/Defensive",
        "description": (
            "You feel swamped and keep things vague: you change the subject, say 'it's a lot' or 'I don't "
            "know', and get defensive when pressed about what you are putting off."
        ),
        "psych_mindedness": "low",
    },
}

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
_REQUIRED = ("id", "name", "modality", "style", "summary", "profile")


class PersonaError(ValueError):
    """A persona, a persona file or a teacher step is unusable; the message says which and why."""


@dataclass
class Persona:
    id: str
    name: str
    modality: str
    archetype: str | None
    style: str
    psych_mindedness: str | None
    summary: str
    opening: str | None
    profile: dict = field(default_factory=dict)
    profile_hash: str = ""
    source: str = "library"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Persona":
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("id", "name", "modality", "style", "summary") if n not in data]
        if missing:
            raise PersonaError(f"persona record lacks {', '.join(missing)}")
        values = {k: v for k, v in data.items() if k in names}
        values.setdefault("archetype", None)
        values.setdefault("psych_mindedness", None)
        values.setdefault("opening", None)
        return cls(**values)

    def instructions(self) -> str:
        """The role text with its conversation style, as a patient model would be given it."""
        return f"{self.summary.strip()}\n\nHow you talk: {STYLES.get(self.style, STYLES['plain'])}"


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept, so equal data hashes equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def profile_hash_of(fields: dict) -> str:
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


def defining_fields(persona: Persona) -> dict:
    """What makes a persona this person: everything except its row id, origin label and hash.

    The source is left out so the same person reached by two routes is still one person.
    """
    data = persona.to_dict()
    for key in ("id", "source", "profile_hash"):
        data.pop(key)
    return data


def with_hash(persona: Persona) -> Persona:
    return dataclasses.replace(persona, profile_hash=profile_hash_of(defining_fields(persona)))


def word_count(text: str) -> int:
    return len(text.split())


# ---------------------------------------------------------------------------------------------
# The shipped library


def load_library(directory: Path | str | None = None) -> list[Persona]:
    """Every persona in the library's YAML files, validated; ids are unique across files."""
    directory = Path(directory) if directory else LIBRARY_DIR
    personas: list[Persona] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        for persona in _load_file(path):
            if persona.id in seen:
                raise PersonaError(f"{path.name}: persona id {persona.id!r} is already used in {seen[persona.id]}")
            seen[persona.id] = path.name
            personas.append(persona)
    return personas


def _load_file(path: Path) -> list[Persona]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PersonaError(f"{path.name}: cannot read the persona file: {exc}") from exc
    entries = data.get("personas") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise PersonaError(f"{path.name}: expected a top-level 'personas:' list")
    out = []
    for index, entry in enumerate(entries):
        label = entry.get("id") if isinstance(entry, dict) else None
        try:
            out.append(_library_persona(entry))
        except PersonaError as exc:
            where = f"entry {index}" + (f" ({label})" if label else "")
            raise PersonaError(f"{path.name}: {where}: {exc}") from None
    return out


def _library_persona(entry: Any) -> Persona:
    if not isinstance(entry, dict):
        raise PersonaError("must be a mapping")
    missing = [key for key in _REQUIRED if not entry.get(key)]
    if missing:
        raise PersonaError(f"missing {', '.join(missing)}")
    unknown = set(entry) - {f.name for f in dataclasses.fields(Persona)}
    if unknown:
        raise PersonaError(f"unknown keys {', '.join(sorted(unknown))}")
    archetype = entry.get("archetype")
    psych = entry.get("psych_mindedness") or (ARCHETYPES[archetype]["psych_mindedness"]
                                              if archetype in ARCHETYPES else None)
    persona = Persona(
        id=str(entry["id"]), name=str(entry["name"]), modality=entry["modality"], archetype=archetype,
        style=entry["style"], psych_mindedness=psych, summary=str(entry["summary"]).strip(),
        opening=(str(entry["opening"]).strip() if entry.get("opening") else None),
        profile=entry["profile"], source="library")
    validate(persona)
    return with_hash(persona)


def validate(persona: Persona) -> None:
    """Check one persona's fields against the vocabularies; raise PersonaError naming the field."""
    if not _ID_RE.match(persona.id):
        raise PersonaError(f"id {persona.id!r} must be 3-64 lowercase letters, digits or dashes")
    checks = [("modality", persona.modality, MODALITIES), ("style", persona.style, tuple(STYLES)),
              ("source", persona.source, SOURCES)]
    if persona.archetype is not None:
        checks.append(("archetype", persona.archetype, tuple(ARCHETYPES)))
    if persona.psych_mindedness is not None:
        checks.append(("psych_mindedness", persona.psych_mindedness, PSYCH_LEVELS))
    for name, value, allowed in checks:
        if value not in allowed:
            raise PersonaError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    if not isinstance(persona.profile, dict):
        raise PersonaError("profile must be a mapping")
    if persona.source == "library":
        _validate_library_content(persona)


def _validate_library_content(persona: Persona) -> None:
    low, high = SUMMARY_WORDS
    words = word_count(persona.summary)
    if not low <= words <= high:
        raise PersonaError(f"summary has {words} words; it must have {low}-{high}")
    if persona.modality == "act" and persona.archetype is None:
        raise PersonaError("an ACT persona needs an archetype")
    if persona.modality == "cbt":
        for key, allowed in (("severity", SEVERITIES), ("engagement", ENGAGEMENTS)):
            if persona.profile.get(key) not in allowed:
                raise PersonaError(f"profile.{key} must be one of {', '.join(allowed)}")


# ---------------------------------------------------------------------------------------------
# Storage: patient_sim depends on store, never the other way, so the Persona <-> record
# conversion is handed to the store here.


def persona_store(store):
    """A ``store.personas.PersonaStore`` that returns ``Persona`` objects and knows the library."""
    from store.personas import PersonaStore
    return PersonaStore(store, decode=Persona.from_dict, library=load_library)
