"""Two llama.cpp processes at once: cores shared (models/cpu_share.py) against each on every core.

    python -m benchmarks.cpu_share [--replies 4] [--tokens 64] [--rounds 3] [--figures FILE]

This is the app serving a patient while an Admin-tab simulation or judge job (or a command-line
batch) generates beside it. Each round starts two worker processes that load the embedded model
through our llama.cpp backend, wait for each other, and generate ``--replies`` greedy replies of
``--tokens`` tokens. "shared" leaves the thread count automatic (each process runs on its share
of the cores while the other is generating); the baseline fixes every process at all cores, as
before the share existed (``n_threads`` = cores). Modes alternate round by round. One process
alone, automatic, is also measured for reference. The figure is the decode speed of the pair
together (tokens per second, both processes' tokens over the time both took).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.figures import Figure, add_figures_argument, write_figures  # noqa: E402

PROMPTS = ["I keep putting off my coursework and then I panic at night.",
           "My sister says I never listen to her, and maybe she is right.",
           "Work has been quiet but I still feel tired all the time.",
           "I tried the breathing exercise and it helped a little."]


def worker(threads: int | None, replies: int, tokens: int, start_flag: Path) -> None:
    """Load the model, wait for the start flag, generate, print one JSON line."""
    from models.base import GenParams
    from models.embedded import embedded_gguf_path
    from models.llama_cpp_backend import LlamaCppBackend

    backend = LlamaCppBackend("bench", embedded_gguf_path(), n_ctx=1024, n_threads=threads)
    params = GenParams(max_tokens=tokens, temperature=0.0, min_tokens=tokens)
    backend.stream([{"role": "user", "content": "Hello."}], GenParams(max_tokens=2)).text()  # warm-up
    print("ready", flush=True)
    deadline = time.monotonic() + 600
    while not start_flag.exists():
        if time.monotonic() > deadline:  # the runner is gone: do not wait forever
            raise SystemExit("no start signal within 600 s")
        time.sleep(0.01)
    started, produced = time.perf_counter(), 0
    for k in range(replies):
        chat = [{"role": "user", "content": PROMPTS[k % len(PROMPTS)]}]
        params.fresh = True  # every reply decodes its whole prompt: no cache between rounds
        stream = backend.stream(chat, params)
        stream.text()
        produced += stream.usage.completion_tokens
    print(json.dumps({"tokens": produced, "seconds": time.perf_counter() - started}), flush=True)


def run_pair(threads: int | None, count: int, replies: int, tokens: int) -> float:
    """Start ``count`` workers together; return all their tokens over the wall time they took."""
    with tempfile.TemporaryDirectory() as tmp:
        flag = Path(tmp) / "go"
        args = [sys.executable, "-m", "benchmarks.cpu_share", "--worker", "--replies", str(replies),
                "--tokens", str(tokens), "--flag", str(flag)] + (["--threads", str(threads)] if threads else [])
        # Its own marker directory: an app or test run elsewhere on the machine neither skews the
        # workers' share nor is slowed by them.
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": tmp}
        env.pop("THERALAB_N_THREADS", None)
        procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(count)]
        try:
            for proc in procs:
                if proc.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"a worker failed to start (exit {proc.wait()})")
            started = time.perf_counter()
            flag.touch()
            results = [json.loads(proc.communicate(timeout=1800)[0].strip().splitlines()[-1]) for proc in procs]
            wall = time.perf_counter() - started
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    return sum(r["tokens"] for r in results) / wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--flag", type=Path, help=argparse.SUPPRESS)
    add_figures_argument(parser)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.threads, args.replies, args.tokens, args.flag)
        return 0
    cores = os.cpu_count() or 1
    shared, fixed, alone = [], [], []
    for r in range(args.rounds):
        for mode in (("shared", "fixed") if r % 2 == 0 else ("fixed", "shared")):
            rate = run_pair(None if mode == "shared" else cores, 2, args.replies, args.tokens)
            (shared if mode == "shared" else fixed).append(rate)
            print(f"round {r + 1}: two processes, {mode}: {rate:.1f} tok/s together", flush=True)
        alone.append(run_pair(None, 1, args.replies, args.tokens))
        print(f"round {r + 1}: one process alone: {alone[-1]:.1f} tok/s", flush=True)
    ours, base, solo = (statistics.median(x) for x in (shared, fixed, alone))
    print(f"two processes at once, tokens/s together (median of {args.rounds}): shared cores {ours:.1f}, "
          f"each on all {cores} cores {base:.1f}, ratio {ours / base:.2f}; one process alone {solo:.1f}")
    write_figures(args.figures, [
        Figure(f"two llama.cpp processes at once (app + a job), decode tok/s together: cores shared vs "
               f"each on all {cores} (one alone: {solo:.0f})", round(ours, 1), round(base, 1), ">= 1", "tok/s",
               "cpu_share")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
