"""Turn throughput and time-to-first-token of the app on the embedded model.

1. Throughput: a full app turn (session engine: validate, commit, stream, split, commit) against
   raw ``llama_cpp.Llama.create_chat_completion`` on the same messages, greedy, same max tokens.
   Ratio = app tokens/s / raw tokens/s (target >= 0.97; the model runs in the worker process).
2. TTFT over a session: time to first token at turn 2 and at turn 20 of one 20-turn session
   (target ratio <= 1.3, and within 1.05x of raw llama.cpp's own floor for that growth, measured
   in the same run), with a cold re-read of the turn-20 prompt as the no-cache baseline.

Run: ``python -m benchmarks.turn_latency [--trials 5] [--json]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.figures import Figure, add_figures_argument, write_figures  # noqa: E402
from models.compute_thread import COMPUTE  # noqa: E402  (after the path is set)

PATIENT_LINES = [
    "I haven't been sleeping well for weeks.", "Mostly I lie awake thinking about work.",
    "My manager criticised my report in front of everyone.", "I felt like a complete failure.",
    "I keep replaying it in my head.", "I guess I think everyone sees me as incompetent.",
    "My partner says I'm overthinking it.", "I stopped going to the gym too.",
    "It feels pointless when I'm this tired.", "I used to love running by the river.",
    "Maybe I could try a short walk.", "But what if I feel worse after?",
    "I suppose I could notice how I feel.", "My sister wants to meet on Sunday.",
    "I usually cancel plans like that.", "I'm scared she'll see how low I am.",
    "She has always been kind to me though.", "Okay, I could tell her a little.",
    "Writing things down might help.", "Thank you, that feels like a plan.",
]


def _services(data_dir: str, max_tokens: int):
    from config import load_settings
    from services import build_services
    settings = load_settings(["--data-dir", data_dir], env={})
    settings.max_tokens = max_tokens
    settings.temperature = 0.0
    services = build_services(settings)
    services.engine.record_consent(None, "benchmark")  # the researcher's consent, as in the app
    return services


def _app_turn(services, message: str) -> tuple[float, int]:
    session = services.engine.start("act", "default")
    t0 = time.perf_counter()
    events = list(services.engine.turn(session["id"], message))
    elapsed = time.perf_counter() - t0
    row = events[-1].turn
    return elapsed, row["tokens_out"]


def _raw_turn(llm, messages: list[dict], max_tokens: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0,
                                            top_p=0.95, repeat_penalty=1.1, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            n += 1
    return time.perf_counter() - t0, n


def throughput(trials: int, max_tokens: int) -> dict:
    import llama_cpp
    from models.embedded import embedded_gguf_path
    from therapist import prompts
    with tempfile.TemporaryDirectory() as tmp:
        services = _services(tmp, max_tokens)
        message = "I feel anxious every morning before work and I don't know why."
        messages = [{"role": "system", "content": prompts.system_prompt("act", False)},
                    {"role": "user", "content": message}]
        # Same model, context and threads as the app uses: only the app's own work differs.
        threads = os.cpu_count() or 1
        # The baseline runs on the app's compute thread too: a second thread calling llama.cpp
        # would start a second OpenMP team and slow both (models/compute_thread.py).
        raw = COMPUTE.call(lambda: llama_cpp.Llama(model_path=str(embedded_gguf_path()), n_ctx=services.settings.n_ctx,
                              n_threads=threads, n_threads_batch=threads, verbose=False))
        _app_turn(services, message), COMPUTE.call(lambda: _raw_turn(raw, messages, max_tokens))  # warm up both
        app_rates, raw_rates = [], []
        for _ in range(trials):
            t, n = _app_turn(services, message)
            app_rates.append(n / t)
            t, n = COMPUTE.call(lambda: _raw_turn(raw, messages, max_tokens))
            raw_rates.append(n / t)
        services.store.close()
    app_rate, raw_rate = statistics.median(app_rates), statistics.median(raw_rates)
    return {"app_tokens_per_s": round(app_rate, 1), "raw_tokens_per_s": round(raw_rate, 1),
            "ratio": round(app_rate / raw_rate, 3)}


def ttft_over_session(turns: int, max_tokens: int, repeats: int = 5) -> dict:
    """Median TTFT at each turn index over ``repeats`` identical sessions (one sample is noisy)."""
    import llama_cpp
    from models.embedded import embedded_gguf_path
    with tempfile.TemporaryDirectory() as tmp:
        services = _services(tmp, max_tokens)
        runs = []
        for _ in range(repeats):
            session = services.engine.start("act", "default")
            ttfts = []
            for line in PATIENT_LINES[:turns]:
                events = list(services.engine.turn(session["id"], line))
                ttfts.append(events[-1].turn["ttft_ms"])
            runs.append(ttfts)
        ttfts = [statistics.median(run[i] for run in runs) for i in range(turns)]
        history = services.engine._history(services.sessions.get(session["id"]),
                                           services.catalog.get("default"), reasoning=False)
        prompt_tokens = events[-1].turn["tokens_in"]
        services.store.close()
    threads = os.cpu_count() or 1
    cold = COMPUTE.call(lambda: llama_cpp.Llama(model_path=str(embedded_gguf_path()), n_ctx=4096,
                                                n_threads=threads, n_threads_batch=threads, verbose=False))

    def first_token() -> float:
        t0 = time.perf_counter()
        next(iter(cold.create_chat_completion(messages=history[:-2] + history[-1:], max_tokens=1, stream=True)))
        return (time.perf_counter() - t0) * 1000
    cold_ms = COMPUTE.call(first_token)
    floor, plain = COMPUTE.call(lambda: _attention_floor(cold, short=300, long=prompt_tokens - 20, new=20))
    del cold
    # The same measurement with flash attention on: does it lower the floor on the CPU?
    flash = COMPUTE.call(lambda: llama_cpp.Llama(model_path=str(embedded_gguf_path()), n_ctx=4096, n_threads=threads,
                                                 n_threads_batch=threads, flash_attn=True, verbose=False))
    flash_floor, flashed = COMPUTE.call(lambda: _attention_floor(flash, short=300, long=prompt_tokens - 20, new=20))
    return {"ttft_turn2_ms": ttfts[1], f"ttft_turn{turns}_ms": ttfts[-1],
            "ratio": round(ttfts[-1] / max(ttfts[1], 1), 2), "prompt_tokens_last_turn": prompt_tokens,
            "cold_reread_last_prompt_ms": round(cold_ms), "raw_floor_ratio": floor,
            "long_eval_ms": round(plain * 1000, 1), "long_eval_flash_ms": round(flashed * 1000, 1),
            "flash_floor_ratio": flash_floor}


def _attention_floor(llm, short: int, long: int, new: int, repeats: int = 7) -> tuple[float, float]:
    """Raw llama.cpp: evaluating the same ``new`` tokens after ``long`` vs ``short`` cached ones.

    This is the cost growth no cache can remove (attention reads the whole context), i.e. the
    best TTFT ratio any app could reach on this machine and model. Also returns the seconds the
    ``new`` tokens took after ``long`` cached ones.
    """
    tokens = llm.tokenize(" ".join(PATIENT_LINES * 20).encode())[: long + new]
    times = {}
    for ctx in (short, long):
        llm.reset()
        llm.eval(tokens[:ctx])
        samples = []
        for _ in range(repeats):
            llm.n_tokens = ctx
            llm._ctx.kv_cache_seq_rm(-1, ctx, -1)
            t0 = time.perf_counter()
            llm.eval(tokens[ctx:ctx + new])
            samples.append(time.perf_counter() - t0)
        times[ctx] = statistics.median(samples)
    return round(times[long] / times[short], 2), times[long]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    add_figures_argument(parser)
    args = parser.parse_args(argv)
    result = {"throughput": throughput(args.trials, args.max_tokens),
              "ttft": ttft_over_session(args.turns, args.max_tokens)}
    tp, tt = result["throughput"], result["ttft"]
    write_figures(args.figures, [
        Figure("turn throughput: app turn vs raw llama-cpp-python", tp["app_tokens_per_s"], tp["raw_tokens_per_s"],
               ">= 0.97", "tokens/s", "turn_latency"),
        Figure(f"time to first token, turn {args.turns} vs turn 2 of a session", tt[f"ttft_turn{args.turns}_ms"],
               tt["ttft_turn2_ms"], "<= 1.3", "ms", "turn_latency"),
        # The growth the attention over a longer context costs raw llama.cpp in the same run (the floor).
        Figure(f"TTFT growth turn 2 -> {args.turns}: app vs the raw llama.cpp floor (same new tokens, "
               "longer cached context)", tt["ratio"], tt["raw_floor_ratio"], "<= 1.05", "x", "turn_latency"),
        Figure(f"raw llama.cpp, 20 new tokens after {tt['prompt_tokens_last_turn'] - 20} cached: flash attention "
               "on vs off (CPU)", tt["long_eval_flash_ms"], tt["long_eval_ms"], "", "ms", "turn_latency"),
        Figure(f"time to first token at turn {args.turns}: KV cache reused vs the prompt re-read cold",
               tt[f"ttft_turn{args.turns}_ms"], tt["cold_reread_last_prompt_ms"], "", "ms", "turn_latency")])
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    tp, tt = result["throughput"], result["ttft"]
    print("figure                         ours        baseline    ratio   target")
    print(f"turn throughput (tokens/s)     {tp['app_tokens_per_s']:<11} {tp['raw_tokens_per_s']:<11} "
          f"{tp['ratio']:<7} >= 0.97 (baseline: raw llama-cpp-python)")
    print(f"TTFT turn {args.turns} vs turn 2 (ms)     {tt[f'ttft_turn{args.turns}_ms']:<11} "
          f"{tt['ttft_turn2_ms']:<11} {tt['ratio']:<7} <= 1.3, and <= 1.05x the floor below")
    print(f"turn-{args.turns} prompt: {tt['prompt_tokens_last_turn']} tokens; re-read cold (no cache) "
          f"{tt['cold_reread_last_prompt_ms']} ms to first token")
    print(f"raw llama.cpp floor: 20 new tokens after {tt['prompt_tokens_last_turn'] - 20} vs 300 cached "
          f"tokens costs {tt['raw_floor_ratio']}x (attention over a longer context); with flash attention "
          f"{tt['flash_floor_ratio']}x, {tt['long_eval_flash_ms']} ms vs {tt['long_eval_ms']} ms after the long context")
    return 0


if __name__ == "__main__":
    sys.exit(main())
