"""The model catalog: built-ins, [[models]] from the config file, trained adapters, and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import load_settings
from models.catalog import Catalog, CatalogEntry, CatalogError

ROOT = Path(__file__).resolve().parents[2]


def settings_with(tmp_path, toml: str | None = None, env: dict | None = None):
    argv = ["--data-dir", str(tmp_path / "data")]
    if toml is not None:
        cfg = tmp_path / "conf" / "theralab.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(toml, encoding="utf-8")
        argv += ["--config", str(cfg)]
    return load_settings(argv, env=env or {})


def make_adapter(data_dir: Path, name: str, card, gguf=False, peft=False) -> Path:
    folder = data_dir / "adapters" / name
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(card if isinstance(card, str) else json.dumps(card), encoding="utf-8")
    if gguf:
        (folder / "adapter.gguf").write_bytes(b"GGUF")
    if peft:
        (folder / "peft").mkdir()
        (folder / "peft" / "adapter_config.json").write_text("{}")
    return folder


def test_builtins(tmp_path):
    catalog = Catalog(settings_with(tmp_path))
    default, think = catalog.get("default"), catalog.get("default-think")
    assert (default.reasoning, think.reasoning) == ("none", "think")
    assert not default.thinks and think.thinks
    assert default.base == think.base == "embedded"  # the embedded SmolLM2 GGUF
    assert default.backend == think.backend == "llama_cpp"
    assert default.source == think.source == "builtin"
    assert default.modality == "any" and default.adapter is None
    assert [e.id for e in catalog.entries()][:2] == ["default", "default-think"]
    assert catalog.errors == []
    with pytest.raises(CatalogError, match="nope"):
        catalog.get("nope")


def test_builtins_follow_embedded_backend(tmp_path):
    catalog = Catalog(settings_with(tmp_path, env={"THERALAB_EMBEDDED_BACKEND": "hf"}))
    assert catalog.get("default").backend == "hf"
    assert catalog.get("default").base == "embedded"


CONFIG_MODELS = """
[[models]]
id = "qwen-gguf"
label = "Qwen 0.5B Q4"
backend = "llama_cpp"
path = "models/qwen.gguf"
adapter = "models/cbt-lora.gguf"
modality = "cbt"

[[models]]
id = "hf-local"
backend = "hf"
base = "/srv/hf/llama"
reasoning = "think"
modality = "act"

[[models]]
id = "vllm"
backend = "openai"
base_url = "http://127.0.0.1:8000/v1"
model = "llama-3-8b"
api_key_env = "VLLM_KEY"
"""


def test_config_entries(tmp_path):
    catalog = Catalog(settings_with(tmp_path, CONFIG_MODELS))
    assert catalog.errors == []
    conf = tmp_path / "conf"
    qwen = catalog.get("qwen-gguf")
    assert (qwen.backend, qwen.source, qwen.label, qwen.modality) == ("llama_cpp", "config", "Qwen 0.5B Q4", "cbt")
    assert qwen.base == str((conf / "models" / "qwen.gguf").resolve())  # relative to the file
    assert qwen.adapter == str((conf / "models" / "cbt-lora.gguf").resolve())
    hf = catalog.get("hf-local")
    assert (hf.backend, hf.base, hf.reasoning, hf.source, hf.label) == ("hf", "/srv/hf/llama", "think", "config", "hf-local")
    vllm = catalog.get("vllm")
    assert (vllm.backend, vllm.base_url, vllm.model, vllm.api_key_env, vllm.source) == \
        ("openai", "http://127.0.0.1:8000/v1", "llama-3-8b", "VLLM_KEY", "config")
    ids = [e.id for e in catalog.entries()]
    assert {"default", "default-think", "qwen-gguf", "hf-local", "vllm"} <= set(ids)
    assert sorted(e.id for e in catalog.entries() if e.source == "config") == ["hf-local", "qwen-gguf", "vllm"]


@pytest.mark.parametrize("toml, fragment", [
    ('[[models]]\nid = "weird"\nbackend = "tensorrt"\npath = "x.gguf"\n', "backend"),
    ('[[models]]\nid = "remote"\nbackend = "openai"\nmodel = "m"\n', "base_url"),
    ('[[models]]\nid = "remote2"\nbackend = "openai"\nbase_url = "http://h/v1"\n', "model"),
    ('[[models]]\nid = "nopath"\nbackend = "llama_cpp"\n', "path"),
    ('[[models]]\nid = "badmod"\nbackend = "hf"\npath = "p"\nmodality = "dbt"\n', "modality"),
    ('[[models]]\nid = "badthink"\nbackend = "hf"\npath = "p"\nreasoning = "cot"\n', "reasoning"),
    ('[[models]]\nid = "typo"\nbackend = "hf"\npath = "p"\nadaptor = "a"\n', "adaptor"),
    ('[[models]]\nid = "nobackend"\npath = "p"\n', "backend"),
    ('[[models]]\nid = "toolong"\nbackend = "hf"\npath = "p"\nmax_tokens = 0\n', "max_tokens"),
    ('[[models]]\nid = "textlen"\nbackend = "hf"\npath = "p"\nmax_tokens = "300"\n', "max_tokens"),
])
def test_bad_config_entry_names_the_id(tmp_path, toml, fragment):
    settings = settings_with(tmp_path, toml)
    with pytest.raises(CatalogError) as info:
        Catalog(settings)
    model_id = toml.split('id = "')[1].split('"')[0]
    assert model_id in str(info.value)
    assert fragment in str(info.value)
    assert str(settings.config_file) in str(info.value)


def test_config_entry_without_id(tmp_path):
    with pytest.raises(CatalogError, match="'id'"):
        Catalog(settings_with(tmp_path, '[[models]]\nbackend = "hf"\npath = "p"\n'))


def test_duplicate_ids_are_fatal_in_config(tmp_path):
    toml = ('[[models]]\nid = "twin"\nbackend = "hf"\npath = "a"\n'
            '[[models]]\nid = "twin"\nbackend = "hf"\npath = "b"\n')
    with pytest.raises(CatalogError, match="duplicate model id 'twin'"):
        Catalog(settings_with(tmp_path, toml))
    with pytest.raises(CatalogError, match="'default'"):  # the built-in id is reserved
        Catalog(settings_with(tmp_path, '[[models]]\nid = "default"\nbackend = "hf"\npath = "a"\n'))


def test_trained_adapters(tmp_path):
    data = tmp_path / "data"
    g = make_adapter(data, "cbt-sft", {"id": "cbt-sft", "label": "CBT SFT", "modality": "cbt",
                                       "reasoning": True, "method": "sft", "recipe": "cbt.yaml",
                                       "metrics": {"loss": 1.2}, "junk": 1}, gguf=True)
    p = make_adapter(data, "act-orpo", {"modality": "act", "reasoning": "none"}, peft=True)
    both = make_adapter(data, "both", {"id": "both"}, gguf=True, peft=True)
    catalog = Catalog(settings_with(tmp_path))
    assert catalog.errors == []
    sft = catalog.get("cbt-sft")
    assert (sft.source, sft.backend, sft.adapter, sft.base) == ("trained", "llama_cpp", str(g / "adapter.gguf"), "embedded")
    assert (sft.label, sft.modality, sft.reasoning) == ("CBT SFT", "cbt", "think")
    assert sft.provenance == {"method": "sft", "recipe": "cbt.yaml", "metrics": {"loss": 1.2}}
    orpo = catalog.get("act-orpo")  # id and label default to the folder name
    assert (orpo.source, orpo.backend, orpo.adapter) == ("trained", "hf", str(p / "peft"))
    assert (orpo.label, orpo.modality, orpo.reasoning) == ("act-orpo", "act", "none")
    assert catalog.get("both").backend == "llama_cpp"
    assert catalog.get("both").adapter == str(both / "adapter.gguf")
    assert sorted(e.id for e in catalog.entries() if e.source == "trained") == ["act-orpo", "both", "cbt-sft"]
    # With the transformers backend selected, an adapter that has both formats is served by hf.
    hf_catalog = Catalog(settings_with(tmp_path, env={"THERALAB_EMBEDDED_BACKEND": "hf"}))
    assert hf_catalog.get("both").backend == "hf"
    assert hf_catalog.get("both").adapter == str(both / "peft")
    assert hf_catalog.get("cbt-sft").backend == "llama_cpp"  # only a GGUF: still llama.cpp


def test_bad_cards_are_reported_not_fatal(tmp_path):
    data = tmp_path / "data"
    make_adapter(data, "a-corrupt", "{not json", gguf=True)
    make_adapter(data, "b-list", "[1, 2]", gguf=True)
    make_adapter(data, "c-empty", {"id": "c-empty"})  # neither adapter.gguf nor peft/
    make_adapter(data, "d-badmod", {"modality": "dbt"}, gguf=True)
    make_adapter(data, "e-good", {"id": "e-good"}, gguf=True)
    make_adapter(data, "f-dup", {"id": "default"}, gguf=True)  # id taken by the built-in
    catalog = Catalog(settings_with(tmp_path))
    errors = "\n".join(catalog.errors)
    assert len(catalog.errors) == 5, errors
    for name in ("a-corrupt", "b-list", "c-empty", "d-badmod"):
        assert str(data / "adapters" / name / "card.json") in errors
    assert "duplicate model id 'default'" in errors
    # Later cards still load, and the built-in keeps its id.
    assert catalog.get("e-good").source == "trained"
    assert catalog.get("default").source == "builtin"
    assert {e.id for e in catalog.entries() if e.source == "trained"} == {"e-good"}
    catalog.reload()  # errors are rebuilt, not accumulated
    assert len(catalog.errors) == 5


def test_entries_filter_by_modality(tmp_path):
    data = tmp_path / "data"
    make_adapter(data, "cbt-only", {"modality": "cbt"}, gguf=True)
    make_adapter(data, "act-only", {"modality": "act"}, gguf=True)
    catalog = Catalog(settings_with(tmp_path))
    trained = lambda entries: {e.id for e in entries if e.source in ("trained", "builtin")}  # noqa: E731
    assert trained(catalog.entries("cbt")) == {"default", "default-think", "cbt-only"}
    assert trained(catalog.entries("act")) == {"default", "default-think", "act-only"}
    assert trained(catalog.entries()) == {"default", "default-think", "cbt-only", "act-only"}
    assert all(e.modality in ("any", "cbt") for e in catalog.entries("cbt"))


def test_add_validates(tmp_path):
    catalog = Catalog(settings_with(tmp_path))
    catalog.add(CatalogEntry("fake-1", "Fake", "fake"))
    assert catalog.get("fake-1").backend == "fake"
    with pytest.raises(CatalogError, match="x1"):
        catalog.add(CatalogEntry("x1", "X", "openai"))


# -- python -m models ---------------------------------------------------------------------------

def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THERALAB_")}
    env["THERALAB_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run([sys.executable, "-m", "models", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_list(tmp_path):
    proc = run_cli("list", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert rows["default"][1:5] == ["llama_cpp", "any", "none", "builtin"]
    assert rows["default-think"][1:5] == ["llama_cpp", "any", "think", "builtin"]


def test_cli_list_json_with_config_and_adapters(tmp_path):
    make_adapter(tmp_path / "data", "broken", "{", gguf=True)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[models]]\nid = "srv"\nbackend = "openai"\nbase_url = "http://h/v1"\nmodel = "m"\n')
    proc = run_cli("list", "--json", "--config", str(cfg), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    entries = {e["id"]: e for e in json.loads(proc.stdout)}
    assert entries["default"]["reasoning"] == "none" and entries["default-think"]["reasoning"] == "think"
    assert entries["srv"]["source"] == "config" and entries["srv"]["base_url"] == "http://h/v1"
    assert "broken" not in entries
    assert "warning:" in proc.stderr and "card.json" in proc.stderr


def test_cli_broken_config_exits_2(tmp_path):
    cfg = tmp_path / "broken.toml"
    cfg.write_text("port = = 1\n")
    proc = run_cli("list", "--config", str(cfg), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(cfg) in lines[0] and "TOML" in lines[0]


def test_cli_bad_catalog_entry_exits_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[models]]\nid = "remote"\nbackend = "openai"\n')
    proc = run_cli("list", "--config", str(cfg), tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "remote" in proc.stderr and "Traceback" not in proc.stderr


def test_an_adapter_trained_while_the_app_runs_appears_without_a_restart(tmp_path):
    data = tmp_path / "data"
    catalog = Catalog(settings_with(tmp_path))
    catalog.add(CatalogEntry("runtime", "Runtime", "fake", source="test"))
    assert "late" not in [e.id for e in catalog.entries()]
    staging = data / "staging" / "late"
    staging.mkdir(parents=True)
    (staging / "card.json").write_text(json.dumps({"id": "late", "modality": "act"}), encoding="utf-8")
    (staging / "adapter.gguf").write_bytes(b"GGUF")
    (data / "adapters").mkdir(exist_ok=True)
    staging.rename(data / "adapters" / "late")  # how a training run puts its adapter in place
    assert "late" in [e.id for e in catalog.entries("act")] and catalog.get("late").source == "trained"
    assert catalog.get("runtime").backend == "fake"  # run-time registrations survive the reload
    assert catalog.refresh() is False  # nothing changed since


def test_a_config_model_may_set_its_own_reply_limit(tmp_path):
    catalog = Catalog(settings_with(tmp_path, '[[models]]\nid = "long"\nbackend = "hf"\npath = "p"\nmax_tokens = 400\n'))
    assert catalog.get("long").max_tokens == 400 and catalog.get("default").max_tokens is None
