"""Do the two ways of serving an adapter agree? hf + PEFT against llama.cpp + GGUF LoRA.

The same adapter is trained once and served two ways: transformers with the PEFT folder on the
dense checkpoint (GPU path) and llama.cpp with ``adapter.gguf`` over the quantized base GGUF (CPU
path). ``python -m training parity ADAPTER [--prompts N] [--tokens K]`` answers N validation
prompts greedily both ways and reports how often the first token agrees and how often the first K
tokens agree. The base checkpoint is the Q4_1 GGUF dequantized, so both sides hold the same base
weights; small differences come from arithmetic (and an f16 adapter file), and show up only where
the top two next tokens are nearly tied.
"""
from __future__ import annotations

import json
from pathlib import Path


def adapter_prompts(adapter_dir: Path, data_dir: Path, n: int) -> list[list[dict]]:
    """Validation prompts of the adapter's own dataset, else of the seed corpus's ACT set."""
    from training.prompts import validation_prompts
    card = json.loads((adapter_dir / "card.json").read_text(encoding="utf-8"))
    for root in (Path(data_dir) / "datasets", Path(data_dir) / "demo-build" / "datasets"):
        folder = root / card.get("dataset", "")
        if card.get("dataset") and (folder / "validation.jsonl").is_file():
            return validation_prompts(folder, n)
    from training.build import sft_records
    from training.corpus import seed_corpus
    rows = [r for t in seed_corpus() if t.modality == card.get("modality", "act")
            for r in sft_records(t, card.get("reasoning") == "think", 1)]
    return [r["messages"][:-1] for r in rows[::max(1, len(rows) // n)]][:n]


def measure(adapter_dir: Path, ckpt: Path, prompts: list[list[dict]], tokens: int = 8) -> dict:
    """{"prompts", "first_token", "first_k"}: agreement rates of greedy hf+PEFT vs GGUF+LoRA."""
    from models.base import GenParams
    from models.embedded import embedded_gguf_path
    from models.hf_backend import HFBackend
    from models.llama_cpp_backend import LlamaCppBackend
    one = GenParams(max_tokens=1, temperature=0.0, repeat_penalty=1.0, fresh=True)
    k = GenParams(max_tokens=tokens, temperature=0.0, repeat_penalty=1.0, fresh=True)
    gguf_side = LlamaCppBackend(f"parity:{adapter_dir}", embedded_gguf_path(),
                                lora_path=adapter_dir / "adapter.gguf", n_ctx=2048)
    hf_side = HFBackend(f"parity-hf:{adapter_dir}", ckpt, adapter_path=adapter_dir / "peft")
    first = same = 0
    for messages in prompts:  # both sides share one tokenizer, so equal text is an equal token
        first += gguf_side.stream(messages, one).text() == hf_side.stream(messages, one).text()
        same += gguf_side.stream(messages, k).text() == hf_side.stream(messages, k).text()
    n = len(prompts)
    return {"prompts": n, "first_token": round(first / n, 3), "first_k": round(same / n, 3), "k": tokens}
