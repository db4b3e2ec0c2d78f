"""Settings: defaults < config file (TOML) < environment (THERALAB_*) < command-line flags.

One ``Settings`` object is built at start-up and passed down; nothing else reads the
environment. A broken config file raises ``ConfigError`` with the file and the reason.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "THERALAB_"


# Nothing leaves the machine at run time: no usage analytics, no model-hub lookups. Set before
# gradio / transformers are imported; a user may still override any of them explicitly.
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}


def enforce_offline_env(env: dict | None = None) -> None:
    target = os.environ if env is None else env
    for key, value in OFFLINE_ENV.items():
        target.setdefault(key, value)


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and why."""


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 7860
    # Comma-separated URLs the app is also reached at, e.g. "https://theralab.example.org" behind a
    # TLS reverse proxy: their hosts and origins are accepted beside the bound address (ui/guard.py).
    public_url: str = ""
    data_dir: Path = Path("data")
    config_file: Path | None = None
    # Which backend serves the embedded model's built-in catalog entries: llama_cpp or hf.
    embedded_backend: str = "llama_cpp"
    n_ctx: int = 4096
    n_threads: int | None = None
    # llama.cpp flash attention. Off: on the CPU it made 20 new tokens after 1,800 cached ones
    # 1.4-1.5x slower (docs/performance.md); a GPU build of llama.cpp may gain from it.
    flash_attn: bool = False
    max_tokens: int = 150
    reasoning_budget: int = 120  # tokens of <think> before the answer is forced
    temperature: float = 0.7
    top_p: float = 0.95
    repeat_penalty: float = 1.1
    max_message_chars: int = 8000
    preload_default: bool = True
    models: list[dict] = field(default_factory=list)  # [[models]] tables of the config file
    crisis_locale: str = "US"
    # [crisis_resources] table: locale -> the resources sentence used in the safe reply.
    crisis_resources: dict = field(default_factory=dict)
    # Consent shown before a patient's first session. A new version or a changed text asks again.
    consent_version: str = "1"
    consent_file: str = ""  # Markdown; empty = the built-in text (therapist/consent.md)
    review_frequency: str = "A supervising clinician can see every session live and reviews each one within one working day."
    supervisor_contact: str = "the study team (ask your study coordinator for the supervising clinician's name)"
    # The learned layer of the risk screen (therapist/safety/learned.py) on top of the rules.
    risk_learned: bool = True
    # Optional second-stage risk classifier: a catalog model id; empty = rules only.
    risk_classifier: str = ""
    supervise_refresh_s: float = 2.0  # how often the Supervise tab polls for new sessions and flags
    # A person's session with no turn for this many minutes becomes "abandoned" and leaves the live
    # lists (a session with an open flag stays in Supervise). 0 keeps open sessions open forever.
    session_idle_minutes: int = 240
    # Run llama.cpp and transformers models in a supervised worker process (models/worker.py), so a
    # native crash fails only the turns in flight. False runs them inside this process (debugging).
    model_worker: bool = True

    @property
    def db_path(self) -> Path:
        return self.data_dir / "sessions.db"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_SCALARS = {"host", "port", "public_url", "data_dir", "embedded_backend", "n_ctx", "n_threads", "flash_attn", "max_tokens",
            "reasoning_budget", "temperature", "top_p", "repeat_penalty", "max_message_chars",
            "preload_default", "crisis_locale", "consent_version", "consent_file", "review_frequency",
            "supervisor_contact", "risk_classifier", "supervise_refresh_s", "model_worker", "risk_learned",
            "session_idle_minutes"}


def _as_int(value: Any) -> int:
    """An integer, without silently accepting true/false or truncating 7860.5."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turn a raw value into the field's type, or fail naming the setting and source."""
    default = _FIELDS[name].default
    try:
        if name == "data_dir":
            return Path(value)
        if name == "n_threads":
            return None if value in (None, "", "auto") else _as_int(value)
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true/false, got {value!r}")
        if isinstance(default, int):
            return _as_int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {value!r}")
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: bad value for '{name}': {exc}") from None


def _read_file(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}") from None
    unknown = set(raw) - _SCALARS - {"models", "crisis_resources"}
    if unknown:
        raise ConfigError(f"Config file {path}: unknown setting(s): {', '.join(sorted(unknown))}")
    values = {k: _coerce(k, v, f"config file {path}") for k, v in raw.items() if k in _SCALARS}
    if values.get("consent_file") and not Path(values["consent_file"]).is_absolute():
        values["consent_file"] = str((path.parent / values["consent_file"]).resolve())
    models = raw.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise ConfigError(f"Config file {path}: 'models' must be a list of [[models]] tables")
    if models:
        values["models"] = [_resolve_paths(m, path.parent) for m in models]
    resources = raw.get("crisis_resources", {})
    if not isinstance(resources, dict) or not all(isinstance(v, str) and v.strip() for v in resources.values()):
        raise ConfigError(f"Config file {path}: [crisis_resources] maps a locale to a non-empty sentence")
    if resources:
        values["crisis_resources"] = dict(resources)
    return values


def _resolve_paths(entry: dict, base: Path) -> dict:
    """Paths in a config file are relative to that file."""
    out = dict(entry)
    for key in ("path", "base", "adapter"):
        value = out.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute() and value != "embedded":
            candidate = (base / value).resolve()
            out[key] = str(candidate)
    return out


def _from_env(env: dict[str, str]) -> dict:
    values = {}
    for name in _SCALARS:
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = _coerce(name, env[key], f"environment {key}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py", description="TheraLab: supervised AI therapy sessions")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    parser.add_argument("--data-dir", help="data directory (default ./data or THERALAB_DATA_DIR)")
    parser.add_argument("--config", help="TOML config file (or THERALAB_CONFIG)")
    return parser


SETTINGS_FILE_ENV = ENV_PREFIX + "SETTINGS_FILE"


def settings_json(settings: Settings) -> str:
    """The resolved settings as JSON: what a job the app launches loads back (``SETTINGS_FILE_ENV``),
    so it sees the same models, limits and resources as the app, whatever file or flags made them."""
    raw = dataclasses.asdict(settings)
    # Absolute: a job runs from the repository root, which need not be the app's working directory.
    raw["data_dir"] = str(Path(settings.data_dir).resolve())
    raw["config_file"] = str(Path(settings.config_file).resolve()) if settings.config_file else None
    return json.dumps(raw, indent=2)


def _read_settings_file(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Settings file {path} cannot be read: {exc}") from None
    if not isinstance(raw, dict) or set(raw) - set(_FIELDS):
        raise ConfigError(f"Settings file {path}: not a settings object from this version")
    values = {k: _coerce(k, v, f"settings file {path}") for k, v in raw.items() if k in _SCALARS and v is not None}
    values.update({k: raw[k] for k in ("models", "crisis_resources") if k in raw})
    if raw.get("config_file"):
        values["config_file"] = Path(raw["config_file"])
    return values


def load_settings(argv: list[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Merge every source in precedence order. Reading the real environment also makes this
    process offline (every command line starts here, before any model library is imported) and
    makes every file it creates owner-only: transcripts, exports and job logs are health data."""
    if env is None:
        enforce_offline_env()
        os.umask(0o077)  # the one place: every entry point reads its settings first
    env = dict(os.environ if env is None else env)
    args = build_parser().parse_args([] if argv is None else argv)
    values: dict[str, Any] = {}
    config_path = args.config or env.get(ENV_PREFIX + "CONFIG")
    if env.get(SETTINGS_FILE_ENV):
        # A job of the app: exactly the app's resolved settings (its file, environment and flags
        # already merged); only this command line's own flags go on top.
        values.update(_read_settings_file(Path(env[SETTINGS_FILE_ENV])))
    else:
        if config_path:
            values.update(_read_file(Path(config_path)))
            values["config_file"] = Path(config_path)
        values.update(_from_env(env))
    for name in ("host", "port", "data_dir"):
        cli_value = getattr(args, name)
        if cli_value is not None:
            values[name] = _coerce(name, cli_value, "command line")
    settings = Settings(**values)
    if settings.embedded_backend not in ("llama_cpp", "hf"):
        raise ConfigError(f"embedded_backend must be 'llama_cpp' or 'hf', not {settings.embedded_backend!r}")
    if settings.session_idle_minutes < 0:
        raise ConfigError(f"session_idle_minutes must be 0 (never) or more, not {settings.session_idle_minutes}")
    return settings
