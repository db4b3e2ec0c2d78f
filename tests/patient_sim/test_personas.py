"""Personas: the shipped library, the sampler, the teacher step, the profile importer, the store, the CLI."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from models.fake_backend import FakeBackend
from patient_sim.__main__ import main
from patient_sim.importer import PROFILE_KEYS, import_profiles
from patient_sim.personas import (ARCHETYPES, STYLES, Persona, PersonaError, load_library, persona_store,
                                  profile_hash_of, defining_fields, word_count)
from patient_sim.sampler import expand_with_teacher, sample_personas, summarise_profile
from store.personas import PersonaNotFound, PersonaStore, PersonaStoreError


def _record(i: int, **overrides) -> dict:
    """One standardized-profile record written for these tests (fictional)."""
    archetypes = list(ARCHETYPES)
    record = {
        "full_scenario_text": f"Name: Wren{chr(97 + i)}. A {30 + i}-year-old bookbinder whose hands have started "
                              "to shake; she fears losing her trade and keeps cancelling plans.",
        "archetype_name": archetypes[i % 4],
        "presenting_problem_detail": "Worry about a tremor and about the future of her workshop.",
        "interaction_style_name": ARCHETYPES[archetypes[i % 4]]["interaction_style"],
        "interaction_style_description": "Answers with what might go wrong next and asks for guarantees.",
        "psych_mindedness_level": "Moderate",
        "profile_summary_for_prompt": f"You are a {30 + i}-year-old bookbinder worried about a hand tremor.",
        "profile_hash": f"{i:02d}" + "ab" * 31,
    }
    record.update(overrides)
    return record


def _write(tmp_path, data, name="profiles.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _count(store) -> int:
    return store.db.execute("SELECT COUNT(*) FROM personas").fetchone()[0]


# --- library ----------------------------------------------------------------------------------


def test_library_is_complete_and_valid():
    library = load_library()
    assert len(library) >= 24
    ids = [p.id for p in library]
    assert len(set(ids)) == len(ids)
    assert len({p.profile_hash for p in library}) == len(library)
    assert set(p.style for p in library) == set(STYLES)
    act = [p for p in library if p.modality == "act"]
    cbt = [p for p in library if p.modality == "cbt"]
    assert len(act) >= 12 and len(cbt) >= 12
    assert all(n >= 3 for n in Counter(p.archetype for p in act).values())
    assert set(p.archetype for p in act) == set(ARCHETYPES)
    assert {p.profile["severity"] for p in cbt} == {"mild", "moderate", "severe"}
    assert {p.profile["engagement"] for p in cbt} == {"low", "medium", "high"}
    for p in library:
        assert 80 <= word_count(p.summary) <= 250, p.id
        assert p.source == "library" and p.name and p.opening
        assert p.profile_hash == profile_hash_of(defining_fields(p))
    for p in act:  # psych-mindedness follows the archetype
        assert p.psych_mindedness == ARCHETYPES[p.archetype]["psych_mindedness"]


def test_library_error_names_file_and_entry(tmp_path):
    (tmp_path / "x.yaml").write_text("personas:\n  - id: bad-one\n    name: Kim\n    modality: cbt\n"
                                     "    style: shouty\n    summary: short\n    profile: {severity: mild}\n")
    with pytest.raises(PersonaError, match=r"x\.yaml: entry 0 \(bad-one\): style 'shouty'"):
        load_library(tmp_path)


# --- sampler ----------------------------------------------------------------------------------


def test_sampler_is_reproducible_and_respects_n():
    first, again = sample_personas(6, seed=11), sample_personas(6, seed=11)
    assert [p.to_dict() for p in first] == [p.to_dict() for p in again]
    other = sample_personas(6, seed=12)
    assert [p.id for p in first] != [p.id for p in other]
    assert [p.summary for p in first] != [p.summary for p in other]
    assert len(sample_personas(1, 5)) == 1 and sample_personas(0, 5) == []
    assert [p.id for p in sample_personas(3, 11)] == [p.id for p in first[:3]]
    assert len({p.id for p in sample_personas(40, 3)}) == 40


def test_sampled_personas_are_well_formed():
    cbt = sample_personas(30, seed=1)
    act = sample_personas(30, seed=1, modality="act")
    for p in cbt + act:
        assert p.source == "sampled" and p.id == "smp-" + p.profile_hash[:12]
        assert p.style in STYLES and p.name in p.summary
        assert 80 <= word_count(p.summary) <= 250
        assert 1 <= len(p.profile["life_events"]) <= 3
        for key in ("age_band", "gender", "ethnicity", "education", "occupation", "severity", "engagement",
                    "family_background", "social_support", "hobbies", "traits", "coping"):
            assert p.profile[key], key
    assert all(p.modality == "cbt" and p.archetype is None for p in cbt)
    assert all(p.modality == "act" and p.archetype in ARCHETYPES for p in act)
    assert all(p.psych_mindedness == ARCHETYPES[p.archetype]["psych_mindedness"] for p in act)
    assert len({p.archetype for p in act}) == 4
    with pytest.raises(PersonaError):
        sample_personas(2, 1, modality="dbt")


# --- teacher step -----------------------------------------------------------------------------

WRITTEN = "\n".join(f"**{section}:** " + " ".join(
    f"{section} sentence {n} about the person, with enough words to count." for n in range(1, 5))
    for section in ("Backstory", "Symptoms", "Onset", "Treatment history", "Coping", "Support",
                    "Strengths", "Likely obstacles", "Goals", "Cultural beliefs"))


def test_expand_with_teacher_writes_profile_and_short_summary():
    sampled = sample_personas(1, seed=4)[0]
    teacher = FakeBackend("teacher", replies=[WRITTEN])
    expanded = expand_with_teacher(sampled, teacher, max_tokens=500)
    messages, params = teacher.calls[0]
    assert params.max_tokens == 500
    assert "Cultural beliefs" in messages[-1]["content"] and sampled.profile["occupation"] in messages[-1]["content"]
    assert expanded.source == "teacher" and expanded.id.startswith("tch-") and expanded.id != sampled.id
    assert "**" not in expanded.profile["written_profile"]
    assert "Goals sentence 1" in expanded.profile["written_profile"]
    assert expanded.profile["occupation"] == sampled.profile["occupation"] and expanded.name == sampled.name
    assert word_count(expanded.summary) <= 250
    # Trimmed sensibly: every section keeps its first sentence, and the cut is at sentence ends.
    for section in ("Backstory", "Goals", "Cultural beliefs"):
        assert f"{section} sentence 1 " in expanded.summary
    assert expanded.summary.endswith(".")
    assert sampled.source == "sampled"  # the input is not changed


def test_expand_with_teacher_errors_are_persona_errors():
    sampled = sample_personas(1, seed=4)[0]
    with pytest.raises(PersonaError, match="teacher model teacher failed"):
        expand_with_teacher(sampled, FakeBackend("teacher", replies=[WRITTEN], fail_after=3))
    with pytest.raises(PersonaError, match="returned nothing"):
        expand_with_teacher(sampled, FakeBackend("teacher", replies=["  <think>hmm</think> \n"]))
    with pytest.raises(PersonaError, match="failed"):
        expand_with_teacher(sampled, FakeBackend("teacher", replies=[]))  # BackendError: no reply left


def test_summarise_profile_without_headings_cuts_at_sentences():
    text = " ".join(f"Sentence number {i} has six words." for i in range(100))
    out = summarise_profile(text, 50)
    assert word_count(out) <= 50 and out.endswith(".")


# --- importer ---------------------------------------------------------------------------------


def test_import_maps_records(tmp_path):
    personas = import_profiles(_write(tmp_path, [_record(i) for i in range(3)]))
    assert len(personas) == 3
    first = personas[0]
    assert first.id == "imp-" + _record(0)["profile_hash"][:12] and first.source == "imported"
    assert first.profile_hash == _record(0)["profile_hash"] and first.modality == "act"
    assert first.archetype == list(ARCHETYPES)[0] and first.psych_mindedness == "moderate"
    assert first.name == "Wrena"
    assert _record(0)["profile_summary_for_prompt"] in first.summary
    assert _record(0)["interaction_style_description"] in first.summary
    assert set(first.profile) == set(PROFILE_KEYS)


def test_import_is_idempotent(tmp_path, store):
    path = _write(tmp_path, [_record(i) for i in range(3)])
    personas = persona_store(store)
    assert personas.upsert_many(import_profiles(path)) == (3, 0)
    assert personas.upsert_many(import_profiles(path)) == (0, 3)
    assert _count(store) == 3


@pytest.mark.parametrize("data, message", [
    ([_record(0), {k: v for k, v in _record(1).items() if k != "archetype_name"}],
     r"record 1 \(profile_hash 01abab.*\): missing key\(s\): archetype_name"),
    ([_record(0), _record(1), _record(2, psych_mindedness_level=3)],
     r"record 2 \(profile_hash 02ab.*\): psych_mindedness_level must be a string, not int"),
    ([_record(0, profile_summary_for_prompt="   ")], r"record 0 .*profile_summary_for_prompt is empty"),
    ([_record(0), "just text"], r"record 1: must be a JSON object"),
    ({"profiles": [_record(0)]}, r"top level must be a JSON list"),
    ('[{"full_scenario_text": "x",', r"not valid JSON \(line 1"),
    ([_record(0), _record(1, profile_hash=_record(0)["profile_hash"])], r"record 1 .*repeats record 0"),
])
def test_malformed_files_raise_and_store_nothing(tmp_path, store, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(PersonaError, match=message):
        import_profiles(path)
    assert main(["--data-dir", str(store.path.parent), "import-personas", str(path)]) == 2
    assert _count(store) == 0


# --- CLI --------------------------------------------------------------------------------------


def test_cli_import_and_list(tmp_path, store, capsys):
    data_dir = str(store.path.parent)
    path = _write(tmp_path, [_record(i) for i in range(3)])
    assert main(["--data-dir", data_dir, "import-personas", str(path)]) == 0
    assert "imported 3, skipped 0 (already present)" in capsys.readouterr().out
    assert main(["--data-dir", data_dir, "import-personas", str(path)]) == 0
    assert "imported 0, skipped 3 (already present)" in capsys.readouterr().out
    assert main(["--data-dir", data_dir, "import-personas", str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["--data-dir", data_dir, "personas", "--modality", "act"]) == 0
    out = capsys.readouterr().out
    assert "act-skeptic-01" in out and "imp-00abababab" in out and "cbt-mild-01" not in out
    assert "15 personas (12 from the library)" in out


def test_cli_sample_is_reproducible(store, capsys):
    data_dir = str(store.path.parent)
    assert main(["--data-dir", data_dir, "personas", "--sample", "3", "--seed", "9", "--modality", "act"]) == 0
    first = capsys.readouterr().out
    assert main(["--data-dir", data_dir, "personas", "--sample", "3", "--seed", "9", "--modality", "act"]) == 0
    assert capsys.readouterr().out == first and first.count("== smp-") == 3
    assert _count(store) == 0  # printing samples stores nothing
    assert main(["--data-dir", data_dir, "personas", "--sample", "3", "--seed", "9", "--save"]) == 0
    assert "saved 3, skipped 0" in capsys.readouterr().out and _count(store) == 3
    assert main(["--data-dir", data_dir, "personas", "--sample", "0"]) == 2


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "import-personas" in out and "personas" in out and "--data-dir" in out


# --- store ------------------------------------------------------------------------------------


def test_persona_store_round_trip(store):
    personas = persona_store(store)
    original = sample_personas(1, seed=2, modality="act")[0]
    row, created = personas.upsert(original)
    assert created and row["id"] == original.id and row["archetype"] == original.archetype
    again_row, again_created = personas.upsert(original)
    assert not again_created and again_row["id"] == original.id
    loaded = personas.get(original.id)
    assert isinstance(loaded, Persona) and loaded == original
    assert personas.list(modality="act") == [original] and personas.list(modality="cbt") == []
    assert personas.list(source="sampled") == [original] and personas.list(source="library") == []
    with pytest.raises(PersonaNotFound):
        personas.get("nobody-here")
    # Without patient_sim's converter the store works on plain records.
    assert PersonaStore(store).get(original.id)["summary"] == original.summary


def test_same_person_under_another_id_is_skipped_and_id_reuse_refused(store):
    personas = persona_store(store)
    original = sample_personas(1, seed=2)[0]
    personas.upsert(original)
    renamed = Persona(**{**original.to_dict(), "id": "some-other-id"})
    row, created = personas.upsert(renamed)
    assert not created and row["id"] == original.id
    changed = Persona(**{**original.to_dict(), "summary": "changed", "profile_hash": "f" * 64})
    with pytest.raises(PersonaStoreError, match="already stored for a different profile"):
        personas.upsert(changed)


def test_upsert_many_is_one_transaction(store):
    personas = persona_store(store)
    good = sample_personas(3, seed=8)
    bad = Persona(**{**good[0].to_dict(), "profile_hash": "e" * 64})  # id of good[0], another person
    with pytest.raises(PersonaStoreError):
        personas.upsert_many(good + [bad])
    assert _count(store) == 0


def test_ensure_library_is_idempotent(store):
    personas = persona_store(store)
    library = load_library()
    assert personas.ensure_library() == len(library)
    assert personas.ensure_library() == 0
    assert _count(store) == len(library)
    assert personas.get("act-skeptic-01") == next(p for p in library if p.id == "act-skeptic-01")
    assert len(personas.list(source="library", modality="cbt")) == sum(p.modality == "cbt" for p in library)
    with pytest.raises(PersonaStoreError, match="no persona library"):
        PersonaStore(store).ensure_library()


def test_ensure_library_keeps_a_stored_persona_whose_shipped_text_changed(store, caplog):
    personas = persona_store(store)
    library = load_library()
    personas.ensure_library(library[:1])
    edited = Persona(**{**library[0].to_dict(), "summary": library[0].summary + " Edited."})
    edited = Persona(**{**edited.to_dict(), "profile_hash": profile_hash_of(defining_fields(edited))})
    assert personas.ensure_library([edited] + library[1:]) == len(library) - 1
    assert personas.get(library[0].id) == library[0]
    assert library[0].id in caplog.text
