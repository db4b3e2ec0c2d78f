"""Turns catalog entries into loaded backends, once each, shared by the whole app.

Local models (llama.cpp, transformers) live in a supervised worker process per backend kind
(``models/worker_client.py``), one per process and kind, shared by every pool; what the pool hands
out for them is a proxy with the same interface. ``on_event`` hears when a worker crashes or
restarts (the app audits it).

Which class builds an entry is looked up by its backend kind in ``BUILDERS`` (``register_builder``
adds one: the test harness scripts ``fake`` entries that way), so adding a kind touches one table.
"""
from __future__ import annotations

import threading
from typing import Callable

from config import Settings
from models.base import ChatBackend
from models.catalog import Catalog, CatalogEntry
from vocabulary import LOCAL_BACKENDS, BackendKind

Builder = Callable[["ModelPool", CatalogEntry], ChatBackend]


def _build_local(pool: "ModelPool", entry: CatalogEntry) -> ChatBackend:
    spec = pool.local_spec(entry)
    if not pool.settings.model_worker:
        from models.worker import build_local_backend
        return build_local_backend(spec)
    from models.worker_client import WorkerBackend
    return WorkerBackend(entry.id, pool.worker(entry.backend), spec)


def _build_openai(pool: "ModelPool", entry: CatalogEntry) -> ChatBackend:
    from models.openai_backend import OpenAIBackend
    return OpenAIBackend(entry.id, entry.base_url, entry.model, api_key_env=entry.api_key_env)


# The fake backend has no builder: its replies are a test's script, so a test registers the
# built backend (``ModelPool.register``) or a builder of its own.
BUILDERS: dict[str, Builder] = {**{kind: _build_local for kind in LOCAL_BACKENDS},
                                BackendKind.OPENAI.value: _build_openai}


def register_builder(kind: str, builder: Builder) -> None:
    """Build every catalog entry of backend ``kind`` with ``builder(pool, entry)``."""
    BUILDERS[kind] = builder


class ModelPool:
    def __init__(self, settings: Settings, catalog: Catalog, on_event: Callable | None = None,
                 private_workers: bool = False):
        self.settings = settings
        # Every pool of a process shares one worker per backend kind, as it once shared one loaded
        # model: a test or tool that builds many pools still loads each model once. A private
        # worker is this pool's alone (tests that crash it on purpose).
        self._private = private_workers
        self.catalog = catalog
        self.on_event = on_event
        self._backends: dict[str, ChatBackend] = {}
        self._workers: dict = {}
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

    def local_spec(self, entry: CatalogEntry) -> dict:
        """What a worker needs to load ``entry`` (plain data: it crosses a process boundary)."""
        return {"backend": entry.backend, "id": entry.id, "base": entry.base, "adapter": entry.adapter,
                "n_ctx": self.settings.n_ctx, "n_threads": self.settings.n_threads,
                "flash_attn": self.settings.flash_attn,
                "data_dir": str(self.settings.data_dir)}

    def worker(self, kind: str):
        """The supervised worker process for one local backend kind (started on first use)."""
        from models.worker_client import ModelWorker, shared_worker
        with self._lock:
            worker = self._workers.get(kind)
            if worker is None:
                if self._private:
                    worker = ModelWorker(kind)
                else:
                    worker = shared_worker(kind)
                if self.on_event is not None:
                    worker.add_listener(self.on_event)
                self._workers[kind] = worker
            return worker

    def close(self) -> None:
        """Stop listening to the workers, and stop the private ones (shared workers stop by
        themselves when this process ends)."""
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
            self._backends = {k: b for k, b in self._backends.items() if not hasattr(b, "worker")}
        for worker in workers:
            if self.on_event is not None:
                worker.remove_listener(self.on_event)
            if self._private:
                worker.close()

    def _build(self, entry: CatalogEntry) -> ChatBackend:
        builder = BUILDERS.get(entry.backend)
        if builder is None:
            raise ValueError(f"model {entry.id!r}: no builder for backend {entry.backend!r} "
                             "(the fake backend must be registered explicitly)")
        return builder(self, entry)
