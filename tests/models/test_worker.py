"""The model worker process on the real embedded model: same output as in process, a crash fails only
what was streaming, the worker comes back warm, a crash loop is paused, and no worker outlives its app."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from config import load_settings
from models.base import BackendError, GenParams, ModelNotFoundError, ModelStopped
from models.catalog import Catalog, CatalogEntry
from models.pool import ModelPool
from models.worker_client import CRASH_LIMIT, ModelWorker

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux signals and /proc")

PROMPT = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]
GREEDY = dict(temperature=0.0, seed=1)


def private_pool(tmp_path, events: list | None = None, worker: bool = True) -> ModelPool:
    env = {} if worker else {"THERALAB_MODEL_WORKER": "0"}
    settings = load_settings(["--data-dir", str(tmp_path / "data")], env=env)
    return ModelPool(settings, Catalog(settings), on_event=events.append if events is not None else None,
                     private_workers=True)


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_the_worker_gives_what_the_model_gives_in_process(tmp_path):
    pool, local = private_pool(tmp_path), private_pool(tmp_path, worker=False)
    try:
        proxy, direct = pool.get("default"), local.get("default")
        assert type(proxy).__name__ == "WorkerBackend" and type(direct).__name__ == "LlamaCppBackend"
        assert proxy.worker.pid and proxy.worker.pid != os.getpid()
        text = "I have not slept properly in weeks, and work keeps piling up."
        assert proxy.count_tokens(text) == direct.count_tokens(text) > 5
        # the proxy declares what the model behind it can do, context included
        assert proxy.capabilities == direct.capabilities
        assert direct.capabilities.token_count and direct.capabilities.context_tokens == direct.host.n_ctx
        params = GenParams(max_tokens=24, **GREEDY)
        remote, here = proxy.stream(PROMPT, params), direct.stream(PROMPT, params)
        assert remote.text() == here.text() != ""
        assert remote.usage.completion_tokens == here.usage.completion_tokens > 0
        assert remote.usage.prompt_tokens == here.usage.prompt_tokens
        schema = {"type": "object", "properties": {"level": {"type": "integer"}}, "required": ["level"]}
        constrained = proxy.stream(PROMPT, GenParams(max_tokens=20, json_schema=schema, **GREEDY)).text()
        assert constrained.lstrip().startswith("{") and '"level"' in constrained  # the grammar crossed over
    finally:
        pool.close()


def test_a_bad_model_file_is_the_same_clear_error_from_the_worker(tmp_path):
    pool = private_pool(tmp_path)
    try:
        pool.catalog.add(CatalogEntry("ghost", "Ghost", "llama_cpp", base=str(tmp_path / "nope.gguf"), source="test"))
        with pytest.raises(ModelNotFoundError, match="nope.gguf"):
            pool.get("ghost")
        assert pool.get("default").stream(PROMPT, GenParams(max_tokens=4, **GREEDY)).text()  # worker still fine
    finally:
        pool.close()


def test_a_crash_fails_the_streaming_reply_retries_the_queued_one_and_restarts_warm(tmp_path):
    events: list = []
    pool = private_pool(tmp_path, events)
    try:
        backend = pool.get("default")
        worker = backend.worker
        first_pid = worker.pid
        streaming = backend.stream(PROMPT, GenParams(max_tokens=300, **GREEDY))
        next(streaming)  # generating now: the queued request below waits for the model
        queued: dict = {}
        waiter = threading.Thread(target=lambda: queued.update(
            text=backend.stream(PROMPT, GenParams(max_tokens=12, **GREEDY)).text()))
        waiter.start()
        time.sleep(0.3)
        os.kill(first_pid, signal.SIGSEGV)
        with pytest.raises(ModelStopped) as stopped:
            for _ in streaming:
                pass
        assert "Press Retry" in str(stopped.value) and "SIGSEGV" in stopped.value.detail
        waiter.join(60)
        assert queued.get("text"), "the request that had not started was not sent to the new worker"
        wait_for(lambda: any(e.kind == "restarted" for e in events))
        crashed = next(e for e in events if e.kind == "crashed")
        restarted = next(e for e in events if e.kind == "restarted")
        assert crashed.pid == first_pid and "SIGSEGV" in crashed.detail and crashed.in_flight >= 1
        assert restarted.pid == worker.pid != first_pid and not alive(first_pid)
        print(f"worker restart with the embedded model reloaded: {restarted.ms} ms")
        assert backend.stream(PROMPT, GenParams(max_tokens=8, **GREEDY)).text()  # Retry works
    finally:
        pool.close()


def test_a_closed_stream_frees_the_model_for_the_next_request(tmp_path):
    pool = private_pool(tmp_path)
    try:
        backend = pool.get("default")
        long = backend.stream(PROMPT, GenParams(max_tokens=2000, min_tokens=2000, **GREEDY))
        next(long)
        long.close()  # the reader went away: the worker must stop, not run 2000 tokens
        started = time.monotonic()
        short = backend.stream(PROMPT, GenParams(max_tokens=4, **GREEDY))
        assert short.text() and short.usage.completion_tokens <= 4
        # 2000 tokens take ~25 s here; stopping at the next token takes milliseconds
        assert time.monotonic() - started < 15
    finally:
        pool.close()


def test_a_hung_worker_is_killed_and_treated_as_a_crash(tmp_path, monkeypatch):
    from models import worker_client
    monkeypatch.setattr(worker_client, "STALL_S", 1.5)
    monkeypatch.setattr(worker_client, "WAIT_SLICE_S", 0.2)
    events: list = []
    pool = private_pool(tmp_path, events)
    try:
        backend = pool.get("default")
        hung = backend.worker.pid
        streaming = backend.stream(PROMPT, GenParams(max_tokens=300, **GREEDY))
        next(streaming)
        os.kill(hung, signal.SIGSTOP)  # alive but silent: a native deadlock looks like this
        with pytest.raises(ModelStopped) as stopped:
            for _ in streaming:
                pass
        assert "no answer for" in stopped.value.detail and "SIGKILL" in stopped.value.detail
        wait_for(lambda: any(e.kind == "restarted" for e in events))
        assert backend.stream(PROMPT, GenParams(max_tokens=4, **GREEDY)).text()
        assert not alive(hung)
    finally:
        pool.close()


def test_a_worker_that_keeps_dying_is_paused_with_a_reason(tmp_path):
    worker = ModelWorker("llama_cpp", python="/bin/false")  # "starts", then exits 1 at once, every time
    events: list = []
    worker.add_listener(events.append)
    try:
        with pytest.raises(ModelStopped):
            worker.ping()  # dies, is started again once, dies again
        with pytest.raises(BackendError, match="paused") as paused:
            for _ in range(CRASH_LIMIT):
                worker.ping()
        assert "models doctor" in str(paused.value) and "exited with code 1" in str(paused.value)
        assert [e.kind for e in events].count("crashed") == CRASH_LIMIT and events[-1].kind == "paused"
    finally:
        worker.close()


def test_the_worker_exits_when_its_app_dies(tmp_path):
    """kill -9 of the app (or a job) must not leave a worker holding a model and memory."""
    code = ("import sys, os; sys.path.insert(0, %r)\n"
            "from models.worker_client import ModelWorker\n"
            "w = ModelWorker('llama_cpp'); w.ping(); print(w.pid, flush=True); sys.stdin.read()") % str(
        Path(__file__).resolve().parents[2])
    app = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(app.stdout.readline())
        assert alive(worker_pid)
        app.kill()
        app.wait()
        wait_for(lambda: not alive(worker_pid), timeout=10)
    finally:
        app.kill()
