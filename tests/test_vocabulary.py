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
