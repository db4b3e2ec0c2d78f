"""Turns catalog entries into loaded backends, once each, shared by the whole app."""
from __future__ import annotations

import threading

from config import Settings
from models.base import ChatBackend
from models.catalog import EMBEDDED, Catalog, CatalogEntry


class ModelPool:
    def __init__(self, settings: Settings, catalog: Catalog):
        self.settings = settings
        self.catalog = catalog
        self._backends: dict[str, ChatBackend] = {}
        self._lock = threading.Lock()

    def register(self, model_id: str, backend: ChatBackend) -> None:
        """Use an already-built backend for this id (tests and the fake backend)."""
        with self._lock:
            self._backends[model_id] = backend

    def get(self, model_id: str) -> ChatBackend:
        with self._lock:
            backend = self._backends.get(model_id)
        if backend is not None:
            return backend
        entry = self.catalog.get(model_id)
        backend = self._build(entry)
        with self._lock:
            return self._backends.setdefault(model_id, backend)

    def _base_path(self, entry: CatalogEntry) -> str:
        if entry.base != EMBEDDED:
            return entry.base
        if entry.backend == "hf":
            from models.embedded import ensure_embedded_hf
            return str(ensure_embedded_hf(self.settings.data_dir))
        from models.embedded import embedded_gguf_path
        return str(embedded_gguf_path())

    def _build(self, entry: CatalogEntry) -> ChatBackend:
        if entry.backend == "llama_cpp":
            from models.llama_cpp_backend import LlamaCppBackend
            return LlamaCppBackend(entry.id, self._base_path(entry), entry.adapter,
                                   n_ctx=self.settings.n_ctx, n_threads=self.settings.n_threads)
        if entry.backend == "hf":
            from models.hf_backend import HFBackend
            return HFBackend(entry.id, self._base_path(entry), entry.adapter)
        if entry.backend == "openai":
            from models.openai_backend import OpenAIBackend
            return OpenAIBackend(entry.id, entry.base_url, entry.model, api_key_env=entry.api_key_env)
        raise ValueError(f"model {entry.id!r}: the fake backend must be registered explicitly")
