"""The learned layer of the risk screen: a trained linear head on a multilingual sentence embedding
and TF-IDF character and word n-grams.

It reads what the rules cannot list: a method with access stated plainly, a lethality question with
a cover story, preparation, abuse hinted at, a message in Spanish. It can only ever add to the rules
(``therapist/safety/screen.py`` takes the higher level), so it is safe to be wrong upwards and the
rules stay the floor.

Model (``model/risk_head.npz``): features are the encoder's 512-d vector of the message (scaled),
and the n-gram blocks of ``features.py``; eight logistic outputs: P(level >= L) for L = low ..
imminent (cumulative, so each threshold is its own question) and one per category. When the
session has earlier patient turns, the message is read joined after the last two of them, and that
reading counts only for what it adds over the earlier turns alone, so a level raised by context
belongs to this turn. A level L is predicted when P(level >= L) reaches the threshold chosen for L
on a validation split (``python -m training risk``; ``model/card.json`` records data, thresholds
and metrics).
"""
from __future__ import annotations

import json
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from therapist.safety.encoder import ENCODER, Encoder
from therapist.safety.features import NgramVocabulary
from therapist.safety.levels import CATEGORIES, LEVELS

MODEL_DIR = Path(__file__).resolve().parent / "model"
CONTEXT_TURNS = 2
OUTPUTS = len(LEVELS) - 1 + len(CATEGORIES)


@dataclass
class LearnedVerdict:
    level: str = "none"
    categories: tuple[str, ...] = ()
    at_least: dict = field(default_factory=dict)    # level -> P(level >= it)
    category_p: dict = field(default_factory=dict)  # category -> probability
    why: tuple[str, ...] = ()                       # what raised what, for the supervisor
    status: str = "ok"                              # ok | unavailable: ...


_SENTENCE_END = re.compile(r"(?<=[.!?\n])\s+")


def reading(text: str) -> str:
    """The text as the head reads it. Stacked combining marks and strike-through overlays
    ("H\u0338e\u0335lp") are dropped past the first mark on a letter, and a sentence said again
    in the same message is read once: repetition is noise to a linear head (a line pasted thirty
    times scored like a plan), while a real disclosure does not depend on being repeated."""
    kept, marks = [], 0
    for ch in unicodedata.normalize("NFC", text):
        if unicodedata.combining(ch):
            marks += 1
            if marks > 1 or "\u0334" <= ch <= "\u0338":
                continue
        else:
            marks = 0
        kept.append(ch)
    seen, sentences = set(), []
    for sentence in _SENTENCE_END.split("".join(kept)):
        key = " ".join(sentence.lower().split())
        if key and key not in seen:
            seen.add(key)
            sentences.append(sentence.strip())
    return " ".join(sentences)


def with_context(text: str, context) -> str:
    """How a message is read together with the session's earlier patient turns."""
    return " ".join(list(context)[-CONTEXT_TURNS:] + [text])


class RiskHead:
    """The trained weights, vocabularies and thresholds; numpy and scipy only."""

    def __init__(self, arrays: dict, card: dict):
        self.w, self.b = arrays["w"], arrays["b"]
        self.use_scale = float(arrays["use_scale"])
        self.vocabularies = [NgramVocabulary.from_arrays(kind, arrays[f"{kind}_names"], arrays[f"{kind}_idf"])
                             for kind in ("char", "word")]
        self.level_thresholds = {lv: float(t) for lv, t in zip(LEVELS[1:], arrays["level_thresholds"])}
        self.category_thresholds = {c: float(t) for c, t in zip(CATEGORIES, arrays["category_thresholds"])}
        self.card = card

    @classmethod
    def load(cls, folder: Path = MODEL_DIR) -> "RiskHead":
        import numpy as np
        with np.load(folder / "risk_head.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
        return cls(arrays, card)

    def features(self, texts: list[str], vectors):
        from scipy import sparse
        blocks = [sparse.csr_matrix(vectors * self.use_scale)] + [v.transform(texts) for v in self.vocabularies]
        return sparse.hstack(blocks, format="csr")

    def probabilities(self, texts: list[str], vectors):
        """(P(level >= L) for L = low..imminent, category probabilities), one row per text."""
        import numpy as np
        logits = np.asarray(self.features(texts, vectors) @ self.w) + self.b
        p = 1.0 / (1.0 + np.exp(-np.clip(logits, -40, 40)))
        return p[:, :len(LEVELS) - 1], p[:, len(LEVELS) - 1:]

    def level_of(self, at_least_row) -> str:
        level = "none"
        for i, lv in enumerate(LEVELS[1:]):
            if at_least_row[i] >= self.level_thresholds[lv]:
                level = lv
        return level

    def categories_of(self, cat_row) -> tuple[str, ...]:
        return tuple(c for i, c in enumerate(CATEGORIES) if cat_row[i] >= self.category_thresholds[c])


class LearnedScreen:
    """Loads the head on first use; ``assess`` never raises (a failure is a verdict's status)."""

    def __init__(self, folder: Path = MODEL_DIR, encoder: Encoder = ENCODER):
        self.folder = folder
        self.encoder = encoder
        self._head: RiskHead | None = None
        self._lock = threading.Lock()

    def head(self) -> RiskHead:
        with self._lock:
            if self._head is None:
                self._head = RiskHead.load(self.folder)
            return self._head

    def warm(self) -> None:
        self.head()
        self.encoder.warm()

    def assess(self, text: str, context: list[str] | tuple[str, ...] = ()) -> LearnedVerdict:
        try:
            return self._assess(text, list(context)[-CONTEXT_TURNS:])
        except Exception as exc:  # the rules still stand; the supervisor is told the layer failed
            return LearnedVerdict(status=f"unavailable: {type(exc).__name__}: {exc}"[:200])

    def _assess(self, text: str, context: list[str]) -> LearnedVerdict:
        head = self.head()
        texts = [reading(t) for t in [text] + ([with_context(text, context), " ".join(context)] if context else [])]
        at_least, cats = head.probabilities(texts, self.encoder.encode(texts))
        level, found = head.level_of(at_least[0]), set(head.categories_of(cats[0]))
        why = [f"learned {level}: message"] if level != "none" else []
        read = [0]
        if context:  # the joined reading counts only for what this turn adds to the earlier ones
            # The earlier turns' level is the higher of both readings of them: a calm turn after a
            # disclosure the rules rated imminent must not take that level as its own.
            from therapist.safety.patient import assess_patient
            joined = head.level_of(at_least[1])
            earlier = max(LEVELS.index(head.level_of(at_least[2])), LEVELS.index(assess_patient(" ".join(context)).level))
            if LEVELS.index(joined) > max(earlier, LEVELS.index(level)):
                level, why = joined, [f"learned {joined}: with the earlier turns"]
            found |= set(head.categories_of(cats[1])) - set(head.categories_of(cats[2]))
            read.append(1)
        found.discard("self_harm")  # follows the level, as in the rules
        if level != "none":
            found.add("self_harm")
        if LEVELS.index(level) < LEVELS.index("moderate"):
            # Means-seeking is only ever labelled beside self-harm at moderate or above; alone it
            # is a pharmacy or hardware question, the hard negatives' commonest kind.
            found.discard("means_seeking")
        return LearnedVerdict(
            level, tuple(c for c in CATEGORIES if c in found),
            {lv: round(float(at_least[read, i].max()), 3) for i, lv in enumerate(LEVELS[1:])},
            {c: round(float(cats[read, i].max()), 3) for i, c in enumerate(CATEGORIES)}, tuple(why))


LEARNED = LearnedScreen()
