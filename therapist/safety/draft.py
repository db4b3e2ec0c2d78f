"""Therapist draft screen: means information, encouragement of self-harm and unsafe advice."""
from __future__ import annotations

import re

from therapist.safety.cues import _NEG, _clause_tail
from therapist.safety.levels import NONE, RiskAssessment
from therapist.safety.normalize import _finish, _split_sentences, normalize

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
