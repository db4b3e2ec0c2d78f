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

from therapist.safety.draft import screen_therapist_draft
from therapist.safety.levels import CATEGORIES, LEVELS, NONE, RiskAssessment, max_level
from therapist.safety.normalize import HEAD_CHARS, MAX_CHARS, TAIL_CHARS, normalize
from therapist.safety.patient import assess_patient
from therapist.safety.rules import RULES, W, W5, WB
from therapist.safety.classifier import ClassifierVerdict, ModelRiskClassifier, combine

__all__ = ["LEVELS", "CATEGORIES", "RiskAssessment", "assess_patient", "screen_therapist_draft", "max_level",
           "normalize"]
__all__ += ["ModelRiskClassifier", "ClassifierVerdict", "combine"]
