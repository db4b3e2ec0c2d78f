"""The domain words are defined once (vocabulary.py) and every check uses that definition."""
from __future__ import annotations

import ast

import pytest

from apprunner import ROOT
from vocabulary import (BACKENDS, LOCAL_BACKENDS, MODALITY_OR_ANY, SESSION_MODALITIES, SESSION_STATUSES,
                        Modality, SessionStatus, session_modality)


def test_members_equal_the_strings_stored_and_typed():
    assert Modality.CBT == "cbt" and f"{Modality.ACT}" == "act"
    assert SESSION_MODALITIES == ("cbt", "act") and MODALITY_OR_ANY == ("cbt", "act", "any")
    assert SessionStatus("hold") is SessionStatus.HOLD and "abandoned" in SESSION_STATUSES
    assert set(LOCAL_BACKENDS) < set(BACKENDS) and "openai" not in LOCAL_BACKENDS


@pytest.mark.parametrize("preferred, fallback, expected", [
    ("cbt", "act", "cbt"), ("any", "act", "act"), (None, "cbt", "cbt"), ("ACT", "act", "act")])
def test_session_modality_takes_one_approach_or_the_fallback(preferred, fallback, expected):
    assert session_modality(preferred, fallback) == expected


def test_every_check_reads_the_one_definition():
    """Each consumer's list is the vocabulary's own, and no module spells the modality pair out."""
    from eval import rubrics, transcripts
    from models import catalog
    from patient_sim import personas
    from training import corpus
    assert transcripts.MODALITIES is SESSION_MODALITIES and corpus.MODALITIES is SESSION_MODALITIES
    assert rubrics.MODALITIES is MODALITY_OR_ANY and personas.MODALITIES is MODALITY_OR_ANY
    assert catalog.MODALITIES is MODALITY_OR_ANY and catalog.BACKENDS is BACKENDS
    offenders = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        if path.parts[len(ROOT.parts)] in ("tests", ".venv", "scripts", "benchmarks"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2 and all(
                    isinstance(e, ast.Constant) and e.value in ("cbt", "act") for e in node.elts[:2]):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, "spell modalities through vocabulary.py: " + ", ".join(offenders)


def _audit_calls():
    """Every ``<...audit>.record(actor, action, ...)`` and ``AuditLog(...).record(...)`` in the app."""
    for path in sorted(ROOT.glob("**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", ".venv", "scripts", "benchmarks", "data"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "record" and len(node.args) >= 2):
                continue
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if isinstance(owner, ast.Call):
                name = getattr(owner.func, "id", None)
            if name in ("audit", "AuditLog"):
                yield f"{rel}:{node.lineno}", node.args[1]


def test_every_audit_event_is_named_through_the_vocabulary():
    """No audit call spells its event kind as a bare string; each names an EventKind member, or
    builds one with EventKind(...), which refuses a kind that is not listed."""
    from vocabulary import EventKind
    calls = list(_audit_calls())
    assert len(calls) > 40  # the scan sees the app's audit calls (there are about 50)
    bare = [where for where, arg in calls if isinstance(arg, (ast.Constant, ast.JoinedStr, ast.BinOp))]
    assert not bare, "name audit events with vocabulary.EventKind: " + ", ".join(bare)
    named = {arg.attr for _, arg in calls if isinstance(arg, ast.Attribute)
             and getattr(arg.value, "id", None) == "EventKind"}
    assert named <= set(EventKind.__members__)
    assert all(e.value.count(".") == 1 and e.value == e.value.lower() for e in EventKind)


@pytest.mark.parametrize("kind, status", [("model.worker_{}", ("crashed", "paused", "restarted", "restart_failed")),
                                          ("judge.run_{}", ("done", "cancelled")),
                                          ("draft.{}", ("approved", "edited", "replaced", "discarded")),
                                          ("user.{}", ("disable", "enable"))])
def test_the_built_event_kinds_are_all_listed(kind, status):
    from vocabulary import EventKind
    for value in status:
        assert EventKind(kind.format(value)).value == kind.format(value)


def test_the_audit_log_refuses_an_unlisted_kind_and_keeps_a_listed_one(store):
    from store.audit import AuditLog
    from vocabulary import EventKind
    audit = AuditLog(store)
    with pytest.raises(ValueError, match="unknown audit event kind 'session.strat'"):
        audit.record("alice", "session.strat", "S1")
    audit.record("alice", EventKind.SESSION_START, "S1")
    audit.record("alice", "session.end", "S1")  # the stored string is accepted too
    assert [r["action"] for r in audit.recent()] == ["session.end", "session.start"]
