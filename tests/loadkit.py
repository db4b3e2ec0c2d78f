"""Concurrent human sessions against the running app, shared by tests/test_load.py (scripted models)
and benchmarks/load.py (the embedded model).

Each patient account gets its own ``gradio_client`` in its own thread: sign in, accept the consent,
then send its messages one after another through ``/send`` (the first one opens the session), as
the Session tab does. The time of each ``/send`` call, as the client sees it, is the turn latency.
A simulation batch (``python -m patient_sim simulate``) can run against the same data dir at the
same time.
"""
from __future__ import annotations

import math
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "load-test-passphrase"


def add_patients(data: Path, n: int, prefix: str = "pat") -> list[str]:
    """Create ``n`` patient accounts in the data dir (before the app starts: accounts mode)."""
    from store.db import Store
    from store.users import UserStore
    store = Store(Path(data) / "sessions.db")
    try:
        users = UserStore(store)
        names = [f"{prefix}{i}" for i in range(n)]
        for name in names:
            users.add(name, PASSWORD, "patient")
    finally:
        store.close()
    return names


@dataclass
class Turn:
    user: str
    index: int
    text: str
    session: str = ""
    reply: str = ""          # the last assistant message the client got back
    echoed: bool = False     # the returned chat ends with this message and a reply to it
    status: str = ""         # the Session tab's status line ("" when all went well)
    latency_s: float = 0.0
    error: str = ""          # an exception raised by the client call

    @property
    def acknowledged(self) -> bool:
        return bool(self.session) and not self.error and self.echoed


@dataclass
class LoadResult:
    turns: list[Turn] = field(default_factory=list)
    connect_errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def latencies(self) -> list[float]:
        return [t.latency_s for t in self.turns if t.acknowledged and not t.status]

    @property
    def errors(self) -> list[str]:
        return self.connect_errors + [f"{t.user}#{t.index}: {t.error or t.status}" for t in self.turns
                                      if t.error or t.status or not t.echoed]

    def sessions(self) -> dict[str, list[Turn]]:
        out: dict[str, list[Turn]] = {}
        for t in self.turns:
            if t.session:
                out.setdefault(t.session, []).append(t)
        return out


def text_of(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> tuple[float, float]:
    """(median, p95) in seconds."""
    return (statistics.median(values) if values else math.nan), percentile(values, 95)


def run_sessions(app, users: list[str], messages: int, model: str, text: Callable[[int, int], str],
                 modality: str = "act", before_start: Callable[[], None] | None = None,
                 auth: bool = True, timeout_s: float = 600) -> LoadResult:
    """One client thread per user, each sending ``messages`` messages; all start together once every
    client has signed in and consented (then ``before_start`` runs once). ``text(k, m)`` is user
    k's m-th message."""
    result = LoadResult()
    lock = threading.Lock()

    def start() -> None:
        if before_start is not None:
            try:
                before_start()
            except BaseException as exc:  # noqa: BLE001 - reported; the broken barrier stops the clients
                result.connect_errors.append(f"before start: {type(exc).__name__}: {exc}")
                raise

    gate = threading.Barrier(len(users), action=start)

    def drive(k: int, user: str) -> None:
        try:
            client = app.client(auth=(user, PASSWORD) if auth else None)
            client.predict(True, api_name="/accept_consent")
        except BaseException as exc:  # noqa: BLE001 - reported, and the barrier must not hang
            with lock:
                result.connect_errors.append(f"{user}: {type(exc).__name__}: {exc}")
            gate.abort()
            return
        try:
            gate.wait()
        except threading.BrokenBarrierError:
            return
        sid = ""
        for m in range(messages):
            turn = Turn(user, m, text(k, m))
            started = time.perf_counter()
            try:
                sid_out, chat, status, _ = client.predict(sid, turn.text, False, modality, model, api_name="/send")
                turn.session, turn.status = sid_out or "", status or ""
                turn.echoed = (len(chat) >= 2 and text_of(chat[-2]) == turn.text
                               and chat[-1].get("role") == "assistant")
                turn.reply = text_of(chat[-1]) if chat else ""
            except Exception as exc:  # noqa: BLE001 - counted as an error
                turn.error = f"{type(exc).__name__}: {exc}"
            turn.latency_s = time.perf_counter() - started
            with lock:
                result.turns.append(turn)
            sid = turn.session or sid

    threads = [threading.Thread(target=drive, args=(k, u), name=f"load-{u}", daemon=True)
               for k, u in enumerate(users)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    result.wall_s = time.perf_counter() - started
    return result


def start_batch(data: Path, env: dict, out_dir: Path, therapist: str, patient_model: str, personas: int,
                turns: int, study: str, concurrency: int = 2) -> subprocess.Popen:
    """``python -m patient_sim simulate`` on the same data dir; stdout/stderr go to files in ``out_dir``."""
    argv = [sys.executable, "-m", "patient_sim", "--data-dir", str(data), "simulate", "--therapist", therapist,
            "--patient-model", patient_model, "--personas", f"sample:{personas}", "--turns", str(turns),
            "--study", study, "--concurrency", str(concurrency)]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=open(out_dir / "batch.out", "w"),
                            stderr=open(out_dir / "batch.err", "w"))


def wait_for_rows(db: Path, sql: str, at_least: int = 1, timeout_s: float = 120,
                  proc: subprocess.Popen | None = None) -> None:
    """Until ``sql`` (a count) reaches ``at_least``; fails early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db, timeout=30) as conn:
                if conn.execute(sql).fetchone()[0] >= at_least:
                    return
        except sqlite3.OperationalError:
            pass  # not migrated yet
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {sql!r} reached {at_least}")
        time.sleep(0.1)
    raise TimeoutError(f"{sql!r} did not reach {at_least} in {timeout_s} s")


def alternation_problems(db: Path) -> list[str]:
    """Sessions whose conversation turns are not patient, therapist, patient, ... (system rows aside)."""
    problems = []
    with sqlite3.connect(db) as conn:
        for (sid,) in conn.execute("SELECT id FROM sessions"):
            roles = [r[0] for r in conn.execute(
                "SELECT role FROM turns WHERE session_id=? AND role != 'system' ORDER BY idx", (sid,))]
            if roles != ["patient", "therapist"] * (len(roles) // 2):
                problems.append(f"{sid}: {roles}")
            idx = [r[0] for r in conn.execute("SELECT idx FROM turns WHERE session_id=? ORDER BY idx", (sid,))]
            if idx != list(range(len(idx))):
                problems.append(f"{sid}: turn indexes {idx}")
    return problems
