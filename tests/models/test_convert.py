"""PEFT LoRA -> GGUF LoRA conversion, checked against what llama.cpp and PEFT actually compute.

A random LoRA (fixed seed) on every linear projection of the embedded SmolLM2 (dequantized HF
checkpoint) is converted and served by llama.cpp over the unchanged Q4_1 GGUF; its effect must
match PEFT's on the dense checkpoint. The logit checks fail if the Q/K row permutation or the
alpha scale is wrong. Synthetic adapters (no model) cover the refusals and the metadata rules.
"""
from __future__ import annotations

import json
import math
import shutil

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("gguf")
pytest.importorskip("llama_cpp")

from models.base import GenParams  # noqa: E402
from models.convert import TENSOR_NAMES, cli, peft_lora_to_gguf  # noqa: E402
from models.embedded import embedded_gguf_path, ensure_embedded_hf  # noqa: E402

TARGETS = list(TENSOR_NAMES)  # q, k, v, o, gate, up, down
RANK, ALPHA = 8, 16
# Seed and B scale chosen so the adapter visibly changes the answer to RELAX while PEFT's greedy
# path keeps every top-1/top-2 logit gap above 1.0: exact token agreement then does not hinge on
# the small numeric differences between Q4_1 llama.cpp and the dequantized fp32 checkpoint.
SEED, B_SCALE = 2, 0.7
RELAX = [{"role": "user", "content": "What is a good way to relax?"}]
GREEDY = dict(temperature=0.0, repeat_penalty=1.0)
LOGIT_CHATS = [
    [{"role": "user", "content": "I have been feeling anxious about my exams. What can I do?"},
     {"role": "assistant", "content": "Exams can feel overwhelming. Let's look at what worries you most."}],
    [{"role": "user", "content": "I can't sleep at night and I feel tired all day."}],
    [{"role": "user", "content": "My friend stopped talking to me and I don't know why."}],
]
N_HEAD, N_HEAD_KV, N_LAYER = 9, 3, 30


@pytest.fixture(scope="module")
def ckpt(embedded_hf_data_dir):
    return ensure_embedded_hf(embedded_hf_data_dir)


@pytest.fixture(scope="module")
def peft_dir(ckpt, tmp_path_factory):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    # init_lora_weights=False makes B random too, so the adapter changes outputs without training.
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS, init_lora_weights=False)
    model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(B_SCALE)
    out = tmp_path_factory.mktemp("peft")
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lora_gguf(peft_dir, tmp_path_factory):
    return peft_lora_to_gguf(peft_dir, tmp_path_factory.mktemp("gguf") / "lora.gguf",
                             base_gguf=embedded_gguf_path())


def _peft_tensors(peft_dir):
    from safetensors.numpy import load_file

    return load_file(str(peft_dir / "adapter_model.safetensors"))


def _hf_rows_in_gguf_order(out_rows: int, n_heads: int) -> list[int]:
    """For each llama.cpp row of a Q/K projection, the HF row it comes from (written per head)."""
    head_dim = out_rows // n_heads
    half = head_dim // 2
    return [h * head_dim + (j % 2) * half + j // 2 for h in range(n_heads) for j in range(head_dim)]


def test_gguf_metadata_tensors_and_permutation(lora_gguf, peft_dir):
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(lora_gguf))
    meta = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}
    assert meta["general.architecture"] == "llama"
    assert meta["general.type"] == "adapter" and meta["adapter.type"] == "lora"
    assert meta["adapter.lora.alpha"] == pytest.approx(ALPHA)
    assert [p.name for p in lora_gguf.parent.iterdir()] == ["lora.gguf"]  # no temp file left

    base_shapes = {t.name: [int(x) for x in t.shape] for t in gguf.GGUFReader(str(embedded_gguf_path())).tensors}
    tensors = {t.name: t for t in reader.tensors}
    expected = {f"blk.{i}.{n}.weight.lora_{h}" for i in range(N_LAYER) for n in TENSOR_NAMES.values() for h in "ab"}
    assert set(tensors) == expected
    for name, tensor in tensors.items():
        n_in, n_out = base_shapes[name.rsplit(".", 1)[0]]
        # llama.cpp wants ne [in, rank] for lora_a and [rank, out] for lora_b.
        assert [int(x) for x in tensor.shape] == ([n_in, RANK] if name.endswith("_a") else [RANK, n_out]), name
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F32

    peft = _peft_tensors(peft_dir)
    layer = 7
    for proj, gguf_name in TENSOR_NAMES.items():
        module = "self_attn" if proj in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
        prefix = f"base_model.model.model.layers.{layer}.{module}.{proj}"
        a, b = peft[f"{prefix}.lora_A.weight"], peft[f"{prefix}.lora_B.weight"]
        got_a = np.asarray(tensors[f"blk.{layer}.{gguf_name}.weight.lora_a"].data)
        got_b = np.asarray(tensors[f"blk.{layer}.{gguf_name}.weight.lora_b"].data)
        assert np.array_equal(got_a, a), proj
        heads = {"q_proj": N_HEAD, "k_proj": N_HEAD_KV}.get(proj)
        want_b = b[_hf_rows_in_gguf_order(b.shape[0], heads)] if heads else b
        assert np.array_equal(got_b, want_b), proj
        if heads:
            assert not np.array_equal(got_b, b)  # the permutation really moved rows


def test_lora_changes_llama_cpp_output_and_matches_peft_greedy(ckpt, peft_dir, lora_gguf):
    from models.hf_backend import HFBackend
    from models.llama_cpp_backend import LlamaCppBackend

    params = GenParams(max_tokens=6, **GREEDY)
    # Private n_ctx values give these backends their own hosts (hosts are shared per n_ctx).
    base = LlamaCppBackend("convert-base", embedded_gguf_path(), n_ctx=1031).stream(RELAX, params).text()
    served = LlamaCppBackend("convert-lora", embedded_gguf_path(), lora_path=lora_gguf,
                             n_ctx=1033).stream(RELAX, params).text()
    peft = HFBackend("convert-peft", ckpt, adapter_path=peft_dir).stream(RELAX, params).text()
    assert served.strip() and served != base
    assert served == peft


def _llama_logits(lora_path, token_lists):
    import os

    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(str(embedded_gguf_path()), lora_path=str(lora_path) if lora_path else None,
                          n_ctx=256, logits_all=True, n_threads=os.cpu_count(), verbose=False)
    rows = []
    for tokens in token_lists:
        llm.reset()
        llm.eval(tokens)
        rows.append(np.array(llm.scores[: len(tokens)]))
    llm.close()
    return np.concatenate(rows)


def _peft_logits(ckpt, peft_dir, token_lists):
    import numpy as np
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32), peft_dir)
    model.eval()
    base, adapted = [], []
    with torch.inference_mode():
        for tokens in token_lists:
            ids = torch.tensor([tokens])
            adapted.append(model(ids).logits[0].numpy())
            with model.disable_adapter():
                base.append(model(ids).logits[0].numpy())
    return np.concatenate(base), np.concatenate(adapted)


def test_llama_cpp_logit_shift_matches_peft(ckpt, peft_dir, lora_gguf):
    """The adapter's effect on every next-token distribution agrees between llama.cpp and PEFT.

    Comparing the shifts (adapter minus base, per implementation) cancels the base's Q4_1-vs-fp32
    noise. Measured: correlation 0.996, relative error 0.09 and all 100 confident top-1s equal;
    with the Q/K permutation left out: 0.82, 0.55 and 86 %; alpha off by 1.5x: relative error 0.54.
    """
    import numpy as np
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    token_lists = [list(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False))
                   for chat in LOGIT_CHATS]
    hf_base, hf_lora = _peft_logits(ckpt, peft_dir, token_lists)
    cpp_base, cpp_lora = _llama_logits(None, token_lists), _llama_logits(lora_gguf, token_lists)

    assert (hf_lora.argmax(-1) != hf_base.argmax(-1)).mean() > 0.2  # the adapter matters
    # Same top-1 wherever PEFT is confident; near ties may flip on quantization noise alone.
    top2 = np.sort(hf_lora, axis=-1)[:, -2:]
    confident = top2[:, 1] - top2[:, 0] > 0.5
    assert confident.sum() >= 50
    assert (cpp_lora.argmax(-1) == hf_lora.argmax(-1))[confident].mean() >= 0.98
    shift_cpp, shift_hf = (cpp_lora - cpp_base).ravel(), (hf_lora - hf_base).ravel()
    assert np.corrcoef(shift_cpp, shift_hf)[0, 1] > 0.97
    # A wrong alpha scale would keep the correlation but not the size of the shift.
    assert np.linalg.norm(shift_cpp - shift_hf) / np.linalg.norm(shift_hf) < 0.25


def test_cli_and_variants(peft_dir, tmp_path, capsys):
    import gguf

    out = tmp_path / "sub" / "cli.gguf"
    assert cli([str(peft_dir), str(out), "--base", str(embedded_gguf_path()), "--outtype", "f16"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    reader = gguf.GGUFReader(str(out))
    assert {t.tensor_type for t in reader.tensors} == {gguf.GGMLQuantizationType.F16}

    # rsLoRA scales by alpha / sqrt(r); llama.cpp by alpha / r, so alpha * sqrt(r) is written.
    rs_dir = tmp_path / "rslora"
    shutil.copytree(peft_dir, rs_dir)
    config = json.loads((rs_dir / "adapter_config.json").read_text())
    (rs_dir / "adapter_config.json").write_text(json.dumps({**config, "use_rslora": True}))
    # Without --base the head counts come from the config.json at base_model_name_or_path.
    rs_reader = gguf.GGUFReader(str(peft_lora_to_gguf(rs_dir, tmp_path / "rs.gguf")))
    assert rs_reader.fields["adapter.lora.alpha"].contents() == pytest.approx(ALPHA * math.sqrt(RANK))

    assert cli([str(tmp_path / "nope"), str(tmp_path / "x.gguf")]) == 2
    assert "nope" in capsys.readouterr().err


# --- synthetic adapters: refusals and per-module rules, no model needed --------------------------

def _synthetic_adapter(path, config=None, tensors=None, rank=2):
    """A tiny PEFT adapter on a 2-head (1 KV head) llama with hidden size 8."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    if tensors is None:
        tensors = {}
        for proj, out in (("q_proj", 8), ("k_proj", 4)):
            prefix = f"base_model.model.model.layers.0.self_attn.{proj}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, 8), dtype=np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((out, rank), dtype=np.float32)
    path.mkdir(parents=True)
    save_file(tensors, str(path / "adapter_model.safetensors"))
    cfg = {"peft_type": "LORA", "r": rank, "lora_alpha": 4, "target_modules": ["q_proj", "k_proj"],
           "bias": "none", "base_model_name_or_path": str(path / "no-such-base")}
    (path / "adapter_config.json").write_text(json.dumps({**cfg, **(config or {})}))
    (path / "config.json").write_text(json.dumps(
        {"model_type": "llama", "num_attention_heads": 2, "num_key_value_heads": 1}))
    return path


@pytest.mark.parametrize("config, tensor_key, named", [
    ({"use_dora": True}, None, "DoRA"),
    ({"modules_to_save": ["lm_head"]}, None, "modules_to_save"),
    ({"target_modules": ["q_proj", "embed_tokens"]}, None, "embed_tokens"),
    ({}, "base_model.model.lm_head.lora_A.weight", "lm_head"),
    ({}, "base_model.model.model.embed_tokens.lora_embedding_A", "embed_tokens"),
    ({}, "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", "lora_magnitude_vector"),
])
def test_unsupported_adapters_are_refused_by_name(tmp_path, config, tensor_key, named):
    import numpy as np

    tensors = None
    if tensor_key:
        prefix = "base_model.model.model.layers.0.self_attn.q_proj"
        tensors = {f"{prefix}.lora_A.weight": np.ones((2, 8), np.float32),
                   f"{prefix}.lora_B.weight": np.ones((8, 2), np.float32),
                   tensor_key: np.ones((2, 8), np.float32)}
    adapter = _synthetic_adapter(tmp_path / "adapter", config, tensors)
    with pytest.raises(ValueError, match=named):
        peft_lora_to_gguf(adapter, tmp_path / "out.gguf")
    assert not list(tmp_path.glob("*.gguf*"))


def test_missing_inputs_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-adapter"):
        peft_lora_to_gguf(tmp_path / "no-adapter", tmp_path / "out.gguf")
    adapter = _synthetic_adapter(tmp_path / "adapter")
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        peft_lora_to_gguf(adapter, tmp_path / "out.gguf")
    with pytest.raises(FileNotFoundError, match="base.gguf"):
        peft_lora_to_gguf(_synthetic_adapter(tmp_path / "b"), tmp_path / "o.gguf", tmp_path / "base.gguf")


def _fake_base(path, arch, q_out=8):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((q_out, 8), np.float32))
    writer.add_tensor("blk.0.attn_k.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_base_gguf_decides_architecture_permutation_and_shapes(tmp_path):
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    adapter = _synthetic_adapter(tmp_path / "adapter", {"alpha_pattern": {"k_proj": 8}})
    source = load_file(str(adapter / "adapter_model.safetensors"))
    q_b = source["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]
    k_b = source["base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight"]

    def lora_b(out):
        tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(out)).tensors}
        return tensors["blk.0.attn_q.weight.lora_b"], tensors["blk.0.attn_k.weight.lora_b"]

    llama = peft_lora_to_gguf(adapter, tmp_path / "llama.gguf", _fake_base(tmp_path / "l.gguf", "llama"))
    q, k = lora_b(llama)
    assert np.array_equal(q, q_b[_hf_rows_in_gguf_order(8, 2)])
    # alpha_pattern gives k_proj twice the file's alpha: folded into its B.
    assert np.allclose(k, 2 * k_b[_hf_rows_in_gguf_order(4, 1)])

    qwen = peft_lora_to_gguf(adapter, tmp_path / "qwen.gguf", _fake_base(tmp_path / "q.gguf", "qwen2"))
    assert gguf.GGUFReader(str(qwen)).fields["general.architecture"].contents() == "qwen2"
    q, _ = lora_b(qwen)
    assert np.array_equal(q, q_b)  # NeoX RoPE in llama.cpp: rows stay in HF order

    with pytest.raises(ValueError, match="attn_q"):
        peft_lora_to_gguf(adapter, tmp_path / "bad.gguf", _fake_base(tmp_path / "w.gguf", "llama", q_out=16))
    with pytest.raises(ValueError, match="architecture"):
        peft_lora_to_gguf(adapter, tmp_path / "bad.gguf", _fake_base(tmp_path / "g.gguf", "gpt2"))
    (adapter / "config.json").unlink()  # no base config anywhere: Q/K can't be permuted safely
    with pytest.raises(ValueError, match="head counts"):
        peft_lora_to_gguf(adapter, tmp_path / "bad.gguf")


# ----- merged full GGUF (python -m training export --merge) ----------------------------------------

@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_merged_gguf_answers_like_base_plus_lora(peft_dir, lora_gguf, tmp_path, quant):
    """The adapter merged into the base GGUF gives llama.cpp's greedy answer with the LoRA file."""
    import gguf

    from models.llama_cpp_backend import LlamaCppBackend
    from models.merge import merge_lora_into_gguf

    merged = merge_lora_into_gguf(peft_dir, embedded_gguf_path(), tmp_path / f"merged-{quant}.gguf", quant)
    reader = gguf.GGUFReader(str(merged))
    base = gguf.GGUFReader(str(embedded_gguf_path()))
    assert reader.fields["tokenizer.chat_template"].contents() == base.fields["tokenizer.chat_template"].contents()
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == quant.upper() and types["blk.0.attn_norm.weight"] == "F32"
    assert len(types) == len(base.tensors)

    params = GenParams(max_tokens=6, **GREEDY)
    with_lora = LlamaCppBackend("merge-lora", embedded_gguf_path(), lora_path=lora_gguf,
                                n_ctx=1035).stream(RELAX, params).text()
    plain = LlamaCppBackend("merge-base", embedded_gguf_path(), n_ctx=1037).stream(RELAX, params).text()
    answer = LlamaCppBackend(f"merged-{quant}", merged, n_ctx=1039).stream(RELAX, params).text()
    assert answer == with_lora and answer != plain


def test_merge_refuses_a_wrong_base_and_an_unknown_type(peft_dir, tmp_path):
    from models.merge import merge_lora_into_gguf

    with pytest.raises(ValueError, match="quant"):
        merge_lora_into_gguf(peft_dir, embedded_gguf_path(), tmp_path / "x.gguf", "q4_k")
    with pytest.raises(FileNotFoundError):
        merge_lora_into_gguf(peft_dir, tmp_path / "missing.gguf", tmp_path / "x.gguf")
    assert not list(tmp_path.iterdir())
