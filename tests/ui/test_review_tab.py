"""The Review tab through gradio_client as raters use it: find sessions, open one, fill the rubric
form, save, edit, see a second rater and a judge beside you; patients are refused and audited."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from apprunner import ROOT, RunningApp, chat_text
from gradio_client.exceptions import AppError

from eval.rubrics import load_rubric
from store.db import Store
from store.ratings import RatingStore
from store.sessions import SessionStore, TurnRecord

PASSWORD = "correct-horse-battery"
TES = load_rubric("tes")


def seed(data) -> dict:
    """Two finished sessions in different studies; one already has a judge rating."""
    store = Store(data / "sessions.db")
    sessions = SessionStore(store)
    ids = {}
    for study, words in (("alpha", "my sister moved away"), ("beta", "the insomnia is back")):
        row = sessions.create(modality="act", therapist_model="default", reasoning=True, study=study,
                              variant="sft", simulated=True)
        sessions.add_turn(row["id"], TurnRecord("patient", f"Lately {words}."))
        sessions.add_turn(row["id"], TurnRecord("therapist", "What is that like for you?",
                                                reasoning="Open question; make room for the feeling."))
        sessions.end(row["id"])
        ids[study] = row["id"]
    ratings = RatingStore(store)
    run = ratings.create_run("tes", "default", "all", {}, "test")
    scores = {it.id: 3 for it in TES.items}
    result = TES.score(scores)
    ratings.save(session_id=ids["alpha"], rater_id="default", rater_kind="judge", rubric_id="tes", rubric_version=1,
                 scores=scores, totals=result["totals"], total=result["total"], status="ok", judge_run_id=run["id"])
    store.close()
    return ids


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data = tmp_path_factory.mktemp("review")
    for name, role in (("rater1", "supervisor"), ("rater2", "admin"), ("pat", "patient")):
        subprocess.run([sys.executable, "-m", "store", "--data-dir", str(data), "users", "add", name, "--role", role],
                       cwd=ROOT, check=True, capture_output=True, env={**os.environ, "THERALAB_PASSWORD": PASSWORD})
    ids = seed(data)
    own = (ROOT / "eval" / "rubrics" / "tes.yaml").read_text().replace("id: tes", "id: my-tes", 1)
    (data / "rubrics").mkdir()
    (data / "rubrics" / "my-tes.yaml").write_text(own.replace("name: Therapist Empathy Scale (TES)", "name: My TES", 1))
    running = RunningApp(data)
    running.ids = ids
    running.client(auth=("rater1", PASSWORD))
    yield running
    running.stop()


def form_values(outputs) -> list:
    """The radio values out of a view: (..., about, comment, *items)."""
    return [o if not isinstance(o, dict) else o.get("value") for o in outputs]


def test_find_filters_by_study_and_words(app):
    client = app.client(auth=("rater1", PASSWORD))
    table, line = client.predict("alpha", "", "", "any", "any", "", api_name="/review_find")
    assert [r[0] for r in table["data"]] == [app.ids["alpha"]] and "1 session" in line
    table, _ = client.predict("", "", "", "any", "simulated", "insomnia", api_name="/review_find")
    assert [r[0] for r in table["data"]] == [app.ids["beta"]]
    table, _ = client.predict("", "", "", "open", "any", "", api_name="/review_find")
    assert table["data"] == [] or table["data"] == [[""] * len(table["headers"])]


def test_rating_round_trip_edit_and_second_rater(app):
    sid = app.ids["alpha"]
    r1 = app.client(auth=("rater1", PASSWORD))
    view = r1.predict(sid, "tes", True, api_name="/review_open")
    assert view[0] == sid and any("Open question" in chat_text(m) for m in view[2])  # reasoning shown
    assert "judge" in " ".join(view[3]["headers"])  # the judge's scores are already beside the form
    scores = [5, 6, 4, 5, 7, 5, 6, 5, 4]
    status, table = r1.predict(sid, "tes", "warm, a bit rushed", *scores, *[None] * 31, api_name="/review_save")
    assert "Saved" in status
    stored = app.rows("SELECT scores_json, total, comment, rubric_version FROM ratings "
                      "WHERE rater_id='rater1' AND rater_kind='human'")
    assert len(stored) == 1 and json.loads(stored[0][0]) == {it.id: s for it, s in zip(TES.items, scores)}
    assert stored[0][1] == pytest.approx(sum(scores) / 9) and stored[0][2] == "warm, a bit rushed" and stored[0][3] == 1
    reopened = r1.predict(sid, "tes", True, api_name="/review_open")
    assert form_values(reopened[6:15]) == scores and reopened[5] == "warm, a bit rushed"  # loads back into the form
    edited = [1] + scores[1:]
    r1.predict(sid, "tes", "", *edited, *[None] * 31, api_name="/review_save")
    stored = app.rows("SELECT scores_json FROM ratings WHERE rater_id='rater1' AND rater_kind='human'")
    assert len(stored) == 1 and json.loads(stored[0][0])["concern"] == 1  # edited, not duplicated

    r2 = app.client(auth=("rater2", PASSWORD))
    r2.predict(sid, "tes", False, api_name="/review_open")  # a rater opens the session before the form
    status, table = r2.predict(sid, "tes", "", *[2] * 9, *[None] * 31, api_name="/review_save")
    headers = table["headers"]
    assert "rater1 (human)" in headers and "rater2 (human)" in headers and any("judge" in h for h in headers)
    assert app.rows("SELECT COUNT(*) FROM ratings WHERE session_id=? AND rater_kind='human'", (sid,))[0][0] == 2
    assert app.rows("SELECT COUNT(*) FROM audit WHERE action='rating.save'")[0][0] == 3


def test_incomplete_form_is_refused_and_nothing_is_stored(app):
    sid = app.ids["beta"]
    client = app.client(auth=("rater1", PASSWORD))
    client.predict(sid, "tes", True, api_name="/review_open")
    status, _ = client.predict(sid, "tes", "", 4, 4, None, 4, 4, 4, 4, 4, 4, *[None] * 31, api_name="/review_save")
    assert "Not saved" in status and "missing" in status
    assert app.rows("SELECT COUNT(*) FROM ratings WHERE session_id=?", (sid,))[0][0] == 0


def test_a_bigger_rubric_relabels_the_form(app):
    client = app.client(auth=("rater1", PASSWORD))
    out = client.predict(app.ids["beta"], "act-fm", api_name="/review_form")
    assert "ACT" in out[1]
    status, _ = client.predict(app.ids["beta"], "act-fm", "", *[2] * 25, *[None] * 15, api_name="/review_save")
    assert "Saved" in status
    total = app.rows("SELECT total FROM ratings WHERE session_id=? AND rubric_id='act-fm'", (app.ids["beta"],))[0][0]
    assert total == pytest.approx(load_rubric("act-fm").score({it.id: 2 for it in load_rubric("act-fm").items})["total"])


def test_patients_are_refused_and_audited(app):
    pat = app.client(auth=("pat", PASSWORD))
    for args, api in (((app.ids["alpha"], "tes", True), "/review_open"),
                      (("", "", "", "any", "any", ""), "/review_find"),
                      ((app.ids["alpha"], "tes", "", *[None] * 40), "/review_save")):
        with pytest.raises(AppError, match="may not"):
            pat.predict(*args, api_name=api)
    assert app.rows("SELECT COUNT(*) FROM audit WHERE action='access.denied' AND actor='pat'")[0][0] >= 3
    assert app.rows("SELECT COUNT(*) FROM ratings WHERE rater_id='pat'")[0][0] == 0


def test_a_users_own_rubric_appears_in_the_form_and_the_cli(app):
    client = app.client(auth=("rater1", PASSWORD))
    _, _, rubrics = client.predict(api_name="/review_filters")
    assert "my-tes" in [c[1] for c in rubrics["choices"]]
    client.predict(app.ids["beta"], "my-tes", True, api_name="/review_open")
    status, _ = client.predict(app.ids["beta"], "my-tes", "", *[6] * 9, *[None] * 31, api_name="/review_save")
    assert "Saved" in status
    listed = subprocess.run([sys.executable, "-m", "eval", "--data-dir", str(app.data), "rubrics"], cwd=ROOT,
                            capture_output=True, text=True)
    assert listed.returncode == 0 and "my-tes" in listed.stdout and "My TES" in listed.stdout


def test_admin_sees_agreement_between_raters_and_the_judge(app):
    store = Store(app.db)  # two more raters and a judge on the second session, written as the app would
    ratings = RatingStore(store)
    run = ratings.create_run("tes", "default", "study:beta", {}, "test")
    for rater, kind, score in (("hx1", "human", 4), ("hx2", "human", 5), ("default", "judge", 6)):
        scores = {it.id: score for it in TES.items}
        result = TES.score(scores)
        ratings.save(session_id=app.ids["beta"], rater_id=rater, rater_kind=kind, rubric_id="tes", rubric_version=1,
                     scores=scores, totals=result["totals"], total=result["total"], status="ok",
                     judge_run_id=run["id"] if kind == "judge" else None)
    store.close()
    admin = app.client(auth=("rater2", PASSWORD))
    update, line = admin.predict("tes", "", api_name="/admin_agreement")
    table = update["value"]  # an update: the columns come with the rows
    comparisons = {row[0] for row in table["data"]}
    assert "human vs human" in comparisons and any(c.startswith("judge default") for c in comparisons), comparisons
    headers = table["headers"]
    row = next(r for r in table["data"] if r[0] == "human vs human" and r[1] == "concern")
    assert int(row[headers.index("n")]) >= 1
    with pytest.raises(AppError, match="may not"):
        app.client(auth=("rater1", PASSWORD)).predict("tes", "", api_name="/admin_agreement")  # supervisors: no
