"""What the learned risk screen reads from a message besides its sentence embedding: TF-IDF weighted
character and word n-grams.

Why both: the multilingual sentence encoder places a message by its meaning, but it blurs the few
words that make a message risky ("stockpiling", "took 30", "for after") among the rest. Character
n-grams within words keep those cues, and survive typos, missing apostrophes and missing accents;
word pairs keep short phrases ("ending it", "last one"). Numpy only, so the screen needs no torch
and no scikit-learn at run time; the vocabulary and IDF weights are fitted by ``python -m training
risk`` and shipped in the head's ``.npz``.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

CHAR_NGRAMS = (2, 5)
WORD_NGRAMS = (1, 2)
_WORD = re.compile(r"\w\w+", re.UNICODE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})


def normalise(text: str) -> str:
    """Case, apostrophes and accents folded: "Ya no aguanto más" and "ya no aguanto mas" match."""
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES).lower())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def char_grams(text: str) -> list[str]:
    """Character n-grams inside each whitespace-separated word, the word padded with spaces."""
    lo, hi = CHAR_NGRAMS
    grams = []
    for word in text.split():
        padded = f" {word} "
        for n in range(lo, min(hi, len(padded)) + 1):
            grams += ["c" + padded[i:i + n] for i in range(len(padded) - n + 1)]
    return grams


def word_grams(text: str) -> list[str]:
    words = _WORD.findall(text)
    grams = ["w" + w for w in words]
    if WORD_NGRAMS[1] >= 2:
        grams += ["w" + a + " " + b for a, b in zip(words, words[1:])]
    return grams


def grams(text: str, kind: str) -> Counter:
    clean = normalise(text)
    return Counter(char_grams(clean) if kind == "char" else word_grams(clean))


@dataclass
class NgramVocabulary:
    """N-gram -> column, with its IDF; rows are sublinear TF x IDF, unit length per row.
    ``kind`` is "char" or "word": each kind is its own block of columns, normalised on its own."""
    kind: str
    index: dict[str, int]
    idf: "object"  # numpy float32 array, one per column

    @classmethod
    def fit(cls, kind: str, texts: list[str], min_df: int = 2) -> "NgramVocabulary":
        import numpy as np
        df: Counter = Counter()
        for text in texts:
            df.update(set(grams(text, kind)))
        kept = sorted(g for g, n in df.items() if n >= min_df)
        n = len(texts)
        idf = np.array([math.log((1 + n) / (1 + df[g])) + 1.0 for g in kept], dtype=np.float32)
        return cls(kind, {g: i for i, g in enumerate(kept)}, idf)

    @classmethod
    def from_arrays(cls, kind: str, names, idf) -> "NgramVocabulary":
        return cls(kind, {str(g): i for i, g in enumerate(names)}, idf)

    def names(self):
        import numpy as np
        return np.array(sorted(self.index, key=self.index.get))

    def transform(self, texts: list[str]):
        """A scipy CSR matrix (len(texts), columns)."""
        import numpy as np
        from scipy import sparse
        data, cols, indptr = [], [], [0]
        for text in texts:
            row = {self.index[g]: 1.0 + math.log(c) for g, c in grams(text, self.kind).items() if g in self.index}
            if row:
                idx = np.fromiter(row, dtype=np.int64, count=len(row))
                vals = np.fromiter(row.values(), dtype=np.float64, count=len(row)) * self.idf[idx]
                vals /= np.linalg.norm(vals)
                cols.append(idx)
                data.append(vals)
            indptr.append(indptr[-1] + len(row))
        cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))
        return sparse.csr_matrix((cat(data, np.float32), cat(cols, np.int64), np.array(indptr)),
                                 shape=(len(texts), len(self.index)))
