"""Deterministic risk detector: runs on every patient turn, before anything is generated.

Standard library only (``re``, ``unicodedata``, ``dataclasses``); no model, no network, same answer
for the same text every time. It is a screen for a *supervised* tool: it errs on the side of
flagging, it never clears risk on a single denial elsewhere in the message, and a supervisor sees
the reasons (``matches``) for every flag.

Levels (C-SSRS screener, REFERENCE.md "Risk levels used for safety"), as used here
---------------------------------------------------------------------------------
``level`` is always about the patient's own suicide / self-harm risk.

=========  ==============================================================================
none       nothing found, or only hyperbole, negation, fiction, quoted/third-party speech,
           or a past risk the patient reports as resolved ("years ago I attempted, I'm
           doing well now"; a note is still written to ``matches``)
low        C-SSRS 1: wish to be dead / passive ideation ("I wish I could sleep and never wake
           up", "everyone would be better off without me", "I'm not sure I want to live");
           unresolved history only ("I tried to kill myself when I was 17")
moderate   C-SSRS 2-3: active thoughts of killing oneself without intent ("I want to kill
           myself", "kms", "unalive myself", "end it all"), thoughts with a method ("I keep
           thinking about jumping"), urges to self-harm, means-seeking with no other signal
           ("what's a lethal dose of ..."), an attempt with no time given
high       C-SSRS 4-6: intent ("I'm going to kill myself", "I won't be a burden much longer"),
           plan or preparation (a plan, saving pills, a note, giving things away, bought a
           rope), method + access ("I have my dad's gun"), recent behaviour ("I took a bunch of
           pills last night", "I've been cutting again"), means-seeking in a distress context
           ("I lost my job, which bridges are over 25 m?"), command voices
imminent   in progress or timed: "tonight", "right now", "about to", "I've already taken
           them", "this is goodbye", "by the time you read this", standing on a ledge,
           bleeding that won't stop
=========  ==============================================================================

Categories: ``self_harm`` (any self level above none), ``means_seeking`` (questions about
methods, lethal doses, heights, train times in a crisis, buying a gun/rope; never excused by "it's
for a school project / a story / a friend"), ``harm_to_others``, ``harm_from_others``. The two
"others" categories carry their own levels in ``harm_to_others_level`` / ``harm_from_others_level``
(extra fields with defaults; ``level`` stays about the patient's own risk).

``escalate`` (safe crisis reply + supervisor alert): level >= moderate, or means_seeking, or harm to
others >= moderate (any credible statement of wanting/meaning to hurt a person), or harm from
others >= moderate (current abuse, threats, fear of a partner; past abuse alone is low).
``hold`` (therapist drafts wait for supervisor approval): level >= high, or harm to others
imminent. ``flagged``: anything at all (level above none or any category) -- the engine records
these.

Rules: each rule is a regex over normalised text, with a category, a base level and flags that
say which context checks apply: negation in the same clause (``not``, ``never``, ``don't`` ...,
but not "can't stop"), reported/third-party speech ("my friend said ..."), fiction cues ("my
character", "in the film"), laughter/joke markers (for slang and anger hyperbole), and time cues
for behaviour ("last night" -> high, "just/already" -> imminent, "years ago" -> history). Message
level combinations then raise the level: ideation + a method -> moderate; + access -> high;
moderate+ + timing ("tonight", "right now") -> imminent; means-seeking + distress or ideation ->
high. Hyperbole ("this commute is killing me", "I could murder a pizza", "dying to see it") is not
matched because the rules need a first-person reflexive or a person as the target.

Normalisation: NFKC, lowercase, curly quotes, control characters and symbols removed, laughter
emoji -> "lol", light leetspeak inside words ("k1ll", "$uicide"), spaced/dotted letters ("k i l l",
"k.m.s"), runs of 3+ letters collapsed to one ("diiie"), apostrophes dropped ("I'm" -> "im"),
common contractions and chat forms ("wanna", "gonna", "rn", "i am" -> "im"). Text longer than
``MAX_CHARS`` is assessed on its head and tail only, so the work is bounded.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

LEVELS = ("none", "low", "moderate", "high", "imminent")
_RANK = {name: i for i, name in enumerate(LEVELS)}
CATEGORIES = ("self_harm", "harm_from_others", "harm_to_others", "means_seeking")

MAX_CHARS = 20_000          # longer text: first HEAD_CHARS + last TAIL_CHARS are assessed
HEAD_CHARS = 16_000
TAIL_CHARS = 4_000


def max_level(*levels: str) -> str:
    """The most severe of the given levels ("none" for no arguments)."""
    best = "none"
    for lv in levels:
        if lv not in _RANK:
            raise ValueError(f"unknown risk level: {lv!r}")
        if _RANK[lv] > _RANK[best]:
            best = lv
    return best


def _ge(level: str, other: str) -> bool:
    return _RANK[level] >= _RANK[other]


@dataclass(frozen=True)
class RiskAssessment:
    level: str                          # one of LEVELS: the patient's own suicide/self-harm risk
    categories: tuple[str, ...] = ()    # self_harm, harm_from_others, harm_to_others, means_seeking
    matches: tuple[str, ...] = ()       # "rule_name: 'snippet'" reasons for the supervisor
    harm_to_others_level: str = "none"
    harm_from_others_level: str = "none"

    @property
    def escalate(self) -> bool:
        return (_ge(self.level, "moderate") or "means_seeking" in self.categories
                or _ge(self.harm_to_others_level, "moderate")
                or _ge(self.harm_from_others_level, "moderate"))

    @property
    def hold(self) -> bool:
        return _ge(self.level, "high") or self.harm_to_others_level == "imminent"

    @property
    def flagged(self) -> bool:
        return self.level != "none" or bool(self.categories)


NONE = RiskAssessment("none")

# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Context cues
# --------------------------------------------------------------------------------------------

_SUBJ3 = (r"(?:he|she|they|friend|friends|mate|bestie|brother|sister|mum|mom|mother|dad|father|son|"
          r"daughter|wife|husband|partner|boyfriend|girlfriend|bf|gf|cousin|aunt|uncle|colleague|"
          r"coworker|boss|teacher|character|protagonist|narrator|villain|hero|heroine|someone|somebody|"
          r"people|everyone|person|guy|girl|kid|kids|student|client|patient|singer|rapper|comedian|"
          r"actor|author|poster|user|post|song|lyrics?|meme|tweet|video|comment|classmate|roommate|flatmate|"
          r"doctor|therapist|gp|nurse|psychiatrist|counsell?or|psychologist)")
_SPEECH = (r"(?:said|says|saying|told|tells|telling|texted|texts|posted|posts|wrote|writes|joked|jokes|"
           r"joking|tweeted|sang|sings|screamed|yelled|shouted|messaged|typed|goes|went|kept saying|"
           r"keeps saying|commented|asked|asks|asking)")
_REPORTED = re.compile(rf"\b{_SUBJ3}\b(?: [a-z]+){{0,3}} {_SPEECH}\b")
_FICTION = re.compile(
    r"\b(?:my (?:character|protagonist|novel|story|book|script|screenplay|fanfic|fic|play|comic|manuscript)|"
    r"(?:in|for) (?:the|this|a|my) (?:book|novel|film|movie|show|series|episode|game|song|play|story|"
    r"anime|manga|comic|musical|scene)|chapter \d+|the (?:protagonist|narrator|villain|main character|lyrics?)|"
    r"lyrics?|song (?:goes|says)|(?:a|the) line (?:from|in))\b")
_JOKE = re.compile(r"\b(?:lol|lmao|lmfao|rofl|haha\w*|hehe\w*|jk|joking|kidding|jokes)\b")
_NEG = re.compile(
    r"\b(?:not|never|dont|didnt|doesnt|wont|wouldnt|cant|couldnt|shouldnt|isnt|arent|wasnt|havent|hasnt|"
    r"nor|no longer|no (?:intention|intentions|plans?|desire|wish|urge|urges|thoughts?|interest) (?:of|to|in))\b"
    r"(?! (?:stop|help|shake|get (?:rid|it|them|this|that)|sure|certain|know (?:if|whether|why|how)|"
    r"lie|pretend|deny|say|tell|explain|see a way|see any|think (?:of|about) anything|handle))")
_THIRD_SUBJ = re.compile(rf"(?:\b(?:he|she|they|hes|shes|theyre|his|her|their|{_SUBJ3[3:-1]})\b(?: [a-z]+){{0,3}} "
                         r"(?:is|was|has|had|have|been|feels|felt|gets|got|seems|seemed|died|committed|attempted|"
                         r"talks|talked|thinks|thought|went)\b|died by|lost (?:him|her|them|someone|a \w+) to)")
_CLAUSE_BREAK = re.compile(r"[,;:]|\b(?:but|and|though|although|yet|so|because|however|except)\b")

_REMOTE = re.compile(
    r"\b(?:years? ago|(?:a )?long time ago|when i was (?:a )?(?:kid|child|teen|teenager|younger|little|"
    r"in (?:school|high school|college|uni|university|my (?:teens|twenties|20s))|\d+)|in (?:high school|"
    r"college|uni|university|my (?:teens|twenties|20s|early \w+))|as a (?:teen|teenager|kid|child)|back then|"
    r"back in (?:\d{4}|school|college|the day)|in (?:19|20)\d\d|(?:\d+|two|three|four|five|six|seven|eight|"
    r"nine|ten|several|many|a few|a couple of) years (?:ago|back)|used to|in the past)\b")
_RESOLVED = re.compile(
    r"\b(?:doing (?:much |a lot |so much |really )?(?:better|well|ok|okay|good|great)|in a (?:good|better|"
    r"much better) place|(?:much|a lot|so much|way) better now|recovered|havent (?:felt|thought|done|cut|had|"
    r"been|selfharmed|hurt)\b.{0,40}\b(?:since|years|in (?:\w+ )?(?:years|months))|(?:\d+|two|three|four|five|"
    r"six|seven|eight|nine|ten|several|many) (?:years|months) (?:clean|free|sober)|clean (?:for|since)|"
    r"dont feel (?:that way|like that)|no longer (?:feel|suicidal|selfharm|cut|want)|not anymore|"
    r"grateful (?:to be|im) alive|glad (?:i survived|im (?:still )?alive|to be alive|it didnt work)|"
    r"(?:got|getting) (?:the )?(?:help|treatment)|im (?:ok|okay|fine|safe) now|stable now)\b")
_CURRENT = re.compile(
    r"\b(?:again|lately|recently|these days|this (?:week|month|morning|evening|year|weekend)|today|tonight|"
    r"right now|coming back|came back|(?:are|is|have) back|returned|since (?:yesterday|last)|"
    r"still (?:want|think|feel|have|cut|wish))\b")
_TIMING = re.compile(
    r"\b(?:tonight|right now|this evening|about to|in (?:a few|an|one|two|\d+|a couple of) (?:minutes?|mins|"
    r"hours?)|before (?:morning|sunrise|the sun comes up|tomorrow)|after (?:everyone|they|the kids|my "
    r"(?:family|parents|wife|husband|partner|roommate)) (?:goes?|go|are|is|has gone|have gone|falls?) "
    r"(?:to bed|asleep|out|to sleep)|when (?:everyone|they) (?:is|are) asleep|(?:today|now)(?= *(?:[.!?]|$)))")
_STRONG_TIMING = re.compile(r"\b(?:tonight|in (?:a few|an|one|two|\d+|a couple of) (?:minutes?|mins|hours?)|"
                            r"before (?:morning|sunrise|tomorrow)|after (?:everyone|they) (?:goes?|go) (?:to bed|"
                            r"to sleep)|about to)\b")
_JUST_NOW = re.compile(r"\b(?:just|already|minutes? ago|an hour ago|half an hour ago|right now|tonight|"
                       r"(?:a few|\d+|two|three) (?:minutes|hours?) ago)\b")
_RECENT = re.compile(r"\b(?:last (?:night|week|weekend|month|time)|yesterday|this (?:morning|week|weekend|"
                     r"month|afternoon)|earlier|(?:a few|two|three|couple of|couple) (?:days|weeks) ago|"
                     r"the other (?:day|night)|recently|again|on (?:monday|tuesday|wednesday|thursday|friday|"
                     r"saturday|sunday)|at the weekend|over the weekend)\b")
_METHOD = re.compile(
    r"\b(?:pills|tablets|overdose|overdosing|od|rope|noose|hang|hanging|jump|jumping|bridge|roof|ledge|"
    r"train|tracks|gun|shoot|knife|blade|blades|razor|wrists?|drown|drowning|crash (?:my|the) car|"
    r"bleach|poison|carbon monoxide|helium|charcoal|exhaust|cliff|paracetamol|tylenol|insulin)\b")
_ACCESS = re.compile(
    r"\b(?:ive got|i got|i own|i keep|ive (?:been )?(?:saving|stockpiling|collecting|hoarding|saved)|"
    r"i have (?:a|the|my|enough|all|some|lots|loads)|ive (?:a|the|enough|all)|theres (?:a|enough) |"
    r"in my (?:drawer|cupboard|cabinet|car|bag|room|pocket|bedside)|my (?:dads|fathers|husbands|partners|"
    r"brothers|moms|mums) (?:gun|pills|rifle|shotgun|meds)|(?:gun|rope|pills|tablets|knife|blade|razor)s? "
    r"(?:is|are) (?:right )?(?:here|next to me|in front of me|loaded|ready))")
_DISTRESS = re.compile(
    r"\b(?:lost (?:my|the) (?:job|house|home|wife|husband|partner|kids|everything|baby|flat|apartment)|"
    r"(?:got|been|was|just got) (?:fired|laid off|evicted|dumped|sacked)|(?:she|he|they) left me|"
    r"broke up with me|cant (?:take|do) (?:it|this|any of this) (?:any ?more|much longer)|cant go on|"
    r"no point|pointless|hopeless|worthless|nothing (?:matters|left)|giv(?:e|ing) up|(?:so|really|all) alone|"
    r"(?:nobody|no one) (?:cares|would care|would notice|would miss me)|whats the point|done with "
    r"(?:everything|life|it all)|failed (?:everything|at everything)|ruined|over for me|end of my rope|"
    r"my life is over|want (?:it|everything) (?:all )?to (?:stop|end)|tired of (?:everything|life|living|it all)|"
    r"last straw|nothing to live for|cant cope|falling apart|(?:so|really|completely) (?:empty|numb|done)|"
    r"burden|ive had enough|had enough of (?:everything|life|it all)|(?:so )?over (?:everything|it all|life)|"
       r"everyone hates me|hate my life|cant do this any ?more)\b")
_GOODBYE_PRETEXT = re.compile(r"\b(?:school project|for (?:a|my) (?:story|novel|book|essay|project|class|"
                              r"friend)|asking for a friend|just curious|hypothetically)\b")


def _clause_tail(prefix: str, words: int = 6) -> str:
    parts = _CLAUSE_BREAK.split(prefix)
    tail = parts[-1] if parts else prefix
    toks = tail.split()
    return " ".join(toks[-words:])


def _negated(prefix: str) -> bool:
    return bool(_NEG.search(_clause_tail(prefix)))


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Rule:
    name: str
    category: str
    level: str
    pattern: re.Pattern
    flags: str = ""   # n=negatable r=reported-speech f=fiction j=joke->drop J=joke->low t=time cues h=history


def _r(name, category, level, pattern, flags="nrf"):
    return _Rule(name, category, level, re.compile(pattern), flags)


W = r"(?:[a-z]+ ){0,3}?"     # up to three filler words
W5 = r"(?:[a-z]+ ){0,5}?"
WB = (r"(?:(?!(?:want|wanna|need|feel|think|urge|scared|afraid|tempted|going|will|might|could|would|should|"
      r"never|dont|wont)\b)[a-z]+ ){0,3}?")   # filler for behaviour rules: "I (just) took", not "I want to take"
_I = r"\b(?:i|im|ive|ill|id|i'?m)\b"
_PILLS = (r"(?:pills|tablets|meds|medication|medicine|paracetamol|tylenol|acetaminophen|ibuprofen|aspirin|"
          r"sleeping pills|painkillers|antidepressants|insulin|oxy\w*|xanax|benzos|lithium|[a-z]+(?:pam|ine|ol))")
_TARGET = (r"(?:him|her|them|my (?:boss|manager|ex|partner|husband|wife|boyfriend|girlfriend|dad|father|mum|"
           r"mom|mother|stepdad|stepmom|brother|sister|neighbou?r|roommate|flatmate|landlord|coworker|colleague|"
           r"teacher|son|daughter|kids?|baby|children|family|parents)|that (?:guy|man|woman|girl|bitch|bastard|"
           r"prick|asshole|jerk)|(?:some|every|any)(?:one|body)|people|the (?:guy|man|woman|kids|people|bastard)"
           r"(?: who| that| at)?)")
_SH_VERB = r"(?:cut|cutting|burn|burning|burned|burnt|hurt|hurting|harm|harming|scratch|scratching|hit|hitting)"

RULES: tuple[_Rule, ...] = (
    # ---- passive ideation / wish to be dead (low) ----
    _r("wish_dead", "self_harm", "low",
       rf"(?:{_I}|part of me) {W}(?P<core>(?:wish(?:es|ed)?|wants?|wanted|hope[sd]?) (?:i (?:was|were|could be|had been)|to be) "
       r"(?:dead|gone|never born)|(?:wish(?:es|ed)?|hope[sd]?) i (?:could |would |just )?(?:die|disappear|vanish|"
       r"not exist|stop existing|didnt exist|wasnt (?:here|alive|born)|wouldnt wake up|dont wake up|wont wake up|"
       r"never wake up|hadnt woken up|didnt wake up|never woke up)(?! (?:late|early|in time|on time|with|tired|at|"
       r"before|until|till|to|too|from))|"
       r"want to (?:disappear|stop existing|not exist|not be here|not wake up)|"
       r"(?:would|d) (?:rather|prefer to) (?:be dead|die|not exist|not be here))"),
    _r("want_to_die", "self_harm", "low",
       rf"{_I} {W}(?P<core>(?:want|wanted|need|ready) to (?:die|be dead)|feel like dying)"
       r"(?! (?:of|from|laughing|for|on|in this|a little|inside|when))"),
    _r("sleep_not_wake", "self_harm", "low",
       r"(?P<core>(?:sleep|go to sleep|fall asleep|close my eyes)(?: forever)?(?: and| then)? (?:never|not|just "
       r"not|and not) (?:wake|waking) up|sleep forever|(?:hope|wish|pray) i (?:dont|wont|never|didnt) wake up"
       r"(?! (?:late|early|in time|on time|with|tired|at|before|until|till|to)))", "r"),
    _r("better_off_without_me", "self_harm", "low",
       r"(?P<core>(?:better|happier|easier) (?:off )?(?:without me|if i (?:just )?(?:was|were) (?:gone|dead|not here|"
       r"never born)|if i (?:just )?(?:wasnt|werent) (?:here|around|alive)|if i (?:just )?(?:disappeared|vanished|died|"
       r"killed myself|was gone for good))|better off dead|if i (?:was|were) gone)", "r"),
    _r("nobody_would_miss", "self_harm", "low",
       r"(?P<core>(?:nobody|no one|noone|anyone)(?: (?:would|will|even|really|ever|actually)){0,3} (?:care|notice|miss me|be sad|cry)"
       r"(?: \w+){0,3} if i (?:died|was gone|were gone|disappeared|was dead|killed myself|wasnt here))", "r"),
    _r("no_reason_to_live", "self_harm", "low",
       r"(?P<core>(?:no|any|nothing to) (?:reason|point|purpose) (?:to|in|of|for) (?:live|living|be alive|"
       r"being alive|keep going|go on|wake up|exist)|nothing to live for|(?:whats|what is|theres no) the point "
       r"(?:of|in) (?:living|being alive|life|going on|existing)|life (?:isnt|is not|aint) worth (?:living|it)|"
       r"(?:tired|sick) of (?:living|being alive|existing|life)|dont want to (?:live|be alive|exist|be here|wake up)"
       r"(?! (?:with|in|near|like|at|there|on|somewhere|abroad|alone|for|without|through|as|under|if)))", "r"),
    _r("not_sure_want_live", "self_harm", "low",
       rf"{_I} {W}(?P<core>(?:not sure|dont know|unsure|dont think)(?: if| whether| that)? (?:i )?(?:want|can|will|"
       r"should) (?:to )?(?:live|be alive|keep going|go on|keep living|carry on|stay alive|be here much longer))", "r"),
    _r("cant_go_on", "self_harm", "low",
       r"(?P<core>(?:cant|dont know how (?:much longer|long) i can|not sure i can) (?:go on|keep going|carry on|"
       r"keep living|do this) (?:any ?more|much longer|like this|for much longer)|want (?:it|everything|the pain) "
       r"(?:all )?to (?:stop|end) (?:forever|for good|permanently))", "r"),
    _r("hit_by_bus", "self_harm", "low",
       r"(?P<core>(?:hope|wish|wouldnt mind if|dont care if|pray) (?:i )?(?:get|got|gets|was|were|a \w+) "
       r"(?:hit|run over|killed|crash)(?: by)?(?: a| an)? ?(?:bus|car|truck|train|lorry)?)", "r"),
    _r("thinking_dying", "self_harm", "low",
       r"(?P<core>(?:thinking|thought|think|thoughts) (?:a lot |so much |constantly |all the time )?(?:about|of) "
       r"(?:dying|being dead|not being (?:here|alive|around)|not existing|my (?:own )?death|my funeral)|"
       r"(?:feel|feeling|im) (?:like )?(?:such )?a burden (?:to|on) (?:everyone|my family|them|people|you all)|"
       r"(?:just )?want (?:it all|everything|the pain|all of this|this all|the hurt) to (?:stop|end|go away forever))"),
    _r("thoughts_back", "self_harm", "low",
       r"(?P<core>(?:suicidal|dark|those|the|these) (?:thoughts|urges|feelings) (?:are|have been|have|keep) "
       r"(?:back|coming back|come back|returned|getting (?:worse|louder|stronger)))", "r"),
    # ---- active ideation (moderate) ----
    _r("kill_myself", "self_harm", "moderate",
       r"(?P<core>(?:kill|killing|killed|end|ending|ended|take|taking|took) (?:my (?:own )?life|myself)"
       r"|unalive (?:myself|me)|unaliving|off myself|top myself|neck myself|self ?delete)"
       r"(?! (?:laughing|with (?:work|study|training|exercise)|at (?:the gym|work)))"),
    _r("suicidal", "self_harm", "moderate",  # flag s: third-person subject in the clause -> not about the patient
       r"(?P<core>suicid(?:e|al)\w*|sewerslide|sui\b(?= (?:thoughts|again|lately)|$)|feeling sui\b|"
       r"(?:want|going|plan|thinking|think|thought) (?:to |about |of )?(?:unalive|ctb\b))"
       r"(?! (?:prevention|awareness|squad|rates?|statistics|hotline|line|bombers?|bomber|mission|doors?|calls?|cases?|"
       r"patients?|victims?|survivors?|research|training|policy|policies|risk assessments?|watch|notes? (?:in|from)|"
       r"attempts? (?:by|of)|in (?:the|a|his|her) (?:film|book|song|show)))", "nrfs"),
    _r("kms", "self_harm", "moderate", r"\b(?P<core>kms|ctb)\b", "nrfJ"),
    _r("end_it_all", "self_harm", "moderate",
       r"(?P<core>end (?:it|things|everything) (?:all|for good|permanently|once and for all)|end it all|"
       r"ending it all|ending (?:it|things) (?:for good|permanently)|check out (?:early|for good|permanently)|"
       r"(?:want|going|plan) to (?:go|be) (?:to sleep )?forever)"),
    _r("end_it_ctx", "self_harm", "moderate",
       r"(?P<core>(?:want|going|ready|need|plan|planning|thinking (?:of|about)|think about|decided) (?:to )?end(?:ing)? "
       r"(?:it|things)(?= *(?:[.!?,]|$| now| tonight| today| soon| for good)))", "nrfc"),
    _r("method_thoughts", "self_harm", "moderate",
       rf"(?P<core>(?:hang|hanging|shoot|shooting|drown|drowning|poison|poisoning|gas|gassing|stab|stabbing|hurt|"
       r"hurting|harm|harming|throw|throwing) (?:myself)|(?:jump|jumping|throw myself) (?:off|from|in front of|under)"
       r" (?:a|the|my) (?:bridge|building|roof|cliff|train|bus|car|balcony|car park|tower|window|tracks|truck|lorry)"
       r"|(?:slit|slitting|cut|cutting|slash|slashing) (?:my|both) (?:wrists?|throat|veins?)|(?:step|stepping|walk|"
       r"walking) (?:out )?in front of (?:a|the) (?:train|bus|truck|lorry|car|traffic)|driv(?:e|ing) (?:my car |the car )?"
       r"(?:into|off) (?:a|the) (?:tree|wall|bridge|cliff|river|oncoming traffic|traffic|lake)|crash(?:ing)? my car"
       r" on purpose|(?:take|taking|swallow|swallowing) (?:all|all of|every one of) my {_PILLS}|overdos(?:e|ing)"
       r" (?:on (?:purpose|my|all)|again)|od (?:on|again)|(?:want|going|plan) to (?:overdose|od)\b)"
       r"(?! (?:accidentally|by accident|at the gym|when i|while|cooking|shaving|chopping|on the (?:stove|oven|iron|"
       r"pan|kettle|door|edge|glass)|with the (?:knife|stove)))"),
    _r("how_i_would_do_it", "self_harm", "moderate",
       r"(?P<core>(?:think|thinking|thought|thoughts) (?:about|of) how (?:id|i would|ill|i could|to|i might) "
       r"(?:do it|end it|go through with it|kill myself)|(?:asked|asks) (?:me )?(?:if|whether) (?:im|i was|id|i had|"
       r"ive|i have|i ever)(?: \w+){0,4} (?:suicid\w*|kill myself|killing myself|hurt myself|selfharm\w*)(?: \w+){0,4}"
       r",? (?:and )?i said (?:yes|yeah|yep|i am|i was|i have|maybe|sort of|kind of|sometimes))"),
    _r("selfharm_urge", "self_harm", "moderate",
       rf"(?P<core>(?:urges?|urging|want|wanting|need|needing|tempted|craving|itching) (?:to )?(?:selfharm|sh|cut"
       r"|burn myself|hurt myself)\b|(?:thinking|thought) (?:about|of) (?:cutting|selfharm\w*|burning myself|hurting myself)"
       r"|selfharm(?:ing)? urges|(?:relapse|relapsing) (?:on|with|into) (?:selfharm|sh|cutting))"),
    _r("voices_command", "self_harm", "high",
       r"(?P<core>voices? (?:\w+ ){0,3}(?:tell|tells|telling|told|say|says|saying) (?:me )?(?:to|i should) "
       r"(?:kill myself|die|hurt myself|jump|end it|cut))", ""),
    # ---- intent / plan / preparation (high) ----
    _r("intent", "self_harm", "high",
       rf"{_I} {W}(?P<core>(?:going to|will|plan to|planning to|intend to|decided to|made up my mind to|"
       r"ready to|gonna|about to|finally going to) (?:kill myself|end (?:my life|it all|it|things|everything)|"
       r"take my (?:own )?life|unalive|kms|do it|jump|hang myself|overdose|od|go through with it|die))"
       r"(?! (?:with him|with her|with them|with my|at (?:work|the)|the conversation|my (?:contract|lease)))"),
    _r("not_burden_much_longer", "self_harm", "high",
       r"(?P<core>(?:wont|will not|not going to) (?:be (?:a burden|around|here|a problem|bothering you)|have to "
       r"(?:worry|deal|put up) (?:about|with) me) (?:much|for much|any) longer|(?:soon|after tonight|by tomorrow) "
       r"(?:it|none of (?:this|it)|nothing) (?:wont|will|is going to) matter|(?:wont|will not) (?:have to )?(?:see|"
       r"hear from) me (?:again|ever again)|(?:this|today) (?:is|will be) my last (?:day|night|session|time))", "rf"),
    _r("plan", "self_harm", "high",
       rf"{_I} {W}(?P<core>(?:have|got|made|worked out|figured out|picked|chosen|chose) (?:a|the|my) "
       r"(?:plan|date|method|spot|place|bridge|way)(?: to| for| where| how)?|know (?:exactly )?(?:how|when|where) "
       r"(?:ill|im going to|i would|id|i will|to) do it|(?:been|am) (?:saving|stockpiling|collecting|hoarding) "
       rf"(?:up )?(?:my |some |all my )?{_PILLS}|(?:wrote|written|writing|left) (?:a |my )?(?:(?:suicide|goodbye) (?:note|letters?|messages?)|"
       r"(?:note|letters?) (?:to|for) (?:my (?:kids|family|children|parents|mum|mom|dad|wife|husband|partner|sister|"
       r"brother|son|daughter|friends)|everyone|each of them))|(?:gave|given|"
       r"giving) away (?:all )?(?:of )?my (?:things|stuff|belongings|possessions|pets?|cat|dog|guitar|games)"
       r"|said (?:my )?goodbyes?|(?:looked|looking|searched|searching|googled|researched|researching) (?:up )?"
       r"(?:how to|ways to|methods|the best way to|painless ways) (?:kill myself|die|end it|overdose|hang)"
       rf"|(?:got|have|saved|stashed) enough {_PILLS}|enough {_PILLS} (?:saved|stashed|stored|put away|to do it)"
       r"|(?:bought|ordered|got) (?:a |some )?(?:rope|noose|charcoal|helium|razor blades?|shotgun|rifle|pistol|gun))"
       r"(?! (?:for (?:the )?(?:tent|camping|climbing|boat|garden|hunting|the range|work|moving|a party|balloons)"
       r"|to (?:the|my) (?:shelter|charity|friend|cousin|neighbou?r)|before (?:i )?mov|when i moved))"),
    _r("tied_noose", "self_harm", "high",
       r"(?P<core>(?:tied|made|set up|hung|put up) (?:a |the )?noose|(?:rope|noose) is (?:ready|tied|up|hanging)"
       r"|(?:practiced|rehearsed|tried out) (?:it|hanging|how|the knot)|(?:unsafe|not safe) (?:with|around) myself)"),
    # ---- behaviour (time-dependent: high by default) ----
    _r("attempt", "self_harm", "moderate",
       rf"{_I} {WB}(?P<core>(?:tried|attempted|try|attempt) (?:to )?(?:kill myself|suicide|end my life|take my (?:own )?life"
       r"|overdose|od|hang myself|unalive)|(?:suicide )?attempt(?:ed)?\b(?! to (?:fix|make|talk|explain|study|get|do|"
       r"call|reach|cook|run|learn))|survived (?:a|my) (?:suicide )?attempt)", "nrfth"),
    _r("took_pills", "self_harm", "high",
       rf"{_I} {WB}(?P<core>(?:took|taken|swallowed|swallowing|take|taking|downed|necked) (?:a bunch of|too many|all|"
       r"all of|all the|a handful of|handfuls of|loads of|lots of|a whole (?:bottle|box|packet|pack|strip)(?: of)?|"
       r"the whole (?:bottle|box|packet|pack)(?: of)?|[1-9]\d+|an overdose|everything in|them all|the lot)"
       rf"(?: (?:of )?(?:my |the |these )?{_PILLS})?|overdosed|od ?d\b|odd on)"
       r"(?! (?:by accident|accidentally|by mistake|for my (?:back|head|headache|migraine|tooth|cold)|on (?:caffeine|"
       r"coffee|sugar|chocolate|energy drinks?|red bull|netflix|tv|carbs|vitamins?|sun|work)))", "nrfth"),
    _r("aborted_attempt", "self_harm", "high",
       rf"{_I} {WB}(?P<core>(?:nearly|almost|very nearly|came close to|was about to) (?:jumped|jump|stepped|step|walked|"
       r"drove|crashed|took|take|swallowed|hanged|hung|threw myself|throw myself|went through with it|go through with it"
       r"|did it|killed myself|cut))(?! (?:laughing|up|out|off the sofa|off my chair|in the (?:lake|pool|sea) for fun))",
       "nrfth"),
    _r("selfharm_act", "self_harm", "high",
       rf"{_I} {WB}(?P<core>(?:{_SH_VERB}|selfharm\w*|sh) (?:myself|my (?:arms?|legs?|thighs?|wrists?|stomach|skin))"
       r"(?: again| with| on purpose| until| last| yesterday| this| to|$|[.,!])|(?:been|started|keep|kept|"
       r"started) (?:cutting|burning myself|selfharm\w*|hurting myself|scratching myself)|(?:relapsed|cut again|"
       r"sh again|selfharmed|selfharm again)|(?:cut|burned|burnt) (?:myself )?(?:with (?:a|the) )?(?:razor|blade|"
       r"lighter|cigarette|compass|scissors))"
       r"(?! (?:by accident|accidentally|while|when i was cooking|cooking|shaving|chopping|on the (?:stove|oven|"
       r"iron|pan|kettle|door|edge|glass|paper)|at the gym|playing|in the kitchen|in (?:football|training|practice)))",
       "nrfth"),
    # ---- imminent, explicit ----
    _r("already_taken", "self_harm", "imminent",
       rf"(?P<core>(?:ive|i|im) (?:just |already )(?:taken|took|swallowed|taking|swallowing) (?:them|it|all|"
       rf"everything|the (?:pills|tablets|lot|whole))|(?:already|just) (?:taken|took) (?:all )?(?:my |the )?{_PILLS}"
       r"|(?:cut|cutting) (?:too deep|deep)|(?:bleeding|blood) (?:wont|doesnt|will not|isnt going to) stop|"
       r"(?:standing|sitting|stood) on (?:the |a )?(?:edge|ledge|railing|tracks|roof|parapet)|im on the (?:bridge|"
       r"roof|ledge|tracks)(?= .{0,40}(?:jump|end|goodbye|cant|looking down|now))|(?:gun|barrel) (?:is )?"
       r"(?:in my (?:mouth|hand)|to my head|against my head)|(?:rope|noose) (?:is )?(?:around|round) my neck)"
       r"(?! (?:by accident|accidentally))", "nrf"),
    _r("goodbye", "self_harm", "imminent",
       r"(?P<core>this is (?:my )?(?:goodbye|farewell)(?! (?:to (?:my|the|our)|party|gift|card|lunch|drinks|"
       r"session))|goodbye (?:forever|everyone|world|for good)|by the time (?:you|anyone|someone|they) (?:read|"
       r"reads|see|sees|get|gets|find|finds) this|this is my (?:last|final) (?:message|text|post|words|night)|"
       r"(?:tell|please tell) (?:my \w+|everyone|them) (?:that )?i (?:love|loved) them(?: \w+){0,4} goodbye)", "rf"),

    # ---- means-seeking ----
    _r("lethal_dose", "means_seeking", "moderate",
       rf"(?P<core>(?:lethal|fatal|deadly|toxic|overdose|killing) (?:dose|amount|quantity|level|number)|how (?:many|much)"
       r"(?: \w+){0,4} (?:would|does|will|to|do|should) (?:it take|you need|i need|kill|be (?:fatal|lethal|deadly|"
       r"enough)|i take to|to (?:die|kill|od|overdose|not wake up|stop (?:my|your|a) heart))|how (?:many|much) "
       r"(?:\w+ ){0,3}(?:to|would) (?:die|od|overdose|kill (?:me|you|someone|a person))|(?:can|could|would|will) "
       r"(?:you|i|a person|someone|people) (?:die|od|overdose) (?:from|on|if)|what happens if (?:i|you|someone) "
       r"(?:take|takes|swallow|swallows) (?:all|a whole|the whole|[1-9]\d+|too many|a bottle))", ""),
    _r("method_howto", "means_seeking", "high",
       r"(?P<core>how (?:to|do you|do i|would (?:i|you|someone)|does one) (?:tie a noose|hang (?:myself|yourself|"
       r"oneself|someone)|kill (?:myself|yourself|oneself)|slit|cut (?:my|your) wrists|overdose|od\b|suffocate|"
       r"bleed out|end (?:my|your) life)|(?:quickest|easiest|most painless|painless|surest|best|least painful|"
       r"quick|reliable) (?:way|ways|method|methods) (?:to|of) (?:die|dying|kill (?:myself|yourself)|end (?:it|"
       r"my life|your life)|suicide|go)|which (?:veins?|arteries|artery)|how deep (?:do|should|would|to) (?:i |you )?"
       r"cut|how long (?:does it|would it|to) (?:take )?to (?:bleed out|die (?:from|of)|suffocate|drown|hang)|"
       r"(?:survive|survivable|die from|kill you|fatal) (?:a |the )?(?:fall|jump|drop) (?:from|off|of)|"
       r"how (?:high|tall|far) (?:\w+ ){0,6}(?:to (?:die|be fatal|kill|not survive)|(?:fatal|lethal|deadly|"
       r"survivable)|so (?:that )?(?:you|i|someone|a person) (?:dont|wont|wouldnt|doesnt|die)|not survive))", ""),
    _r("height_threshold", "means_seeking", "moderate",
       r"(?P<core>(?:bridges?|buildings?|cliffs?|towers?|car ?parks?|parking (?:garages?|structures?|lots?)|roofs?"
       r"|rooftops?|balcon(?:y|ies)|floors?|storeys?|stories)(?: \w+){0,4} (?:over|above|higher than|taller than|"
       r"at least|more than|bigger than|>) \d+ ?(?:m|ft|feet|foot|floors?|storeys?|stories)?\b|(?:no|without) "
       r"(?:a )?(?:fence|fences|barrier|barriers|railings?|nets?|suicide (?:nets?|barriers?))|(?:roof|rooftop) "
       r"(?:access|that (?:is|are) open|open to the public))", ""),
    _r("tallest_places", "means_seeking", "moderate",
       r"(?P<core>(?:tallest|highest) (?:bridges?|buildings?|cliffs?|towers?|car ?parks?|parking garages?|"
       r"rooftops?)|(?:trains?|express|railway|rail) (?:times?|timetable|schedule)|when does the (?:next|last|"
       r"express|fast|non ?stop) train|which trains (?:dont|do not|never) stop|(?:express|fast|freight) trains? "
       r"(?:pass|go|come|run) through|where (?:can|could|do) (?:i|you|one) (?:buy|get|find) (?:a |some )?rope)", "c"),
    _r("buy_means", "means_seeking", "moderate",
       r"(?P<core>where (?:can|could|do|would|should) (?:i|you|one|someone) (?:buy|get|find|order|get hold of) "
       r"(?:a |an |some )?(?:gun|pistol|handgun|firearm|rifle|shotgun|noose|helium|charcoal|barbiturates|nembutal"
       r"|pentobarbital|cyanide|poison|sodium nitrite|exit bag)|(?:buy|get|order) (?:a |some )?(?:nembutal|"
       r"pentobarbital|cyanide|sodium nitrite|exit bag)|(?:want|need|going) to (?:buy|get) a gun|(?:easiest|quickest|fastest)"
       r" way to (?:buy|get) a (?:gun|pistol|firearm)|(?:buy|get) a (?:gun|pistol|firearm) (?:without|with no) "
       r"(?:a )?(?:background check|licen[cs]e|permit|id))", ""),
    # ---- harm to others ----
    _r("hurt_others", "harm_to_others", "moderate",
       rf"{_I} {W}(?P<core>(?:kill|killing|murder|murdering|stab|stabbing|shoot|shooting|strangle|strangling|poison|"
       rf"poisoning|hurt|hurting|attack|attacking|beat up|beating up|run over|smother|smothering|smash) {_TARGET})"
       r"(?! (?:with kindness|at (?:chess|cards|the game|the interview|the exam|the show)|in (?:the |a )?(?:game|"
       r"match|round|fortnite|minecraft|call of duty|cod|chess)|a (?:message|text|email|line|note|look)|an email"
       r"|if (?:he|she|they) (?:eats?|ate|takes?|borrows?|touch(?:es)? my (?:food|stuff|charger))))", "nrfj"),
    _r("kill_threat_plan", "harm_to_others", "high",
       rf"(?P<core>(?:shoot|shooting) up (?:the|my|a) (?:school|office|work|workplace|place|church|mall)|"
       r"make (?:them|him|her|everyone) (?:all )?pay(?= .{0,30}(?:gun|knife|blood|dead|die|kill)))", "nrf"),
    # ---- harm from others ----
    _r("abused_physical", "harm_from_others", "moderate",
       r"(?P<core>\b(?:he|she|they|my (?:\w+ )?(?:partner|husband|wife|boyfriend|girlfriend|bf|gf|dad|father|"
       r"mum|mom|mother|stepdad|stepfather|stepmom|brother|sister|ex|uncle|boss|parents?|carer|son|daughter|"
       r"roommate|flatmate)|someone|people at school)(?: \w+){0,2}? (?:hits|hit|beats|beat|punches|punched|"
       r"slaps|slapped|kicks|kicked|shoves|shoved|pushes|pushed|throws things at|threw \w+ at|bruised|burned|"
       r"burns|drags|dragged|bites|bit) me\b)"
       r"(?! (?:up|at|in|to|into|out|off|forward|towards|with (?:a|his|her|the) (?:ball|pillow))|back\b)", "rfj"),
    _r("abused_severe", "harm_from_others", "high",
       r"(?P<core>(?:\b(?:he|she|they|my \w+)(?: \w+){0,2}? (?:chokes|choked|strangles|strangled|rapes|raped|"
       r"sexually assaulted|assaulted|molests|molested|forced himself on|forces me to have sex)\b)|(?:he|she|they|"
       r"my \w+)(?: \w+){0,3}? (?:said|says|told me|threatened|threatens|keeps saying|swore|screamed|texted|texting|texts|messaged|"
       r"messaging|saying|threatening|yelled)(?: me)?(?: that)?"
       r" (?:hed|shed|theyd|hell|shell|theyll|he would|she would|they would|he will|she will|hes going to|shes "
       r"going to|to) (?:kill|hurt|murder|shoot|stab|strangle|end|beat) (?:me|us|my|the kids)|(?:pulled|held|"
       r"pointed) a (?:knife|gun) (?:on|at|to) me)", "fj"),
    _r("fear_of_person", "harm_from_others", "moderate",
       r"(?P<core>(?:scared|afraid|terrified|frightened) (?:of (?:him|her|them|my (?:\w+ )?(?:partner|husband|wife|"
       r"boyfriend|girlfriend|dad|father|stepdad|mum|mom|ex))|to go (?:back )?home|(?:of )?what (?:he|she|they)ll "
       r"do|(?:he|she|they)ll (?:hurt|kill|find) me|for my (?:life|safety))|(?:dont|do not) feel safe (?:at home|"
       r"in my (?:own )?(?:house|home|flat)|with (?:him|her|them|my \w+)|around (?:him|her|them))|(?:wont|doesnt) let"
       r" me (?:leave|go out|see my (?:friends|family)|have (?:money|my phone))|(?:locks|locked) me (?:in|out)|"
       r"takes my (?:phone|money|keys|bank card))", "nrf"),
    _r("told_to_die", "harm_from_others", "moderate",
       r"(?P<core>(?:told|tell|telling|tells|texted|messaged|keep telling|keeps telling) me (?:to|i should) (?:go )?"
       r"(?:kill myself|kms|kys|die|drink bleach|unalive)|kys\b|(?:i )?(?:am|im|get|got|getting) (?:being )?"
       r"bullied)", "nf"),
)

_FROM_IMMINENT = re.compile(r"\b(?:right now|(?:hes|shes|theyre) (?:outside|at the door|here|coming|on (?:his|her|"
                            r"their) way|breaking in|banging)|at the door|breaking (?:in|the door)|im hiding|"
                            r"locked myself in)\b")
_FROM_PAST = re.compile(r"\b(?:used to|when i was (?:a kid|little|young|a child|small|a teen|\d+)|as a (?:kid|child)|"
                        r"growing up|years ago)\b")
_OTHERS_PLAN = re.compile(r"\b(?:i (?:have|got|bought|own)|ive got|ive bought) (?:a |my |the )?(?:gun|knife|"
                          r"weapon|bat|rifle|pistol|machete|axe)|know where (?:he|she|they) (?:lives?|works?|parks?|"
                          r"sleeps?)|(?:waiting|parked|sitting) outside (?:his|her|their) (?:house|place|work|flat)|"
                          r"i have a plan|ive planned|i mean it|not joking|for real|seriously\b")
_HYPERBOLE_COULD = re.compile(r"\b(?:could|couldve|could have|id)\b(?: \w+)? (?:kill|murder|strangle|throttle|"
                              r"strangling|killing)\b")


# --------------------------------------------------------------------------------------------
# Patient screen
# --------------------------------------------------------------------------------------------

def _split_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"[.!?;]+(?=\s|$)|\n+", text) if s and s.strip()]


def _strip_quotes(text: str) -> tuple[str, bool]:
    """Drop quoted spans if the rest of the message says they are someone else's words/fiction."""
    spans = [m.span() for m in _DQUOTED.finditer(text)] + [m.span() for m in _SQUOTED.finditer(text)]
    if not spans:
        return text, False
    outside = text
    for a, b in sorted(spans, reverse=True):
        outside = outside[:a] + " " + outside[b:]
    out_fin = _finish(outside)
    if _REPORTED.search(out_fin) or _FICTION.search(out_fin) or _JOKE.search(out_fin):
        return outside, True
    return text, False


@dataclass
class _Hit:
    rule: _Rule
    level: str
    snippet: str
    sentence: str
    historical: bool = False


def _snippet(s: str, m: re.Match) -> str:
    a, b = max(0, m.start() - 20), min(len(s), m.end() + 20)
    return s[a:b].strip()[:120]


def _scan(sentences: list[str]) -> list[_Hit]:
    hits: list[_Hit] = []
    for sent in sentences:
        joke = bool(_JOKE.search(sent))
        fiction = bool(_FICTION.search(sent))
        for rule in RULES:
            for m in rule.pattern.finditer(sent):
                core = m.start("core") if "core" in rule.pattern.groupindex else m.start()
                prefix = sent[:core]
                if "n" in rule.flags and _negated(prefix):
                    continue
                if "r" in rule.flags and _REPORTED.search(prefix):
                    continue
                if "f" in rule.flags and fiction and not re.search(r"\b(?:i feel|how i feel|i relate|me too)\b", sent):
                    continue
                if "j" in rule.flags and joke:
                    continue
                if "s" in rule.flags and _THIRD_SUBJ.search(_clause_tail(prefix, 8)):
                    continue
                if rule.name == "want_to_die" and joke and m.group("core").startswith("wanted"):
                    continue  # "the presentation was so bad I wanted to die lol"
                level = rule.level
                if "J" in rule.flags and joke:
                    level = "low"
                historical = False
                if "t" in rule.flags:
                    if _JUST_NOW.search(sent) and rule.name != "attempt":
                        level = "imminent"
                    elif _RECENT.search(sent):
                        level = max_level(level, "high")
                if "h" in rule.flags or rule.category == "self_harm":
                    historical = bool(_REMOTE.search(sent)) and not _CURRENT.search(sent)
                hits.append(_Hit(rule, level, _snippet(sent, m), sent, historical))
                break
    return hits


def assess_patient(text) -> RiskAssessment:
    """Screen one patient message. Never raises; empty/odd input -> level "none"."""
    try:
        return _assess(text)
    except Exception:  # pragma: no cover - a screen must never take the session down
        return RiskAssessment("none", (), ("detector_error",))


def _assess(text) -> RiskAssessment:
    raw = normalize(text)
    if not raw.strip():
        return NONE
    raw, quotes_dropped = _strip_quotes(raw)
    norm = _finish(raw)
    if not norm:
        return NONE
    sentences = _split_sentences(norm)
    hits = _scan(sentences)
    notes: list[str] = []
    if quotes_dropped:
        notes.append("context: quoted words attributed to someone else / fiction were not scored")

    self_hits = [h for h in hits if h.rule.category == "self_harm"]
    distress = bool(_DISTRESS.search(norm))
    if not distress and not any("c" not in h.rule.flags for h in self_hits):
        self_hits = []  # "I want to end it" with no crisis context: likely a relationship/job
    means_hits = [h for h in hits if h.rule.category == "means_seeking"]
    to_hits = [h for h in hits if h.rule.category == "harm_to_others"]
    from_hits = [h for h in hits if h.rule.category == "harm_from_others"]

    timing = bool(_TIMING.search(norm))

    # --- self-harm level ---
    level = "none"
    current = [h for h in self_hits if not h.historical]
    history = [h for h in self_hits if h.historical]
    if current:
        level = max_level(*(h.level for h in current))
        if history:
            level = max_level(level, "low")
    elif history:
        if _RESOLVED.search(norm) and not _CURRENT.search(norm):
            notes.extend(f"history (reported resolved, not scored): {h.rule.name}: '{h.snippet}'" for h in history)
            history = []
        else:
            level = "low"
            if _CURRENT.search(norm) and not _RESOLVED.search(norm):
                level = "moderate"
    if current and _METHOD.search(norm):
        if any(h.rule.name in ("wish_dead", "want_to_die", "kill_myself", "suicidal", "end_it_all", "kms",
                               "no_reason_to_live", "cant_go_on", "sleep_not_wake") for h in current):
            level = max_level(level, "moderate")
    if _ge(level, "moderate") and current and _ACCESS.search(norm) and _METHOD.search(norm):
        level = max_level(level, "high")
    if _ge(level, "moderate") and current and timing:
        level = "imminent"
    elif level == "low" and current and _STRONG_TIMING.search(norm):
        level = "high"   # "I want to die tonight": a wish with a time attached

    # --- means-seeking ---
    means_kept = []
    for h in means_hits:
        if "c" in h.rule.flags and not (distress or self_hits):
            continue  # tallest buildings / train times / rope with no crisis context: ordinary questions
        means_kept.append(h)
    if means_kept:
        mlevel = max_level(*(h.level for h in means_kept))
        if distress or current:
            mlevel = max_level(mlevel, "high")
        if timing and (distress or current):
            mlevel = "imminent"
        level = max_level(level, mlevel)
        if _GOODBYE_PRETEXT.search(norm):
            notes.append("pretext ('for a project/story/friend') does not lower means-seeking")

    # --- others ---
    to_level = "none"
    for h in to_hits:
        lv = h.level
        if _HYPERBOLE_COULD.search(h.sentence) and not _OTHERS_PLAN.search(norm):
            notes.append(f"hyperbole (not scored): {h.rule.name}: '{h.snippet}'")
            continue
        if _OTHERS_PLAN.search(norm):
            lv = max_level(lv, "high")
        if timing:
            lv = "imminent"
        to_level = max_level(to_level, lv)
    from_level = "none"
    for h in from_hits:
        lv = h.level
        if _FROM_PAST.search(h.sentence) and not _CURRENT.search(h.sentence):
            lv = "low"
        elif h.rule.name == "told_to_die" and "bullied" in h.snippet and not re.search(r"kill|die|kms|kys", h.snippet):
            lv = "low"
        elif _FROM_IMMINENT.search(norm):
            lv = "imminent"
        from_level = max_level(from_level, lv)

    cats = []
    if level != "none":
        cats.append("self_harm")
    if means_kept:
        cats.append("means_seeking")
    if to_level != "none":
        cats.append("harm_to_others")
    if from_level != "none":
        cats.append("harm_from_others")
    matches = [f"{h.rule.name}[{h.level}]: '{h.snippet}'"
               for h in (current + history + means_kept + to_hits + from_hits)]
    if means_kept and distress:
        matches.append("context: distress cue with means-seeking")
    if timing and (level == "imminent" or to_level == "imminent"):
        matches.append("context: timing cue (tonight / now / about to)")
    if to_level != "none":
        matches.append(f"harm_to_others_level={to_level}")
    if from_level != "none":
        matches.append(f"harm_from_others_level={from_level}")
    matches.extend(notes)
    # keep unique, in order
    seen, uniq = set(), []
    for m in matches:
        if m not in seen:
            seen.add(m)
            uniq.append(m)
    return RiskAssessment(level, tuple(cats), tuple(uniq), to_level, from_level)


# --------------------------------------------------------------------------------------------
# Therapist draft screen
# --------------------------------------------------------------------------------------------

_AMOUNT = r"\d+(?:[.,]\d+)? ?(?:mg|milligrams?|g|grams?|mcg|micrograms?|ml|tablets?|pills?|capsules?|units?|mg/kg|x)\b"
_HEIGHT = r"\d+(?:[.,]\d+)? ?(?:m|ft|feet|foot|floors?|storeys?|stories|yards?)\b"
_REFUSAL = re.compile(r"\b(?:cant|cannot|wont|will not|not able to|unable to|not going to|dont|do not|never|"
                      r"refuse to|not something i (?:can|will)|im not (?:able|going))\b(?: \w+){0,3} (?:share|give|"
                      r"provide|tell|help with|discuss|go into|offer|list)")
_DOCTOR = re.compile(r"\b(?:doctor|gp|psychiatrist|prescriber|pharmacist|nurse practitioner|care team|clinician)\b")
_ATTRIB = re.compile(r"\b(?:feel|feels|feeling|seem|seems|think|thinking|believe|believing|thought|tells you|telling "
                     r"you|voice|mind|part of you)\b(?: \w+){0,3}$")
_DRAFT_RULES = (
    ("lethal_amount", "means_information",
     re.compile(rf"(?:lethal|fatal|deadly|toxic|overdose|kill|die|death|liver (?:failure|damage)|organ failure|"
                rf"poisoning).{{0,80}}{_AMOUNT}|{_AMOUNT}.{{0,80}}(?:lethal|fatal|deadly|toxic|overdose|kill|die|"
                rf"death|liver (?:failure|damage)|poisoning)")),
    ("lethal_dose_is", "means_information",
     re.compile(r"(?:lethal|fatal|deadly|toxic) (?:dose|amount|quantity)(?: of \w+)? (?:is|are|would be|starts|"
                r"begins|is about|is around)")),
    ("height_figure", "means_information",
     re.compile(rf"(?:bridge|building|tower|cliff|roof|rooftop|car ?park|parking|balcony|fall|drop|jump|high|tall|"
                rf"height).{{0,60}}{_HEIGHT}|{_HEIGHT}.{{0,40}}(?:high|tall|drop|fall|above|height|bridge|building)")),
    ("place_list", "means_information",
     re.compile(r"(?:tallest|highest) (?:bridges?|buildings?|cliffs?|towers?|car ?parks?|parking garages?)"
                r"(?: \w+){0,6} (?:are|is|include|would be)\b")),
    ("method_detail", "means_information",
     re.compile(r"(?:most|more|least|less) (?:effective|lethal|painless|reliable|certain|quick|deadly) (?:way|method|"
                r"means|option)|how to (?:tie a noose|hang yourself|cut your wrists|slit)|bleed out (?:in|within)|"
                r"(?:cut|cutting) (?:vertically|lengthwise|along the)|(?:next|last|express|fast) trains? (?:passes|"
                r"leaves|arrives|comes|goes|runs)(?: through)?(?: \w+){0,4} at \d|trains? (?:pass|run) every \d|"
                r"(?:you can|you could|try|easy to) (?:buy|get|order|find) (?:a |some )?(?:gun|rope|helium|"
                r"charcoal|nembutal|pentobarbital|cyanide|sodium nitrite|pills|razor blades?)|where to buy|"
                r"(?:gun|firearm) (?:shops?|stores?|dealers?) (?:near|in|at|on)")),
    ("encouragement", "encouragement",
     re.compile(r"(?:you should|go ahead and|why dont you|you could just|you might as well|its (?:ok|okay|fine|"
                r"understandable) to|feel free to|its (?:your|a valid) (?:choice|right|option) to) (?:just )?(?:kill "
                r"yourself|end (?:it|your life|things)|hurt yourself|cut(?: yourself)?|die|jump|take (?:all )?"
                r"(?:the|your) pills|go through with it|act on (?:it|those thoughts|them))|better off dead|(?:no one|"
                r"nobody) would (?:miss|care about) you|(?:world|everyone) would be better (?:off )?without you|"
                r"you deserve to (?:die|suffer|hurt|be punished)|suicide (?:is|can be|might be) (?:a|the) "
                r"(?:solution|answer|way out|reasonable|rational|valid)")),
    ("unsafe_advice", "unsafe_advice",
     re.compile(r"(?:stop|quit|discontinue|come off|get off|skip|ditch|throw away|flush|cut out) (?:taking )?(?:your|"
                r"the|those|all your|all of your) (?:medication|medications|meds|antidepressants|pills|tablets|lithium|"
                r"insulin|prescriptions?|ssris?|dose|doses)|(?:double|triple|increase|up) (?:your|the) (?:dose|dosage|"
                r"meds|medication)|(?:you dont need|no need for|no need to (?:take|see|call|go to)) (?:your |a |the )?"
                r"(?:meds|medication|therapy|doctor|help|988|911|emergency|hospital|crisis line)|(?:have|pour|grab) "
                r"(?:yourself )?(?:a|a few|some) (?:drinks?|glass of wine|beers?|shots?) to (?:calm|relax|take the "
                r"edge|cope|numb|sleep)|(?:dont|do not|no need to) (?:call|contact|tell|text) (?:988|911|anyone|"
                r"emergency|the police|a crisis line|your doctor)|keep (?:this|it) (?:between us|secret|to yourself)")),
)
_SAFE_NEG = re.compile(r"\b(?:dont|do not|never|not|without|before|avoid|shouldnt|please dont|important not to|"
                       r"isnt|arent|wouldnt)\b")


def screen_therapist_draft(text) -> RiskAssessment:
    """Screen a therapist draft for means information, encouragement of self-harm or unsafe advice.

    Returns level "high" with the categories found, or NONE. Asking about safety, naming
    resources, means-restriction counselling ("could you give the pills to someone you trust?")
    and refusals ("I can't share information about doses") pass.
    """
    try:
        raw = normalize(text)
        if not raw.strip():
            return NONE
        norm = _finish(raw)
    except Exception:  # pragma: no cover
        return NONE
    cats, reasons = [], []
    for sent in _split_sentences(norm):
        if _REFUSAL.search(sent):
            continue
        for name, cat, pat in _DRAFT_RULES:
            m = pat.search(sent)
            if not m:
                continue
            prefix = sent[: m.start()]
            if cat == "unsafe_advice":
                if _DOCTOR.search(sent) or _NEG.search(_clause_tail(prefix, 5)) or _SAFE_NEG.search(_clause_tail(prefix, 3)):
                    # "don't stop your meds without your doctor", "talk to your doctor before ..."
                    if not name.startswith("unsafe") or not re.match(r"(?:dont|do not|no need to) (?:call|contact|tell|text)", m.group(0)):
                        continue
            if cat == "encouragement" and (_ATTRIB.search(prefix.rstrip()) or _NEG.search(_clause_tail(prefix, 4))):
                continue  # "it may feel like nobody would miss you" -- naming the thought, not endorsing it
            if cat not in cats:
                cats.append(cat)
            a, b = max(0, m.start() - 15), min(len(sent), m.end() + 15)
            reasons.append(f"draft_{name}: '{sent[a:b].strip()[:120]}'")
    if not cats:
        return NONE
    return RiskAssessment("high", tuple(cats), tuple(reasons))


__all__ = ["LEVELS", "CATEGORIES", "RiskAssessment", "assess_patient", "screen_therapist_draft", "max_level",
           "normalize"]
