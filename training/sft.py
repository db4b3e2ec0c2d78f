"""Supervised fine-tuning of a LoRA adapter with TRL's SFTTrainer.

The loss is on the therapist's (assistant) turns only: the chat template marks them with
``{% generation %}`` blocks. Run ``python -m training sft --config training/recipes/act-sft-think.yaml``
(or under ``accelerate launch`` for several GPUs).
"""
from __future__ import annotations

from pathlib import Path

from training.common import TrainConfig
from training.runner import run, trl_trainer


def _classes():
    from trl import SFTConfig, SFTTrainer
    return SFTConfig, SFTTrainer


def make_sft_trainer(config: TrainConfig):
    return trl_trainer(_classes, ["messages"], max_length=config.max_length, assistant_only_loss=True,
                       packing=False)


def main(config: TrainConfig, data_dir: Path, reporter=None) -> dict:
    return run(config, data_dir, "sft", make_sft_trainer(config), reporter)
