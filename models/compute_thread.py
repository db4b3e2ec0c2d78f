"""One long-lived thread that runs every llama.cpp computation in the process (and one per
transformers host, for the HF backend).

Why: ggml parallelises with OpenMP, and libgomp keeps a team of worker threads for each OS thread
that calls into it. Once two callers own teams (say a Gradio handler thread that wrote a session
summary, and the reply worker), libgomp counts more managed threads than cores and makes every
barrier sleep instead of spin. Measured on 2 cores: raw llama.cpp fell from 71 to 45 tokens/s, and
app turns from 65 to 14-38 tokens/s. Funnelling all calls through one thread keeps one team.

PyTorch has the same shape of problem: each new OS thread pays a warm-up on its first
``generate`` calls. Measured on an H100 (bf16, 48 tokens): 44-49 tokens/s on a thread that had
generated before, 14-17 tokens/s when every generation ran on a fresh thread.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


class ComputeThread:
    def __init__(self, name: str = "llama-cpp-compute"):
        self._jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self._name = name
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._jobs.get()()

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable[[], None]) -> threading.Event:
        """Queue ``fn`` on the compute thread without waiting; the event is set once it has run.
        ``fn`` must handle its own errors (there is no caller to re-raise them in)."""
        done = threading.Event()

        def job() -> None:
            try:
                fn()
            finally:
                done.set()
        if self.on_thread():
            job()
            return done
        self._ensure_started()
        self._jobs.put(job)
        return done

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the compute thread and return its result (or raise its exception)."""
        if self.on_thread():
            return fn()
        done = threading.Event()
        box: dict = {}

        def job() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc
            finally:
                done.set()
        self._ensure_started()
        self._jobs.put(job)
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def stream(self, make: Callable[[], Iterator[T]]) -> Iterator[T]:
        """Iterate ``make()`` on the compute thread, handing each item to the caller as it comes.

        Closing the returned generator stops the producer at its next item, so an abandoned
        reply frees the model instead of running to ``max_tokens``.
        """
        if self.on_thread():
            yield from make()
            return
        items: queue.Queue = queue.Queue()
        cancelled = threading.Event()

        def job() -> None:
            it = None
            try:
                it = make()
                for item in it:
                    if cancelled.is_set():
                        break
                    items.put((True, item))
            except BaseException as exc:
                items.put((False, exc))
            finally:
                close = getattr(it, "close", None)
                if close:
                    close()
                items.put((True, _END))
        self._ensure_started()
        self._jobs.put(job)
        try:
            while True:
                ok, item = items.get()
                if not ok:
                    raise item
                if item is _END:
                    return
                yield item
        finally:
            cancelled.set()


COMPUTE = ComputeThread()
