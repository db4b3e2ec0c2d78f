"""Issue 18's reproduction at the level of the app: started with ``--config theralab.toml``, whose
models exist only in that file, the Admin tab launches a simulation job and a judge job that use
those models and the file's limits.

Before the fix, each job rebuilt its settings from ``--data-dir`` alone: the child did not know
``my-therapist`` or ``my-judge`` (the job failed on an unknown model) and replied with the default
``max_tokens`` of 150. Real processes, the real embedded model under the config file's own ids.
"""
from __future__ import annotations

import json

import pytest

from apprunner import wait_for


@pytest.fixture
def configured(tmp_path):
    """Services built from a config file, as ``python app.py --config theralab.toml`` builds them."""
    from config import load_settings
    from models.embedded import embedded_gguf_path
    from services import build_services
    gguf = embedded_gguf_path()
    (tmp_path / "theralab.toml").write_text(f"""
max_tokens = 24
temperature = 0.0
crisis_locale = "UK"
[[models]]
id = "my-therapist"
label = "Therapist defined only in the config file"
backend = "llama_cpp"
path = {json.dumps(str(gguf))}
modality = "any"
[[models]]
id = "my-judge"
label = "Judge defined only in the config file"
backend = "llama_cpp"
path = {json.dumps(str(gguf))}
modality = "any"
""", encoding="utf-8")
    settings = load_settings(["--config", str(tmp_path / "theralab.toml"), "--data-dir", str(tmp_path / "data")],
                             env={})
    assert settings.max_tokens == 24 and {m["id"] for m in settings.models} == {"my-therapist", "my-judge"}
    services = build_services(settings)
    yield services
    services.store.close()


def _finished(services, job_id: str, timeout: float) -> dict:
    def done():
        job = services.jobs.jobs.get(job_id)
        return job if job["status"] in ("done", "failed", "cancelled") else None
    job = wait_for(done, timeout, f"job {job_id} to finish")
    log = services.jobs.jobs.get(job_id).get("log_path")
    assert job["status"] == "done", (job.get("error"), open(log).read()[-3000:] if log else "")
    return job


def test_admin_jobs_use_the_models_and_limits_of_the_apps_config_file(configured):
    from ui.access import Access
    from ui.admin_tab import AdminHandlers
    admin = AdminHandlers(configured, Access(configured))  # single-researcher mode: the researcher is admin

    note, _ = admin.launch_simulation(["my-therapist"], "sample:1", "my-judge", 1, 1, 1, "cfg", None)
    assert note.startswith("Launched job"), note
    _finished(configured, note.split("`")[1], timeout=300)
    sessions = configured.sessions.in_study("cfg", simulated=True, status="ended")
    assert len(sessions) == 1
    session = sessions[0]
    assert (session["therapist_model"], session["patient_model"]) == ("my-therapist", "my-judge")
    therapist_turns = [t for t in configured.sessions.turns(session["id"]) if t["role"] == "therapist"]
    assert therapist_turns and all(t["model_id"] == "my-therapist" for t in therapist_turns)
    # the reply budget of the config file (24), not the default (150)
    assert all(0 < (t["tokens_out"] or 0) <= 24 for t in therapist_turns), [t["tokens_out"] for t in therapist_turns]

    note, _, _ = admin.launch_judge("tes", "my-judge", "study:cfg", 1, False, True, None)
    assert note.startswith("Launched judge job"), note
    job = _finished(configured, note.split("`")[1], timeout=420)
    from store.ratings import RatingStore
    runs = [r for r in RatingStore(configured.store).runs() if r.get("job_id") == job["id"]]
    assert len(runs) == 1 and runs[0]["judge_model"] == "my-judge" and runs[0]["status"] == "done", runs
    assert runs[0]["n_ok"] + runs[0]["n_partial"] + runs[0]["n_failed"] == 1
