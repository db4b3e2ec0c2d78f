"""Import the studies' standardized patient profiles (a JSON list of profile records).

Each record has the keys in ``PROFILE_KEYS``, all non-empty strings. The whole file is read and
every record checked before anything is returned, so a bad record stops the import with a
``PersonaError`` that names it (index and, where there is one, its profile_hash) and nothing is
half-imported. Imported personas keep the file's ``profile_hash``: importing a file twice adds
nobody the second time.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from patient_sim.personas import ARCHETYPES, PSYCH_LEVELS, Persona, PersonaError

PROFILE_KEYS = ("full_scenario_text", "archetype_name", "presenting_problem_detail", "interaction_style_name",
                "interaction_style_description", "psych_mindedness_level", "profile_summary_for_prompt",
                "profile_hash")

# Used only when a record does not name its person: a stable pick by profile_hash, so the same
# record always gets the same name.
FALLBACK_NAMES = ("Alex", "Jordan", "Sam", "Casey", "Riley", "Morgan", "Taylor", "Jamie", "Robin", "Drew",
                  "Avery", "Quinn")
_NAME_PATTERNS = (
    re.compile(r"\bName\s*:\s*([A-Z][a-z]+(?:-[A-Z][a-z]+)?)"),
    re.compile(r"\bYou are ([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b(?=,| \(| is|\.| a | an )"),
    re.compile(r"^([A-Z][a-z]+(?:-[A-Z][a-z]+)?),? (?:is )?(?:a|an) \d{2}-year-old", re.M),
)
_NOT_NAMES = {"You", "The", "This", "Patient", "Client", "Name", "A", "An", "He", "She", "They"}


def import_profiles(path: str | Path) -> list[Persona]:
    """Read, validate and convert a profile file; raise PersonaError before returning anything if any record is bad."""
    path = Path(path)
    records = _read_records(path)
    for index, record in enumerate(records):
        problem = _record_problem(record)
        if problem:
            raise PersonaError(f"{path.name}: {_label(index, record)}: {problem}")
    _check_unique_hashes(path, records)
    return [_to_persona(record) for record in records]


def _read_records(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PersonaError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PersonaError(f"{path}: cannot read the file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise PersonaError(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, list):
        raise PersonaError(f"{path.name}: the top level must be a JSON list of profile records, "
                           f"not {type(data).__name__}")
    if not data:
        raise PersonaError(f"{path.name}: the file holds no profile records")
    return data


def _label(index: int, record: Any) -> str:
    profile_hash = record.get("profile_hash") if isinstance(record, dict) else None
    if isinstance(profile_hash, str) and profile_hash.strip():
        return f"record {index} (profile_hash {profile_hash.strip()[:16]})"
    return f"record {index}"


def _record_problem(record: Any) -> str | None:
    """What is wrong with one record, or None."""
    if not isinstance(record, dict):
        return f"must be a JSON object, not {type(record).__name__}"
    missing = [key for key in PROFILE_KEYS if key not in record]
    if missing:
        return f"missing key(s): {', '.join(missing)}"
    for key in PROFILE_KEYS:
        value = record[key]
        if not isinstance(value, str):
            return f"{key} must be a string, not {type(value).__name__}"
        if not value.strip():
            return f"{key} is empty"
    if not re.fullmatch(r"[0-9A-Za-z_-]{8,128}", record["profile_hash"].strip()):
        return "profile_hash must be 8-128 letters, digits, '-' or '_' (it becomes part of the persona id)"
    return None


def _check_unique_hashes(path: Path, records: list[dict]) -> None:
    # Two different records with one hash (or one id prefix) would silently collapse into one persona.
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        key = record["profile_hash"].strip()[:12]
        if key in seen and records[seen[key]] != record:
            raise PersonaError(f"{path.name}: {_label(index, record)}: its profile_hash (first 12 characters) "
                               f"repeats record {seen[key]}'s, with different content")
        seen.setdefault(key, index)


def _to_persona(record: dict) -> Persona:
    profile = {key: record[key].strip() for key in PROFILE_KEYS}
    profile_hash = profile["profile_hash"]
    archetype = _canonical_archetype(profile["archetype_name"])
    summary = (f"{profile['profile_summary_for_prompt']}\n\nHow you come across: "
               f"{profile['interaction_style_name']}. {profile['interaction_style_description']}")
    return Persona(
        id="imp-" + profile_hash[:12].lower(), name=_name_of(profile), modality="act", archetype=archetype,
        # The interaction style in the summary carries the manner; "plain" adds no second one on top.
        style="plain", psych_mindedness=_psych_level(profile["psych_mindedness_level"]),
        summary=summary, opening=None, profile=profile, profile_hash=profile_hash, source="imported")


def _canonical_archetype(name: str) -> str:
    """The library's spelling when the file's matches it ignoring case and spacing; else the file's own."""
    squeeze = re.sub(r"[\s_-]+", " ", name).strip().lower()
    for known in ARCHETYPES:
        if known.lower().replace("-", " ") == squeeze.replace("-", " "):
            return known
    return name


def _psych_level(level: str) -> str:
    word = level.strip().lower()
    for known in PSYCH_LEVELS:
        if word.startswith(known):
            return known
    return word


def _name_of(profile: dict) -> str:
    for text in (profile["profile_summary_for_prompt"], profile["full_scenario_text"]):
        for pattern in _NAME_PATTERNS:
            match = pattern.search(text)
            if match and match.group(1) not in _NOT_NAMES:
                return match.group(1)
    return FALLBACK_NAMES[int.from_bytes(profile["profile_hash"].encode("utf-8"), "big") % len(FALLBACK_NAMES)]
