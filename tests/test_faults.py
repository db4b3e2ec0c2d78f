"""Faults the app must survive, each checked on what is stored afterwards.

Covered elsewhere, not repeated here: SIGKILL of a process writing turns
(tests/store/test_crash_durability.py), kill -9 and reconcile of demo jobs (tests/store/test_jobs.py),
a simulation batch killed and resumed (tests/patient_sim/test_simulate_cli.py), malformed judge
answers and a judge crashing mid-run (tests/eval/test_judge.py, test_runs.py).

Here:
1. the app gets SIGKILL while a reply streams: acknowledged turns stay, nothing half-written, and
   after a restart the session is shown as it was stored and continues;
2. a training job (``python -m training sft`` through the job runner) gets SIGKILL mid-epoch: the
   job reads failed, and its half-written adapter is never offered by the model catalog;
3. a judge endpoint answering garbage, refusing, or timing out (before and during the stream): the
   run finishes, those ratings are failed with the raw answers kept, the other sessions are rated;
4. the database read-only or full: a turn gets a clear message, nothing stored is lost, and the
   session continues once the condition clears.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from apprunner import RunningApp, chat_text, wait_for
from fakeapp import SLOW_WORD, fake_env, markers, write_site

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL") or not Path("/proc/self/stat").exists(),
                                reason="needs Linux (SIGKILL, /proc)")


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


# ---------------------------------------------------------------------------- 1. kill -9 of the app

def test_app_killed_mid_reply_keeps_acknowledged_turns_and_the_session_continues(tmp_path):
    data, site = tmp_path / "data", write_site(tmp_path / "site")
    data.mkdir()
    app = RunningApp(data, fake_env(site, FAKE_SLOW_DELAY="0.05", FAKE_SLOW_WORDS="400"))  # a ~20 s reply
    first, slow = "Hello [[a-0]], I have been low for weeks.", "Tell me more [[slow]], please."
    try:
        client = app.client()
        client.predict(True, api_name="/accept_consent")
        sid, _, status, _ = client.predict("", first, False, "act", "fake-therapist", api_name="/send")
        assert sid and status == ""
        job = client.submit(sid, slow, False, "act", "fake-therapist", api_name="/send")

        def mid_reply():  # the client has seen its message accepted and part of the reply
            outputs = job.outputs()
            chat = outputs[-1][1] if outputs else []
            return (len(chat) >= 4 and chat_text(chat[2]) == slow
                    and chat_text(chat[3]).count(SLOW_WORD) >= 5) and chat
        shown = wait_for(mid_reply, 60, "the slow reply to start streaming")
        assert not job.done()
        os.kill(app.proc.pid, signal.SIGKILL)
        app.proc.wait(10)
    finally:
        if app.proc.poll() is None:
            app.proc.kill()
    assert app.proc.returncode == -signal.SIGKILL
    assert chat_text(shown[3]).count(SLOW_WORD) < 400  # really cut off mid-reply

    # acknowledged turns are there, the half reply is not, and the file is sound
    assert integrity(app.db) == "ok"
    stored = app.rows("SELECT role, content FROM turns WHERE session_id=? ORDER BY idx", (sid,))
    assert [r[0] for r in stored] == ["patient", "therapist", "patient"]
    assert stored[0][1] == first and stored[2][1] == slow and markers(stored[1][1])[0] == "a-0"
    assert app.rows("SELECT COUNT(*) FROM turns WHERE content LIKE ? OR reasoning LIKE ?",
                    (f"%{SLOW_WORD}%", f"%{SLOW_WORD}%"))[0][0] == 0
    assert app.rows("SELECT COUNT(*) FROM drafts")[0][0] == 0
    assert app.rows("SELECT status FROM sessions WHERE id=?", (sid,)) == [("active",)]

    # restarted on the same data dir: the session shows what was stored and goes on
    again = RunningApp(data, fake_env(site, FAKE_SLOW_DELAY="0", FAKE_SLOW_WORDS="20"))
    try:
        client = again.client()
        history = client.predict(sid, False, api_name="/history")
        assert [(m["role"], chat_text(m)) for m in history][::2] == [("user", first), ("user", slow)]
        chat, status, _ = client.predict(sid, False, api_name="/retry")  # Retry answers the waiting message
        assert status == "" and chat_text(chat[-1]).endswith("done.")
        sid2, chat, status, _ = client.predict(sid, "And today [[a-2]]?", False, "act", "fake-therapist",
                                               api_name="/send")
        assert sid2 == sid and status == ""
        assert markers(chat_text(chat[-1])) == ["a-2", "a-0", "slow", "a-2"]  # the whole history, in order
        stored = again.rows("SELECT role, content FROM turns WHERE session_id=? ORDER BY idx", (sid,))
        assert [r[0] for r in stored] == ["patient", "therapist"] * 3
        assert stored[3][1].startswith("Slowly") and stored[3][1].endswith("done.")  # complete, not a fragment
    finally:
        again.stop()
    assert integrity(again.db) == "ok"


# ---------------------------------------------------------------------------- 2. kill -9 of a training job

@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A 2-layer Llama with random weights and SmolLM2's tokenizer (read from the shipped GGUF)."""
    from tinymodels import save_tiny_llama
    from transformers import AutoTokenizer
    from models.embedded import embedded_gguf_path
    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tokenizer)


def test_training_job_killed_mid_epoch_reads_failed_and_offers_no_half_adapter(tmp_path, tiny_base):
    from config import load_settings
    from models.catalog import Catalog, CatalogError
    from services import build_services
    from store.jobs import ENDED_WITHOUT_REPORT, process_alive
    from training.build import BuildConfig, build
    from training.common import TrainConfig, write_card

    settings = load_settings(["--data-dir", str(tmp_path / "data")], env={})
    data = settings.data_dir
    build(BuildConfig("sft-mini", modality="act", limit=5, window=2), data)

    def recipe(name: str, steps: int) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"dataset: sft-mini\noutput: {name}\nbase: {tiny_base}\nmax_steps: {steps}\n"
                        "max_length: 1024\nlora_r: 4\nlora_alpha: 8\nexport_gguf: false\neval_at_end: false\n"
                        "device: cpu\n")
        return path

    services = build_services(settings)  # the app's side: job runner and catalog
    runner = services.jobs
    job = runner.launch("sft", ["training", "--data-dir", str(data), "sft", "--config", str(recipe("tiny", 100_000))],
                        {"output": "tiny"}, created_by="admin")
    partial = data / "adapters" / ".tiny.partial"
    try:
        def three_steps():
            assert runner.jobs.get(job["id"])["status"] == "running", runner.tail_log(job["id"])
            return [r for r in runner.read_progress(job["id"]) if r.get("loss") is not None and r["done"] >= 3]
        steps = wait_for(three_steps, 180, lambda: "three training steps: " + runner.tail_log(job["id"]))
        assert steps[-1]["total"] == 100_000  # mid-epoch, far from done
        assert (partial / "progress.jsonl").is_file()
        os.killpg(job["pid"], signal.SIGKILL)  # kill -9 of the job (its whole process group)
        wait_for(lambda: not process_alive(job["pid"]), 10, "the training process to die")
    finally:
        if process_alive(job["pid"]):
            os.killpg(job["pid"], signal.SIGKILL)
    # the app that launched it settles the job at once (its reaper, or the next read, whichever is first)
    failed = wait_for(lambda: (row := runner.jobs.get(job["id"]))["status"] != "running" and row, 10, "job settled")
    assert failed["status"] == "failed" and failed["error"].startswith(ENDED_WITHOUT_REPORT), failed
    assert failed["finished_utc"] and failed["progress"]["done"] < failed["progress"]["total"]
    services.store.close()

    # an app started afterwards shows the same, and no catalog offers the half adapter
    restarted = build_services(settings)
    try:
        row = next(j for j in restarted.jobs.jobs.list() if j["id"] == job["id"])
        assert row["status"] == "failed" and row["error"] == failed["error"]
        assert partial.is_dir() and not (data / "adapters" / "tiny").exists()
        assert "tiny" not in [e.id for e in restarted.catalog.entries()]
        with pytest.raises(CatalogError):
            restarted.catalog.get("tiny")
        # killed a moment later, after the card was written but before the folder was moved into
        # place, the work folder holds a complete-looking adapter: still not offered
        (partial / "peft").mkdir(exist_ok=True)
        (partial / "peft" / "adapter_config.json").write_text("{}")
        write_card(partial, TrainConfig(dataset="sft-mini", output="tiny", base=str(tiny_base)), "sft",
                   data / "datasets" / "sft-mini", {"steps": 3})
        fresh = Catalog(settings)  # as the next app start reads the adapter folders
        assert "tiny" not in [e.id for e in fresh.entries()] and not fresh.errors
        with pytest.raises(CatalogError):
            fresh.get("tiny")

        # the same training launched again finishes, and only then is the adapter offered
        rerun = restarted.jobs.launch("sft", ["training", "--data-dir", str(data), "sft", "--config",
                                              str(recipe("tiny", 2))], {"output": "tiny"}, created_by="admin")
        done = wait_for(lambda: (r := restarted.jobs.jobs.get(rerun["id"]))["status"] != "running" and r, 180,
                        "the rerun to finish")
        assert done["status"] == "done", restarted.jobs.tail_log(rerun["id"])
        assert not partial.exists() and (data / "adapters" / "tiny" / "card.json").is_file()
        assert json.loads((data / "adapters" / "tiny" / "card.json").read_text())["metrics"]["steps"] == 2
        assert restarted.catalog.get("tiny").source == "trained"
    finally:
        restarted.store.close()


# ---------------------------------------------------------------------------- 3. a judge that misbehaves

class _Endpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions that streams a scripted answer per transcript:
    the transcript's ``case-...`` word picks the behaviour."""
    answers: dict = {}
    requests: list = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = " ".join(m["content"] for m in body["messages"])
        case = next((c for c in self.answers if c in prompt), "case-good")
        type(self).requests.append(case)
        chunks = self.answers[case]
        try:
            if chunks == "slow":  # no answer at all within the client's timeout
                time.sleep(3)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, piece in enumerate(chunks):
                if piece is None:  # the stream stalls mid-answer
                    self.wfile.flush()
                    time.sleep(3)
                    return
                # a dict is sent as the delta itself: {"refusal": ...} is OpenAI's structured refusal
                delta = piece if isinstance(piece, dict) else {"content": piece}
                event = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "judge",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            done = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "judge",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timed out): as a real server would see it


def test_judge_run_survives_garbage_refusals_and_timeouts_and_rates_the_rest(settings):
    from eval.rubrics import load_rubric
    from eval.runs import JudgeRunSpec, run_judge, run_line
    from models.catalog import CatalogEntry
    from models.openai_backend import OpenAIBackend
    from services import build_services
    from store.ratings import RatingStore
    from store.sessions import TurnRecord

    tes = load_rubric("tes")
    valid = json.dumps({it.id: {"rationale": "seen in the session", "score": 5} for it in tes.items})
    refusal = "I'm sorry, but I can't rate this transcript."
    _Endpoint.answers = {
        "case-good": [valid[:40], valid[40:]],
        "case-other": [valid],
        "case-garbage": ["{{{ score: lots ]]", " <|im_end|>"],
        "case-refuses": [refusal],
        "case-api-refusal": [{"refusal": "I can't help with "}, {"refusal": "scoring people."}],
        "case-slow": "slow",
        "case-stalls": [valid[:30], None],
    }
    _Endpoint.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    svc = build_services(settings)
    try:
        svc.catalog.add(CatalogEntry("judge", "judge", "openai", base_url="http://x/v1", model="judge", source="test"))
        backend = OpenAIBackend("judge", f"http://127.0.0.1:{server.server_port}/v1", "judge", timeout=0.5,
                                max_retries=0)
        svc.pool.register("judge", backend)
        ids = {}
        for case in _Endpoint.answers:
            row = svc.sessions.create(modality="act", therapist_model="default", reasoning=False, study="faults",
                                      simulated=True)
            svc.sessions.add_turn(row["id"], TurnRecord("patient", f"I feel stuck at work ({case})."))
            svc.sessions.add_turn(row["id"], TurnRecord("therapist", "What does stuck feel like for you?"))
            svc.sessions.end(row["id"])
            ids[case] = row["id"]

        run = run_judge(svc.store, svc.pool, svc.audit, JudgeRunSpec("tes", "judge", "study:faults", concurrency=2, max_retries=2), tes)
        assert run["status"] == "done" and run["error"] is None
        assert (run["n_ok"], run["n_partial"], run["n_failed"], run["n_total"]) == (2, 0, 5, 7)
        assert "7/7 rated: 2 ok (29%), 0 partial (0%), 5 failed (71%)" in run_line(run)

        rated = {r["session_id"]: r for r in RatingStore(svc.store).list("tes", judge_run_id=run["id"])}
        assert set(rated) == set(ids.values())  # one rating per session, none skipped
        for case in ("case-good", "case-other"):
            r = rated[ids[case]]
            assert r["status"] == "ok" and r["total"] == 5.0 and len(r["scores"]) == len(tes.items)
        for case, raw in (("case-garbage", "{{{ score: lots ]] <|im_end|>"), ("case-refuses", refusal)):
            r = rated[ids[case]]
            assert r["status"] == "failed" and r["scores"] == {} and r["total"] is None
            assert r["detail"]["raw"] == [raw] * 3 and r["detail"]["attempts"] == 3  # every answer kept
            assert r["detail"]["problems"]
        r = rated[ids["case-api-refusal"]]  # the structured refusal is quoted as the reason
        assert r["status"] == "failed" and r["detail"]["attempts"] == 3
        quoted = "[backend error] The model refused to answer: I can't help with scoring people."
        assert r["detail"]["raw"] == [quoted] * 3
        for case in ("case-slow", "case-stalls"):
            r = rated[ids[case]]
            assert r["status"] == "failed" and r["scores"] == {} and r["detail"]["attempts"] == 3
            assert all(a.startswith("[backend error]") and "timed out after 0.5 s" in a for a in r["detail"]["raw"])
        assert _Endpoint.requests.count("case-slow") == 3 and _Endpoint.requests.count("case-good") == 1
        done = svc.audit.recent(action="judge.run_done")
        assert done and json.loads(done[0]["detail_json"]) == {"ok": 2, "partial": 0, "failed": 5}
    finally:
        server.shutdown()
        server.server_close()
        svc.store.close()


# ---------------------------------------------------------------------------- 4. read-only or full database

class Unwritable:
    """Makes every connection of a Store read-only (``PRAGMA query_only``: SQLITE_READONLY) or full
    (``max_page_count`` pinned at the current size: SQLITE_FULL for any write that needs a new page,
    as on a full disk), including the connections reply threads open later. Running as root,
    chmod would not stop a write; this does, on the app's own code path."""

    def __init__(self, monkeypatch, store):
        from store.db import Store
        self.mode = "ok"
        self.conns = [store.db.conn]
        connect = Store._connect

        def tracked(this):
            db = connect(this)
            self.conns.append(db.conn)
            self._apply(db.conn)
            return db
        monkeypatch.setattr(Store, "_connect", tracked)

    def set(self, mode: str) -> None:
        self.mode = mode
        for conn in self.conns:
            self._apply(conn)

    def _apply(self, conn) -> None:
        try:
            conn.execute(f"PRAGMA query_only={int(self.mode == 'readonly')}")
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count={pages if self.mode == 'full' else 1073741823}")
        except sqlite3.ProgrammingError:  # a closed connection
            pass


@pytest.fixture
def session_tab(settings, monkeypatch):
    from models.catalog import CatalogEntry
    from models.fake_backend import FakeBackend
    from services import build_services
    from ui.session_tab import SessionHandlers
    services = build_services(settings)
    services.engine.record_consent(None, "test")
    services.catalog.add(CatalogEntry("fake", "Fake", "fake", source="test"))
    replies = []
    backend = FakeBackend("fake", replies=lambda messages: replies.pop(0)(messages))
    services.pool.register("fake", backend)
    yield SessionHandlers(services), replies, Unwritable(monkeypatch, services.store)
    services.store.close()


def send(h, sid, text):
    """What the Session tab shows after Send: (session id, chat texts, status)."""
    sid, chat, _, status, _ = list(h.send(sid, text, False, "act", "fake"))[-1]
    return sid, [m["content"] for m in chat] if isinstance(chat, list) else chat, status


def stored(h, sid):
    return [(t["role"], t["content"]) for t in h.sessions.turns(sid)]


def test_read_only_database_refuses_the_turn_clearly_and_the_session_continues(session_tab):
    h, replies, disk = session_tab
    replies.append(lambda m: "That sounds hard. What happened?")
    sid, _, status = send(h, "", "I had a rough week.")
    assert status == ""
    before = stored(h, sid)

    disk.set("readonly")
    _, chat, status = send(h, sid, "My manager shouted at me.")  # nothing raised: a message on the page
    assert status.startswith("**Not sent:**") and "could not be saved" in status and "readonly" in status
    assert "Traceback" not in status
    new_sid, _, status = send(h, "", "Starting over today.")  # a new session cannot be opened either
    assert new_sid == "" and status.startswith("**Not sent:**") and "could not be saved" in status
    assert not h.engine.replying(sid)  # the refused turn released the session

    disk.set("ok")
    assert stored(h, sid) == before and len(h.sessions.list()) == 1  # nothing lost, nothing half-stored
    replies.append(lambda m: "Shouting is upsetting. How did you respond?")
    _, chat, status = send(h, sid, "My manager shouted at me.")
    assert status == "" and chat[-1] == "Shouting is upsetting. How did you respond?"
    assert stored(h, sid) == before + [("patient", "My manager shouted at me."),
                                       ("therapist", "Shouting is upsetting. How did you respond?")]
    assert h.services.store.integrity_check() == "ok"


def test_full_disk_refuses_the_turn_keeps_what_is_stored_and_retry_recovers(session_tab):
    h, replies, disk = session_tab
    replies.append(lambda m: "Tell me about your week.")
    sid, _, _ = send(h, "", "Hello.")
    before = stored(h, sid)
    long_text = "I keep going over it. " * 300  # ~6,600 characters: needs new pages

    disk.set("full")
    _, _, status = send(h, sid, long_text)
    assert status.startswith("**Not sent:**") and "full" in status
    assert stored(h, sid) == before

    # the disk fills up while the reply is being written: the message is kept, the reply is not
    disk.set("ok")

    def fill_then_answer(messages):
        disk.set("full")
        return "Slow-down-and-breathe-together. " * 240  # ~7,700 characters in 240 streamed words
    replies.append(fill_then_answer)
    _, chat, status = send(h, sid, "Can we talk about sleep?")
    assert "could not be saved" in status and "full" in status
    assert stored(h, sid) == before + [("patient", "Can we talk about sleep?")]
    assert not h.engine.replying(sid)

    disk.set("ok")  # space freed: Retry answers the waiting message, and the session goes on
    replies.append(lambda m: "Sleep matters. What time do you usually go to bed?")
    chat, _, status, _ = list(h.retry(sid, False))[-1]
    assert status == "" and chat[-1]["content"] == "Sleep matters. What time do you usually go to bed?"
    replies.append(lambda m: "Midnight is late for you?")
    _, chat, status = send(h, sid, long_text)
    assert status == ""
    assert [r for r, _ in stored(h, sid)] == ["patient", "therapist"] * 3
    assert stored(h, sid)[:3] == before + [("patient", "Can we talk about sleep?")]
    assert stored(h, sid)[4] == ("patient", long_text.strip())
    assert h.services.store.integrity_check() == "ok"
