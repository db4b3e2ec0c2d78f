"""Settings: defaults < TOML file < THERALAB_* env < CLI flags, and clear ConfigErrors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import OFFLINE_ENV, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The real environment minus every THERALAB_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THERALAB_")}
    env.update(extra)
    return env


def test_defaults():
    s = load_settings([], env={})
    assert s.host == "127.0.0.1"
    assert s.port == 7860
    assert s.data_dir == Path("data")
    assert s.db_path == Path("data") / "sessions.db"
    assert s.config_file is None
    assert s.embedded_backend == "llama_cpp"
    assert s.n_threads is None
    assert s.preload_default is True
    assert s.models == []
    assert s == Settings()


def test_file_overrides_defaults(tmp_path):
    cfg = write(tmp_path / "c.toml", 'host = "0.0.0.0"\nport = 9000\nmax_tokens = 64\n'
                                     'temperature = 0.2\npreload_default = false\nn_threads = 3\n')
    s = load_settings(["--config", str(cfg)], env={})
    assert (s.host, s.port, s.max_tokens, s.temperature, s.preload_default, s.n_threads) == \
        ("0.0.0.0", 9000, 64, 0.2, False, 3)
    assert s.config_file == cfg
    assert s.data_dir == Path("data")  # untouched setting keeps its default


def test_precedence_defaults_file_env_cli(tmp_path):
    cfg = write(tmp_path / "c.toml",
                f'host = "10.0.0.1"\nport = 9001\ndata_dir = "{(tmp_path / "file-data").as_posix()}"\n'
                'max_tokens = 11\n')
    # file only
    s = load_settings(["--config", str(cfg)], env={})
    assert (s.host, s.port, s.data_dir, s.max_tokens) == ("10.0.0.1", 9001, tmp_path / "file-data", 11)
    # env beats the file
    env = {"THERALAB_HOST": "10.0.0.2", "THERALAB_PORT": "9002",
           "THERALAB_DATA_DIR": str(tmp_path / "env-data"), "THERALAB_MAX_TOKENS": "22"}
    s = load_settings(["--config", str(cfg)], env=env)
    assert (s.host, s.port, s.data_dir, s.max_tokens) == ("10.0.0.2", 9002, tmp_path / "env-data", 22)
    # CLI beats env (max_tokens has no flag, so env still wins there)
    s = load_settings(["--config", str(cfg), "--host", "10.0.0.3", "--port", "9003",
                       "--data-dir", str(tmp_path / "cli-data")], env=env)
    assert (s.host, s.port, s.data_dir, s.max_tokens) == ("10.0.0.3", 9003, tmp_path / "cli-data", 22)
    assert isinstance(s.port, int)


def test_env_bool_and_optional_int():
    s = load_settings([], env={"THERALAB_PRELOAD_DEFAULT": "off", "THERALAB_N_THREADS": "auto"})
    assert s.preload_default is False and s.n_threads is None
    s = load_settings([], env={"THERALAB_PRELOAD_DEFAULT": "yes", "THERALAB_N_THREADS": "2"})
    assert s.preload_default is True and s.n_threads == 2


def test_theralab_config_env_selects_file(tmp_path):
    cfg = write(tmp_path / "sub" / "via-env.toml", "port = 9100\n")
    s = load_settings([], env={"THERALAB_CONFIG": str(cfg)})
    assert s.port == 9100
    assert s.config_file == cfg


def test_cli_config_beats_theralab_config_env(tmp_path):
    env_cfg = write(tmp_path / "env.toml", "port = 1111\n")
    cli_cfg = write(tmp_path / "cli.toml", "port = 2222\n")
    s = load_settings(["--config", str(cli_cfg)], env={"THERALAB_CONFIG": str(env_cfg)})
    assert s.port == 2222 and s.config_file == cli_cfg


def test_relative_model_paths_resolve_against_config_folder(tmp_path, monkeypatch):
    cfg = write(tmp_path / "conf" / "theralab.toml", """
[[models]]
id = "local-gguf"
backend = "llama_cpp"
path = "weights/base.gguf"
adapter = "../adapters/lora.gguf"

[[models]]
id = "emb"
backend = "llama_cpp"
base = "embedded"

[[models]]
id = "abs"
backend = "hf"
path = "/opt/models/x"
""")
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)  # resolution must not depend on the working directory
    s = load_settings(["--config", str(cfg)], env={})
    by_id = {m["id"]: m for m in s.models}
    assert by_id["local-gguf"]["path"] == str((tmp_path / "conf" / "weights" / "base.gguf").resolve())
    assert by_id["local-gguf"]["adapter"] == str((tmp_path / "adapters" / "lora.gguf").resolve())
    assert by_id["emb"]["base"] == "embedded"
    assert by_id["abs"]["path"] == "/opt/models/x"


def test_broken_toml_names_file(tmp_path):
    cfg = write(tmp_path / "broken.toml", "port = = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(["--config", str(cfg)], env={})
    assert str(cfg) in str(info.value)
    assert "TOML" in str(info.value)


def test_unknown_key_is_an_error(tmp_path):
    cfg = write(tmp_path / "c.toml", 'prot = 8000\n')
    with pytest.raises(ConfigError) as info:
        load_settings(["--config", str(cfg)], env={})
    assert "prot" in str(info.value) and str(cfg) in str(info.value)


@pytest.mark.parametrize("text", ['port = "eighty"\n', "port = true\n", "port = 7860.5\n"])
def test_bad_int_in_file_names_setting(tmp_path, text):
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(["--config", str(cfg)], env={})
    assert "'port'" in str(info.value)
    assert str(cfg) in str(info.value)


def test_bad_int_in_env_names_setting_and_variable():
    with pytest.raises(ConfigError) as info:
        load_settings([], env={"THERALAB_MAX_TOKENS": "lots"})
    assert "'max_tokens'" in str(info.value) and "THERALAB_MAX_TOKENS" in str(info.value)


def test_bad_bool_is_an_error():
    with pytest.raises(ConfigError) as info:
        load_settings([], env={"THERALAB_PRELOAD_DEFAULT": "maybe"})
    assert "preload_default" in str(info.value)


def test_missing_file_is_an_error(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(["--config", str(missing)], env={})
    assert str(missing) in str(info.value)
    with pytest.raises(ConfigError):
        load_settings([], env={"THERALAB_CONFIG": str(missing)})


def test_models_must_be_tables(tmp_path):
    cfg = write(tmp_path / "c.toml", 'models = ["a", "b"]\n')
    with pytest.raises(ConfigError, match="models"):
        load_settings(["--config", str(cfg)], env={})


def test_bad_embedded_backend(tmp_path):
    with pytest.raises(ConfigError, match="embedded_backend"):
        load_settings([], env={"THERALAB_EMBEDDED_BACKEND": "vllm"})


def test_app_with_broken_config_exits_2_with_one_line(tmp_path):
    cfg = write(tmp_path / "broken.toml", "[[models]\nid = \n")
    data = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--config", str(cfg), "--data-dir", str(data)],
        cwd=ROOT, env=clean_env(THERALAB_DATA_DIR=str(data)), capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 2, proc.stderr
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err_lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(cfg) in err_lines[0]
    assert proc.stdout == ""
    assert not (data / "sessions.db").exists()  # failed before touching the data dir


def test_every_command_line_is_offline_once_it_reads_its_settings(monkeypatch):
    """The CLIs (training, eval, simulate, store) all start with load_settings, before any model
    library is imported: that is where the hub, dataset and telemetry switches are turned off."""
    for key in OFFLINE_ENV:
        monkeypatch.delenv(key, raising=False)
    load_settings([])
    assert {key: os.environ.get(key) for key in OFFLINE_ENV} == OFFLINE_ENV
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # a user's explicit choice is kept
    load_settings([])
    assert os.environ["HF_HUB_OFFLINE"] == "0"


def test_a_job_loads_exactly_the_settings_file_the_app_wrote(tmp_path):
    from config import SETTINGS_FILE_ENV, settings_json
    cfg = tmp_path / "theralab.toml"
    cfg.write_text('max_tokens = 77\n[[models]]\nid = "my-judge"\nlabel = "Judge"\nbackend = "openai"\n'
                   'base_url = "http://127.0.0.1:8000/v1"\nmodel = "m"\n[crisis_resources]\nUK = "Call 111."\n')
    app = load_settings(["--config", str(cfg), "--data-dir", str(tmp_path / "d")], env={"THERALAB_TEMPERATURE": "0.2"})
    path = tmp_path / "settings.json"
    path.write_text(settings_json(app))
    # The job's own environment says otherwise; the file wins, and only the job's flags go on top.
    job = load_settings(["--data-dir", str(tmp_path / "d")], env={SETTINGS_FILE_ENV: str(path),
                                                                  "THERALAB_MAX_TOKENS": "150"})
    assert job.max_tokens == 77 and job.temperature == 0.2
    assert [m["id"] for m in job.models] == ["my-judge"] and job.crisis_resources == {"UK": "Call 111."}
    assert job.config_file == cfg.resolve() and job.data_dir == tmp_path / "d"
    assert {k: v for k, v in vars(job).items() if k not in ("data_dir", "config_file")} == \
        {k: v for k, v in vars(app).items() if k not in ("data_dir", "config_file")}
    path.write_text('{"max_tokens": 77, "no_such_setting": 1}')
    with pytest.raises(ConfigError, match="not a settings object"):
        load_settings([], env={SETTINGS_FILE_ENV: str(path)})
