"""The app's side of the model worker: starts it, talks to it, notices when it dies, restarts it.

``ModelWorker`` supervises one worker process (``models/worker.py``) per local backend kind;
``WorkerBackend`` is the ``ChatBackend`` the rest of the app holds, a proxy that streams from it.

When the worker dies (segfault, abort, OOM kill), every request in flight gets an answer at once:
a stream that had already produced text raises ``ModelStopped`` (the session engine keeps the
patient's turn and offers Retry); a request that had not produced anything yet, usually one
queued behind the stream that crashed, is sent again to the new worker, once, so sessions that
merely shared the worker do not notice. The crash is reported (the pool audits it) and a new
worker is started at once with the models the old one had loaded, so Retry finds it warm. A worker
that keeps crashing (``CRASH_LIMIT`` times in ``CRASH_WINDOW_S``) is paused for ``PAUSE_S``
instead of being restarted in a loop, and requests say why.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Callable, Iterator

import models.base as base
from models.base import BackendError, Capabilities, GenParams, ModelStopped, TextStream, Usage
from models.native import REPO, describe_exit
from models.worker import spec_key

CRASH_LIMIT = 3
CRASH_WINDOW_S = 60.0
PAUSE_S = 30.0
COUNT_CACHE_ENTRIES = 4096
# A worker that says nothing for this long while it has work (and is not loading a model) is hung
# (a native deadlock, a stopped process): it is killed and handled like a crash.
STALL_S = 300.0
WAIT_SLICE_S = 5.0


@dataclass
class WorkerEvent:
    kind: str               # crashed | restarted | restart_failed | paused
    worker: str             # the backend kind it hosts: llama_cpp, hf
    pid: int | None
    detail: str = ""        # how it ended, in words
    in_flight: int = 0      # requests that were waiting on it
    ms: int | None = None   # restart: time until the reloaded models were ready


@dataclass
class _Pending:
    generation: int
    answers: queue.Queue
    op: str = ""


def _raise_remote(kind: str, text: str) -> None:
    cls = getattr(base, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, BackendError)):
        cls = BackendError
    raise cls(text)


class ModelWorker:
    """One supervised worker process; thread safe. ``on_event`` hears of crashes and restarts."""

    def __init__(self, name: str, on_event: Callable[[WorkerEvent], None] | None = None,
                 python: str | None = None):
        self.name = name
        self._listeners: list[Callable[[WorkerEvent], None]] = [on_event] if on_event else []
        self.python = python or sys.executable
        self._lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._generation = 0
        self._opened_in: dict[int, set[str]] = {}
        self._gone: dict[int, threading.Event] = {}  # set once a generation's death is handled
        self._specs: dict[str, dict] = {}   # every spec ever opened, to reload after a restart
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._crashes: deque[float] = deque()
        self._paused_until = 0.0
        self._last_exit = ""
        self._closed = False
        self._heard = time.monotonic()   # the last message from the worker, or when it got work
        self._kill_reason = ""

    # ----- process --------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def _running(self) -> int:
        """The generation of a live worker, started now if there is none."""
        with self._lock:
            if self._closed:
                raise BackendError("The model worker has been shut down.")
            if self._proc is not None and self._conn is not None:
                return self._generation
            wait = self._paused_until - time.monotonic()
            if wait > 0:
                raise BackendError(
                    f"The model stopped {CRASH_LIMIT} times within {CRASH_WINDOW_S:.0f} s (last: "
                    f"{self._last_exit}); it is paused for another {wait:.0f} s. Run "
                    "`python -m models doctor` to see what fails on this machine.")
            self._spawn()
            return self._generation

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.Popen([self.python, "-m", "models.worker", "--fd", str(theirs.fileno())],
                                    pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            ours.close()
            raise BackendError(f"The model worker could not be started: {exc}") from exc
        finally:
            theirs.close()
        self._generation += 1
        self._proc, self._conn = proc, Connection(ours.detach())
        self._opened_in[self._generation] = set()
        self._gone[self._generation] = threading.Event()
        threading.Thread(target=self._read, args=(self._conn, proc, self._generation), daemon=True,
                         name=f"model-worker-{self.name}-reader").start()

    def _read(self, conn: Connection, proc: subprocess.Popen, generation: int) -> None:
        while True:
            try:
                rid, *answer = conn.recv()
            except (EOFError, OSError):
                break
            self._heard = time.monotonic()
            pending = self._pending.get(rid)
            if pending is not None:
                pending.answers.put(tuple(answer))
        self._ended(conn, proc, generation)

    def _ended(self, conn: Connection, proc: subprocess.Popen, generation: int) -> None:
        try:
            returncode = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its socket but hangs: finish it
            proc.kill()
            returncode = proc.wait()
        conn.close()
        detail = describe_exit(returncode)
        if self._kill_reason:
            detail, self._kill_reason = f"{self._kill_reason}, then {detail}", ""
        with self._lock:
            if self._proc is proc:
                self._proc = self._conn = None
            self._opened_in.pop(generation, None)
            victims = [p for p in self._pending.values() if p.generation == generation]
            closing = self._closed
            if not closing:
                self._last_exit = detail
                now = time.monotonic()
                self._crashes.append(now)
                while self._crashes and now - self._crashes[0] > CRASH_WINDOW_S:
                    self._crashes.popleft()
                paused = len(self._crashes) >= CRASH_LIMIT
                if paused:
                    self._paused_until = now + PAUSE_S
        for pending in victims:
            pending.answers.put(("died", detail))
        self._gone.pop(generation, threading.Event()).set()
        if closing:
            return
        self._emit(WorkerEvent("crashed", self.name, proc.pid, detail, len(victims)))
        if paused:
            self._emit(WorkerEvent("paused", self.name, proc.pid, f"paused for {PAUSE_S:.0f} s"))
        elif self._specs:
            threading.Thread(target=self._restart, daemon=True, name=f"model-worker-{self.name}-restart").start()

    def _restart(self) -> None:
        """Start a new worker and reload what the old one had, so the next turn finds it warm."""
        started = time.perf_counter()
        try:
            for spec in list(self._specs.values()):
                self.open(spec)
        except BackendError as exc:
            self._emit(WorkerEvent("restart_failed", self.name, self.pid, str(exc)))
            return
        self._emit(WorkerEvent("restarted", self.name, self.pid, "",
                               ms=int((time.perf_counter() - started) * 1000)))

    def add_listener(self, listener: Callable[[WorkerEvent], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[WorkerEvent], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _emit(self, event: WorkerEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a failing listener (a closed database) must not stop supervision
                pass

    def close(self) -> None:
        """Stop the worker for good (the app is shutting down); in-flight requests fail."""
        with self._lock:
            self._closed = True
            proc, conn = self._proc, self._conn
        if conn is not None:
            conn.close()  # the worker exits when its socket closes
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()

    # ----- requests -------------------------------------------------------------------------
    def _submit(self, generation: int, *request) -> tuple[int, _Pending]:
        rid = next(self._ids)
        if not any(p.generation == generation for p in list(self._pending.values())):
            self._heard = time.monotonic()  # it was idle: its silence starts now
        pending = self._pending[rid] = _Pending(generation, queue.Queue(), request[0])
        with self._lock:
            conn = self._conn if self._generation == generation else None
        try:
            if conn is None:
                raise OSError("worker replaced")
            with self._send_lock:
                conn.send((request[0], rid, *request[1:]))
        except (OSError, ValueError):
            # The worker is dying: let the reader account for it first (crash count, pause), so
            # a retry sees the new state instead of the corpse.
            gone = self._gone.get(generation)
            if gone is not None:
                gone.wait(15)
            pending.answers.put(("died", self._last_exit or "the worker was gone"))
        return rid, pending

    def _wait(self, pending: _Pending) -> tuple:
        """The next answer to ``pending``; kills the worker if it has hung (``STALL_S``)."""
        while True:
            try:
                return pending.answers.get(timeout=WAIT_SLICE_S)
            except queue.Empty:
                self._check_stall(pending.generation)

    def _check_stall(self, generation: int) -> None:
        with self._lock:
            proc = self._proc if self._generation == generation else None
            loading = any(p.op == "open" and p.generation == generation for p in list(self._pending.values()))
            silent = time.monotonic() - self._heard
            if proc is None or loading or silent < STALL_S or self._kill_reason:
                return
            self._kill_reason = f"no answer for {silent:.0f} s"
        try:
            proc.kill()  # the reader sees it go and answers every waiting request
        except OSError:
            pass

    def _cancel(self, generation: int, rid: int) -> None:
        with self._lock:
            conn = self._conn if self._generation == generation else None
        if conn is not None:
            try:
                with self._send_lock:
                    conn.send(("cancel", rid))
            except (OSError, ValueError):
                pass

    def _call(self, op: str, *args):
        """A request with one answer; sent once more to a new worker if the old one died."""
        for attempt in (0, 1):
            generation = self._running()
            if op != "open" and op != "ping":
                generation = self._ensure_open(args[0], generation)
            rid, pending = self._submit(generation, op, *args)
            try:
                answer = self._wait(pending)
            finally:
                self._pending.pop(rid, None)
            if answer[0] == "ok":
                return answer[1]
            if answer[0] == "error":
                _raise_remote(answer[1], answer[2])
            if attempt:
                raise ModelStopped(answer[1])

    def _ensure_open(self, key: str, generation: int) -> int:
        if key in self._opened_in.get(generation, ()):
            return generation
        self.open(self._specs[key])
        return self._running()

    def open(self, spec: dict) -> dict:
        """Load ``spec``'s backend in the worker (once per worker); its capabilities."""
        key = spec_key(spec)
        for attempt in (0, 1):
            generation = self._running()
            rid, pending = self._submit(generation, "open", spec)
            try:
                answer = self._wait(pending)
            finally:
                self._pending.pop(rid, None)
            if answer[0] == "ok":
                with self._lock:
                    self._specs[key] = spec  # reloaded after a restart from now on
                    if generation in self._opened_in:
                        self._opened_in[generation].add(key)
                return answer[1]
            if answer[0] == "error":
                _raise_remote(answer[1], answer[2])
            if attempt:
                raise ModelStopped(answer[1])
        raise AssertionError("unreachable")

    def count_tokens(self, key: str, text: str) -> int:
        return self._call("count", key, text)

    def ping(self) -> int:
        return self._call("ping")

    def stream(self, key: str, messages: list[dict], params: GenParams) -> TextStream:
        return TextStream(lambda usage: self._stream(key, messages, dataclasses.asdict(params), usage))

    def _stream(self, key: str, messages: list[dict], params: dict, usage: Usage) -> Iterator[str]:
        for attempt in (0, 1):
            generation = self._ensure_open(key, self._running())
            rid, pending = self._submit(generation, "stream", key, messages, params)
            produced, finished = False, False
            try:
                while True:
                    answer = self._wait(pending)
                    if answer[0] == "delta":
                        produced = True
                        yield answer[1]
                    elif answer[0] == "end":
                        finished = True
                        for name, value in answer[1].items():
                            setattr(usage, name, value)
                        return
                    elif answer[0] == "error":
                        finished = True
                        _raise_remote(answer[1], answer[2])
                    else:  # died
                        finished = True
                        if produced or attempt:
                            raise ModelStopped(answer[1])
                        break  # nothing was generated for it yet: send it to the new worker
            finally:
                self._pending.pop(rid, None)
                if not finished:  # the reader stopped early (closed stream): free the model
                    self._cancel(generation, rid)


_shared: dict[str, ModelWorker] = {}
_shared_lock = threading.Lock()


def shared_worker(kind: str) -> ModelWorker:
    """This process's worker for ``kind`` (one per process, like the loaded models it hosts)."""
    with _shared_lock:
        if kind not in _shared:
            _shared[kind] = ModelWorker(kind)
        return _shared[kind]


class WorkerBackend:
    """A ``ChatBackend`` whose model lives in a ``ModelWorker``; loading happens in ``__init__``."""

    def __init__(self, id: str, worker: ModelWorker, spec: dict):
        self.id = id
        self.worker = worker
        self.spec = spec
        self.key = spec_key(spec)
        caps = worker.open(spec)  # a missing file or package fails here, as an in-process load would
        self.capabilities = Capabilities(**caps)
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._counts_lock = threading.Lock()

    def stream(self, messages: list[dict], params: GenParams) -> TextStream:
        return self.worker.stream(self.key, messages, params)

    def count_tokens(self, text: str) -> int:
        # A session re-sends its whole history every turn: only new messages cost a round trip.
        with self._counts_lock:
            if text in self._counts:
                self._counts.move_to_end(text)
                return self._counts[text]
        n = self.worker.count_tokens(self.key, text)
        with self._counts_lock:
            self._counts[text] = n
            if len(self._counts) > COUNT_CACHE_ENTRIES:
                self._counts.popitem(last=False)
        return n
