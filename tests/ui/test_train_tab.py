"""Admin · Train through gradio_client: build a dataset and train an SFT adapter as background jobs,
follow the loss, and chat with the new adapter in the Session tab without restarting the app."""
from __future__ import annotations

import json
import time

import pytest
from apprunner import RunningApp, chat_text


@pytest.fixture(scope="module")
def app(tmp_path_factory, embedded_hf_data_dir):
    import os
    data = tmp_path_factory.mktemp("train-tab")
    (data / "models").mkdir()
    os.symlink(embedded_hf_data_dir / "models" / "smollm2-135m-instruct", data / "models" / "smollm2-135m-instruct")
    running = RunningApp(data)
    running.client()
    yield running
    running.stop()


def follow(client, job_id, limit=600):
    deadline = time.monotonic() + limit
    line = ""
    while time.monotonic() < deadline:
        plot, line = client.predict(job_id, api_name="/train_follow")
        if any(f"**{s}**" in line for s in ("done", "failed", "cancelled")):
            return plot, line
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not finish: {line}")


def test_build_train_follow_and_chat_with_the_new_adapter(app):
    client = app.client()
    note, followed = client.predict("mini", "sft", "act", False, 1, api_name="/train_build")
    assert "Launched" in note, note
    assert followed == note.split("`")[1]  # the launched job is followed at once
    _, line = follow(client, followed)
    assert "**done**" in line, line
    label = 'UI SFT: "r4" # it\'s \\ 1'  # YAML would misread this unquoted or quoted with repr
    note, job_id = client.predict("sft", "mini", "ui-sft", label, "act", False, 1, 2, 0.002, 4, 8, "q_proj,v_proj",
                                  512, api_name="/train_start")
    assert "Launched" in note and job_id == note.split("`")[1], note
    plot, line = follow(client, job_id)
    assert "**done**" in line and "ui-sft" in line, line
    points = plot["value"]["data"] if isinstance(plot, dict) and "value" in plot else plot["data"]
    assert len(points) == 2  # one loss point per optimiser step
    card = json.loads((app.data / "adapters" / "ui-sft" / "card.json").read_text())
    assert card["label"] == label
    assert card["method"] == "sft" and card["recipe"]["lora_r"] == 4 and card["metrics"]["steps"] == 2
    assert (app.data / "adapters" / "ui-sft" / "adapter.gguf").is_file()
    models = client.predict("act", api_name="/session_models")
    assert "ui-sft" in [c[1] for c in models["choices"]]
    client.predict(True, api_name="/accept_consent")
    sid, chat, status, _ = client.predict("", "I keep putting off my essay.", False, "act", "ui-sft", api_name="/send")
    assert sid and chat_text(chat[-1]).strip(), (chat, status)
    assert app.rows("SELECT therapist_model FROM sessions WHERE id=?", (sid,))[0][0] == "ui-sft"
    assert app.rows("SELECT model_id FROM turns WHERE session_id=? AND role='therapist'", (sid,))[0][0] == "ui-sft"


def test_bad_training_input_is_refused_before_any_job(app):
    client = app.client()
    before = app.rows("SELECT COUNT(*) FROM jobs")[0][0]
    note, _ = client.predict("sft", "no-such-dataset", "x", "", "act", False, 1, 1, 0.1, 4, 8, "q_proj", 512,
                             api_name="/train_start")
    assert "Not launched" in note and "dataset" in note
    note, _ = client.predict("sft", "mini", "../escape", "", "act", False, 1, 1, 0.1, 4, 8, "q_proj", 512,
                             api_name="/train_start")
    assert "Not launched" in note and "adapter id" in note
    note, _ = client.predict("bad name!", "sft", "act", False, 1, api_name="/train_build")
    assert "Not launched" in note
    assert app.rows("SELECT COUNT(*) FROM jobs")[0][0] == before
