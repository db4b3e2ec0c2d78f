"""Merge a PEFT LoRA into a full GGUF model, so it can be served without a separate adapter file.

The merge happens in the GGUF's own space, the way llama.cpp applies a LoRA at run time: each
target tensor of the base GGUF is dequantized, ``alpha / r * B @ A`` (with the same Q/K row order
and scale rules as ``models.convert``) is added, and the result is written as ``q8_0``, ``f16`` or
``f32``. Every other tensor keeps its bytes and type, and all metadata (tokenizer, chat template,
hyperparameters) is copied, so the merged file is the base model plus the adapter and nothing else.

``python -m training export ADAPTER --merge [--quant q8_0]`` writes ``merged-<quant>.gguf`` next to
the adapter. gguf and numpy are imported when a merge runs.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from models.convert import (ADAPTER_WEIGHTS, ARCH_PERMUTES_QK, _base_from_gguf, _check_config, _gguf_tensors,
                            _load_pairs, _read_adapter_config, _written_alpha)

MERGE_QUANTS = ("q8_0", "f16", "f32")
_SKIP_KEYS = ("GGUF.", "general.architecture")  # the reader's own fields; the writer adds the architecture


def lora_deltas(peft_dir: Path, base_gguf: Path) -> dict:
    """{base tensor name: float32 delta in numpy (out, in) order}, as llama.cpp would add it."""
    cfg = _read_adapter_config(peft_dir)
    _check_config(cfg)
    base = _base_from_gguf(base_gguf)
    if base["arch"] not in ARCH_PERMUTES_QK:
        raise ValueError(f"Unsupported base architecture {base['arch']!r}")
    alpha = _written_alpha(cfg)
    tensors = dict(_gguf_tensors(_load_pairs(peft_dir / ADAPTER_WEIGHTS), cfg, base, alpha))
    deltas = {}
    for name in {n.rsplit(".", 1)[0] for n in tensors}:
        a, b = tensors[name + ".lora_a"], tensors[name + ".lora_b"]
        deltas[name] = (alpha / a.shape[0]) * (b @ a)
    return deltas


def _copy_metadata(reader, writer) -> None:
    import gguf
    for key, field in reader.fields.items():
        if key.startswith(_SKIP_KEYS):
            continue
        vtype = gguf.GGUFValueType(field.types[0])
        sub = gguf.GGUFValueType(field.types[1]) if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub)


def _merged_tensor(tensor, delta, quant: str):
    """(array, raw dtype) of base + delta in the requested type."""
    import gguf
    import numpy as np
    weights = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
    if weights.shape != delta.shape:
        raise ValueError(f"{tensor.name}: base {weights.shape} and LoRA delta {delta.shape} differ")
    merged = weights + delta
    if quant == "q8_0":
        qtype = gguf.GGMLQuantizationType.Q8_0
        return gguf.quants.quantize(merged, qtype), qtype
    if quant == "f16":
        return merged.astype(np.float16), gguf.GGMLQuantizationType.F16
    return merged, gguf.GGMLQuantizationType.F32


def merge_lora_into_gguf(peft_dir: str | Path, base_gguf: str | Path, out_path: str | Path,
                         quant: str = "q8_0") -> Path:
    """Write ``base_gguf`` with the PEFT LoRA in ``peft_dir`` merged in; return ``out_path``."""
    import gguf
    if quant not in MERGE_QUANTS:
        raise ValueError(f"quant must be one of {MERGE_QUANTS}, got {quant!r}")
    peft_dir, base_gguf, out_path = (Path(p).expanduser() for p in (peft_dir, base_gguf, out_path))
    deltas = lora_deltas(peft_dir, base_gguf)
    reader = gguf.GGUFReader(str(base_gguf))
    arch = str(reader.fields["general.architecture"].contents())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        _copy_metadata(reader, writer)
        for tensor in reader.tensors:
            if tensor.name in deltas:
                array, qtype = _merged_tensor(tensor, deltas.pop(tensor.name), quant)
            else:
                array, qtype = tensor.data, tensor.tensor_type
            writer.add_tensor(tensor.name, array, raw_dtype=qtype)
        if deltas:
            raise ValueError(f"LoRA targets missing from the base GGUF: {sorted(deltas)[:5]}")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.chmod(0o644)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_path
