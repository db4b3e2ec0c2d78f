"""The baseline for ``benchmarks/training.py``: SFT with TRL and PEFT directly, no TheraLab code path.

    python -m benchmarks.plain_trl_sft CHECKPOINT TRAIN_JSONL LOG_JSONL --steps N [--max-length 512]

Same model, data, LoRA and optimiser settings as the benchmark gives ``python -m training sft``;
it logs (time, step, tokens seen) at every step to LOG_JSONL. Only the chat template is shared with
TheraLab: SmolLM2's own template has no generation markers, which assistant-only loss needs.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("train_jsonl")
    parser.add_argument("log_jsonl")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()

    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from training.common import CHATML_MARKED

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    tokenizer.chat_template = CHATML_MARKED
    cuda = args.device == "cuda"
    model = AutoModelForCausalLM.from_pretrained(args.checkpoint, dtype=torch.bfloat16 if cuda else torch.float32)
    data = load_dataset("json", data_files={"train": args.train_jsonl})["train"].select_columns(["messages"])

    class StepLog(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kwargs):
            with open(args.log_jsonl, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"t": time.monotonic(), "step": state.global_step,
                                     "num_tokens": (logs or {}).get("num_tokens")}) + "\n")

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(output_dir=out, max_steps=args.steps, learning_rate=args.lr,
                           per_device_train_batch_size=1, gradient_accumulation_steps=1, logging_steps=1,
                           save_strategy="no", report_to=[], seed=0, use_cpu=not cuda, bf16=cuda, disable_tqdm=True,
                           max_length=args.max_length, assistant_only_loss=True, packing=False)
        lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.05,
                          target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer,
                   peft_config=lora, callbacks=[StepLog()]).train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
