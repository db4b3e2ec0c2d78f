"""The flow every training method shares: load, measure the base, train, measure, save, export.

A method (``training/sft.py``, ``training/orpo.py``) only says how to build its TRL trainer. The
adapter is written to a hidden work folder and moved into place at the end, with the card last,
so a crash or a cancel never leaves a half adapter that the catalog would offer.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from training.common import (TrainConfig, export_gguf, load_base, load_splits, lora_config, progress_callback,
                             write_card)


def adapters_root(data_dir: Path) -> Path:
    return Path(data_dir) / "adapters"


def trainer_args(config: TrainConfig, device: str, work: Path) -> dict:
    """The TrainingArguments fields every method uses, CPU fp32 or CUDA bf16 from the same recipe."""
    return dict(output_dir=str(work / "checkpoints"), num_train_epochs=config.epochs, max_steps=config.max_steps,
                learning_rate=config.learning_rate, per_device_train_batch_size=config.batch_size,
                per_device_eval_batch_size=1, gradient_accumulation_steps=config.grad_accum,
                warmup_steps=config.warmup_ratio, logging_steps=1, save_strategy="no", eval_strategy="no",
                report_to=[], seed=config.seed, use_cpu=device == "cpu", bf16=device == "cuda",
                disable_tqdm=True)


def trl_trainer(load_classes: Callable[[], tuple], columns: list[str], **options) -> Callable:
    """A ``make_trainer`` for ``run``: ``load_classes()`` gives TRL's (config class, trainer class),
    imported only when training starts; ``options`` are the method's own config fields."""
    def make(model, tokenizer, data, args, peft_config, callbacks):
        config_cls, trainer_cls = load_classes()
        split = {name: data[name].select_columns(columns) for name in ("train", "validation") if name in data}
        return trainer_cls(model=model, args=config_cls(**args, **options), train_dataset=split["train"],
                           eval_dataset=split.get("validation"), processing_class=tokenizer,
                           peft_config=peft_config, callbacks=callbacks)
    return make


def _eval_loss(trainer) -> float | None:
    """Validation loss, or None when no validation example fits ``max_length`` (all were dropped)."""
    value = trainer.evaluate().get("eval_loss")
    return None if value is None else round(value, 4)


def is_main_process() -> bool:
    """False on the extra processes ``accelerate launch`` / torchrun start (RANK > 0)."""
    return int(os.environ.get("RANK", "0")) == 0


def run(config: TrainConfig, data_dir: Path, method: str, make_trainer: Callable, reporter=None) -> dict:
    """Train one adapter; return its card (with base and final validation loss in ``metrics``).

    Under ``accelerate launch`` every process trains its share; only the main one writes the
    work folder, progress, adapter, GGUF and card, and the others wait for it before returning."""
    import torch
    torch.manual_seed(config.seed)
    data, folder = load_splits(config, data_dir)
    model, tokenizer, base_folder, device = load_base(config, data_dir)
    root = adapters_root(data_dir)
    work = root / f".{config.output}.partial"
    main_process = is_main_process()
    if main_process:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    callbacks = [progress_callback(work / "progress.jsonl", reporter if main_process else None)] \
        if main_process else []
    trainer = make_trainer(model, tokenizer, data, trainer_args(config, device, work), lora_config(config), callbacks)
    metrics: dict = {"device": device, "n_train": len(data["train"]),
                     "n_validation": len(data["validation"]) if "validation" in data else 0}
    has_eval = "validation" in data and config.eval_at_end
    if has_eval:  # a fresh LoRA is the identity (B = 0), so this is the base model's loss
        metrics["base_eval_loss"] = _eval_loss(trainer)
    started = time.monotonic()
    result = trainer.train()
    metrics.update(train_loss=round(result.training_loss, 4), steps=result.global_step,
                   train_seconds=round(time.monotonic() - started, 1))
    if has_eval:
        metrics["eval_loss"] = _eval_loss(trainer)
    if not main_process:
        trainer.accelerator.wait_for_everyone()  # until the main process has written the adapter
        return json.loads((root / config.output / "card.json").read_text(encoding="utf-8"))
    trainer.model.save_pretrained(str(work / "peft"))
    export_gguf(work / "peft", work, config)
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    write_card(work, config, method, folder, metrics)
    final = root / config.output
    if final.exists():
        old = root / f".{config.output}.old"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        work.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(final)
    trainer.accelerator.wait_for_everyone()
    return json.loads((final / "card.json").read_text(encoding="utf-8"))
