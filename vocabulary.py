"""The project's domain words, each defined once: therapy modality, session status, backend kind,
audit event kind.

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


class EventKind(StrEnum):
    """What an audit row records (the ``action`` column of ``audit_log``): ``area.what``.

    ``store.audit.AuditLog.record`` refuses a kind not listed here, so a typo cannot start a new
    kind that no filter or report knows about."""
    ACCESS_DENIED = "access.denied"
    ACCESS_INVALID_INPUT = "access.invalid_input"
    APP_ERROR = "app.error"
    APP_START = "app.start"
    AUTH_LOGIN = "auth.login"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_LOCKOUT = "auth.lockout"
    CONSENT_GIVEN = "consent.given"
    DATA_EXPORT = "data.export"
    DRAFT_HELD = "draft.held"
    DRAFT_APPROVED = "draft.approved"
    DRAFT_EDITED = "draft.edited"
    DRAFT_REPLACED = "draft.replaced"
    DRAFT_DISCARDED = "draft.discarded"
    FLAG_RESOLVE = "flag.resolve"
    HTTP_REFUSED = "http.refused"
    JOB_LAUNCH = "job.launch"
    JOB_CANCEL = "job.cancel"
    JUDGE_RUN_START = "judge.run_start"
    JUDGE_RUN_DONE = "judge.run_done"
    JUDGE_RUN_CANCELLED = "judge.run_cancelled"
    MODEL_PRELOAD_FAILED = "model.preload_failed"
    MODEL_WORKER_CRASHED = "model.worker_crashed"
    MODEL_WORKER_PAUSED = "model.worker_paused"
    MODEL_WORKER_RESTARTED = "model.worker_restarted"
    MODEL_WORKER_RESTART_FAILED = "model.worker_restart_failed"
    NOTE_ADD = "note.add"
    RATING_SAVE = "rating.save"
    RISK_CARRIED_OVER = "risk.carried_over"
    RISK_CLASSIFIER_FAILED = "risk.classifier_failed"
    RISK_FLAG = "risk.flag"
    RISK_LEARNED_UNAVAILABLE = "risk.learned_unavailable"
    RISK_UNSAFE_DRAFT = "risk.unsafe_draft"
    RISK_UNSCREENED = "risk.unscreened"
    SESSION_START = "session.start"
    SESSION_ABANDONED = "session.abandoned"
    SESSION_END = "session.end"
    SESSION_READ = "session.read"
    SESSION_HOLD = "session.hold"
    SESSION_RELEASE = "session.release"
    SESSION_SUPERVISOR_REPLY = "session.supervisor_reply"
    SIMULATION_RESTART = "simulation.restart"
    SIMULATION_FAILED = "simulation.failed"
    TRANSCRIPTS_IMPORT = "transcripts.import"
    TURN_EMPTY = "turn.empty"
    TURN_ERROR = "turn.error"
    TURN_FEEDBACK = "turn.feedback"
    TURN_LEAK_SCREENED = "turn.leak_screened"
    USER_ADD = "user.add"
    USER_SET_ROLE = "user.set_role"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    USER_ERASED = "user.erased"
    WATCH_START = "watch.start"


EVENT_KINDS: tuple[str, ...] = tuple(e.value for e in EventKind)
