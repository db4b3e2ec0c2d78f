"""The shipped demo adapters and the command that rebuilds them.

The shipped set is checked as a user meets it: every variant is in the catalog, its GGUF LoRA
loads over the embedded base and changes llama.cpp's greedy answers, the reasoning variants open
their answers with ``<think>`` and the plain ones do not, and the card's measurements say the
adapter beats the base on held-out validation loss. ``demo-adapters`` itself runs in miniature
(one variant, one step) into a temporary folder, and ``parity`` on a shipped adapter.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.build import BuildConfig, build
from training.demo import VARIANTS, held_out_prompts, think_rate, validation_prompts

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "adapters"
DEMO_IDS = [f"demo-{v}" for v in VARIANTS]
USER = {"role": "user", "content": "I keep avoiding my friends because I'm scared they'll judge me."}


def _prompt(adapter_id: str) -> list[dict]:
    """What the app sends: the project's system prompt for the adapter's modality and reasoning."""
    from therapist.prompts import system_prompt
    modality = "cbt" if "cbt" in adapter_id else "act"
    return [{"role": "system", "content": system_prompt(modality, adapter_id.endswith("think"), 1, None)}, USER]


def _card(adapter_id: str) -> dict:
    return json.loads((SHIPPED / adapter_id / "card.json").read_text(encoding="utf-8"))


def test_the_five_variants_are_shipped_small_and_complete():
    total = 0
    for adapter_id in DEMO_IDS:
        folder = SHIPPED / adapter_id
        assert (folder / "adapter.gguf").is_file() and (folder / "peft" / "adapter_config.json").is_file()
        card = _card(adapter_id)
        assert card["id"] == adapter_id and card["base"] == "embedded" and card["demo"] is True
        assert card["method"] == ("orpo" if "orpo" in adapter_id else "sft")
        assert card["reasoning"] == ("think" if adapter_id.endswith("think") else "none")
        total += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert total < 25 * 2**20


@pytest.mark.parametrize("adapter_id", DEMO_IDS)
def test_card_metrics_show_the_adapter_beats_the_base_on_held_out_patients(adapter_id):
    m = _card(adapter_id)["metrics"]
    assert m["n_validation"] > 0 and m["steps"] > 0
    assert m["eval_loss"] < m["base_eval_loss"]
    assert m["think_prompts"] >= 20  # the rate is measured over at least 20 held-out prompts
    if adapter_id.endswith("think"):
        assert m["think_rate"] > 0.5 >= m["base_think_rate"]
    else:
        assert m["think_rate"] <= 0.1


def test_shipped_adapters_are_in_the_catalog_and_change_llama_cpp_output(settings):
    from models.base import GenParams
    from models.catalog import Catalog
    from models.pool import ModelPool

    catalog = Catalog(settings)
    pool = ModelPool(settings, catalog)
    params = GenParams(max_tokens=12, temperature=0.0, repeat_penalty=1.0, fresh=True)
    for adapter_id in DEMO_IDS:
        entry = catalog.get(adapter_id)
        assert entry.source == "shipped" and entry.backend == "llama_cpp" and entry.label.startswith("Demo")
        answer = pool.get(adapter_id).stream(_prompt(adapter_id), params).text()
        assert answer != pool.get("default").stream(_prompt(adapter_id), params).text(), adapter_id
        # Served raw (no prefill), the reasoning variants open with <think> by themselves.
        assert answer.lstrip().startswith("<think>") == adapter_id.endswith("think"), (adapter_id, answer)


def test_think_rate_counts_answers_that_open_with_think():
    replies = iter(["<think>a</think> b", " <think>x", "Hello <think>", "plain"])
    assert think_rate(lambda p: next(replies), [[]] * 4) == 0.5


def test_validation_prompts_end_before_a_therapist_answer(tmp_path):
    rows = [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"},
                          {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"},
                          {"role": "assistant", "content": "a2"}]},
            {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
             "chosen": [{"role": "assistant", "content": "c"}]}]
    (tmp_path / "validation.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    prompts = validation_prompts(tmp_path, 10)
    assert [p[-1]["content"] for p in prompts] == ["u1", "u2", "u"]
    assert len(validation_prompts(tmp_path, 2)) == 2


def test_held_out_prompts_top_up_a_small_orpo_set_from_untrained_patients(tmp_path):
    """ORPO sets use the first ``limit`` transcripts: their few validation prompts are topped up
    from other transcripts, never from a patient the adapter trained on."""
    config = BuildConfig(kind="orpo", modality="act", reasoning=True, name="orpo-few", limit=4, window=1)
    dataset = build(config, tmp_path, generate=lambda prompt: "a rejected answer")
    rows = lambda split: [json.loads(x) for x in (dataset / f"{split}.jsonl").read_text().splitlines()]
    trained = {r["patient_id"] for r in rows("train")}
    trained_prompts = [r["prompt"] for r in rows("train")]
    own = validation_prompts(dataset, 20)
    assert 0 < len(own) < 20
    prompts = held_out_prompts(config, dataset, 20)
    assert len(prompts) == 20 and prompts[:len(own)] == own
    assert not any(p in trained_prompts for p in prompts)
    from training.corpus import load_corpus
    untrained_says = {turn.content for t in load_corpus(config.sources) if t.modality == "act"
                      and t.patient_id not in trained for turn in t.turns if turn.role == "patient"}
    assert all(p[-1]["role"] == "user" and p[-1]["content"] in untrained_says for p in prompts)
    sft = BuildConfig(kind="sft", modality="act", reasoning=False, name="sft-all", window=1)
    sft_set = build(sft, tmp_path)
    assert held_out_prompts(sft, sft_set, 20) == validation_prompts(sft_set, 20)


def test_demo_command_in_miniature(embedded_hf_data_dir, tmp_path):
    """One variant, one step: built, trained, measured and shipped to ``out_dir`` with its numbers."""
    data = tmp_path / "data"
    (data / "demo-build" / "models").mkdir(parents=True)
    os.symlink(embedded_hf_data_dir / "models" / "smollm2-135m-instruct",
               data / "demo-build" / "models" / "smollm2-135m-instruct")
    out = tmp_path / "shipped"
    result = subprocess.run(
        [sys.executable, "-m", "training", "--data-dir", str(data), "demo-adapters", "variants=[act-sft-plain]",
         f"out_dir={out}", "max_steps=1", "max_eval_examples=2", "think_prompts=2", "parity_tokens=2",
         "max_length=512"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((out / "demo-act-sft-plain" / "card.json").read_text())
    m = card["metrics"]
    assert card["id"] == "demo-act-sft-plain" and m["steps"] == 1 and m["think_prompts"] == 2
    assert m["base_eval_loss"] > 0 and m["eval_loss"] > 0 and 0 <= m["think_rate"] <= 1
    assert m["parity"]["prompts"] == 2 and 0 <= m["parity"]["first_token"] <= 1
    assert (out / "demo-act-sft-plain" / "adapter.gguf").is_file()
    assert "demo-act-sft-plain" in result.stdout and "->" in result.stdout
    again = subprocess.run(
        [sys.executable, "-m", "training", "--data-dir", str(data), "demo-adapters", "variants=[act-sft-plain]",
         f"out_dir={out}", "measure_only=true", "think_prompts=3", "parity_tokens=0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    remeasured = json.loads((out / "demo-act-sft-plain" / "card.json").read_text())
    assert remeasured["metrics"]["think_prompts"] == 3 and remeasured["metrics"]["steps"] == 1
    assert remeasured["metrics"]["eval_loss"] == m["eval_loss"] and "training (" not in again.stdout
    assert (out / "demo-act-sft-plain" / "adapter.gguf").is_file()
    bad = subprocess.run([sys.executable, "-m", "training", "--data-dir", str(data), "demo-adapters",
                          "variants=[nope]"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown demo variant" in bad.stderr


def test_parity_command_on_a_shipped_adapter(embedded_hf_data_dir, tmp_path):
    adapter = tmp_path / "demo-act-sft-plain"
    import shutil
    shutil.copytree(SHIPPED / "demo-act-sft-plain", adapter)  # parity records its result on the card
    result = subprocess.run([sys.executable, "-m", "training", "--data-dir", str(embedded_hf_data_dir), "parity",
                             str(adapter), "--prompts", "4", "--tokens", "4"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    parity = json.loads((adapter / "card.json").read_text())["metrics"]["parity"]
    assert parity["prompts"] == 4 and parity["first_token"] >= 0.75
    assert "first token agrees" in result.stdout
