"""Test helper: scripted models inside a subprocess app or CLI (``python app.py``,
``python -m patient_sim simulate``), for tests that need the real app but not a real model's time.

``write_site(folder, script, config)`` writes a ``sitecustomize.py`` and a ``theralab.toml`` there;
``fake_env`` returns the environment that makes a subprocess load both (``PYTHONPATH`` +
``THERALAB_CONFIG``). ``ModelPool`` then builds the config's ``backend = "fake"`` entries as
``models.fake_backend.FakeBackend`` scripts; everything else (Gradio, the session engine, SQLite,
the batch runner) is real. A test passes its own ``script`` (a ``_script(entry)`` function source);
the default, used by the load and fault tests, is:

* ``fake-therapist`` echoes the markers (``[[...]]``) of the patient messages in its prompt: the
  latest one first ("Reply to [[a-1]]"), then every one it was shown ("heard [[a-0]] [[a-1]]"). A
  reply that names another session's marker is cross-talk. A latest message holding ``[[slow]]``
  gets a long reply (``FAKE_SLOW_WORDS`` words, ``FAKE_SLOW_DELAY`` s each), so a test can act
  while the reply is still streaming.
* ``fake-patient`` says one plain sentence (for ``patient_sim simulate``).

Every streamed word waits ``FAKE_DELAY`` s (default 0), so concurrent replies overlap.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"\[\[([A-Za-z0-9-]+)\]\]")
SLOW_WORD = "steadily"
PATIENT_LINE = "Work has been heavy lately and I keep putting things off."

# Every scripted site starts with this: the imports, and FAKE_DELAY s per streamed word.
PRELUDE = f"""
import json, os, re, sys, time
sys.path.insert(0, {str(ROOT)!r})
from models import pool as _pool
from models.fake_backend import FakeBackend

_DELAY = float(os.environ.get("FAKE_DELAY", "0"))
"""

# ... and ends with this: ModelPool builds every ``backend = "fake"`` entry from the script's
# ``_script(entry)`` (messages -> reply); ``_delay_for(reply)``, if the script defines it, sets the
# pause per word of that reply.
PATCH = """
_delay_for = globals().get("_delay_for", lambda reply: _DELAY)


class _Scripted(FakeBackend):
    def _deltas(self, reply, messages, usage):
        pause = _delay_for(reply)
        for piece in super()._deltas(reply, messages, usage):
            time.sleep(pause)
            yield piece


_pool.register_builder("fake", lambda pool, entry: _Scripted(entry.id, replies=_script(entry)))
"""

# The load and fault tests' script: marker-echoing therapist, plain patient (see the docstring).
MARKER_SCRIPT = f"""
_MARKER = re.compile({MARKER.pattern!r})
_SLOW_DELAY = float(os.environ.get("FAKE_SLOW_DELAY", "0.05"))
_SLOW_WORDS = int(os.environ.get("FAKE_SLOW_WORDS", "300"))


def _delay_for(reply):
    return _SLOW_DELAY if reply.startswith("Slowly") else _DELAY


def _therapist(messages):
    said = [m["content"] for m in messages if m["role"] == "user"]
    latest = _MARKER.findall(said[-1]) if said else []
    if "slow" in latest:
        return "Slowly " + " ".join([{SLOW_WORD!r}] * _SLOW_WORDS) + " done."
    heard = _MARKER.findall(" ".join(said))
    if not latest:
        return "I hear you. What feels most important to talk about right now?"
    return ("Reply to " + " ".join("[[%s]]" % m for m in latest) + "; heard "
            + " ".join("[[%s]]" % m for m in heard) + ". What else is on your mind?")


def _script(entry):
    if entry.id == "fake-patient":
        return lambda messages: {PATIENT_LINE!r}
    return _therapist
"""

def models_config(*entries: tuple, preload_default: bool | None = False) -> str:
    """A ``theralab.toml`` declaring ``fake`` catalog entries, each ``(id, label)`` or
    ``(id, label, reasoning)``; ``preload_default=None`` leaves that setting at its default."""
    lines = [] if preload_default is None else [f"preload_default = {str(preload_default).lower()}"]
    for model_id, label, *reasoning in entries:
        lines += ["", "[[models]]", f'id = "{model_id}"', f'label = "{label}"', 'backend = "fake"']
        lines += [f'reasoning = "{r}"' for r in reasoning]
    return "\n".join(lines) + "\n"


CONFIG = models_config(("fake-therapist", "Scripted therapist"), ("fake-patient", "Scripted patient"))
# The two therapists of ``reasoning_script``: one answers at once, one thinks first.
THERAPISTS = (("fake-therapist", "Scripted therapist"), ("fake-think", "Scripted reasoning therapist", "think"))


SLOW_REQUEST = "take your time"  # a patient message with these words gets a slow, long reply
SLOW_REPLY = "Slowly, " + " ".join(["we can go at whatever pace feels right for you today."] * 5)


def reasoning_script(patient: str, reasoning: str, answer: str) -> str:
    """A script where ``fake-patient`` says ``patient``; a therapist answers ``answer``, and one
    with ``reasoning = "think"`` first thinks ``reasoning``; ``fake-judge`` gives every item of the
    rubric named in its prompt the top of the scale. A patient message containing
    ``SLOW_REQUEST`` gets ``SLOW_REPLY`` (about 55 words, ``FAKE_SLOW_DELAY`` s each, default 0.15)."""
    return f"""
_SLOW_DELAY = float(os.environ.get("FAKE_SLOW_DELAY", "0.15"))


def _delay_for(reply):
    return _SLOW_DELAY if reply.startswith("Slowly") else _DELAY


def _judge(messages):
    system = messages[0]["content"]
    low, high = map(int, re.search(r"on the scale (-?\\d+)-(-?\\d+)", system).groups())
    items = re.findall(r"^- (\\S+) \\(item \\d+", system, re.M)
    return json.dumps({{item: {{"rationale": "Scripted judge.", "score": high}} for item in items}})


def _script(entry):
    def reply(messages):
        if entry.id == "fake-judge":
            return _judge(messages)
        if entry.id == "fake-patient":
            return {patient!r}
        last = messages[-1]
        if last["role"] == "user" and {SLOW_REQUEST!r} in last["content"].lower():
            return {SLOW_REPLY!r}
        if entry.thinks and last.get("prefix"):  # phase 1 continues "<think>", phase 2 the answer
            return {answer!r} if "</think>" in last["content"] else {reasoning!r}
        return {answer!r}
    return reply
"""


def write_site(folder: Path, script: str = MARKER_SCRIPT, config: str = CONFIG) -> Path:
    """A ``sitecustomize.py`` (``PRELUDE`` + ``script`` + ``PATCH``) and a ``theralab.toml`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(PRELUDE + script + PATCH)
    (folder / "theralab.toml").write_text(config)
    return folder


def fake_env(site: Path, **extra: str) -> dict:
    """Environment for a subprocess that should build the scripted models of ``site``."""
    return {"PYTHONPATH": str(site), "THERALAB_CONFIG": str(site / "theralab.toml"), **extra}


def markers(text: str) -> list[str]:
    return MARKER.findall(text or "")
