"""Simulation throughput on the embedded model: sessions per hour at concurrency 1 vs 2, and the
time of one exchange (patient turn + therapist turn) at exchange 2 vs exchange 12 of a session.

Patient and therapist share one base model here, so a flat time per generated token shows that
the prompt cache keeps both conversations' KV state instead of re-reading each prompt
(models/kv_cache.py); the time per exchange also grows with the replies' length.

Run: ``python -m benchmarks.simulation [--sessions 2] [--turns 4] [--long-turns 12]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.figures import Figure, add_figures_argument, write_figures

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _services(data_dir: str):
    from config import enforce_offline_env, load_settings
    from services import build_services
    enforce_offline_env()
    settings = load_settings(["--data-dir", data_dir], env={})
    settings.max_tokens = 60
    return build_services(settings)


def sessions_per_hour(concurrency: int, sessions: int, turns: int, seed: int) -> float:
    from patient_sim.batch import plan, resolve_personas, run_batch
    with tempfile.TemporaryDirectory() as tmp:
        services = _services(tmp)
        personas = resolve_personas(services.personas, f"sample:{sessions}", seed, "act")
        specs = plan(personas, ["default"], "default", turns, study=f"bench-c{concurrency}")
        started = time.perf_counter()
        summary = run_batch(services.engine, specs, concurrency, show_progress=False)
        elapsed = time.perf_counter() - started
        services.store.close()
    assert summary.ran == sessions and not summary.failed, summary.line()
    return sessions * 3600 / elapsed


def _exchange_tokens(turns: list[dict], count) -> list[int]:
    """Tokens generated in each exchange: the patient message and the therapist reply that follows
    it (the therapist's own count). Patient attempts the simulator threw away are not counted, so
    an exchange that needed one is slower per token than it looks; with the embedded patient that
    is rare."""
    tokens, patient = [], None
    for turn in turns:
        if turn["role"] == "patient":
            patient = turn
        elif turn["role"] == "therapist" and patient is not None:
            tokens.append(count(patient["content"]) + (turn["tokens_out"] or count(turn["content"])))
            patient = None
    return tokens


def exchange_times(turns: int, repeats: int, seed: int) -> tuple[list[float], list[float]]:
    """Median seconds per exchange, and per generated token of that exchange (the patient's
    message and the therapist's reply, counted by the model's tokenizer), at each exchange index
    over ``repeats`` sessions. Replies get longer as a session goes on; seconds per token tells
    the cost of a longer context apart from the cost of saying more."""
    from patient_sim.batch import plan, resolve_personas
    from patient_sim.simulate import run_session
    runs, per_token = [], []
    with tempfile.TemporaryDirectory() as tmp:
        services = _services(tmp)
        count = services.pool.get("default").count_tokens
        for spec in plan(resolve_personas(services.personas, f"sample:{repeats}", seed, "act"), ["default"], "default", turns):
            marks = []  # session start, then the end of each exchange (the therapist's reply stored)

            def clock(kind, value, marks=marks):
                if kind == "session" or (kind == "therapist" and value.kind == "done"):
                    marks.append(time.perf_counter())
            row = run_session(services.engine, spec, on_event=clock)
            seconds = [b - a for a, b in zip(marks, marks[1:])]
            tokens = _exchange_tokens(services.sessions.turns(row["id"]), count)
            if len(seconds) != turns or len(tokens) != turns:
                raise RuntimeError(f"session {row['id']}: {len(seconds)} timed and {len(tokens)} stored "
                                   f"exchanges, {turns} planned (a reply held or failed?)")
            runs.append(seconds)
            per_token.append([sec / max(tok, 1) for sec, tok in zip(seconds, tokens)])
        services.store.close()
    median_at = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    return [median_at(runs, i) for i in range(turns)], [median_at(per_token, i) for i in range(turns)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--long-turns", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    add_figures_argument(parser)
    args = parser.parse_args(argv)
    c1 = sessions_per_hour(1, args.sessions, args.turns, args.seed)
    c2 = sessions_per_hour(2, args.sessions, args.turns, args.seed)
    per, per_tok = exchange_times(args.long_turns, args.repeats, args.seed)
    print(f"{'figure':<44}{'ours':>10}{'baseline':>10}{'ratio':>8}")
    print(f"{'sessions/hour, concurrency 2 vs 1 (' + str(args.turns) + ' exch.)':<44}{c2:>10.0f}{c1:>10.0f}{c2 / c1:>8.2f}")
    print(f"{'s per exchange, exchange ' + str(args.long_turns) + ' vs 2':<44}{per[-1]:>10.2f}{per[1]:>10.2f}"
          f"{per[-1] / per[1]:>8.2f}")
    print(f"{'ms per generated token, exchange ' + str(args.long_turns) + ' vs 2':<44}"
          f"{1000 * per_tok[-1]:>10.1f}{1000 * per_tok[1]:>10.1f}{per_tok[-1] / per_tok[1]:>8.2f}")
    print("per-exchange medians (s): " + " ".join(f"{x:.2f}" for x in per))
    print("per-exchange medians (ms per generated token): " + " ".join(f"{1000 * x:.0f}" for x in per_tok))
    write_figures(args.figures, [
        Figure(f"simulated sessions per hour ({args.turns} exchanges), concurrency 2 vs 1", c2, c1, "",
               "sessions/h", "simulation"),
        Figure(f"seconds per simulated exchange, exchange {args.long_turns} vs 2", per[-1], per[1], "",
               "s", "simulation"),
        Figure(f"milliseconds per generated token of a simulated exchange, exchange {args.long_turns} vs 2 "
               "(context growth alone)", round(1000 * per_tok[-1], 1), round(1000 * per_tok[1], 1), "", "ms",
               "simulation")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
