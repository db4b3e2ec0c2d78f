"""The model worker process: what its boundary costs per token, and how fast it comes back.

1. Streaming through the worker vs the same backend in this process: the embedded model, greedy,
   ``--tokens`` tokens per reply, rounds alternated; tokens/s ratio (target >= 0.97).
2. Restart after a crash: SIGKILL to the worker, then the time until the new worker has reloaded
   the embedded model (the ``restarted`` event), median of ``--crashes``; the baseline is the
   worker's own first start in the same run (spawn, imports, load). Target <= 3 s.

    python -m benchmarks.worker [--rounds 5] [--tokens 64] [--crashes 3]
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.figures import Figure, add_figures_argument, write_figures  # noqa: E402

MESSAGES = [{"role": "system", "content": "You are a warm, concise therapist."},
            {"role": "user", "content": "I feel anxious every morning before work and I don't know why."}]


def _pool(data_dir: str, in_process: bool, events: list):
    from config import load_settings
    from models.catalog import Catalog
    from models.pool import ModelPool
    settings = load_settings(["--data-dir", data_dir], env={"THERALAB_MODEL_WORKER": "0" if in_process else "1"})
    return ModelPool(settings, Catalog(settings), on_event=events.append, private_workers=True)


def _rate(backend, tokens: int) -> float:
    from models.base import GenParams
    params = GenParams(max_tokens=tokens, min_tokens=tokens, temperature=0.0, seed=1)
    started = time.perf_counter()
    stream = backend.stream(MESSAGES, params)
    stream.text()
    return stream.usage.completion_tokens / (time.perf_counter() - started)


def boundary(rounds: int, tokens: int) -> tuple[float, float, float]:
    """(worker tokens/s, in-process tokens/s, worker first start in ms)."""
    events: list = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        remote_pool = _pool(tmp, False, events)
        remote = remote_pool.get("default")
        first_start_ms = (time.perf_counter() - started) * 1000
        local = _pool(tmp, True, events).get("default")
        _rate(remote, tokens), _rate(local, tokens)  # warm-up
        remote_rates, local_rates = [], []
        for _ in range(rounds):
            remote_rates.append(_rate(remote, tokens))
            local_rates.append(_rate(local, tokens))
        remote_pool.close()
    return statistics.median(remote_rates), statistics.median(local_rates), first_start_ms


def restarts(crashes: int) -> list[float]:
    """Milliseconds from SIGKILL to a warm new worker, one per crash."""
    from models import worker_client
    worker_client.CRASH_LIMIT = crashes + 1  # deliberate crashes, not a crash loop: never pause
    events: list = []
    arrived = threading.Event()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        pool = _pool(tmp, False, events)
        pool.on_event = None
        backend = pool.get("default")
        worker = backend.worker
        worker.add_listener(lambda e: arrived.set() if e.kind == "restarted" else None)
        for _ in range(crashes):
            arrived.clear()
            killed = time.perf_counter()
            os.kill(worker.pid, signal.SIGKILL)
            if not arrived.wait(60):
                raise RuntimeError("the worker did not come back within 60 s")
            times.append((time.perf_counter() - killed) * 1000)
            _rate(backend, 4)  # it serves again
            time.sleep(1)
        pool.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--crashes", type=int, default=3)
    add_figures_argument(parser)
    args = parser.parse_args(argv)
    from config import enforce_offline_env
    enforce_offline_env()
    remote, local, first_ms = boundary(args.rounds, args.tokens)
    restart_ms = statistics.median(restarts(args.crashes))
    write_figures(args.figures, [
        Figure("streaming through the model worker vs the same backend in process (tokens/s)", remote, local,
               ">= 0.97", "tokens/s", "worker"),
        Figure("model worker restart after SIGKILL, embedded model reloaded, vs its first start", restart_ms,
               first_ms, "<= 3 s", "ms", "worker")])
    print(f"worker {remote:.1f} tok/s vs in process {local:.1f} tok/s: {remote / local:.3f} (target >= 0.97)")
    print(f"restart after SIGKILL {restart_ms:.0f} ms (first start {first_ms:.0f} ms; target <= 3000 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
