"""The project's domain words, each defined once: therapy modality, session status, backend kind.

Members are ``StrEnum``s, so they equal the plain strings stored in SQLite, written in YAML and
TOML, and sent by a form: ``Modality.CBT == "cbt"``. Code that checks one of these words uses the
tuples here instead of spelling the words out, so two places cannot disagree about them (before
this module there were five modality lists, three with "any" and two without).

The layer below every package (beside ``config``): it imports nothing of the project.
"""
from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    """The therapy a session follows."""
    CBT = "cbt"   # a course of CBT for depression (20 sessions, phases, summaries)
    ACT = "act"   # a single ACT session


ANY = "any"
# What a session, a transcript or a training corpus is: one approach.
SESSION_MODALITIES: tuple[str, ...] = tuple(m.value for m in Modality)
# What a model, a persona or a rubric may be meant for: one approach or either.
MODALITY_OR_ANY: tuple[str, ...] = (*SESSION_MODALITIES, ANY)


def session_modality(preferred: str | None, fallback: str = Modality.ACT) -> str:
    """``preferred`` when it names one approach, else ``fallback`` (for an "any" model or persona)."""
    return preferred if preferred in SESSION_MODALITIES else fallback


class SessionStatus(StrEnum):
    ACTIVE = "active"
    HOLD = "hold"            # a supervisor must release each reply (high risk)
    ENDED = "ended"
    ABANDONED = "abandoned"  # a simulated session interrupted mid-run, set aside when its batch resumed


SESSION_STATUSES: tuple[str, ...] = tuple(s.value for s in SessionStatus)


class BackendKind(StrEnum):
    LLAMA_CPP = "llama_cpp"  # GGUF through llama-cpp-python, on the CPU
    HF = "hf"                # transformers (+ peft), on a GPU or the CPU
    OPENAI = "openai"        # an OpenAI-compatible endpoint the user configures
    FAKE = "fake"            # scripted replies, for tests of the logic around a model


BACKENDS: tuple[str, ...] = tuple(b.value for b in BackendKind)
# Backends that load weights into a local model worker process.
LOCAL_BACKENDS: tuple[str, ...] = (BackendKind.LLAMA_CPP.value, BackendKind.HF.value)
