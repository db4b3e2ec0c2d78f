"""Odds-ratio preference optimisation (ORPO) of a LoRA adapter with TRL's experimental ORPOTrainer.

The dataset holds conversational pairs (``python -m training build`` with ``kind: orpo``): the
transcript's answer is chosen, the base model's own answer in the same context is rejected, as in
the ACT study (lr 8e-6, beta 0.1, one epoch there). Run ``python -m training orpo --config
training/recipes/act-orpo-think.yaml``.
"""
from __future__ import annotations

from pathlib import Path

from training.common import TrainConfig
from training.runner import run


def make_orpo_trainer(config: TrainConfig):
    def make(model, tokenizer, data, args, peft_config, callbacks):
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
        orpo_args = ORPOConfig(**args, max_length=config.max_length, beta=config.beta,
                               max_completion_length=min(512, config.max_length // 2))
        columns = ["prompt", "chosen", "rejected"]
        return ORPOTrainer(model=model, args=orpo_args, train_dataset=data["train"].select_columns(columns),
                           eval_dataset=data["validation"].select_columns(columns) if "validation" in data else None,
                           processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    return make


def main(config: TrainConfig, data_dir: Path, reporter=None) -> dict:
    return run(config, data_dir, "orpo", make_orpo_trainer(config), reporter)
