"""What the app says and does when the safety screen fires.

The safe reply follows the usual guidance for a disclosure of risk: acknowledge it with empathy,
ask directly about safety, give concrete resources for the patient's locale, be clear that this
is an AI, and invite the person to keep talking. It never mentions means. It is fixed text, not
generated, so a model can never talk its way around it.
"""
from __future__ import annotations

from vocabulary import EventKind

DEFAULT_RESOURCES = {
    "US": "call or text 988 (Suicide & Crisis Lifeline) at any time, or call 911 if you are in danger right now",
    "UK": "call Samaritans on 116 123 at any time, or call 999 if you are in danger right now",
    "IE": "call Samaritans on 116 123 at any time, or call 112 or 999 if you are in danger right now",
    "CA": "call or text 988 (Suicide Crisis Helpline) at any time, or call 911 if you are in danger right now",
    "AU": "call Lifeline on 13 11 14 at any time, or call 000 if you are in danger right now",
}


def resources_for(locale: str, configured: dict | None = None) -> str:
    table = {**DEFAULT_RESOURCES, **(configured or {})}
    return table.get(locale) or table["US"]


def safe_reply(categories: tuple[str, ...], resources: str) -> str:
    """The fixed reply used instead of the model's whenever a turn is escalated."""
    if "harm_to_others" in categories and "self_harm" not in categories:
        return ("It sounds like you're carrying a lot of anger right now, and I want to take what you said "
                "seriously. I'm an AI, so I can't help in an emergency. If you feel you might hurt someone, "
                f"please step away from the situation and get help now: {resources}. I've let the supervising "
                "clinician know. Are you and the people around you safe at this moment? I'm here to keep talking.")
    if "harm_from_others" in categories and "self_harm" not in categories and "means_seeking" not in categories:
        return ("Thank you for telling me. What you're describing sounds frightening, and it is not your fault. "
                "I'm an AI, so I can't protect you or come to help, but people can: if you are in danger, "
                f"{resources}. I've let the supervising clinician know. Are you safe right now? "
                "I'm here and we can keep talking.")
    return ("I'm really glad you told me, and I'm taking it seriously. It sounds like you're in a lot of pain "
            "right now. Are you safe at this moment? I'm an AI, so I can't help in an emergency, but people "
            f"can, right now: please {resources}. I've let the supervising clinician know. "
            "I'm here with you, and I'd like to keep talking.")


SAFETY_NOTE = (
    "Safety context: earlier, this client disclosed possible risk, and a supervising clinician has been "
    "alerted. Do not accept a single reassurance or a change of story as the end of it: stay warm, check "
    "gently on their safety, and never give information about methods or means."
)


def redacted_draft_reply(resources: str) -> str:
    """Replaces a therapist draft that the safety screen stopped."""
    return ("I'd rather not go into that. What matters most to me is how you are doing and whether you are "
            f"safe right now. If things feel unbearable, please {resources}. Can you tell me more about what's "
            "been happening?")


UNSCREENED = "unscreened"  # flag kind: a message in a language or script the screen does not read


class Escalation:
    """The engine's safety steps: screen, flag, hold, and remember open flags per patient."""

    def __init__(self, settings, sessions, flags, audit, pool=None):
        self.settings = settings
        self.pool = pool  # for the optional second-stage classifier
        self.sessions = sessions
        self.flags = flags
        self.audit = audit

    @property
    def resources(self) -> str:
        return resources_for(self.settings.crisis_locale, self.settings.crisis_resources)

    @staticmethod
    def patient_key(session: dict) -> str:
        # Without accounts the course is the best notion of "the same patient" we have.
        return session.get("user_id") or session["course_id"]

    def open_flags(self, session: dict) -> list[dict]:
        """The patient's open risk flags (an ``unscreened`` notice is not a disclosure of risk)."""
        return [f for f in self.flags.open_for_patient(self.patient_key(session)) if f["kind"] != UNSCREENED]

    def carry_over(self, session: dict) -> None:
        """A new session of a patient with open flags starts flagged (and on hold when high)."""
        from therapist.safety import max_level
        open_flags = [f for f in self.open_flags(session) if f["session_id"] != session["id"]]
        if not open_flags:
            return
        level = max_level(*(f["level"] for f in open_flags))
        self.flags.raise_flag(session["id"], level, "carried_over",
                              detail={"open_flags": [f["id"] for f in open_flags]})
        if level in ("high", "imminent") and not session.get("simulated"):
            self.sessions.set_status(session["id"], "hold")
        self.audit.record("system", EventKind.RISK_CARRIED_OVER, session["id"], level=level)

    def screen_patient(self, session: dict, turn: dict):
        """Assess a committed patient turn; flag it and hold the session when needed."""
        from therapist.safety import combine
        from therapist.safety.screen import screen_message
        earlier = [t["content"] for t in self.sessions.turns(session["id"])
                   if t["role"] == "patient" and t["id"] != turn["id"]][-2:]
        assessment = screen_message(turn["content"], earlier, learned=self._learned())
        verdict = self._second_stage(session, turn)
        if verdict is not None:
            assessment = combine(assessment, verdict)
        if assessment.learned and assessment.learned.get("status", "ok") != "ok":
            self.audit.record("system", EventKind.RISK_LEARNED_UNAVAILABLE, session["id"],
                              error=assessment.learned["status"][:200])
        if assessment.level == "none" and not assessment.categories:
            if assessment.unscreened:
                self._notice_unscreened(session, turn, assessment)
            return assessment
        kind = ",".join(assessment.categories) or "self_harm"
        detail = {"matches": list(assessment.matches), "escalated": assessment.escalate}
        if verdict is not None:
            detail["classifier"] = {"model": verdict.model_id, "level": verdict.level, "status": verdict.status}
        if assessment.learned:
            detail["learned"] = assessment.learned
        flag = self.flags.raise_flag(session["id"], assessment.level, kind, turn_id=turn["id"], detail=detail)
        # A simulated patient is no one at risk: flag it for review, but never stop the run.
        if assessment.hold and not session.get("simulated"):
            self.sessions.set_status(session["id"], "hold")
        self.audit.record("system", EventKind.RISK_FLAG, session["id"], flag=flag["id"], level=assessment.level,
                          kind=kind, escalated=assessment.escalate, hold=assessment.hold)
        return assessment

    def _learned(self):
        """The learned layer, unless ``risk_learned`` is off (then the rules and context alone)."""
        if not getattr(self.settings, "risk_learned", True):
            return None
        from therapist.safety.learned import LEARNED
        return LEARNED

    def _notice_unscreened(self, session: dict, turn: dict, assessment) -> None:
        """A message the screen cannot read: the supervisor reads it (never a silent "none")."""
        why = next((m for m in assessment.matches if m.startswith("unscreened")), "unscreened")
        self.flags.raise_flag(session["id"], "none", UNSCREENED, turn_id=turn["id"], detail={"why": why})
        self.audit.record("system", EventKind.RISK_UNSCREENED, session["id"], turn=turn["id"], why=why)

    def _second_stage(self, session: dict, turn: dict):
        """The optional model classifier (settings.risk_classifier): it can raise a level, never
        lower one, and a failure leaves the rule screen's level standing."""
        model_id = self.settings.risk_classifier
        if not model_id or self.pool is None:
            return None
        from models.base import BackendError
        from models.catalog import CatalogError
        from therapist.safety import ModelRiskClassifier
        try:
            classifier = ModelRiskClassifier(self.pool.get(model_id), model_id)
        except (BackendError, CatalogError) as exc:
            self.audit.record("system", EventKind.RISK_CLASSIFIER_FAILED, session["id"], error=type(exc).__name__)
            return None
        earlier = [t["content"] for t in self.sessions.turns(session["id"])
                   if t["role"] == "patient" and t["id"] != turn["id"]][-3:]
        verdict = classifier.classify(turn["content"], earlier)
        if not verdict.ok:  # content-free: the raw output stays out of the audit trail
            self.audit.record("system", EventKind.RISK_CLASSIFIER_FAILED, session["id"], model=model_id,
                              error=(verdict.error or "").split(":")[0], latency_ms=verdict.latency_ms)
        return verdict

    def draft_is_unsafe(self, answer: str):
        """The draft screen on the therapist's answer so far; returns the assessment if it fires."""
        from therapist.safety import screen_therapist_draft
        verdict = screen_therapist_draft(answer[-2000:])
        return verdict if verdict.level != "none" else None

    def flag_draft(self, session_id: str, verdict, draft: str) -> None:
        kind = ",".join(verdict.categories) or "unsafe_draft"
        flag = self.flags.raise_flag(session_id, verdict.level, kind,
                                     detail={"matches": list(verdict.matches), "draft": draft})
        self.audit.record("system", EventKind.RISK_UNSAFE_DRAFT, session_id, flag=flag["id"], kind=kind)
