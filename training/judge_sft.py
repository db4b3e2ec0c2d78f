"""Fine-tune a judge on human ratings: the judge's own prompt in, the human rating JSON out.

``python -m training judge-sft --config judge-sft-tes.yaml`` builds the dataset from the complete
human ratings on ``rubric`` in the store (split by patient), trains a LoRA with SFT, and registers
the adapter, which ``python -m eval judge --judge <output>`` and the Admin Judge view can then use.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from training.common import TrainConfig


@dataclass
class JudgeTrainConfig(TrainConfig):
    rubric: str = "tes"             # the rubric whose human ratings are learned
    val_fraction: float = 0.2       # share of patients (or sessions) held out
    modality: str = "any"
    reasoning: bool = False
    max_length: int = 2048          # the judge prompt plus a transcript is long


def main(config: JudgeTrainConfig, data_dir: Path, reporter=None) -> dict:
    from store.db import Store
    from training import runner, sft
    from training.build import BuildConfig, build
    store = Store(Path(data_dir) / "sessions.db")
    try:
        build(BuildConfig(name=config.dataset, kind="judge", rubric=config.rubric,
                          val_fraction=config.val_fraction, seed=config.seed), data_dir, store=store)
    finally:
        store.close()
    config = replace(config, label=config.label or f"Judge ({config.rubric}, fine-tuned)")
    return runner.run(config, data_dir, "judge-sft", sft.make_sft_trainer(config), reporter)
