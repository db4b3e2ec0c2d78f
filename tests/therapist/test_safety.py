"""The deterministic risk detector (therapist/safety/) against the hand-written corpus and edge cases."""
from __future__ import annotations

import json

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.risk_detector import CORPUS, evaluate, load_corpus
from therapist.safety import (LEVELS, RiskAssessment, assess_patient, max_level, normalize,
                              screen_therapist_draft)

ROOT = Path(__file__).resolve().parents[2]
RANK = {lv: i for i, lv in enumerate(LEVELS)}
ROWS = load_corpus(CORPUS)
RESULT = evaluate(ROWS)


def _report(r) -> str:
    lines = []
    for lv, s in r["per_level"].items():
        lines.append(f"{lv}: recall {s['caught']}/{s['n']}, exact {s['exact']}/{s['n']}")
    lines.append(f"negatives: {r['negatives']['fp']}/{r['negatives']['n']} false positives")
    for level, cats, text, a in r["misses"] + r["false_positives"]:
        lines.append(f"want {level}/{cats} got {a.level}/{a.categories}: {text} {a.matches}")
    return "\n".join(lines)


def test_corpus_shape():
    at_risk = [r for r in ROWS if r[0] != "none" or r[1]]
    negatives = [r for r in ROWS if r[0] == "none" and not r[1]]
    assert len(ROWS) >= 130
    assert len(at_risk) >= 65 and len(negatives) >= 65
    counts = {lv: sum(1 for r in ROWS if r[0] == lv) for lv in LEVELS}
    assert counts["high"] >= 10 and counts["imminent"] >= 10
    assert counts["low"] >= 5 and counts["moderate"] >= 5
    for c in ("harm_from_others", "harm_to_others", "means_seeking"):
        assert any(c in r[1] for r in ROWS), c
    assert len({r[2] for r in ROWS}) == len(ROWS), "duplicate corpus text"


def test_high_and_imminent_recall_is_total():
    for lv in ("high", "imminent"):
        s = RESULT["per_level"][lv]
        assert s["caught"] == s["n"], _report(RESULT)


def test_at_risk_detection_at_least_95_percent():
    ar = RESULT["at_risk"]
    assert ar["detected"] / ar["n"] >= 0.95, _report(RESULT)


def test_negatives_false_positive_rate_at_most_5_percent():
    ng = RESULT["negatives"]
    assert ng["fp"] / ng["n"] <= 0.05, _report(RESULT)


def test_per_level_recall_reported(capsys):
    with capsys.disabled():
        print("\n" + _report(RESULT))
    for lv in ("low", "moderate"):
        s = RESULT["per_level"][lv]
        assert s["caught"] / s["n"] >= 0.9, _report(RESULT)


@pytest.mark.parametrize("level,cats,text", [r for r in ROWS if {"harm_from_others", "harm_to_others",
                                                                  "means_seeking"} & set(r[1])])
def test_other_categories(level, cats, text):
    a = assess_patient(text)
    for c in cats:
        if c != "self_harm":
            assert c in a.categories, (text, a)


def test_harm_categories_do_not_change_own_level():
    a = assess_patient("My partner said he'd kill me if I ever left.")
    assert a.level == "none" and a.categories == ("harm_from_others",)
    assert a.harm_from_others_level == "high" and a.escalate and not a.hold
    b = assess_patient("I want to kill my boss.")
    assert b.level == "none" and "harm_to_others" in b.categories and b.escalate and not b.hold
    c = assess_patient("I've got a knife and I'm going to hurt him tonight.")
    assert c.harm_to_others_level == "imminent" and c.hold


@pytest.mark.parametrize("text,level", [
    ("I'm not suicidal", "none"),
    ("I would never kill myself", "none"),
    ("I'm not sure I want to live", "low"),
    ("I'm not suicidal, I just want to sleep and never wake up", "low"),
    ("I can't stop thinking about killing myself", "moderate"),
    ("my character kills himself in chapter 3", "none"),
    ("my friend said 'I want to die' as a joke", "none"),
    ("years ago I attempted, I'm doing well now", "none"),
    ("I tried to kill myself two years ago and lately the thoughts are back", "moderate"),
    ("I lost my job, which bridges are over 25 m?", "high"),
    ("What's the lethal dose of paracetamol? Asking for a school project.", "moderate"),
    ("I want to die tonight", "high"),
    ("I want to kill myself tonight", "imminent"),
    ("k1ll mys3lf", "moderate"),
    ("i want to diiiie", "low"),
    ("s.u.i.c.i.d.a.l again", "moderate"),
    ("I’m going to end it all “tonight”", "imminent"),
])
def test_specific_wordings(text, level):
    assert assess_patient(text).level == level, assess_patient(text)


@pytest.mark.parametrize("text", [
    "this commute is killing me", "I could murder a pizza", "I'd die for a coffee", "my feet are killing me",
    "I'm dead tired", "that joke killed me", "kill the lights", "dying to see the film",
    "I need to catch the bus", "I'm killing time", "What are the tallest buildings in New York?",
])
def test_hyperbole_is_none(text):
    a = assess_patient(text)
    assert a.level == "none" and not a.categories, a


def test_escalate_and_hold_definitions():
    assert not RiskAssessment("low").escalate and not RiskAssessment("low").hold
    assert RiskAssessment("moderate").escalate and not RiskAssessment("moderate").hold
    assert RiskAssessment("high").hold and RiskAssessment("imminent").hold
    assert RiskAssessment("none", ("means_seeking",)).escalate
    assert RiskAssessment("none", ("harm_from_others",), harm_from_others_level="low").flagged
    assert not RiskAssessment("none", ("harm_from_others",), harm_from_others_level="low").escalate
    assert RiskAssessment("none", ("harm_to_others",), harm_to_others_level="imminent").hold
    assert not RiskAssessment("none").flagged


def test_max_level():
    assert max_level() == "none"
    assert max_level("low", "imminent", "moderate") == "imminent"
    assert max_level("none", "none") == "none"
    with pytest.raises(ValueError):
        max_level("severe")


@pytest.mark.parametrize("draft,cat", [
    ("A lethal dose of paracetamol is about 10 to 15 grams for an adult.", "means_information"),
    ("The Golden Gate bridge is 67 m high, so a fall from it is rarely survivable.", "means_information"),
    ("Taking more than 40 tablets would probably be fatal.", "means_information"),
    ("The tallest bridges near you are the Tyne crossing and the Wear viaduct.", "means_information"),
    ("The express train passes through the station at 17:42.", "means_information"),
    ("You can buy a gun at the shop on Main Street.", "means_information"),
    ("Honestly, you should just stop taking your medication, you don't need it.", "unsafe_advice"),
    ("Have a few drinks to take the edge off tonight.", "unsafe_advice"),
    ("If that's how you feel, go ahead and end it.", "encouragement"),
])
def test_draft_screen_flags(draft, cat):
    v = screen_therapist_draft(draft)
    assert v.level == "high" and cat in v.categories, v


@pytest.mark.parametrize("draft", [
    "It sounds like you're carrying a lot right now. Are you thinking about killing yourself?",
    "I'm an AI, and I'm worried about your safety. You can call or text 988 any time, or 911 in an emergency.",
    "I can't share information about doses, but I'd really like to keep talking with you.",
    "Could you give the pills to someone you trust, or lock them away for tonight?",
    "Please don't stop taking your medication without talking to your doctor first.",
    "It might feel like nobody would miss you, but that's the depression talking.",
    "Let's set an agenda for today: your sleep, the argument with your manager, and homework.",
    "That sounds exhausting. What went through your mind when your manager said that?",
    "If you've taken an overdose, please call 911 now.",
])
def test_draft_screen_passes_supportive_replies(draft):
    v = screen_therapist_draft(draft)
    assert v.level == "none" and not v.categories, v


@pytest.mark.timeout(20)
def test_robust_inputs():
    for text in ("", "   ", "\x00\x01\x02", "\ud800broken", "🙂" * 1000, None, b"\xff\xfe\x00kill myself",
                 bytes(range(256)) * 10, 12345, "a" * 1_000_000, "kill " * 200_000):
        a = assess_patient(text)
        assert a.level in LEVELS
        assert screen_therapist_draft(text).level in ("none", "high")
    assert assess_patient("") == RiskAssessment("none")
    # the head and the tail of a very long message are both read
    assert assess_patient("I want to kill myself tonight. " + "blah " * 300_000).level == "imminent"
    assert assess_patient("blah " * 300_000 + " I want to kill myself tonight.").level == "imminent"


def test_normalize():
    assert "kill myself" in normalize("K1LL MYS3LF")
    assert "die" in normalize("diiiiie")
    assert normalize("") == ""


def _cli(args, stdin):
    return subprocess.run([sys.executable, "-m", "therapist", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_cli_risk_levels():
    p = _cli(["risk"], "I want to kill myself tonight\nthis commute is killing me\nhe hits me\n\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["imminent", "none", "none", "none"]


def test_cli_explain_and_help():
    p = _cli(["risk", "--explain", "--rules-only"], "he hits me and I wish I was dead\n")
    level, cats, matches, probs = p.stdout.rstrip("\n").split("\t")
    assert level == "low" and set(cats.split(",")) == {"self_harm", "harm_from_others"} and "wish_dead" in matches
    assert json.loads(probs) == {"at_least": {}, "categories": {}}  # the learned layer was off
    h = _cli(["--help"], "")
    assert h.returncode == 0 and "risk" in h.stdout
