"""Test helper: a tiny Llama built locally from a config (2 layers, random weights), for tests that
need a real transformers checkpoint to train or serve but not a real model's time."""
from __future__ import annotations

from pathlib import Path


def save_tiny_llama(out: Path, tokenizer) -> Path:
    """Save a 2-layer, 32-wide Llama with ``tokenizer``'s vocabulary (and the tokenizer) to ``out``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
