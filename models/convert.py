"""Convert a PEFT LoRA adapter into a GGUF LoRA that llama.cpp applies on top of a GGUF base.

A fine-tuned adapter is trained on the dense transformers checkpoint, but served on CPU by llama.cpp
over the unchanged (quantized) base GGUF. llama.cpp loads an adapter GGUF whose metadata says
``general.type=adapter``, ``adapter.type=lora`` and ``adapter.lora.alpha``, and whose tensors are
``blk.N.<base tensor>.weight.lora_a`` / ``.lora_b``. It multiplies each pair by ``alpha / rank``
(rank read from the tensor), exactly like PEFT's ``lora_alpha / r``.

Two details make a naive copy wrong:

* llama.cpp's HF converter reorders the output rows of the Q and K projections of ``llama``
  models (RoPE pairs rotate-half style in HF, interleaved in llama.cpp). The adapter's ``B`` matrix
  produces those rows, so its rows must be reordered the same way; ``A`` is untouched.
* rank-stabilized LoRA scales by ``alpha / sqrt(r)`` and per-module ``alpha_pattern`` /
  ``rank_pattern`` change the scale per module; llama.cpp has one alpha per file, so the difference
  is folded into the written alpha and, where modules differ, into ``B``.

Adapters that need more than low-rank deltas on the seven linear projections (DoRA, embedding or
lm_head LoRA, ``modules_to_save``, bias training, weight-modifying inits such as PiSSA) are refused
with a ``ValueError`` that names what is unsupported.

``python -m models convert-lora PEFT_DIR OUT.gguf [--base BASE.gguf] [--outtype f32|f16]``.
torch, safetensors and gguf are imported only when a conversion runs.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
OUTTYPES = ("f32", "f16")

# HF projection name -> llama.cpp base tensor name (blk.N.<name>.weight).
TENSOR_NAMES = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}
# GGUF architectures this converter writes, and whether llama.cpp's HF converter reorders the Q/K
# rows for them (llama uses interleaved RoPE in llama.cpp; qwen2/qwen3 use NeoX RoPE like HF).
ARCH_PERMUTES_QK = {"llama": True, "qwen2": False, "qwen3": False}
# HF config.json model_type -> GGUF architecture (llama.cpp converts Mistral as llama).
_MODEL_TYPE_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}

_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<half>[AB])\.weight$")
_LAYER = re.compile(r"^model\.layers\.(?P<layer>\d+)\.(?:self_attn|mlp)\.(?P<proj>\w+)$")
# Inits that rewrite the base weights while training: the saved A/B are only right on that base.
_BASE_REWRITING_INITS = ("pissa", "olora", "loftq", "corda", "lora_ga")
# Config switches that add something a GGUF LoRA cannot express.
_UNSUPPORTED_SWITCHES = {
    "use_dora": "DoRA (use_dora)", "lora_bias": "LoRA bias (lora_bias)",
    "fan_in_fan_out": "fan_in_fan_out", "use_qalora": "QALoRA (use_qalora)",
    "trainable_token_indices": "trainable tokens (trainable_token_indices)",
    "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens)",
    "layer_replication": "layer_replication", "target_parameters": "target_parameters",
    "velora_config": "VeLoRA (velora_config)", "monteclora_config": "MonteCLoRA (monteclora_config)",
}


def _read_adapter_config(peft_dir: Path) -> dict:
    if not peft_dir.is_dir():
        raise FileNotFoundError(f"PEFT adapter directory not found: {peft_dir}")
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (peft_dir / name).is_file():
            raise FileNotFoundError(f"PEFT adapter file not found: {peft_dir / name}")
    return json.loads((peft_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))


def _check_config(cfg: dict) -> None:
    """Refuse, naming every reason, adapters whose effect is more than B @ A on linear layers."""
    problems = []
    if cfg.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type {cfg.get('peft_type')!r} (only LORA)")
    problems += [label for key, label in _UNSUPPORTED_SWITCHES.items() if cfg.get(key)]
    if cfg.get("modules_to_save"):
        problems.append(f"modules_to_save {list(cfg['modules_to_save'])}")
    if cfg.get("bias", "none") != "none":
        problems.append(f"bias={cfg['bias']!r}")
    init = cfg.get("init_lora_weights")
    if isinstance(init, str) and init.lower().startswith(_BASE_REWRITING_INITS):
        problems.append(f"init_lora_weights={init!r} (rewrites the base weights)")
    targets = cfg.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    bad = [t for t in targets if t.split(".")[-1] in ("embed_tokens", "lm_head")]
    if bad:
        problems.append(f"target modules {bad}")
    if problems:
        raise ValueError("Cannot convert this adapter to a GGUF LoRA: unsupported " + "; ".join(problems))
    if not cfg.get("lora_alpha") or cfg["lora_alpha"] <= 0 or not cfg.get("r"):
        # llama.cpp reads alpha 0 as "no scaling" (scale 1), so it cannot express PEFT's scale 0.
        raise ValueError(f"Cannot convert this adapter: need r > 0 and lora_alpha > 0, got "
                         f"r={cfg.get('r')!r}, lora_alpha={cfg.get('lora_alpha')!r}")


def _load_pairs(weights_path: Path) -> dict[tuple[int, str], dict]:
    """{(layer, proj): {"module", "A", "B"}} as float32 numpy; ValueError naming any other tensor."""
    from safetensors.torch import load_file

    pairs: dict[tuple[int, str], dict] = {}
    unsupported: set[str] = set()
    for key, tensor in load_file(str(weights_path), device="cpu").items():
        match = _KEY.match(key)
        layer = _LAYER.match(match["module"]) if match else None
        if layer is None or layer["proj"] not in TENSOR_NAMES:
            # e.g. lm_head / embed_tokens LoRA, DoRA magnitudes, modules_to_save copies, biases.
            unsupported.add(match["module"] if match else key.removeprefix("base_model.model."))
            continue
        entry = pairs.setdefault((int(layer["layer"]), layer["proj"]), {"module": match["module"]})
        entry[match["half"]] = tensor.float().numpy()
    if unsupported:
        names = sorted(unsupported)
        more = f" and {len(names) - 8} more" if len(names) > 8 else ""
        raise ValueError(f"Cannot convert this adapter to a GGUF LoRA: unsupported tensors "
                         f"{names[:8]}{more}; only LoRA on {', '.join(TENSOR_NAMES)} is supported")
    if not pairs:
        raise ValueError(f"No LoRA tensors found in {weights_path}")
    for (layer, proj), entry in pairs.items():
        if "A" not in entry or "B" not in entry:
            raise ValueError(f"Layer {layer} {proj}: lora_A or lora_B is missing in {weights_path}")
        if entry["A"].shape[0] != entry["B"].shape[1]:
            raise ValueError(f"Layer {layer} {proj}: lora_A {entry['A'].shape} and lora_B "
                             f"{entry['B'].shape} disagree on the rank")
    return pairs


def _gguf_field(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents()
    if isinstance(value, list):  # per-layer arrays: usable only when every layer agrees
        return value[0] if value and all(v == value[0] for v in value) else None
    return value


def _base_from_gguf(base_gguf: Path) -> dict:
    """Architecture, head counts and tensor shapes (GGUF order: [in, out]) of the base GGUF."""
    import gguf

    if not base_gguf.is_file():
        raise FileNotFoundError(f"Base GGUF not found: {base_gguf}")
    reader = gguf.GGUFReader(str(base_gguf))
    arch = _gguf_field(reader, "general.architecture")
    n_head = _gguf_field(reader, f"{arch}.attention.head_count")
    n_head_kv = _gguf_field(reader, f"{arch}.attention.head_count_kv") or n_head
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    return {"arch": arch, "n_head": n_head, "n_head_kv": n_head_kv, "shapes": shapes}


def _base_from_hf_config(peft_dir: Path, cfg: dict) -> dict:
    """Architecture and head counts from the base checkpoint's config.json, when one is local."""
    candidates = [peft_dir / "config.json"]
    if cfg.get("base_model_name_or_path"):
        candidates.append(Path(cfg["base_model_name_or_path"]).expanduser() / "config.json")
    for path in candidates:
        if path.is_file():
            hf = json.loads(path.read_text(encoding="utf-8"))
            hf = hf.get("text_config", hf)
            n_head = hf.get("num_attention_heads")
            arch = _MODEL_TYPE_ARCH.get(hf.get("model_type"), hf.get("model_type"))
            return {"arch": arch, "n_head": n_head,
                    "n_head_kv": hf.get("num_key_value_heads") or n_head, "shapes": None}
    # Nothing local to read: assume llama; Q/K then need head counts, so converting them asks for --base.
    return {"arch": "llama", "n_head": None, "n_head_kv": None, "shapes": None}


def rope_rows_to_gguf(rows, n_heads: int):
    """Reorder the output rows of a Q or K projection (or its LoRA B) from HF to llama.cpp order.

    HF's rotate-half RoPE pairs row ``i`` of a head with row ``i + head_dim/2``; llama.cpp's llama
    graph uses interleaved RoPE, pairing rows ``2i`` and ``2i+1``. So within each head the first
    half of the rows goes to the even slots and the second half to the odd slots.
    """
    out = rows.shape[0]
    if out % (2 * n_heads):
        raise ValueError(f"{out} output rows cannot be split into {n_heads} RoPE heads")
    half = out // n_heads // 2
    by_head = rows.reshape(n_heads, 2, half, *rows.shape[1:])
    return by_head.swapaxes(1, 2).reshape(rows.shape)


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's per-module override: the first pattern that matches the end of the module name."""
    for pattern, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return value
    return default


def _written_alpha(cfg: dict) -> float:
    # llama.cpp scales by alpha / rank; rsLoRA means alpha / sqrt(r), i.e. alpha * sqrt(r) / r.
    alpha = float(cfg["lora_alpha"])
    return alpha * math.sqrt(cfg["r"]) if cfg.get("use_rslora") else alpha


def _b_factor(cfg: dict, module: str, rank: int, written_alpha: float) -> float:
    """What B must be multiplied by so llama.cpp's written_alpha / rank equals PEFT's scale."""
    alpha = float(_pattern_value(cfg.get("alpha_pattern"), module, cfg["lora_alpha"]))
    scale = alpha / math.sqrt(rank) if cfg.get("use_rslora") else alpha / rank
    return scale * rank / written_alpha


def _gguf_tensors(pairs: dict, cfg: dict, base: dict, alpha: float):
    """(name, array) pairs in llama.cpp layout, checked against the base's shapes when known."""
    permute = ARCH_PERMUTES_QK[base["arch"]]
    tensors = []
    for (layer, proj), entry in sorted(pairs.items()):
        name = f"blk.{layer}.{TENSOR_NAMES[proj]}.weight"
        a, b = entry["A"], entry["B"]
        factor = _b_factor(cfg, entry["module"], a.shape[0], alpha)
        if abs(factor - 1.0) > 1e-6:
            b = b * factor
        if permute and proj in ("q_proj", "k_proj"):
            heads = base["n_head"] if proj == "q_proj" else base["n_head_kv"]
            if not heads:
                raise ValueError("Q/K head counts are unknown: pass the base GGUF (--base) or keep "
                                 "the base config.json where adapter_config.json points")
            b = rope_rows_to_gguf(b, int(heads))
        if base["shapes"] is not None:
            want = base["shapes"].get(name)
            if want is None or tuple(want[:2]) != (a.shape[1], b.shape[0]):
                raise ValueError(f"{name}: adapter needs a [{a.shape[1]}, {b.shape[0]}] base tensor, "
                                 f"the base GGUF has {want and list(want)}: wrong base model?")
        # numpy (r, in) / (out, r) become GGUF ne [in, r] / [r, out], the layout llama.cpp expects.
        tensors += [(name + ".lora_a", a), (name + ".lora_b", b)]
    return tensors


def _write_atomically(out_path: Path, arch: str, alpha: float, tensors: list, outtype: str,
                      label: str) -> None:
    """Write the GGUF to a temp file beside ``out_path`` and rename it: never a half-written file."""
    import gguf
    import numpy as np

    dtype = np.float16 if outtype == "f16" else np.float32
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(label)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32)
        for name, array in tensors:
            writer.add_tensor(name, np.ascontiguousarray(array, dtype=dtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.chmod(0o644)  # mkstemp makes it private; the adapter is an ordinary shared file
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def peft_lora_to_gguf(peft_dir: str | Path, out_path: str | Path, base_gguf: str | Path | None = None,
                      outtype: str = "f32") -> Path:
    """Convert the PEFT LoRA in ``peft_dir`` into the GGUF LoRA ``out_path``; return its path.

    ``base_gguf`` (recommended) is the GGUF the adapter will be served on: its architecture and head
    counts are used and every tensor shape is checked against it. Without it they come from the
    base checkpoint's config.json (next to the adapter or at ``base_model_name_or_path``).
    Raises FileNotFoundError for missing inputs and ValueError for adapters llama.cpp can't apply.
    """
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype must be one of {OUTTYPES}, got {outtype!r}")
    peft_dir, out_path = Path(peft_dir).expanduser(), Path(out_path).expanduser()
    cfg = _read_adapter_config(peft_dir)
    _check_config(cfg)
    base = (_base_from_gguf(Path(base_gguf).expanduser()) if base_gguf is not None
            else _base_from_hf_config(peft_dir, cfg))
    if base["arch"] not in ARCH_PERMUTES_QK:
        raise ValueError(f"Unsupported base architecture {base['arch']!r}; "
                         f"supported: {', '.join(ARCH_PERMUTES_QK)}")
    pairs = _load_pairs(peft_dir / ADAPTER_WEIGHTS)
    alpha = _written_alpha(cfg)
    tensors = _gguf_tensors(pairs, cfg, base, alpha)
    _write_atomically(out_path, base["arch"], alpha, tensors, outtype, peft_dir.name)
    return out_path


# --- command line -------------------------------------------------------------------------------

def add_cli_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("peft_dir", help="PEFT adapter dir (adapter_config.json, adapter_model.safetensors)")
    parser.add_argument("out", help="GGUF LoRA file to write")
    parser.add_argument("--base", help="the base GGUF the adapter will be served on (checks shapes, "
                                       "gives head counts and architecture)")
    parser.add_argument("--outtype", choices=OUTTYPES, default="f32", help="tensor type (default f32)")
    return parser


def register_cli(subparsers) -> None:
    """Add the ``convert-lora`` command to another argparse subparser group."""
    add_cli_arguments(subparsers.add_parser(
        "convert-lora", help="convert a PEFT LoRA adapter to a GGUF LoRA for llama.cpp",
        description="Convert a PEFT LoRA adapter to a GGUF LoRA for llama.cpp"))


def run_cli(args: argparse.Namespace) -> int:
    try:
        path = peft_lora_to_gguf(args.peft_dir, args.out, base_gguf=args.base, outtype=args.outtype)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def cli(argv: list[str] | None = None) -> int:
    """``convert-lora`` as a standalone command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m models convert-lora",
                                     description="Convert a PEFT LoRA adapter to a GGUF LoRA for llama.cpp")
    return run_cli(add_cli_arguments(parser).parse_args(argv))
