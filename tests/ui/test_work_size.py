"""Issue 19 (4): long work shows its size before it starts, from rates measured on this machine,
and a judge selection that matches nothing is refused before launch."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from eval.estimate import WorkSize, judge_size, simulation_size
from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from services import build_services
from store.sessions import TurnRecord
from ui.access import Access
from ui.admin_tab import AdminHandlers


@pytest.fixture
def svc(settings):
    services = build_services(settings)
    services.users.add("boss", "a-long-password", "admin")
    services.sign_in = True
    services.catalog.add(CatalogEntry("fake", "Fake", "fake", source="test"))
    services.pool.register("fake", FakeBackend("fake", replies=lambda m: "Hi."))
    yield services
    services.store.close()


def timed_replies(svc, model_id: str, latencies_ms: list[int]) -> None:
    session = svc.sessions.create(modality="act", therapist_model=model_id, reasoning=False)
    for ms in latencies_ms:
        svc.sessions.add_turn(session["id"], TurnRecord("therapist", "A reply.", model_id=model_id, latency_ms=ms))


def test_a_simulation_is_sized_from_each_models_median_reply_time(svc):
    timed_replies(svc, "fast", [1000, 2000, 3000])   # median 2 s
    timed_replies(svc, "slow", [9000, 10000, 50000])  # median 10 s: one outlier does not move it
    size = simulation_size(svc.store, ["fast", "slow"], "fast", personas=3, turns=4, repeats=2)
    assert (size.sessions, size.exchanges) == (12, 48)
    # each therapist answers 24 times; the patient (fast) writes all 48 messages
    assert size.seconds == pytest.approx(24 * 2 + 24 * 10 + 48 * 2)
    assert "12 simulated session(s), 48 exchanges" in size.line() and "about 6 min" in size.line()
    assert size.needs_confirmation()  # more than 8 sessions
    small = simulation_size(svc.store, ["fast"], "fast", personas=1, turns=2)
    assert not small.needs_confirmation() and small.seconds == pytest.approx(8)


def test_an_unmeasured_model_is_named_and_asks_for_confirmation(svc):
    size = simulation_size(svc.store, ["never-run"], "never-run", personas=1, turns=1)
    assert size.unmeasured == ["never-run", "never-run"] and "no estimate: never-run not yet timed" in size.line()
    assert size.needs_confirmation()
    assert not WorkSize().needs_confirmation() and WorkSize().line() == "nothing to do"


def test_a_judge_is_sized_from_its_finished_runs(svc):
    from store.ratings import RatingStore
    ratings = RatingStore(svc.store)
    run = ratings.create_run("tes", "fake", "all", {}, "cli", None)
    ratings.update_run(run["id"], status="done", n_ok=10)
    with svc.store.write() as db:  # a run of 10 sessions that took 100 s
        db.execute("UPDATE judge_runs SET started_utc = ?, finished_utc = ? WHERE id = ?",
                   ["2026-01-01T00:00:00.000Z", "2026-01-01T00:01:40.000Z", run["id"]])
    assert ratings.judge_seconds("fake", "tes") == pytest.approx(10)
    size = judge_size(svc.store, ["fake"], ["tes", "act-fm"], 6)
    assert size.judge_calls == 12 and size.seconds == pytest.approx(60) and size.unmeasured == ["fake on act-fm"]


def test_a_judge_selection_that_matches_nothing_is_refused_before_launch(svc):
    admin = AdminHandlers(svc, Access(svc))
    boss = SimpleNamespace(username="boss")
    note, _, _ = admin.launch_judge("tes", "fake", "study:nosuchstudy", 1, False, False, boss)
    assert note.startswith("**Not launched:**") and "no ended session matches" in note
    note, _, _ = admin.launch_judge("tes", "fake", "01NOSUCHSESSION", 1, False, False, boss)
    assert "unknown session" in note
    assert svc.jobs.jobs.list() == []
    sid = svc.engine.start("act", "fake", actor="t", simulated=True)["id"]
    svc.engine.end(sid)
    note, _, _ = admin.launch_judge("tes", "fake", "all", 1, False, False, boss)
    assert note.startswith("Launched judge job") and "1 session(s), 1 judge call(s)" in note
    for job in svc.jobs.jobs.list():
        svc.jobs.cancel(job["id"], "boss")


def test_a_launched_simulation_says_its_size(svc):
    admin = AdminHandlers(svc, Access(svc))
    note, _ = admin.launch_simulation(["fake"], "sample:2", "fake", 3, 1, 1, "x", SimpleNamespace(username="boss"))
    assert note.startswith("Launched job") and "2 simulated session(s), 6 exchanges" in note
    for job in svc.jobs.jobs.list():
        svc.jobs.cancel(job["id"], "boss")


def test_a_built_dataset_appears_in_the_train_picker_without_a_reload(svc):
    """Issue 19 (5): the Admin timer's tick lists a dataset as soon as its build job has written it,
    and chooses it when that build is the job being followed."""
    from store.jobs import JobStore
    from ui.train_tab import TrainHandlers
    h = TrainHandlers(svc, Access(svc))
    boss = SimpleNamespace(username="boss")
    listed = h.datasets()
    assert listed == []
    jobs = JobStore(svc.store)
    job = jobs.create("build", ["training"], {"method": "build", "settings": {"name": "fresh"}}, "boss")
    _, line, picker, listed = h.follow_all(job["id"], listed, boss)
    assert picker == gr.update() and listed == [] and job["id"] in line  # nothing built yet
    folder = svc.settings.data_dir / "datasets" / "fresh"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text('{"messages": []}\n')
    jobs.mark_running(job["id"], 1)
    jobs.finish(job["id"], "done")
    _, _, picker, listed = h.follow_all(job["id"], listed, boss)
    assert picker["choices"] == ["fresh"] and picker["value"] == "fresh" and listed == ["fresh"]
    assert h.follow_all(job["id"], listed, boss)[2] == gr.update()  # unchanged: the picker is left alone
