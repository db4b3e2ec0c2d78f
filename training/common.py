"""What SFT, ORPO and judge-SFT share: the config, the base model, LoRA, progress, the adapter card.

``TrainConfig`` is the recipe (``training/recipes/*.yaml``); ``main`` functions stay thin. One
recipe runs on a CPU (fp32) and on CUDA (bf16): ``device: auto`` picks CUDA when there is one.
Progress goes to ``<output>/progress.jsonl`` (step, loss, learning rate, ETA) and, under the
Admin tab, to the job's progress. The output folder is ``<data dir>/adapters/<output>/`` with
``peft/`` (PEFT LoRA), ``adapter.gguf`` (llama.cpp LoRA over the unchanged quantized base) and
``card.json`` (base, method, reasoning, dataset hash, recipe, metrics), which the model catalog
picks up, so the adapter is selectable in the Session tab without a restart.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EMBEDDED = "embedded"
CHATML_MARKED = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}{% generation %}"
    "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass
class TrainConfig:
    dataset: str                        # a dataset name under <data dir>/datasets/, or a folder
    output: str                         # adapter id: written to <data dir>/adapters/<output>/
    base: str = EMBEDDED                # "embedded" (SmolLM2-135M) or a transformers checkpoint folder
    modality: str = "act"               # what the adapter is for: cbt | act | any
    reasoning: bool = True              # the adapter answers with <think> reasoning first
    label: str = ""                     # shown in the model pickers (default: the output id)
    # optimisation
    epochs: float = 1.0
    max_steps: int = -1                 # > 0 stops after this many optimiser steps
    learning_rate: float = 2e-4
    batch_size: int = 1
    grad_accum: int = 1
    warmup_ratio: float = 0.0
    max_length: int = 1024              # tokens per example; longer ones are truncated
    seed: int = 0
    beta: float = 0.1                   # ORPO only: weight of the odds-ratio term
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # where and what to produce
    device: str = "auto"                # auto | cpu | cuda
    export_gguf: bool = True            # also write adapter.gguf for the llama.cpp backend
    eval_at_end: bool = True            # validation loss of the base and of the adapter
    max_eval_examples: int = 0          # > 0: measure validation loss on the first N rows only
    gguf_outtype: str = "f32"           # f32 | f16: tensor type of adapter.gguf


def resolve_device(choice: str) -> tuple[str, Any]:
    """(device, torch dtype): CUDA with bf16 when asked for or available, else CPU fp32."""
    import torch
    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError("device must be auto, cpu or cuda")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for, but no CUDA device is available")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return "cuda", torch.bfloat16
    return "cpu", torch.float32


def base_dir(config: TrainConfig, data_dir: Path) -> Path:
    if config.base == EMBEDDED:
        from models.embedded import ensure_embedded_hf
        return ensure_embedded_hf(data_dir)
    path = Path(config.base).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"base {config.base!r}: not 'embedded' and not a transformers checkpoint folder")
    return path


def load_base(config: TrainConfig, data_dir: Path):
    """(model, tokenizer, base folder, device) with a chat template that marks assistant text."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = base_dir(config, data_dir)
    device, dtype = resolve_device(config.device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if "{% generation %}" not in (tokenizer.chat_template or ""):
        if "<|im_start|>" not in (tokenizer.chat_template or ""):
            raise ValueError(f"{folder}: its chat template has no generation markers and is not ChatML; "
                             "give the tokenizer a template with {% generation %} blocks")
        tokenizer.chat_template = CHATML_MARKED  # same text as SmolLM2's template, plus the markers
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return model.to(device), tokenizer, folder, device


def lora_config(config: TrainConfig):
    from peft import LoraConfig
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_targets), task_type="CAUSAL_LM")


def dataset_dir(config: TrainConfig, data_dir: Path) -> Path:
    for candidate in (Path(data_dir) / "datasets" / config.dataset, Path(config.dataset).expanduser()):
        if (candidate / "train.jsonl").is_file():
            return candidate
    raise FileNotFoundError(f"dataset {config.dataset!r}: no train.jsonl under <data dir>/datasets/ or at that path "
                            f"(build it first: python -m training build)")


def load_splits(config: TrainConfig, data_dir: Path):
    from datasets import load_dataset
    folder = dataset_dir(config, data_dir)
    files = {"train": str(folder / "train.jsonl")}
    validation = folder / "validation.jsonl"
    has_validation = validation.is_file() and validation.stat().st_size > 0
    if has_validation:
        files["validation"] = str(validation)
    data = load_dataset("json", data_files=files)
    if has_validation and 0 < config.max_eval_examples < len(data["validation"]):
        data["validation"] = data["validation"].select(range(config.max_eval_examples))
    return data, folder


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def progress_callback(path: Path, reporter=None):
    """A transformers TrainerCallback writing step, loss, lr and ETA as JSON lines (and to the job)."""
    from transformers import TrainerCallback

    class JsonlProgress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or (state.global_step == 0 and "loss" not in logs):
                return
            elapsed = time.monotonic() - getattr(self, "started", time.monotonic())
            total = max(state.max_steps, 1)
            eta = elapsed / max(state.global_step, 1) * (total - state.global_step)
            record = {"step": state.global_step, "total": total, "epoch": round(state.epoch or 0, 3),
                      "loss": logs.get("loss"), "eval_loss": logs.get("eval_loss"),
                      "lr": logs.get("learning_rate"), "num_tokens": logs.get("num_tokens"), "eta_s": round(eta, 1), "elapsed_s": round(elapsed, 3)}
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            if reporter is not None:
                reporter.progress(state.global_step, total, **{k: v for k, v in record.items() if k not in ("step", "total")})
    return JsonlProgress()


def write_card(out: Path, config: TrainConfig, method: str, dataset_folder: Path, metrics: dict) -> dict:
    card = {"id": config.output, "label": config.label or config.output, "base": "embedded"
            if config.base == EMBEDDED else config.base, "method": method, "modality": config.modality,
            "reasoning": "think" if config.reasoning else "none", "peft": "peft",
            "dataset": str(dataset_folder.name), "dataset_sha256": file_sha256(dataset_folder / "train.jsonl"),
            "recipe": asdict(config), "metrics": metrics}
    if (out / "adapter.gguf").is_file():
        card["gguf"] = "adapter.gguf"
    tmp = out / "card.json.tmp"
    tmp.write_text(json.dumps(card, indent=2), encoding="utf-8")
    os.replace(tmp, out / "card.json")
    return card


def export_gguf(peft_dir: Path, out: Path, config: TrainConfig) -> Path | None:
    """The llama.cpp LoRA next to the PEFT one; only for the embedded base (its GGUF is known)."""
    if not config.export_gguf or config.base != EMBEDDED:
        return None
    from models.convert import peft_lora_to_gguf
    from models.embedded import embedded_gguf_path
    return peft_lora_to_gguf(peft_dir, out / "adapter.gguf", base_gguf=embedded_gguf_path(),
                             outtype=config.gguf_outtype)
