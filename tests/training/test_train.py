"""SFT and ORPO on a tiny Llama built from a config (SmolLM2's tokenizer, random weights): a few
steps change only LoRA parameters, write the adapter, card and progress log; the CLI's recipe
errors; and on the embedded base the exported GGUF LoRA loads in llama.cpp and changes its output."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training.build import BuildConfig, build
from training.common import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_base(embedded_hf_data_dir, tmp_path_factory):
    from tinymodels import save_tiny_llama
    from transformers import AutoTokenizer
    from models.embedded import ensure_embedded_hf
    source = ensure_embedded_hf(embedded_hf_data_dir)
    out = save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), AutoTokenizer.from_pretrained(source))
    for extra in ("chat_template.jinja",):
        if (source / extra).exists():
            shutil.copy(source / extra, out / extra)
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("train-data")
    build(BuildConfig("sft-mini", modality="act", limit=5, window=2), data)
    replies = iter(["You should just relax more.", "Try to think positive!"] * 200)
    build(BuildConfig("orpo-mini", kind="orpo", modality="act", limit=3, window=1), data,
          generate=lambda p: next(replies))
    return data



def run_method(method, tiny_base, data_dir, dataset, output):
    import torch
    from transformers import AutoModelForCausalLM
    module = __import__(f"training.{method}", fromlist=["main"])
    before = {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(tiny_base).state_dict().items()}
    config = TrainConfig(dataset=dataset, output=output, base=str(tiny_base), max_steps=3, max_length=1024,
                         learning_rate=5e-3, lora_r=4, lora_alpha=8, export_gguf=False)
    card = module.main(config, data_dir)
    folder = data_dir / "adapters" / output
    from peft import PeftModel
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), folder / "peft")
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and any(p.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n)  # B starts at 0: it moved
    merged_base = model.get_base_model().state_dict()
    for name, value in before.items():  # every non-LoRA weight is exactly the base's
        key = name if name in merged_base else name.replace(".weight", ".base_layer.weight")
        assert torch.equal(merged_base[key], value), name
    return card, folder


def test_sft_trains_only_lora_and_writes_adapter_card_and_progress(tiny_base, data_dir):
    card, folder = run_method("sft", tiny_base, data_dir, "sft-mini", "tiny-sft")
    assert card["method"] == "sft" and card["reasoning"] == "think" and card["metrics"]["steps"] == 3
    assert card["metrics"]["eval_loss"] < card["metrics"]["base_eval_loss"]  # lr 5e-3 on a random model
    assert len(card["dataset_sha256"]) == 64 and card["recipe"]["lora_r"] == 4
    log = [json.loads(line) for line in (folder / "progress.jsonl").read_text().splitlines()]
    steps = [r for r in log if r.get("loss") is not None]
    assert [r["step"] for r in steps] == [1, 2, 3] and all(r["eta_s"] >= 0 and r["lr"] for r in steps)
    assert not list((data_dir / "adapters").glob(".*partial"))


def test_orpo_trains_only_lora_on_preference_pairs(tiny_base, data_dir):
    card, folder = run_method("orpo", tiny_base, data_dir, "orpo-mini", "tiny-orpo")
    assert card["method"] == "orpo" and card["metrics"]["steps"] == 3 and "eval_loss" in card["metrics"]
    assert (folder / "card.json").is_file() and (folder / "peft" / "adapter_config.json").is_file()


def test_cli_rejects_a_recipe_with_an_unknown_key(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("dataset: x\noutput: y\nlearning_rat: 1\n")
    out = subprocess.run([sys.executable, "-m", "training", "--data-dir", str(tmp_path), "sft", "--config", str(recipe)],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "learning_rat" in out.stderr and not (tmp_path / "adapters").exists()
    help_text = subprocess.run([sys.executable, "-m", "training", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert help_text.returncode == 0 and all(c in help_text.stdout for c in ("build", "sft", "orpo"))


def test_sft_on_the_embedded_base_exports_a_gguf_lora_that_changes_llama_cpp_output(embedded_hf_data_dir, tmp_path):
    from models.base import GenParams
    from models.embedded import embedded_gguf_path
    from models.llama_cpp_backend import LlamaCppBackend
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    os.symlink(embedded_hf_data_dir / "models" / "smollm2-135m-instruct", data / "models" / "smollm2-135m-instruct")
    build(BuildConfig("one", modality="act", limit=2, val_fraction=0.5, window=1, reasoning=False), data)
    card = __import__("training.sft", fromlist=["main"]).main(
        TrainConfig(dataset="one", output="emb-sft", max_steps=2, max_length=512, learning_rate=2e-2,
                    eval_at_end=False), data)
    gguf = data / "adapters" / "emb-sft" / "adapter.gguf"
    assert card["gguf"] == "adapter.gguf" and gguf.is_file()
    prompt = [{"role": "user", "content": "I keep worrying about my exams."}]
    params = GenParams(max_tokens=24, temperature=0.0, fresh=True)
    plain = LlamaCppBackend("plain", embedded_gguf_path()).stream(prompt, params).text()
    tuned = LlamaCppBackend("tuned", embedded_gguf_path(), lora_path=gguf).stream(prompt, params).text()
    assert tuned != plain
    gguf.unlink()  # the export command writes it again from peft/ and records it on the card
    out = subprocess.run([sys.executable, "-m", "training", "--data-dir", str(data), "export", "emb-sft",
                          "--outtype", "f16", "--merge", "--quant", "q8_0"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    from gguf import GGUFReader, GGMLQuantizationType
    tensors = GGUFReader(str(gguf)).tensors  # (the loaded host above keeps the old file's weights)
    assert tensors and all(t.tensor_type == GGMLQuantizationType.F16 for t in tensors if t.name.endswith(".weight"))
    card = json.loads((data / "adapters" / "emb-sft" / "card.json").read_text())
    assert card["gguf"] == "adapter.gguf" and card["merged_gguf"] == "merged-q8_0.gguf"
    merged = LlamaCppBackend("merged", data / "adapters" / "emb-sft" / "merged-q8_0.gguf").stream(prompt, params).text()
    assert merged != plain  # the merged model carries the adapter's change without a LoRA file
    missing = subprocess.run([sys.executable, "-m", "training", "--data-dir", str(data), "export", "nope"],
                             cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_judge_sft_learns_from_human_ratings_and_registers_a_judge(tiny_base, tmp_path):
    from eval.rubrics import load_rubric
    from models.catalog import Catalog
    from config import load_settings
    from store.db import Store
    from store.ratings import RatingStore
    from store.sessions import SessionStore, TurnRecord
    from training.judge_sft import JudgeTrainConfig, main
    tes = load_rubric("tes")
    store = Store(tmp_path / "sessions.db")
    sessions, ratings = SessionStore(store), RatingStore(store)
    for i in range(4):
        sid = sessions.create(modality="act", therapist_model="default", reasoning=False)["id"]
        sessions.add_turn(sid, TurnRecord("patient", f"Work is too much ({i})."))
        sessions.add_turn(sid, TurnRecord("therapist", "What matters to you in that work?"))
        scores = {it.id: 1 + i for it in tes.items}
        result = tes.score(scores)
        ratings.save(session_id=sid, rater_id="dr", rater_kind="human", rubric_id="tes", rubric_version=1,
                     scores=scores, totals=result["totals"], total=result["total"], status="ok")
    store.close()
    card = main(JudgeTrainConfig(dataset="judge-tes", output="judge-tes", base=str(tiny_base), max_steps=2,
                                 learning_rate=5e-3, lora_r=4, lora_alpha=8, export_gguf=False), tmp_path)
    assert card["method"] == "judge-sft" and card["recipe"]["rubric"] == "tes" and card["modality"] == "any"
    assert card["metrics"]["n_train"] + card["metrics"]["n_validation"] == 4
    entry = Catalog(load_settings(["--data-dir", str(tmp_path)], env={})).get("judge-tes")
    assert entry.backend == "hf" and entry.label.startswith("Judge (tes")


def test_sft_under_accelerate_launch_with_two_processes(tiny_base, data_dir):
    """``accelerate launch`` (2 CPU processes, gloo): the batch is split between them, and only the
    main process writes the adapter, its progress log and card."""
    accelerate = Path(sys.executable).with_name("accelerate")
    out = subprocess.run([str(accelerate), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "training", "--data-dir",
                          str(data_dir), "sft", "--config", "act-sft-plain.yaml", "dataset=sft-mini",
                          "output=accel-sft", f"base={tiny_base}", "max_steps=2", "max_length=512", "lora_r=4",
                          "lora_alpha=8", "export_gguf=false"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    folder = data_dir / "adapters" / "accel-sft"
    card = json.loads((folder / "card.json").read_text())
    assert card["metrics"]["steps"] == 2 and (folder / "peft" / "adapter_model.safetensors").is_file()
    records = [json.loads(line) for line in (folder / "progress.jsonl").read_text().splitlines()]
    last = [r for r in records if r["step"] == 2 and r["loss"] is not None]
    assert len(last) == 1  # one writer: each step logged once
    # Each process took its own example per step: two steps went through 4 examples, not 2.
    assert last[0]["epoch"] > 1.5 * 2 / card["metrics"]["n_train"]
    assert not list((data_dir / "adapters").glob(".accel-sft*"))
