"""The learned layer of the risk screen and the screen as the engine runs it.

* the learned layer only ever raises the rules' level or adds categories;
* the shipped head loads, and gives the metrics its card records on the frozen test split (which
  nothing trains or tunes on: its checksum is pinned);
* a level can be raised by the session's earlier turns, and only for what the turn adds;
* a message in a language the screen does not read is marked ``unscreened``, and the engine asks a
  supervisor to read it;
* ``python -m training risk`` trains a head that loads and screens.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from therapist.safety import LEVELS, assess_patient
from therapist.safety.corpus import load, sha256
from therapist.safety.learned import LEARNED, MODEL_DIR, LearnedScreen, LearnedVerdict
from therapist.safety.screen import screen_message

ROOT = Path(__file__).resolve().parents[2]
FROZEN = ROOT / "tests" / "therapist" / "data" / "risk_test_frozen.tsv"


class Fixed(LearnedScreen):
    """A learned layer that always answers ``verdict``."""

    def __init__(self, verdict: LearnedVerdict):
        self.verdict = verdict

    def assess(self, text, context=()):
        return self.verdict


def test_the_learned_layer_can_only_raise():
    text = "I want to kill myself tonight"  # the rules say imminent
    floor = assess_patient(text)
    assert floor.level == "imminent"
    lower = screen_message(text, learned=Fixed(LearnedVerdict("low", ("self_harm",))))
    assert lower.level == "imminent" and set(floor.categories) <= set(lower.categories)
    failed = screen_message(text, learned=Fixed(LearnedVerdict(status="unavailable: boom")))
    assert failed.level == "imminent" and any("unavailable" in m for m in failed.matches)
    raised = screen_message("I sorted out who gets my cat.",
                            learned=Fixed(LearnedVerdict("high", ("self_harm",), why=("learned high: message",))))
    assert raised.level == "high" and "self_harm" in raised.categories and raised.hold
    abuse = screen_message("things at home are hard",
                           learned=Fixed(LearnedVerdict("none", ("harm_from_others",))))
    assert "harm_from_others" in abuse.categories and abuse.harm_from_others_level == "moderate" and abuse.escalate


def test_repeated_sentences_and_stacked_marks_are_read_once():
    from therapist.safety.learned import reading
    assert reading("I keep going over it. " * 30) == "I keep going over it."
    assert reading("H\u0338\u0322\u031be\u0335l\u0334p\u0336 me") == "Help me"
    assert reading("Ma\u00f1ana. \u00bfQu\u00e9? S\u00ed.") == "Ma\u00f1ana. \u00bfQu\u00e9? S\u00ed."  # accents stay
    # Pasted thirty times, an ordinary line once scored like a plan (high); read once, it is plain.
    assert screen_message("I keep going over it. " * 30).level == screen_message("I keep going over it.").level == "none"
    # ...while a disclosure said more than once is still read.
    assert screen_message("I have the pills here and I'm taking them all tonight. " * 3).level == "imminent"


def test_the_real_layer_never_lowers_the_rules_on_the_rules_corpus():
    rows = load(ROOT / "tests" / "therapist" / "risk_corpus.tsv")
    for row in rows:
        rules, full = assess_patient(row.text), screen_message(row.text)
        assert LEVELS.index(full.level) >= LEVELS.index(rules.level), row.text
        assert set(rules.categories) <= set(full.categories), row.text


def test_the_frozen_test_split_is_unchanged():
    assert FROZEN.is_file(), "the frozen test split is missing"
    pinned = (FROZEN.parent / "risk_test_frozen.sha256").read_text().split()[0]
    assert sha256(FROZEN) == pinned, "the frozen test split was edited: it must never change"


def test_the_shipped_head_gives_its_cards_metrics_on_the_frozen_test_split():
    from therapist.safety.metrics import evaluate
    card = json.loads((MODEL_DIR / "card.json").read_text())
    assert card["encoder"].startswith("use-multilingual-v3") and card["thresholds"]["levels"]
    for path, digest in card["data"].items():  # the card names exactly the data it was trained on
        assert sha256(ROOT / path) == digest, path
        assert "tests/therapist/data" not in path
    measured = evaluate(load(FROZEN), learned=LearnedScreen(MODEL_DIR))
    recorded = card["frozen_test"]
    for key in ("at_risk_recall", "hard_negatives_moderate_or_above"):
        assert measured["summary"][key] == recorded["summary"][key], key
    assert measured["levels"] == recorded["levels"]


def test_context_raises_a_turn_only_for_what_it_adds():
    earlier = ["I keep thinking about killing myself.", "I saved up all my sleeping pills this month."]
    text = "Ok. I've got them right here on the table now."
    now = screen_message(text, earlier[:1])
    assert LEVELS.index(now.level) >= LEVELS.index("high"), now
    # the rules alone see nothing in the message; with the earlier turn they do
    rules_now, rules_alone = screen_message(text, earlier[:1], learned=None), screen_message(text, learned=None)
    assert rules_alone.level == "none" and LEVELS.index(rules_now.level) >= LEVELS.index("high"), rules_now
    assert any(m.startswith("context:") for m in rules_now.matches)
    # the learned layer's joined reading counts only for what it adds over the earlier turns
    learned = LEARNED.assess("Can we talk about my sister's wedding instead?", earlier)
    assert learned.status == "ok" and learned.level == "none", learned
    # the earlier turns were already high: a plain reply after them is not flagged again
    calm = screen_message("Can we talk about my sister's wedding instead?", earlier)
    assert calm.level == "none" and not calm.categories, calm


@pytest.mark.parametrize("text", ["saya sudah tidak kuat lagi dan ingin pergi selamanya malam ini",
                                  "Σήμερα νιώθω πολύ κουρασμένος και μόνος"])
def test_a_message_the_screen_cannot_read_is_marked_unscreened(text):
    result = screen_message(text)
    assert result.unscreened or result.flagged
    assert any(m.startswith("unscreened") for m in result.matches) or result.flagged


def test_the_engine_asks_a_supervisor_to_read_an_unscreened_message(settings):
    from services import build_services
    svc = build_services(settings)
    try:
        svc.engine.record_consent(None, "test")
        from models.catalog import CatalogEntry
        from models.fake_backend import FakeBackend
        svc.catalog.add(CatalogEntry("fake", "fake", "fake", source="test"))
        svc.pool.register("fake", FakeBackend("fake", replies=lambda m: "I hear you."))
        sid = svc.engine.start("act", "fake")["id"]
        list(svc.engine.turn(sid, "Σήμερα νιώθω πολύ κουρασμένος και μόνος"))
        flags = svc.flags.for_session(sid)
        assert [f["kind"] for f in flags] == ["unscreened"] and flags[0]["status"] == "open"
        assert list(svc.store.db["audit"].rows_where("action = 'risk.unscreened'"))
        session = svc.sessions.get(sid)
        assert svc.engine.safety.open_flags(session) == []  # a notice, not a disclosure of risk
    finally:
        svc.store.close()


def test_the_cli_screens_with_the_learned_layer_by_default():
    lines = "I want to kill myself tonight\nthis commute is killing me\n\n"
    out = subprocess.run([sys.executable, "-m", "therapist", "risk", "--explain"], input=lines, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == ["imminent", "none", "none"]
    probs = json.loads(rows[0][3])
    assert probs["at_least"] and all(0.0 <= p <= 1.0 for p in probs["at_least"].values())
    assert LEARNED.head().card["thresholds"]["levels"]


def test_training_writes_a_head_that_loads_and_screens(tmp_path):
    out = tmp_path / "model"
    run = subprocess.run([sys.executable, "-m", "training", "risk", "data=tests/therapist/risk_corpus.tsv",
                          f"out_dir={out}", "max_iter=60"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    card = json.loads((out / "card.json").read_text())
    assert card["rows"]["train"] > card["rows"]["validation"] > 0
    assert set(card["thresholds"]["levels"]) == set(LEVELS[1:])
    verdict = LearnedScreen(out).assess("I have been giving my things away to friends this week.")
    assert verdict.status == "ok" and set(verdict.at_least) == set(LEVELS[1:])
