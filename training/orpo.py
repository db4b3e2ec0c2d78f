"""Odds-ratio preference optimisation (ORPO) of a LoRA adapter with TRL's experimental ORPOTrainer.

The dataset holds conversational pairs (``python -m training build`` with ``kind: orpo``): the
transcript's answer is chosen, the base model's own answer in the same context is rejected, as in
the ACT study (lr 8e-6, beta 0.1, one epoch there). Run ``python -m training orpo --config
training/recipes/act-orpo-think.yaml``.
"""
from __future__ import annotations

from pathlib import Path

from training.common import TrainConfig
from training.runner import run, trl_trainer


def _classes():
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    return ORPOConfig, ORPOTrainer


def make_orpo_trainer(config: TrainConfig):
    return trl_trainer(_classes, ["prompt", "chosen", "rejected"], max_length=config.max_length, beta=config.beta,
                       max_completion_length=min(512, config.max_length // 2))


def main(config: TrainConfig, data_dir: Path, reporter=None) -> dict:
    return run(config, data_dir, "orpo", make_orpo_trainer(config), reporter)
