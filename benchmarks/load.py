"""Load on the embedded model: turn latency of one patient alone vs eight patients at once, through
the running app, with and without a simulation batch writing to the same database.

Starts ``python app.py`` in accounts mode (the embedded model through llama.cpp, replies capped at
``--max-tokens``) on a free loopback port and drives it with ``gradio_client`` exactly as
tests/test_load.py does with scripted models: each patient signs in, accepts the consent and sends
``--messages`` messages through ``/send``. Phases, on one warm app: half of ``--alone`` sessions
one after another (one client at a time), ``--sessions`` clients at once, the other half alone
again (the baseline brackets the concurrent phase), then ``--sessions`` clients at once while
``python -m patient_sim simulate`` (embedded patient and therapist, ``--batch-personas`` x
``--batch-turns``) runs on the same data dir. Turn latency is the time of one ``/send`` call as the
client sees it (message stored, reply generated, stored and returned). "decode tok/s" is the
median speed of the phase's replies after their first token, from the stored turns: how fast the
machine ran during that phase (on a shared machine it moves, and the latencies with it).
Afterwards the database is checked (turns alternate, no index gaps, ``PRAGMA integrity_check``)
and the logs are searched for "database is locked".

Run: ``python -m benchmarks.load [--sessions 8] [--messages 4] [--alone 2] [--max-tokens 32]
[--batch-personas 1] [--batch-turns 2] [--figures FILE]`` (``--batch-personas 0`` skips the batch
phase).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):  # the app, and the load driver shared with tests/test_load.py
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from benchmarks.figures import Figure, add_figures_argument, write_figures  # noqa: E402

LINES = ["I have been feeling low and tired for weeks.", "Work keeps piling up and I put everything off.",
         "I lie awake going over what I said to people.", "My sister says I should just relax more.",
         "I cancelled plans with friends again this weekend.", "I worry that I am letting my team down."]


def message(k: int, m: int) -> str:
    return f"{LINES[(k + m) % len(LINES)]} (patient {k}, message {m + 1})"


def row(label: str, result, users: list[str], decode: dict[str, float]) -> tuple:
    """(label, sessions, turns, errors, median s, p95 s, turns per minute, decode tokens/s)."""
    from loadkit import summary
    median, p95 = summary(result.latencies)
    turns = len(result.latencies)
    rates = [decode[u] for u in users if u in decode]
    return (label, len(users), turns, len(result.errors), median, p95,
            60 * turns / result.wall_s if result.wall_s else 0, statistics.median(rates) if rates else math.nan)


def decode_rates(db: Path) -> dict[str, float]:
    """Per patient account: median decode speed of its therapist replies in tokens/s, from the stored
    turns (tokens after the first over the time after the first token). A reply runs on the compute
    thread from its first token to its last without interruption, so this is the machine's speed
    while that reply ran, whatever waited in the queue."""
    per_user: dict[str, list[float]] = {}
    with sqlite3.connect(db) as conn:
        for user, latency, ttft, tokens in conn.execute(
                "SELECT u.username, t.latency_ms, t.ttft_ms, t.tokens_out FROM turns t JOIN sessions s ON "
                "s.id = t.session_id JOIN users u ON u.id = s.user_id WHERE t.role = 'therapist'"):
            if latency and ttft is not None and tokens and tokens > 1 and latency > ttft:
                per_user.setdefault(user, []).append((tokens - 1) / ((latency - ttft) / 1000))
    return {u: statistics.median(v) for u, v in per_user.items()}


def merge(results):
    """One LoadResult from several run one after another (turns, errors, wall time added up)."""
    from loadkit import LoadResult
    out = LoadResult()
    for r in results:
        out.turns += r.turns
        out.connect_errors += r.connect_errors
        out.wall_s += r.wall_s
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="patients at once (default 8)")
    parser.add_argument("--messages", type=int, default=4, help="messages per session (default 4)")
    parser.add_argument("--alone", type=int, default=2, help="sessions run one at a time for the baseline")
    parser.add_argument("--max-tokens", type=int, default=32, help="therapist reply cap (THERALAB_MAX_TOKENS)")
    parser.add_argument("--batch-personas", type=int, default=1, help="simulated sessions in the batch phase")
    parser.add_argument("--batch-turns", type=int, default=2, help="exchanges per simulated session")
    add_figures_argument(parser)
    args = parser.parse_args(argv)

    from apprunner import RunningApp
    from loadkit import PASSWORD, add_patients, alternation_problems, run_sessions, start_batch, wait_for_rows

    with tempfile.TemporaryDirectory(prefix="theralab-load-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        solo = add_patients(data, args.alone + 1, prefix="solo")
        crowd = add_patients(data, args.sessions, prefix="crowd")
        busy = add_patients(data, args.sessions, prefix="busy") if args.batch_personas else []
        env = {"THERALAB_MAX_TOKENS": str(args.max_tokens), "HOME": os.environ.get("HOME", tmp)}
        app = RunningApp(data, env)
        phases, batch, batch_s = [], None, None
        try:
            app.client(auth=(solo[0], PASSWORD), timeout=300)
            warm = run_sessions(app, [solo[0]], 1, "default", message)  # loads the model; not counted
            if warm.errors:
                print("warm-up failed:", warm.errors)
                return 1
            before, after = solo[1:1 + (args.alone + 1) // 2], solo[1 + (args.alone + 1) // 2:]
            phases = [("1 session alone, before", before,
                       merge([run_sessions(app, [u], args.messages, "default", message) for u in before])),
                      (f"{args.sessions} sessions at once", crowd,
                       run_sessions(app, crowd, args.messages, "default", message))]
            if after:
                phases.append(("1 session alone, after", after,
                               merge([run_sessions(app, [u], args.messages, "default", message) for u in after])))
            if busy:
                started = {}

                def start_the_batch():
                    nonlocal batch
                    started["t"] = time.perf_counter()
                    batch = start_batch(data, {**env, "PATH": "/usr/bin:/bin"}, Path(tmp), "default", "default",
                                        args.batch_personas, args.batch_turns, study="load-bench", concurrency=1)
                    wait_for_rows(app.db, "SELECT COUNT(*) FROM sessions WHERE study='load-bench'", 1, 300, batch)
                phases.append((f"{args.sessions} at once + simulation batch", busy, run_sessions(
                    app, busy, args.messages, "default", message, before_start=start_the_batch)))
                batch.wait(1800)
                batch_s = time.perf_counter() - started["t"]
        finally:
            if batch is not None and batch.poll() is None:
                batch.kill()
            app.stop()

        logs = app.log.read_text()
        if batch is not None:
            logs += (Path(tmp) / "batch.out").read_text() + (Path(tmp) / "batch.err").read_text()
        locked = len(re.findall(r"database is locked", logs))
        with sqlite3.connect(app.db) as conn:
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
            batch_done = conn.execute("SELECT COUNT(*) FROM sessions WHERE study='load-bench' AND status='ended'"
                                      ).fetchone()[0]
        problems = alternation_problems(app.db)
        decode = decode_rates(app.db)
    alone = [p for p in phases if p[0].startswith("1 session")]
    rows = [row("1 session alone (before + after)", merge([p[2] for p in alone]), before + after, decode)]
    rows += [row("  " + label, result, users, decode) for label, users, result in alone]
    rows += [row(label, result, users, decode) for label, users, result in phases if not label.startswith("1 session")]

    print(f"\nturn latency through the app (embedded model, replies <= {args.max_tokens} tokens, "
          f"{args.messages} messages per session)")
    print(f"{'scenario':<36}{'sessions':>9}{'turns':>7}{'errors':>8}{'median s':>10}{'p95 s':>8}{'turns/min':>11}"
          f"{'decode tok/s':>14}")
    for label, sessions, turns, errors, median, p95, rate, tps in rows:
        print(f"{label:<36}{sessions:>9}{turns:>7}{errors:>8}{median:>10.2f}{p95:>8.2f}{rate:>11.1f}{tps:>14.1f}")
    base = rows[0]
    for label, _, _, _, median, p95, rate, tps in rows[1:]:
        if label.startswith("  "):
            continue
        print(f"ratio {label} / alone: median {median / base[4]:.2f}, p95 {p95 / base[5]:.2f}, "
              f"throughput {rate / base[6]:.2f} (decode speed {tps / base[7]:.2f})")
    if batch is not None:
        print(f"simulation batch: exit {batch.returncode}, {batch_done}/{args.batch_personas} sessions ended "
              f"in {batch_s:.0f} s")
    print(f"database: integrity {integrity}, {len(problems)} sessions out of order, "
          f"'database is locked' {locked} times in the logs")
    figures = []
    for label, sessions, _, _, median, p95, rate, _ in rows[1:]:
        if label.startswith("  "):
            continue
        what = f"{sessions} sessions at once" + (" beside a simulation batch" if "batch" in label else "")
        figures += [Figure(f"app turn latency, median, {what} vs 1 alone", median, base[4], "", "s", "load"),
                    Figure(f"app turn latency, p95, {what} vs 1 alone", p95, base[5], "", "s", "load"),
                    Figure(f"app turns per minute, {what} vs 1 alone", rate, base[6], "", "turns/min", "load")]
    write_figures(args.figures, figures)
    return 0 if integrity == "ok" and not problems and not locked and all(r[3] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
