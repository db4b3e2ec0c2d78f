"""``python -m training demo-adapters``: rebuild the five shipped demo adapters from the seed corpus.

The study variants, each trained with this package's own pipeline (dataset build, then
``sft``/``orpo`` main) on the embedded SmolLM2-135M base: CBT SFT; ACT SFT with and without
reasoning; ACT ORPO with and without reasoning. Settings are small enough for two CPU cores
(``training/recipes/demo-adapters.yaml``): short windows, a few dozen optimiser steps, LoRA r=8
on the attention query and value projections, an f16 GGUF LoRA. Every adapter is then measured:
validation loss of the base and of the adapter on the same held-out patients (the runner's), and
how often greedy answers to validation prompts open with ``<think>``, for the adapter and the
base on the same prompts, through llama.cpp as the app serves them. The numbers go into each
``card.json`` (``metrics``) and a table on stdout.

Work happens in ``<data dir>/demo-build/`` (datasets, checkpoint, partial adapters); finished
adapters are copied to ``models/adapters/demo-<id>/`` (``card.json``, ``peft/``, ``adapter.gguf``).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from training.build import BuildConfig, build
from training.common import TrainConfig
from training.prompts import _spread, validation_prompts  # noqa: F401  (validation_prompts: importable here)
from training.recipes import load_recipe

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "models" / "adapters"
# variant -> (dataset recipe, training recipe, method)
VARIANTS = {
    "cbt-sft": ("build-cbt.yaml", "cbt-sft.yaml", "sft"),
    "act-sft-think": ("build-act-think.yaml", "act-sft-think.yaml", "sft"),
    "act-sft-plain": ("build-act-plain.yaml", "act-sft-plain.yaml", "sft"),
    "act-orpo-think": ("build-act-orpo-think.yaml", "act-orpo-think.yaml", "orpo"),
    "act-orpo-plain": ("build-act-orpo-plain.yaml", "act-orpo-plain.yaml", "orpo"),
}
THINK_OPEN = "<think>"


@dataclass
class DemoConfig:
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    out_dir: str = ""                   # default: models/adapters/ in this checkout
    prefix: str = "demo-"               # shipped ids are <prefix><variant>
    # datasets
    window: int = 1                     # exchanges per SFT example / ORPO prompt
    orpo_limit: int = 10                # ORPO: transcripts used (the base model answers each turn)
    rejected_max_tokens: int = 64
    # training (applied over each variant's own recipe)
    max_steps: int = 40
    learning_rate: float = 2e-3
    batch_size: int = 1
    grad_accum: int = 2
    max_length: int = 768
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    max_eval_examples: int = 20         # validation rows for the loss (the same for base and adapter)
    gguf_outtype: str = "f16"
    seed: int = 0
    # the <think> rate
    think_prompts: int = 20
    think_max_tokens: int = 16
    parity_tokens: int = 8              # > 0: also compare hf+PEFT with GGUF+LoRA on those prompts
    measure_only: bool = False          # measure the shipped adapters again; no training


def _check(config: DemoConfig) -> None:
    unknown = [v for v in config.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown demo variant(s) {unknown}; known: {list(VARIANTS)}")
    if config.think_prompts < 1:
        raise ValueError("think_prompts must be at least 1")


def build_config(config: DemoConfig, variant: str) -> BuildConfig:
    build_recipe = load_recipe(BuildConfig, VARIANTS[variant][0])
    extra = {"limit": config.orpo_limit, "rejected_max_tokens": config.rejected_max_tokens} \
        if build_recipe.kind == "orpo" else {}
    return replace(build_recipe, name=f"demo-{variant}", window=config.window, seed=config.seed, **extra)


def train_config(config: DemoConfig, variant: str) -> TrainConfig:
    recipe = load_recipe(TrainConfig, VARIANTS[variant][1])
    return replace(recipe, dataset=f"demo-{variant}", output=variant, label=f"Demo · {recipe.label or variant}",
                   max_steps=config.max_steps, learning_rate=config.learning_rate, batch_size=config.batch_size,
                   grad_accum=config.grad_accum, max_length=config.max_length, lora_r=config.lora_r,
                   lora_alpha=config.lora_alpha, lora_targets=list(config.lora_targets),
                   max_eval_examples=config.max_eval_examples, gguf_outtype=config.gguf_outtype,
                   seed=config.seed, base="embedded", device="auto")


def held_out_prompts(bcfg: BuildConfig, dataset_dir: Path, n: int) -> list[list[dict]]:
    """``n`` prompts from patients the adapter never trained on: its validation split first, then,
    when that is short (ORPO sets use only the first ``limit`` transcripts), prompts cut the same
    way from the modality's other transcripts whose patients are not in the training split."""
    prompts = validation_prompts(dataset_dir, n)
    if len(prompts) >= n or not bcfg.limit:
        return prompts
    from training.build import orpo_records
    from training.corpus import load_corpus
    trained = {json.loads(line)["patient_id"]
               for line in (dataset_dir / "train.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()}
    transcripts = [t for t in load_corpus(bcfg.sources) if bcfg.modality in ("all", t.modality)][bcfg.limit:]
    extra = [record["prompt"] for t in transcripts if t.patient_id not in trained
             for record in orpo_records(t, bcfg.reasoning, lambda _prompt: "", bcfg.window)]
    return prompts + _spread(extra, n - len(prompts))


def think_rate(generate: Callable[[list[dict]], str], prompts: list[list[dict]]) -> float:
    """The share of greedy answers that open with ``<think>``."""
    opened = sum(generate(p).lstrip().startswith(THINK_OPEN) for p in prompts)
    return round(opened / len(prompts), 3)


def llama_generator(lora: Path | None, max_tokens: int) -> Callable[[list[dict]], str]:
    """Greedy answers from the embedded GGUF (with an optional GGUF LoRA), as the app serves them."""
    from models.base import GenParams
    from models.embedded import embedded_gguf_path
    from models.llama_cpp_backend import LlamaCppBackend
    backend = LlamaCppBackend(f"demo:{lora}", embedded_gguf_path(), lora_path=lora, n_ctx=2048)
    params = GenParams(max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0, fresh=True)
    return lambda messages: backend.stream(messages, params).text()


def ship(adapter_dir: Path, dest: Path, variant_id: str, extra_metrics: dict) -> dict:
    """Copy a trained adapter (card, peft/, adapter.gguf, progress log) to ``dest`` under its shipped id."""
    card = json.loads((adapter_dir / "card.json").read_text(encoding="utf-8"))
    card.update(id=variant_id, demo=True)
    card["metrics"].update(extra_metrics)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(adapter_dir, tmp, ignore=shutil.ignore_patterns("checkpoints", "*.tmp"))
    (tmp / "card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return card


def measure(config: DemoConfig, bcfg: BuildConfig, dataset: Path, adapter_dir: Path, work: Path) -> dict:
    """The <think> rates (adapter and base) and, optionally, hf/llama.cpp parity on held-out prompts."""
    prompts = held_out_prompts(bcfg, dataset, config.think_prompts)
    rates = {"think_rate": think_rate(llama_generator(adapter_dir / "adapter.gguf", config.think_max_tokens), prompts),
             "base_think_rate": think_rate(llama_generator(None, config.think_max_tokens), prompts),
             "think_prompts": len(prompts)}
    if config.parity_tokens > 0:
        from models.embedded import ensure_embedded_hf
        from training.parity import measure as parity
        rates["parity"] = parity(adapter_dir, ensure_embedded_hf(work), prompts, config.parity_tokens)
    return rates


def make_variant(config: DemoConfig, variant: str, work: Path, out_dir: Path, reporter=None,
                 log: Callable[[str], None] = print) -> dict:
    """Build, train, measure and ship one variant (or, with ``measure_only``, measure the shipped
    one again on its dataset); return its shipped card."""
    from training import orpo, sft
    bcfg = build_config(config, variant)
    dataset = work / "datasets" / bcfg.name
    shipped_dir = out_dir / f"{config.prefix}{variant}"
    if not (config.measure_only and (dataset / "train.jsonl").is_file()):
        # ORPO's rejected side is the base model's own sampled answer, as in the study
        generate = _sampled_base(bcfg.rejected_max_tokens, config.seed) if bcfg.kind == "orpo" else None
        log(f"[{variant}] building dataset {bcfg.name}")
        dataset = build(bcfg, work, generate=generate)
    if config.measure_only:
        if not (shipped_dir / "card.json").is_file():
            raise FileNotFoundError(f"{shipped_dir}: no shipped adapter to measure (run without measure_only first)")
        log(f"[{variant}] measuring the shipped adapter again")
        shipped = ship(shipped_dir, shipped_dir, f"{config.prefix}{variant}",
                       measure(config, bcfg, dataset, shipped_dir, work))
    else:
        tcfg = train_config(config, variant)
        log(f"[{variant}] training ({VARIANTS[variant][2]}, {tcfg.max_steps} steps)")
        (orpo if VARIANTS[variant][2] == "orpo" else sft).main(tcfg, work, reporter=reporter)
        adapter_dir = work / "adapters" / variant
        shipped = ship(adapter_dir, shipped_dir, f"{config.prefix}{variant}",
                       measure(config, bcfg, dataset, adapter_dir, work))
    m = shipped["metrics"]
    log(f"[{variant}] validation loss {m.get('base_eval_loss')} -> {m.get('eval_loss')}; "
        f"<think> rate {m['base_think_rate']} -> {m['think_rate']} over {m['think_prompts']} prompts")
    return shipped


def _sampled_base(max_tokens: int, seed: int) -> Callable[[list[dict]], str]:
    from models.base import GenParams
    from models.embedded import embedded_gguf_path
    from models.llama_cpp_backend import LlamaCppBackend
    backend = LlamaCppBackend("demo:base", embedded_gguf_path(), n_ctx=2048)
    params = GenParams(max_tokens=max_tokens, temperature=0.7, seed=seed)
    return lambda messages: backend.stream(messages, params).text()


def main(config: DemoConfig, data_dir: Path, reporter=None, log: Callable[[str], None] = print) -> list[dict]:
    """Rebuild every variant in ``config.variants``; return the shipped cards."""
    _check(config)
    out_dir = Path(config.out_dir).expanduser() if config.out_dir else SHIPPED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(data_dir) / "demo-build"
    cards = []
    for i, variant in enumerate(config.variants):
        if reporter is not None:
            reporter.progress(i, len(config.variants), variant=variant)
        cards.append(make_variant(config, variant, work, out_dir, reporter=None, log=log))
    log(summary_table(cards))
    return cards


def summary_table(cards: list[dict]) -> str:
    lines = ["adapter                 val loss base -> adapter   <think> base -> adapter   steps  seconds"]
    for c in cards:
        m = c["metrics"]
        lines.append(f"{c['id']:<24}{m.get('base_eval_loss')!s:>10} -> {m.get('eval_loss')!s:<10}"
                     f"{m['base_think_rate']:>10.2f} -> {m['think_rate']:<10.2f}{m.get('steps')!s:>6}"
                     f"{m.get('train_seconds')!s:>9}")
    return "\n".join(lines)
