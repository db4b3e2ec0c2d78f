"""Supervised fine-tuning of a LoRA adapter with TRL's SFTTrainer.

The loss is on the therapist's (assistant) turns only: the chat template marks them with
``{% generation %}`` blocks. Run ``python -m training sft --config training/recipes/act-sft-think.yaml``
(or under ``accelerate launch`` for several GPUs).
"""
from __future__ import annotations

from pathlib import Path

from training.common import TrainConfig
from training.runner import run


def make_sft_trainer(config: TrainConfig):
    def make(model, tokenizer, data, args, peft_config, callbacks):
        from trl import SFTConfig, SFTTrainer
        sft_args = SFTConfig(**args, max_length=config.max_length, assistant_only_loss=True, packing=False)
        columns = ["messages"]
        return SFTTrainer(model=model, args=sft_args, train_dataset=data["train"].select_columns(columns),
                          eval_dataset=data["validation"].select_columns(columns) if "validation" in data else None,
                          processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    return make


def main(config: TrainConfig, data_dir: Path, reporter=None) -> dict:
    return run(config, data_dir, "sft", make_sft_trainer(config), reporter)
