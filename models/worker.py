"""The model worker process: hosts the local backends (llama.cpp, transformers) for the app.

Why a process: llama.cpp and torch are native code. A segmentation fault, an abort or the kernel's
OOM killer ends the whole process it happens in; here that process is this worker, not the app,
so the app, the risk screen, the store and the Supervise tab stay up, and the supervisor
(``models/worker_client.py``) fails the turns in flight and starts a new worker.

Protocol, over the socket the supervisor passes as ``--fd`` (both ends are ours: no listener, no
address anyone else can connect to). Requests are tuples ``(op, rid, ...)``:

* ``("open", rid, spec)``                 load the backend ``spec`` describes (idempotent)
* ``("count", rid, key, text)``           the model's token count for ``text``
* ``("stream", rid, key, messages, params)``  generate; answered with ``delta`` messages, then ``end``
* ``("cancel", rid)``                     stop that stream at its next token
* ``("ping", rid)``                       answered with the worker's pid

Answers are ``(rid, "ok", value)``, ``(rid, "delta", text)``, ``(rid, "end", usage)`` or
``(rid, "error", class name, message)``. The worker exits when the app's end of the socket closes.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
import threading
from multiprocessing.connection import Connection

from models.base import BackendError, GenParams, coalesce

# Streamed text crosses to the app at most this often (the first piece at once): each message
# wakes the app's threads, which took CPU from the cores generating (models/base.py: coalesce).
SEND_EVERY_S = 0.04


def spec_key(spec: dict) -> str:
    """One key per distinct backend: the same spec opened twice shares one loaded model."""
    return "|".join(f"{k}={spec.get(k)}" for k in sorted(spec))


def build_local_backend(spec: dict):
    """A llama.cpp or transformers backend from a spec (``ModelPool.local_spec`` writes them)."""
    from models.catalog import EMBEDDED
    base = spec["base"]
    if spec["backend"] == "llama_cpp":
        from models.llama_cpp_backend import LlamaCppBackend
        if base == EMBEDDED:
            from models.embedded import embedded_gguf_path
            base = str(embedded_gguf_path())
        return LlamaCppBackend(spec["id"], base, spec.get("adapter"), n_ctx=spec["n_ctx"],
                               n_threads=spec.get("n_threads"), flash_attn=spec.get("flash_attn", False))
    if spec["backend"] == "hf":
        from models.hf_backend import HFBackend
        if base == EMBEDDED:
            from pathlib import Path

            from models.embedded import ensure_embedded_hf
            base = str(ensure_embedded_hf(Path(spec["data_dir"])))
        return HFBackend(spec["id"], base, spec.get("adapter"))
    raise ValueError(f"the model worker does not host {spec['backend']!r} backends")


def capabilities(backend) -> dict:
    return dataclasses.asdict(backend.capabilities)


class Worker:
    def __init__(self, conn: Connection):
        self.conn = conn
        self._send_lock = threading.Lock()
        self._backends: dict[str, object] = {}
        self._open_lock = threading.Lock()
        self._cancels: dict[int, threading.Event] = {}

    def send(self, *message) -> None:
        try:
            with self._send_lock:
                self.conn.send(message)
        except (OSError, EOFError, BrokenPipeError):
            os._exit(0)  # the app is gone: nothing left to work for

    def fail(self, rid: int, exc: BaseException) -> None:
        kind = type(exc).__name__ if isinstance(exc, BackendError) else "BackendError"
        text = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
        self.send(rid, "error", kind, text)

    def serve(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # not sys.exit: threads still generating must not keep us alive
            op, rid = message[0], message[1]
            if op == "cancel":
                event = self._cancels.get(rid)
                if event is not None:
                    event.set()
            elif op == "ping":
                self.send(rid, "ok", os.getpid())
            elif op == "count":
                self._count(rid, *message[2:])
            elif op in ("open", "stream"):
                target = self._open if op == "open" else self._stream
                threading.Thread(target=target, args=(rid, *message[2:]), daemon=True,
                                 name=f"worker-{op}-{rid}").start()
            else:
                self.send(rid, "error", "BackendError", f"unknown request {op!r}")

    def _open(self, rid: int, spec: dict) -> None:
        try:
            self.send(rid, "ok", capabilities(self._backend_for(spec)))
        except BaseException as exc:
            self.fail(rid, exc)

    def _backend_for(self, spec: dict):
        key = spec_key(spec)
        with self._open_lock:  # one load per model, however many ask at once
            if key not in self._backends:
                self._backends[key] = build_local_backend(spec)
            return self._backends[key]

    def _count(self, rid: int, key: str, text: str) -> None:
        try:
            self.send(rid, "ok", self._backends[key].count_tokens(text))
        except BaseException as exc:
            self.fail(rid, exc)

    def _stream(self, rid: int, key: str, messages: list[dict], params: dict) -> None:
        cancel = self._cancels[rid] = threading.Event()
        stream = None
        try:
            stream = self._backends[key].stream(messages, GenParams(**params))
            for delta in coalesce(stream, SEND_EVERY_S):
                if cancel.is_set():
                    break
                self.send(rid, "delta", delta)
            self.send(rid, "end", dataclasses.asdict(stream.usage))
        except BaseException as exc:
            self.fail(rid, exc)
        finally:
            if stream is not None:
                stream.close()
            self._cancels.pop(rid, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.worker")
    parser.add_argument("--fd", type=int, required=True, help="the socket inherited from the app")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    conn = Connection(sock.detach())
    Worker(conn).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
