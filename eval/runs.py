"""Judge runs: one rubric, one judge model, a selection of sessions, one rating per session.

A run is a ``judge_runs`` row; each judgement is committed as its own rating the moment it is
made, so a run stopped by a crash, a kill or a cancel loses at most the judgements in flight. The
same command again (same rubric, judge, selection and settings) continues the latest such run and
rates only the sessions it has not rated yet (ones it missed, or that ended since); ``new_run``
starts a separate run instead, e.g. to measure how consistent a judge is with itself.

Selections: ``all`` (every ended session), ``study:NAME`` (ended sessions of that study) or a
comma-separated list of session ids (rated whatever their status, except abandoned ones).
"""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from eval.judge import JudgeResult, judge_transcript
from eval.rubrics import Rubric
from jobs.reporter import JobCancelled
from store.audit import AuditLog
from store.db import Store
from store.ratings import RatingStore
from store.sessions import SessionStore
from vocabulary import EventKind

if TYPE_CHECKING:  # annotations only
    from models.pool import ModelPool

ACTOR = "judge"
_IDS = re.compile(r"^[0-9A-Za-z]{1,64}(,[0-9A-Za-z]{1,64})*$")


class RunError(ValueError):
    """A run cannot start: unknown rubric, model or sessions, or a malformed selection."""


@dataclass
class JudgeRunSpec:
    rubric_id: str
    judge_model: str
    selection: str = "all"
    concurrency: int = 1
    include_reasoning: bool = False
    max_retries: int = 2
    new_run: bool = False

    def config(self) -> dict:
        """The settings that make two runs comparable (and so resumable into each other)."""
        return {"include_reasoning": self.include_reasoning, "max_retries": self.max_retries}


def select_sessions(store, selection: str) -> list[str]:
    """Session ids for a selection, oldest first; raises RunError for a malformed or empty one."""
    selection = (selection or "").strip()
    sessions = SessionStore(store)
    if selection == "all":
        return sessions.ended_ids()
    if selection.startswith("study:") and selection[6:].strip():
        return sessions.ended_ids(selection[6:].strip())
    if _IDS.match(selection.replace(" ", "")):
        ids = selection.replace(" ", "").split(",")
        found = sessions.statuses(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise RunError("unknown session(s): " + ", ".join(missing))
        return [i for i in dict.fromkeys(ids) if found[i] != "abandoned"]
    raise RunError(f"--sessions {selection!r}: use all, study:NAME or session ids separated by commas")


def judge_turns(sessions, session_id: str) -> list[dict]:
    """What the judge reads: the conversation, without the system context rows."""
    return [t for t in sessions.turns(session_id) if t["role"] in ("patient", "therapist")]


def save_judgement(ratings: RatingStore, run: dict, rubric: Rubric, session_id: str,
                   result: JudgeResult) -> dict:
    detail = {"problems": result.problems, "raw": result.raw, "attempts": result.attempts,
              "truncated": result.truncated, "latency_ms": result.latency_ms, "rationales": result.rationales,
              "screened": result.screened}
    return ratings.save(session_id=session_id, rater_id=run["judge_model"], rater_kind="judge",
                        rubric_id=rubric.id, rubric_version=rubric.version, scores=result.scores,
                        totals=(result.totals or {}).get("totals", {}), total=(result.totals or {}).get("total"),
                        status=result.status, judge_run_id=run["id"], detail=detail)


def open_run(ratings: RatingStore, spec: JudgeRunSpec, created_by: str, job_id: str | None) -> tuple[dict, bool]:
    """(the run to work on, whether it resumes an earlier one)."""
    if not spec.new_run:
        earlier = ratings.find_resumable(spec.rubric_id, spec.judge_model, spec.selection, spec.config())
        if earlier:
            ratings.update_run(earlier["id"], status="running", error=None, job_id=job_id or earlier.get("job_id"))
            return ratings.run(earlier["id"]), True
    return ratings.create_run(spec.rubric_id, spec.judge_model, spec.selection, spec.config(),
                              created_by, job_id), False


def run_judge(store: Store, pool: ModelPool, audit: AuditLog, spec: JudgeRunSpec, rubric: Rubric,
              created_by: str = "cli", job_id: str | None = None, reporter=None,
              stop: threading.Event | None = None, show_progress: bool = False) -> dict:
    """Rate every selected session the run has not rated yet; return the finished run row. The
    judge comes from ``pool`` (and its catalog); ratings and sessions from ``store``."""
    from tqdm import tqdm
    pool.catalog.get(spec.judge_model)  # unknown model: fails before any row is written
    session_ids = select_sessions(store, spec.selection)
    ratings, sessions = RatingStore(store), SessionStore(store)
    run, resumed = open_run(ratings, spec, created_by, job_id)
    todo = [sid for sid in session_ids if sid not in ratings.rated_in_run(run["id"])]
    ratings.update_run(run["id"], n_total=len(session_ids))
    audit.record(created_by, EventKind.JUDGE_RUN_START, run["id"], rubric=rubric.id, judge=spec.judge_model,
                 selection=spec.selection, todo=len(todo), resumed=resumed)
    stop = stop or threading.Event()
    done = len(session_ids) - len(todo)
    bar = tqdm(total=len(session_ids), initial=done, desc="judging", unit="session", disable=not show_progress)
    status, workers = "done", None
    try:  # from here on, however the work ends, the run's row says so
        backend = pool.get(spec.judge_model)
        n_ctx = backend.capabilities.context_tokens or pool.settings.n_ctx

        def judge_one(session_id: str) -> str:
            if stop.is_set():
                return "skipped"
            result = judge_transcript(backend, rubric, judge_turns(sessions, session_id), n_ctx=n_ctx,
                                      max_retries=spec.max_retries, include_reasoning=spec.include_reasoning)
            save_judgement(ratings, run, rubric, session_id, result)
            return result.status

        workers = ThreadPoolExecutor(max_workers=max(1, spec.concurrency))
        futures = [workers.submit(judge_one, sid) for sid in todo]
        for future in as_completed(futures):
            if future.result() != "skipped":
                done += 1
                bar.update(1)
                _report(ratings, run["id"], reporter, done, len(session_ids))
        if stop.is_set():
            status = "cancelled"
    except BaseException as exc:
        stop.set()
        ratings.update_run(run["id"], status="cancelled" if _is_cancel(exc) else "failed",
                           error=None if _is_cancel(exc) else f"{type(exc).__name__}: {exc}")
        if workers is not None:
            workers.shutdown(wait=False, cancel_futures=True)  # judgements in flight finish on their own
        raise
    finally:
        bar.close()
    workers.shutdown()
    ratings.update_run(run["id"], status=status)
    final = ratings.run(run["id"])
    audit.record(created_by, EventKind(f"judge.run_{status}"), run["id"], ok=final["n_ok"],
                 partial=final["n_partial"], failed=final["n_failed"])
    return final


def _report(ratings: RatingStore, run_id: str, reporter, done: int, total: int) -> None:
    ratings.update_run(run_id)
    if reporter is not None:
        counts = ratings.run(run_id)
        reporter.progress(done, total, run_id=run_id, ok=counts["n_ok"], partial=counts["n_partial"],
                          failed=counts["n_failed"])


def _is_cancel(exc: BaseException) -> bool:
    return isinstance(exc, (JobCancelled, KeyboardInterrupt))


def settle_runs(store) -> int:
    """Runs still marked running whose job has ended (killed, crashed, cancelled before the run
    could say so) get the job's outcome; returns how many were settled."""
    ratings = RatingStore(store)
    rows = ratings.running_with_ended_job()
    for run_id, job_status in rows:
        ratings.update_run(run_id, status="cancelled" if job_status == "cancelled" else "failed",
                           error=None if job_status == "cancelled" else "the judge process ended without finishing")
    return len(rows)


def run_line(run: dict) -> str:
    total = run.get("n_total") or 0
    rated = run["n_ok"] + run["n_partial"] + run["n_failed"]
    rate = (lambda n: f"{100 * n / rated:.0f}%") if rated else (lambda n: "-")
    return (f"judge run {run['id']} ({run['rubric_id']}, judge {run['judge_model']}, {run['selection']}): "
            f"{run['status']}, {rated}/{total} rated: {run['n_ok']} ok ({rate(run['n_ok'])}), "
            f"{run['n_partial']} partial ({rate(run['n_partial'])}), {run['n_failed']} failed "
            f"({rate(run['n_failed'])})")


def spec_dict(spec: JudgeRunSpec) -> dict:
    return asdict(spec)
