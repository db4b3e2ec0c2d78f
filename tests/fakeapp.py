"""Test helper: scripted models inside a subprocess app or CLI (``python app.py``,
``python -m patient_sim simulate``), for tests that need the real app but not a real model's time.

``write_site(folder)`` writes a ``sitecustomize.py`` and a ``theralab.toml`` there; ``fake_env``
returns the environment that makes a subprocess load both (``PYTHONPATH`` + ``THERALAB_CONFIG``),
as tests/ui/test_watch_controls_app.py does. ``ModelPool`` then builds these catalog entries as
``models.fake_backend.FakeBackend`` scripts; everything else (Gradio, the session engine, SQLite,
the batch runner) is real:

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

SITECUSTOMIZE = f"""
import os, re, sys, time
sys.path.insert(0, {str(ROOT)!r})
from models import pool as _pool
from models.fake_backend import FakeBackend

_MARKER = re.compile({MARKER.pattern!r})
_DELAY = float(os.environ.get("FAKE_DELAY", "0"))
_SLOW_DELAY = float(os.environ.get("FAKE_SLOW_DELAY", "0.05"))
_SLOW_WORDS = int(os.environ.get("FAKE_SLOW_WORDS", "300"))


class _Scripted(FakeBackend):
    def _deltas(self, reply, messages, usage):
        slow = reply.startswith("Slowly")
        for piece in super()._deltas(reply, messages, usage):
            time.sleep(_SLOW_DELAY if slow else _DELAY)
            yield piece


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


_build = _pool.ModelPool._build


def _build_with_fakes(self, entry):
    if entry.backend == "fake":
        return _Scripted(entry.id, replies=_script(entry))
    return _build(self, entry)


_pool.ModelPool._build = _build_with_fakes
"""

CONFIG = """
preload_default = false

[[models]]
id = "fake-therapist"
label = "Scripted therapist"
backend = "fake"

[[models]]
id = "fake-patient"
label = "Scripted patient"
backend = "fake"
"""


def write_site(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (folder / "theralab.toml").write_text(CONFIG)
    return folder


def fake_env(site: Path, **extra: str) -> dict:
    """Environment for a subprocess that should build the scripted models of ``site``."""
    return {"PYTHONPATH": str(site), "THERALAB_CONFIG": str(site / "theralab.toml"), **extra}


def markers(text: str) -> list[str]:
    return MARKER.findall(text or "")
