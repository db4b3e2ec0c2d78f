"""Text normalisation for the risk screens: NFKC, de-obfuscation, chat forms, sentence splitting.

``normalize`` is the first half (quotes kept, so quoted speech can be recognised); ``_finish`` is the
second half (apostrophes, punctuation, contractions) applied once quotes have been dealt with.
"""
from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 20_000          # longer text: first HEAD_CHARS + last TAIL_CHARS are assessed
HEAD_CHARS = 16_000
TAIL_CHARS = 4_000

_QUOTE_MAP = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                            "`": "'", "\u00b4": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
                            "\u00ab": '"', "\u00bb": '"', "\u2013": "-", "\u2014": " - ",
                            "\u2212": "-"})
_LAUGH_EMOJI = re.compile("[\U0001F602\U0001F923\U0001F606\U0001F605\U0001F639]")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_TOKEN = re.compile(r"(?<![\w@$])[a-z@$][a-z0-9@$]*(?![\w@$])")
_PRE_SLANG = [(re.compile(r"\b(?:2nite|2night|tonite)\b"), "tonight"), (re.compile(r"\bb4\b"), "before"),
              (re.compile(r"\b(?:2day)\b"), "today")]
_SEPARATED = re.compile(r"\b(?:[a-z] ?[-_.*] ?){3,}[a-z]\b")
_SPACED = re.compile(r"\b(?:[a-z] ){3,}[a-z]\b")
_DOTTED = re.compile(r"\b(?:[a-z]\.){2,}[a-z]?(?![a-z])")
_REPEATS = re.compile(r"([a-z])\1{2,}")
_WORD_MAP = [
    (r"\bwanna\b", "want to"), (r"\b(?:gonna|gunna|finna)\b", "going to"), (r"\bgotta\b", "got to"),
    (r"\bkinda\b", "kind of"), (r"\btryna\b", "trying to"), (r"\bu\b", "you"), (r"\bur\b", "your"),
    (r"\brn\b", "right now"), (r"\bidk\b", "i dont know"), (r"\b(?:cuz|coz|bc)\b", "because"),
    (r"\bppl\b", "people"), (r"\bpls\b", "please"), (r"\bi am\b", "im"), (r"\bi have\b", "ive"),
    (r"\bi will\b", "ill"), (r"\bi would\b", "id"), (r"\bdo not\b", "dont"), (r"\bcan ?not\b", "cant"),
    (r"\bwill not\b", "wont"), (r"\bwould not\b", "wouldnt"), (r"\bis not\b", "isnt"),
    (r"\bare not\b", "arent"), (r"\bhave not\b", "havent"), (r"\bhas not\b", "hasnt"),
    (r"\bdid not\b", "didnt"), (r"\bdoes not\b", "doesnt"), (r"\bcould not\b", "couldnt"),
    (r"\bshould not\b", "shouldnt"), (r"\bwas not\b", "wasnt"), (r"\bmy self\b|\bmys(?:le|el|e|lef)f\b|\bmyslef\b", "myself"),
    (r"\b(he|she|they) would\b", r"\1d"), (r"\b(he|she|they) will\b", r"\1ll"),
    (r"\b(he|she) is\b", r"\1s"), (r"\bthey are\b", "theyre"), (r"\bit is\b", "its"),
    (r"\bthat is\b", "thats"), (r"\bwhat is\b", "whats"), (r"\bthere is\b", "theres"),
    (r"\bself ?harm", "selfharm"), (r"\bun ?alive", "unalive"), (r"\bsewer ?slide", "sewerslide"),
    (r"\bsu[i1]c[i1]d", "suicid"), (r"\bsucide|\bsuicde|\bsuiside", "suicide"),
    (r"\bo\.?d\b(?!\w)", "od"), (r"\bmetres?\b|\bmeters?\b", "m"),
]
_WORD_MAP = [(re.compile(p), r) for p, r in _WORD_MAP]
_DQUOTED = re.compile(r'"([^"\n]{1,400})"')
_SQUOTED = re.compile(r"(?:(?<=^)|(?<=[\s(:,]))'([^\n]{1,400}?)'(?=[\s.,!?;:)]|$)")
_PUNCT_TO_SPACE = re.compile(r"[^a-z0-9\s.,!?;:%/]")


def _to_text(text) -> str:
    if text is None:
        return ""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text[: MAX_CHARS * 4])
        text = raw.decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = str(text)
    if len(text) > MAX_CHARS:
        text = text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]
    return text


def _clean_chars(text: str) -> str:
    out = []
    for ch in text:
        if ch in "\n\t":
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat[0] == "C" or cat in ("So", "Sk", "Zl", "Zp"):
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _leet(m: re.Match) -> str:
    tok = m.group(0)
    if any(c in "013457@$" for c in tok) and sum(c.isalpha() for c in tok) >= 1:
        return tok.translate(_LEET)
    return tok


def normalize(text) -> str:
    """Lowercase, NFKC, de-obfuscated text with quotes kept (used by both screens)."""
    text = _to_text(text)
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_QUOTE_MAP).lower()
    text = _LAUGH_EMOJI.sub(" lol ", text)
    text = _clean_chars(text)
    for pat, rep in _PRE_SLANG:
        text = pat.sub(rep, text)
    text = _LEET_TOKEN.sub(_leet, text)
    text = _SEPARATED.sub(lambda m: re.sub(r"[-_.* ]", "", m.group(0)), text)
    text = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), text)
    text = _SPACED.sub(lambda m: m.group(0).replace(" ", ""), text)
    text = _REPEATS.sub(r"\1", text)
    return text


def _finish(text: str) -> str:
    """Second half of normalisation: apostrophes, punctuation and chat forms."""
    text = re.sub(r"(?<=[a-z])'(?=[a-z])", "", text)
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)
    text = _PUNCT_TO_SPACE.sub(" ", text)
    text = re.sub(r"([,;:!?])(?=[a-z])", r"\1 ", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r" ([.,!?;:])", r"\1", text)
    for pat, rep in _WORD_MAP:
        text = pat.sub(rep, text)
    return text.strip()


def _split_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"[.!?;]+(?=\s|$)|\n+", text) if s and s.strip()]

