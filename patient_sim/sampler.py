"""Sampled personas: a person drawn from the CBT study's list of characteristics, and the optional
teacher step that writes a full profile from it.

``sample_personas(n, seed)`` draws age band, gender, ethnicity, education, occupation, severity,
engagement, family background, social support, 1-3 life events, hobbies, personality traits and
coping, plus a conversation style (and for ACT an archetype), then renders a second-person summary
from a template. Only a ``random.Random(seed)`` is used, so the same seed gives the same people,
word for word, on any machine; the first k of ``sample_personas(n, s)`` are ``sample_personas(k, s)``.

``expand_with_teacher`` asks any chat backend to write the richer profile the study's teacher
model wrote (backstory, symptoms, onset, treatment history, ...), and keeps the summary short
enough for a small patient model.
"""
from __future__ import annotations

import dataclasses
import random
import re
import zlib

from models.base import GenParams
from patient_sim.personas import ARCHETYPES, STYLES, Persona, PersonaError, with_hash
from vocabulary import SESSION_MODALITIES

# --- the characteristics (every value a phrase that reads inside the summary) ----------------

AGE_BANDS = ((18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 80))
RETIREMENT_AGE = 66

GENDERS = (("woman", 48), ("man", 45), ("non-binary", 7))
NEUTRAL_NAMES = ("Alex", "Sam", "Jamie", "Robin", "Taylor", "Casey", "Riley", "Quinn", "Morgan", "Charlie")
# ethnicity -> (women's names, men's names); first names common in that community.
ETHNICITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "white British": (("Claire", "Sophie", "Rachel", "Joanne"), ("Mark", "Callum", "Stephen", "Oliver")),
    "white American": (("Jessica", "Megan", "Amy", "Laura"), ("Kevin", "Tyler", "Brian", "Scott")),
    "Black British": (("Shanice", "Marcia", "Abena", "Jade"), ("Marcus", "Tyrone", "Kofi", "Jermaine")),
    "African-American": (("Keisha", "Tamika", "Monique", "Brianna"), ("Darnell", "Jamal", "Andre", "Malik")),
    "Mexican-American": (("Gabriela", "Daniela", "Marisol", "Veronica"), ("Alejandro", "Luis", "Javier", "Miguel")),
    "British Indian": (("Anjali", "Sunita", "Kavya", "Meera"), ("Rahul", "Arjun", "Vikram", "Sanjay")),
    "British Pakistani": (("Ayesha", "Sana", "Hina", "Saima"), ("Imran", "Bilal", "Usman", "Zain")),
    "Chinese-Canadian": (("Jing", "Lin", "Wen", "Xiu"), ("Wei", "Jun", "Hao", "Ming")),
    "Korean-American": (("Ji-woo", "Min-ji", "Soo-jin", "Hye-jin"), ("Min-jun", "Dong-hyun", "Sung-ho", "Jae")),
    "Arab-American": (("Leila", "Yasmin", "Mariam", "Rania"), ("Omar", "Karim", "Samir", "Tariq")),
    "Filipino-American": (("Maricel", "Joy", "Analyn", "Cristina"), ("Paolo", "Ramon", "Jericho", "Noel")),
    "Polish": (("Katarzyna", "Agnieszka", "Magda", "Ewa"), ("Piotr", "Marek", "Krzysztof", "Pawel")),
    "mixed-race": (("Maya", "Zara", "Chloe", "Aaliyah"), ("Jayden", "Noah", "Elijah", "Reuben")),
}

EDUCATION = ("a school-leaving certificate", "a vocational qualification", "some college credits",
             "a bachelor's degree", "a master's degree", "a doctorate")
# The highest EDUCATION index plausible at an age (nobody holds a doctorate at 19).
_EDUCATION_BY_AGE = ((21, 2), (23, 3), (26, 4))
# (occupation, lowest EDUCATION index it usually needs), so a sampled CV stays plausible.
OCCUPATIONS = (
    ("care worker", 0), ("delivery driver", 0), ("retail assistant", 0), ("warehouse operative", 0),
    ("call-centre agent", 0), ("bank clerk", 0), ("office administrator", 0), ("stay-at-home parent", 0),
    ("police officer", 0), ("electrician", 1), ("chef", 1), ("hairdresser", 1), ("self-employed builder", 1),
    ("dental nurse", 1), ("nurse", 3), ("secondary-school teacher", 3), ("software developer", 3),
    ("accountant", 3), ("social worker", 3), ("graphic designer", 3), ("pharmacist", 4), ("solicitor", 4),
    ("university researcher", 5),
)
SEVERITIES = ("mild", "moderate", "severe")
ENGAGEMENTS = ("low", "medium", "high")

FAMILY_BACKGROUNDS = (
    "grew up the eldest of four in a loud, close family",
    "were raised by a single mother who worked two jobs",
    "grew up with parents who argued a lot and separated when you were twelve",
    "grew up in a quiet family where feelings were rarely talked about",
    "were raised partly by your grandparents",
    "moved countries with your family as a child and had to start again at school",
    "grew up with a father who drank heavily and a mother who kept the peace",
    "were the only child of older, protective parents",
)
SOCIAL_SUPPORT = (
    "a partner who tries to help but does not really understand",
    "one good friend you can call at any hour",
    "a sister who checks in on you",
    "few people you feel you can really talk to",
    "a big family who are around but hard to confide in",
    "colleagues you get on with, but little beyond that",
    "a parent you speak to most days",
)
# (event, youngest age, oldest age) so a 20-year-old does not retire.
LIFE_EVENTS = (
    ("losing your job", 20, 64), ("the end of a long relationship", 18, 80), ("the death of a parent", 18, 80),
    ("a move to a new city", 18, 70), ("a parent's serious illness", 18, 75), ("retiring", 60, 80),
    ("the birth of your first child", 20, 45), ("falling out with a close friend", 18, 80),
    ("money worries after your rent went up", 18, 80), ("being passed over for promotion", 24, 64),
    ("an injury that kept you off work for months", 20, 70), ("your youngest child's move away from home", 42, 70),
    ("caring for an ill relative", 25, 80), ("a burglary at home", 18, 80), ("failing an important exam", 18, 30),
)
HOBBIES = ("running", "gardening", "cooking", "playing video games", "reading crime novels", "playing the guitar",
           "playing football", "knitting", "photography", "hiking", "painting", "watching old films", "fishing",
           "yoga", "board games with friends", "baking", "cycling", "singing in a choir")
TRAITS = ("conscientious", "perfectionistic", "introverted", "outgoing", "anxious", "stubborn", "warm",
          "self-critical", "funny", "cautious", "independent", "sensitive", "practical", "impatient")
_CLASHING = ({"introverted", "outgoing"}, {"cautious", "impatient"})
COPING = ("keeping busy with work", "going for long walks", "drinking more than you used to",
          "scrolling on your phone late at night", "talking things over with a friend", "sleeping a lot",
          "comfort eating", "exercising hard", "praying", "avoiding people", "watching TV for hours",
          "writing in a journal")
TREATMENT_HISTORY = (
    "You have never had therapy before.",
    "You saw a counsellor for a few sessions some years ago.",
    "Your doctor prescribed an antidepressant, which you take on and off.",
    "You tried a self-help app but gave up after a week.",
)
# Unhelpful beliefs a CBT therapist would work with (kept free of self-harm content on purpose).
THOUGHTS = ("I'm letting everyone down", "nothing I do turns out right", "I should be coping better than this",
            "everyone else has their life together", "it's never going to get better", "I'm not good enough")
SYMPTOMS = {
    "mild": ("low mood most afternoons", "less enjoyment in things you used to like", "tiring easily",
             "trouble switching off at night", "being harder on yourself than usual"),
    "moderate": ("waking early and lying awake", "pulling away from friends", "struggling to concentrate",
                 "a poor appetite", "guilt about small things", "crying more than usual"),
    "severe": ("feeling empty nearly all day", "barely managing to shower or cook", "slowed thinking and moving",
               "hopelessness about the future", "sleeping through much of the day"),
}
ACT_PROBLEMS = ("constant worry and tension", "chronic pain that limits your days", "grief after a loss",
                "panic attacks", "stress and burnout at work", "anxiety in social situations",
                "fear about your health", "a loss of direction in life", "anger and irritability",
                "sleeplessness driven by worry")
ENGAGEMENT_LINES = {
    "low": "You are not sure therapy can help, came mostly because someone pushed you, and you will "
           "only try a task if it feels easy and relevant.",
    "medium": "You are willing to give therapy a go, answer honestly, and do homework when life does not "
              "get in the way.",
    "high": "You want this to work: you answer openly, ask questions and take homework seriously.",
}
IMPACT_LINES = {
    "mild": "It is unpleasant, but you still manage most things.",
    "moderate": "It gets in the way of work and of the people close to you.",
    "severe": "It now shapes most of your days, and you have dropped much of what mattered to you.",
}


def sample_personas(n: int, seed: int, modality: str = "cbt") -> list[Persona]:
    """``n`` distinct sampled personas; the same (n, seed, modality) always gives the same list."""
    if modality not in SESSION_MODALITIES:
        raise PersonaError(f"modality must be 'cbt' or 'act', not {modality!r}")
    if n < 0:
        raise PersonaError("n must not be negative")
    rng = random.Random(seed)
    personas: list[Persona] = []
    seen: set[str] = set()
    # Two identical draws would be one person (one hash); redraw, but never loop forever.
    for _ in range(n * 20 + 20):
        if len(personas) == n:
            break
        persona = _persona_from(_draw_profile(rng, modality))
        if persona.profile_hash not in seen:
            seen.add(persona.profile_hash)
            personas.append(persona)
    return personas


def _draw_profile(rng: random.Random, modality: str) -> dict:
    low, high = rng.choice(AGE_BANDS)
    age = rng.randint(low, high)
    gender = rng.choices([g for g, _ in GENDERS], weights=[w for _, w in GENDERS])[0]
    ethnicity = rng.choice(sorted(ETHNICITIES))
    women, men = ETHNICITIES[ethnicity]
    name = rng.choice({"woman": women, "man": men}.get(gender, NEUTRAL_NAMES))
    education = rng.randint(0, _max_education(age))
    profile = {
        "modality": modality, "name": name, "age": age, "age_band": f"{low}-{high}", "gender": gender,
        "ethnicity": ethnicity, "education": EDUCATION[education],
        "occupation": _occupation(rng, age, education),
        "severity": rng.choice(SEVERITIES), "engagement": rng.choice(ENGAGEMENTS),
        "family_background": rng.choice(FAMILY_BACKGROUNDS), "social_support": rng.choice(SOCIAL_SUPPORT),
        "life_events": rng.sample([e for e, lo, hi in LIFE_EVENTS if lo <= age <= hi], rng.randint(1, 3)),
        "hobbies": rng.sample(HOBBIES, rng.randint(1, 2)),
        "traits": _traits(rng),
        "coping": rng.sample(COPING, rng.randint(1, 3)),
        "duration_months": rng.randint(2, 24),
        "treatment_history": rng.choice(TREATMENT_HISTORY),
        "style": rng.choice(sorted(STYLES)),
    }
    if modality == "cbt":
        profile["symptoms"] = _symptoms(rng, profile["severity"])
        profile["core_thought"] = rng.choice(THOUGHTS)
    else:
        profile["presenting_problem"] = rng.choice(ACT_PROBLEMS)
        profile["archetype"] = rng.choice(sorted(ARCHETYPES))
    return profile


def _max_education(age: int) -> int:
    for up_to_age, highest in _EDUCATION_BY_AGE:
        if age <= up_to_age:
            return highest
    return len(EDUCATION) - 1


def _occupation(rng: random.Random, age: int, education: int) -> str:
    if age <= 22 and education >= 2 and rng.random() < 0.6:
        return "university student"
    # Jobs a person with this education mostly holds: not above it, and not far below it.
    job = rng.choice([name for name, needs in OCCUPATIONS if education - 2 <= needs <= education])
    return f"retired {job}" if age >= RETIREMENT_AGE and job != "stay-at-home parent" else job


def _traits(rng: random.Random) -> list[str]:
    while True:
        pair = rng.sample(TRAITS, 2)
        if set(pair) not in _CLASHING:
            return pair


def _symptoms(rng: random.Random, severity: str) -> list[str]:
    # Worse depression: more symptoms, drawn from the milder pools as well as its own.
    pools = {"mild": ("mild",), "moderate": ("mild", "moderate"), "severe": ("moderate", "severe")}[severity]
    candidates = [s for pool in pools for s in SYMPTOMS[pool]]
    return rng.sample(candidates, {"mild": 3, "moderate": 4, "severe": 4}[severity])


# --- rendering --------------------------------------------------------------------------------


def _persona_from(profile: dict) -> Persona:
    archetype = profile.get("archetype")
    persona = Persona(
        id="", name=profile["name"], modality=profile["modality"], archetype=archetype,
        style=profile["style"], psych_mindedness=ARCHETYPES[archetype]["psych_mindedness"] if archetype else None,
        summary=render_summary(profile), opening=_opening(profile), profile=profile, source="sampled")
    persona = with_hash(persona)
    return dataclasses.replace(persona, id="smp-" + persona.profile_hash[:12])


def render_summary(profile: dict) -> str:
    """The second-person role text for a sampled profile."""
    gender = {"non-binary": "non-binary person"}.get(profile["gender"], profile["gender"])
    job = profile["occupation"]
    parts = [
        f"You are {profile['name']}, {_age_article(profile['age'])} {profile['age']}-year-old "
        f"{profile['ethnicity']} {gender}. "
        f"You are {_article(job)} {job} with {profile['education']}, and you {profile['family_background']}.",
        _problem_sentence(profile),
        _events_sentence(profile["life_events"]),
        profile["treatment_history"],
        f"To cope you have been {_join(profile['coping'])}. You have {profile['social_support']}.",
        f"People would call you {_join(profile['traits'])}, and you used to love {_join(profile['hobbies'])}.",
    ]
    if profile["modality"] == "cbt":
        parts.append(f"A thought that keeps coming back is \"{profile['core_thought']}\".")
    else:
        archetype = ARCHETYPES[profile["archetype"]]
        parts.append(f"In conversation you are {archetype['interaction_style'].lower().replace('/', ' and ')}. "
                     f"{archetype['description']}")
    engagement = ENGAGEMENT_LINES[profile["engagement"]]
    # A single ACT session has exercises, not the CBT course's homework.
    parts.append(engagement if profile["modality"] == "cbt" else engagement.replace("homework", "exercises"))
    parts.append(f"More than anything you would like to feel like yourself again and get back to "
                 f"{profile['hobbies'][0]}.")
    return " ".join(parts)


def _problem_sentence(profile: dict) -> str:
    duration = _duration(profile["duration_months"])
    if profile["modality"] == "cbt":
        kind = {"mild": "a low mood that comes and goes", "moderate": "a depression that is wearing you down",
                "severe": "a deep depression"}[profile["severity"]]
        return f"For {duration} you have had {kind}: {_join(profile['symptoms'])}."
    return f"For {duration} you have been struggling with {profile['presenting_problem']}. " \
           f"{IMPACT_LINES[profile['severity']]}"


def _events_sentence(events: list[str]) -> str:
    if len(events) == 1:
        return f"It began after {events[0]}."
    verb = "has" if len(events) == 2 else "have"
    return f"It began after {events[0]}, and {_join(events[1:])} {verb} made it harder."


def _opening(profile: dict) -> str:
    return {
        "low": "Open hesitantly, in a sentence or two, and say someone else suggested you come.",
        "medium": "Open by saying briefly how the last few weeks have been.",
        "high": "Open by explaining what you would like help with.",
    }[profile["engagement"]]


_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven")


def _duration(months: int) -> str:
    if months < 12:
        return f"the past {_NUMBERS[months]} months"
    return "about a year" if months < 18 else "nearly two years"


def _article(phrase: str) -> str:
    # By sound, not letter: "a university student", "an accountant".
    if phrase.lower().startswith(("uni", "use", "eu")):
        return "a"
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def _age_article(age: int) -> str:
    return "an" if age in (8, 11, 18) or 80 <= age <= 89 else "a"


def _join(items: list[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --- the teacher step -------------------------------------------------------------------------

TEACHER_SECTIONS = ("Backstory", "Symptoms", "Onset", "Treatment history", "Coping", "Support", "Strengths",
                    "Likely obstacles", "Goals", "Cultural beliefs")
SUMMARY_MAX_WORDS = 240
_MIN_PROFILE_WORDS = 20

_TEACHER_SYSTEM = (
    "You write realistic, fictional patient profiles used to train and test therapy chatbots. "
    "Write in plain prose addressed to the patient in the second person (\"You grew up...\"), concrete and "
    "specific; no lists of diagnoses, no stage directions."
)


def teacher_messages(persona: Persona) -> list[dict]:
    fields = "\n".join(f"- {key}: {_join(value) if isinstance(value, list) else value}"
                       for key, value in persona.profile.items() if key not in ("written_profile", "modality"))
    sections = "\n".join(f"{name}:" for name in TEACHER_SECTIONS)
    approach = "CBT for depression" if persona.modality == "cbt" else "a single ACT session"
    user = (f"Write the full profile of a patient seeking {approach}, built on these sampled characteristics:\n"
            f"{fields}\n\nUse exactly these headings, each followed by two to four sentences:\n{sections}")
    return [{"role": "system", "content": _TEACHER_SYSTEM}, {"role": "user", "content": user}]


def expand_with_teacher(persona: Persona, backend, max_tokens: int = 600) -> Persona:
    """Have ``backend`` write a full profile for a sampled persona; return it as a "teacher" persona."""
    # A fixed seed per person keeps a rerun of the same teacher on the same person reproducible.
    params = GenParams(max_tokens=max_tokens, temperature=0.7, seed=zlib.crc32(persona.profile_hash.encode()))
    try:
        text = backend.stream(teacher_messages(persona), params).text()
    except Exception as exc:  # any backend (llama.cpp, HTTP, fake) may fail its own way
        raise PersonaError(f"the teacher model {getattr(backend, 'id', '?')} failed for {persona.id}: {exc}") from exc
    written = clean_teacher_text(text)
    if len(written.split()) < _MIN_PROFILE_WORDS:
        raise PersonaError(f"the teacher model {getattr(backend, 'id', '?')} returned "
                           f"{'nothing' if not written else 'too little'} for {persona.id}")
    profile = dict(persona.profile, written_profile=written, teacher_model=getattr(backend, "id", None))
    summary = summarise_profile(written, SUMMARY_MAX_WORDS - 8)
    if not summary.startswith("You are"):
        summary = f"You are {persona.name}. {summary}"
    expanded = with_hash(dataclasses.replace(persona, summary=summary, profile=profile, source="teacher"))
    return dataclasses.replace(expanded, id="tch-" + expanded.profile_hash[:12])


def clean_teacher_text(text: str) -> str:
    """Drop reasoning blocks and markdown decoration; keep the prose and the section headings."""
    text = re.sub(r"<think>.*?(</think>|$)", "", text or "", flags=re.S)
    text = re.sub(r"[*#_`]+", "", text)
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


def _sections(written: str) -> list[list[str]]:
    """The written profile as sections of sentences; text before any heading is its own section."""
    heading = re.compile(r"^(%s)\s*:\s*" % "|".join(re.escape(s) for s in TEACHER_SECTIONS), re.I)
    sections: list[list[str]] = [[]]
    for line in written.splitlines():
        match = heading.match(line)
        if match:
            sections.append([])
            line = line[match.end():]
        sections[-1].extend(s for s in re.split(r"(?<=[.!?])\s+", line.strip()) if s)
    return [section for section in sections if section]


def summarise_profile(written: str, max_words: int) -> str:
    """A summary of at most ``max_words`` that keeps every section: sentences are taken in rounds
    (the first of each section, then the second of each...) and put back in their original order,
    so a long backstory cannot crowd out the goals and obstacles the patient must play."""
    sections = _sections(written)
    chosen: set[tuple[int, int]] = set()
    count = 0
    for rank in range(max((len(s) for s in sections), default=0)):
        for index, section in enumerate(sections):
            if rank < len(section) and count + len(section[rank].split()) <= max_words:
                chosen.add((index, rank))
                count += len(section[rank].split())
    if not chosen:  # not even one sentence fits: cut the text itself
        return trim_words(" ".join(" ".join(s) for s in sections), max_words)
    return " ".join(sections[i][r] for i, r in sorted(chosen))


def trim_words(text: str, max_words: int) -> str:
    """At most ``max_words`` words, cut at the last full sentence that fits (or at a word, with '...')."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(words))
    kept: list[str] = []
    count = 0
    for sentence in sentences:
        n = len(sentence.split())
        if count + n > max_words:
            break
        kept.append(sentence)
        count += n
    if kept:
        return " ".join(kept)
    return " ".join(words[:max_words]) + "..."
