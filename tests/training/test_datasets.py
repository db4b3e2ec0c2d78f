"""The seed corpus and the dataset builders: the corpus is complete and well-formed, splits are by
patient, reasoning is kept or stripped, ORPO pairs have the conversational shape, judge examples
come from human ratings; recipes reject unknown keys."""
from __future__ import annotations

import json

import pytest

from training.build import BuildConfig, build, orpo_records, sft_record, split_by_patient
from training.corpus import CorpusError, load_corpus, parse_record, seed_corpus
from training.recipes import RecipeError, load_recipe


def test_seed_corpus_has_the_promised_sessions():
    cbt, act = seed_corpus("cbt"), seed_corpus("act")
    assert len(cbt) >= 24 and len(act) >= 24 and all(t.synthetic for t in cbt + act)
    assert {t.phase for t in cbt} == {"assessment", "initial", "middle", "termination"}
    assert len({t.patient_id for t in cbt}) >= 6
    for t in act:
        assert len(t.turns) >= 12
        assert all(50 <= len(turn.reasoning.split()) <= 150 for turn in t.therapist_turns), t.id
    for t in cbt:
        assert t.summary and len(t.summary.split()) >= 60
    by_patient = {}
    for t in sorted(cbt, key=lambda t: (t.patient_id, t.session_index)):
        previous = by_patient.get(t.patient_id)
        if previous:
            assert t.previous_summary == previous.summary, t.id  # summaries carry into the next session
        by_patient[t.patient_id] = t


def test_corpus_errors_name_the_file_line_and_problem(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "modality": "act", "patient_id": "p",
                               "turns": [{"role": "therapist", "content": "hi"}, {"role": "patient", "content": "yo"}]})
                   + "\n{not json\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"bad.jsonl:1.*alternate"):
        load_corpus([bad])
    with pytest.raises(CorpusError, match="unknown key"):
        parse_record({"id": "x", "modality": "act", "patient_id": "p", "colour": 1,
                      "turns": [{"role": "patient", "content": "a"}, {"role": "therapist", "content": "b"}]}, "rec")
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus([tmp_path / "missing.jsonl"])


def test_split_is_by_patient_and_seeded():
    items = [{"p": f"p{i % 7}", "n": i} for i in range(40)]
    train, val = split_by_patient(items, lambda x: x["p"], 0.3, seed=1)
    assert {x["p"] for x in train}.isdisjoint({x["p"] for x in val}) and len(train) + len(val) == 40
    assert len({x["p"] for x in val}) == 3
    assert split_by_patient(items, lambda x: x["p"], 0.3, seed=1) == (train, val)
    assert split_by_patient(items, lambda x: x["p"], 0.3, seed=2) != (train, val)


def test_sft_records_keep_or_strip_reasoning():
    t = seed_corpus("act")[0]
    think = sft_record(t, reasoning=True)["messages"]
    plain = sft_record(t, reasoning=False)["messages"]
    assert [m["role"] for m in think] == ["system"] + ["user", "assistant"] * (len(t.turns) // 2)
    assert all(m["content"].startswith("<think>") and "</think>" in m["content"] for m in think if m["role"] == "assistant")
    assert not any("<think>" in m["content"] for m in plain)
    assert "<think>" in think[0]["content"] and "<think>" not in plain[0]["content"]  # the prompt says which
    assert plain[2]["content"] == t.turns[1].content
    cbt = next(x for x in seed_corpus("cbt") if x.previous_summary)
    assert cbt.previous_summary in sft_record(cbt, False)["messages"][0]["content"]


def test_orpo_pairs_are_conversational_with_the_base_models_answer_rejected():
    t = seed_corpus("act")[0]
    seen = []
    pairs = orpo_records(t, True, lambda prompt: seen.append(prompt) or "Have you tried thinking positive?", window=0)
    assert len(pairs) == len(t.therapist_turns)
    first, last = pairs[0], pairs[-1]
    assert first["prompt"][-1]["role"] == "user" and first["chosen"][0]["role"] == "assistant"
    assert first["rejected"] == [{"role": "assistant", "content": "Have you tried thinking positive?"}]
    assert last["chosen"][0]["content"].startswith("<think>") and len(last["prompt"]) == len(t.turns)
    assert seen[1] == pairs[1]["prompt"]  # the base model answered exactly the pair's context
    windowed = orpo_records(t, False, lambda prompt: "x", window=2)
    assert [len(p["prompt"]) for p in windowed][:4] == [2, 4, 4, 4] and windowed[0]["prompt"][0]["role"] == "system"


def test_sft_windows_cover_every_turn_once():
    from training.build import sft_records
    t = seed_corpus("act")[0]
    windows = sft_records(t, True, window=3)
    chat = [m for w in windows for m in w["messages"][1:]]
    assert len(chat) == len(t.turns) and all(w["messages"][1]["role"] == "user" for w in windows)
    assert all(len(w["messages"]) <= 7 for w in windows) and len({w["id"] for w in windows}) == len(windows)


def test_build_writes_loadable_splits_and_a_manifest(tmp_path):
    from datasets import load_dataset
    out = build(BuildConfig("act-plain", modality="act", reasoning=False), tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    data = load_dataset("json", data_files={"train": str(out / "train.jsonl"),
                                            "validation": str(out / "validation.jsonl")})
    assert len(data["train"]) == manifest["n_train"] and len(data["validation"]) == manifest["n_validation"] > 0
    train_patients = set(data["train"]["patient_id"])
    assert train_patients.isdisjoint(manifest["validation_patients"]) and len(manifest["corpus_sha256"]) == 64
    assert not (out / "train.jsonl.tmp").exists()


def test_judge_set_comes_from_complete_human_ratings(tmp_path):
    from eval.rubrics import load_rubric
    from store.db import Store
    from store.ratings import RatingStore
    from store.sessions import SessionStore, TurnRecord
    tes = load_rubric("tes")
    store = Store(tmp_path / "sessions.db")
    sessions, ratings = SessionStore(store), RatingStore(store)
    for i in range(3):
        sid = sessions.create(modality="act", therapist_model="default", reasoning=False)["id"]
        sessions.add_turn(sid, TurnRecord("patient", f"I feel stuck {i}."))
        sessions.add_turn(sid, TurnRecord("therapist", "Tell me more about stuck."))
        scores = {it.id: 2 + i for it in tes.items}
        result = tes.score(scores)
        ratings.save(session_id=sid, rater_id="dr", rater_kind="human", rubric_id="tes", rubric_version=1,
                     scores=scores, totals=result["totals"], total=result["total"], status="ok")
    out = build(BuildConfig("judge-tes", kind="judge", rubric="tes", val_fraction=0.34), tmp_path, store=store)
    rows = [json.loads(line) for f in ("train.jsonl", "validation.jsonl") for line in (out / f).read_text().splitlines()]
    assert len(rows) == 3
    answer = json.loads(rows[0]["messages"][-1]["content"])
    assert set(answer) == {it.id for it in tes.items} and rows[0]["messages"][1]["content"].startswith("<transcript-")
    store.close()


def test_recipes_reject_unknown_keys_and_bad_values(tmp_path):
    from training.common import TrainConfig
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset: d\noutput: o\nlearning_rat: 0.1\n")
    with pytest.raises(RecipeError, match="learning_rat"):
        load_recipe(TrainConfig, recipe)
    recipe.write_text("dataset: d\noutput: o\nepochs: many\n")
    with pytest.raises(RecipeError, match="epochs"):
        load_recipe(TrainConfig, recipe)
    config = load_recipe(TrainConfig, "act-sft-think.yaml", ["max_steps=3", "lora_targets=q_proj,v_proj"])
    assert config.max_steps == 3 and config.lora_targets == ["q_proj", "v_proj"] and config.reasoning is True
    with pytest.raises(RecipeError, match="missing required"):
        load_recipe(TrainConfig, None, ["dataset=x"])
    for name in ("act-sft-plain.yaml", "cbt-sft.yaml", "act-orpo-think.yaml", "act-orpo-plain.yaml"):
        load_recipe(TrainConfig, name)
    for name in ("build-act-think.yaml", "build-cbt.yaml", "build-act-orpo-plain.yaml"):
        load_recipe(BuildConfig, name)
