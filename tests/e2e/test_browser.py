"""End to end in a real browser: Playwright drives Debian's chromium against ``python app.py``.

One app (accounts mode: two patients, a supervisor, an admin) serves the four scenarios; each user
gets their own browser context, so their sign-in cookies stay apart. The assertions read what the
page shows and what landed in ``<data dir>/sessions.db``.

Models: the first scenario chats with the real embedded model (llama.cpp on the CPU, short
replies, greedy). The others use scripted models, injected into the app subprocess (and the jobs
it starts) through a ``sitecustomize`` on PYTHONPATH (tests/fakeapp.py):
the catalog entries come from a config file, and ``ModelPool`` builds them as fake backends.
Everything else (Gradio, the handlers, the session engine, jobs, SQLite) is the real thing, and the
training job really trains (TRL + PEFT on the embedded model, a tiny dataset) until it is cancelled.

Every tab visited is saved as a full-page screenshot under tests/e2e/artifacts/ (gitignored); a
failed test also leaves ``FAILED-<test>-<user>.png`` of each page it had open.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and os.environ.get("THERALAB_REQUIRE_E2E"):  # .ci/run sets it: CI must not skip
    raise RuntimeError("THERALAB_REQUIRE_E2E is set but /usr/bin/chromium is missing (apt-get install chromium)")
if not CHROMIUM.exists():
    pytest.skip("end-to-end browser tests need Debian's chromium at /usr/bin/chromium "
                "(apt-get install chromium; scripts/install.sh does it when run as root)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="end-to-end browser tests need playwright "
                               "(pip install -r requirements.txt)")

from apprunner import ROOT, RunningApp, wait_for
from fakeapp import SLOW_REPLY, THERAPISTS, fake_env, models_config, reasoning_script, write_site

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "correct-horse-battery"
USERS = (("pat1", "patient"), ("pat2", "patient"), ("pat3", "patient"), ("sup1", "supervisor"), ("adm1", "admin"))
WAIT_MS = 60_000            # ordinary page updates (a busy 2-core machine is slow)
MODEL_WAIT_MS = 240_000     # a reply of the real model, a job's first training step

REASONING_TITLE = "Reasoning (never shown to the patient)"
PATIENT = "Work has been heavy and I keep putting things off."
REASONING = "The patient avoids tasks; explore values before any technique."
ANSWER = "What would matter to you about work if the dread were quieter?"
RISK_HIGH = "I have pills saved up and I plan to take them all."  # the risk screen says: high, self_harm

# The scripted models (tests/fakeapp.py runs them; every word streams FAKE_DELAY s, like a model)
SCRIPT = reasoning_script(PATIENT, REASONING, ANSWER)
CONFIG = models_config(*THERAPISTS, ("fake-patient", "Scripted patient"), ("fake-judge", "Scripted judge"),
                       preload_default=None)


# ----- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(tmp_path_factory, embedded_hf_data_dir):
    from store.db import Store
    from store.users import UserStore
    data = tmp_path_factory.mktemp("e2e")
    store = Store(data / "sessions.db")
    for name, role in USERS:
        UserStore(store).add(name, PASSWORD, role)
    store.close()
    # Admin > Train: the embedded model's transformers checkpoint (built once per test run) and a
    # tiny dataset (one ACT transcript cut into single exchanges, no validation split).
    (data / "models").mkdir()
    os.symlink(embedded_hf_data_dir / "models" / "smollm2-135m-instruct", data / "models" / "smollm2-135m-instruct")
    subprocess.run([sys.executable, "-m", "training", "--data-dir", str(data), "build", "name=tiny", "kind=sft",
                    "modality=act", "reasoning=false", "window=1", "limit=1"], cwd=ROOT, check=True,
                   capture_output=True)
    site = write_site(tmp_path_factory.mktemp("e2e-site"), SCRIPT, CONFIG)
    running = RunningApp(data, fake_env(site, FAKE_DELAY="0.02", THERALAB_MAX_TOKENS="24",
                                        THERALAB_REASONING_BUDGET="16", THERALAB_TEMPERATURE="0",
                                        THERALAB_SUPERVISE_REFRESH_S="1"))
    running.client(auth=("sup1", PASSWORD), timeout=180)  # waits until the app answers
    yield running
    running.stop()
    stop_leftover_jobs(data)


def stop_leftover_jobs(data: Path) -> None:
    """A job the app started runs in its own process group: end any that a failed test left running."""
    import signal

    from store.db import Store
    from store.jobs import ACTIVE, JobStore, process_alive
    store = Store(data / "sessions.db")
    try:
        for job in JobStore(store).list(reconcile=False):
            if job["status"] in ACTIVE and process_alive(job["pid"], job["process"]):
                os.killpg(job["pid"], signal.SIGTERM)
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def expect(locator):
    return sync_api.expect(locator)


class User:
    """One signed-in person: their own browser context and page."""

    def __init__(self, browser, app: RunningApp, username: str):
        self.app, self.username = app, username
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.page.goto(app.url)
        self.page.get_by_label("username").fill(username)
        self.page.get_by_label("password").fill(PASSWORD)
        self.page.get_by_role("button", name="Login").click()
        sync_api.expect(self.page.get_by_text("Signed in as")).to_contain_text(username)

    def tab(self, name: str):
        self.page.get_by_role("tab", name=name, exact=True).click()
        return self

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.wait_for_timeout(300)  # let the last redraw settle
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def visible(self, locator):
        return locator.filter(visible=True)

    def button(self, name: str):
        return self.visible(self.page.get_by_role("button", name=name, exact=True))

    def field(self, label: str):
        return self.visible(self.page.get_by_label(label, exact=True))

    def choose(self, label: str, option: str) -> None:
        """Pick ``option`` in the visible dropdown labelled ``label``."""
        box = self.field(label)
        box.click()
        options = self.page.locator(f"#{box.get_attribute('aria-controls')}")  # this dropdown's own list
        options.get_by_role("option", name=option, exact=True).click()
        expect(box).to_have_value(option)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def users(browser, app, request):
    """Signs people in, each in their own browser context; on a failure, screenshots every open page."""
    opened: list[User] = []

    def sign_in(username: str) -> User:
        opened.append(User(browser, app, username))
        return opened[-1]

    yield sign_in
    failed = getattr(request.node, "e2e_failed", False)
    for user in opened:
        if failed:
            user.shot(f"FAILED-{request.node.name}-{user.username}")
        user.close()


def consent(user: User) -> None:
    user.page.get_by_label("I have read this information and I agree to take part").check()
    user.button("Continue").click()
    expect(user.field("Your message (you are the patient)")).to_be_visible()


def send(user: User, text: str) -> None:
    user.field("Your message (you are the patient)").fill(text)
    user.button("Send").click()


def bot_messages(user: User, chat: str):
    return user.page.locator(f"#{chat} [data-testid='bot']")


def session_id(user: User) -> str:
    return wait_for(lambda: user.field("Session id").input_value(), 60, "the session id", interval=0.2)


def words(text: str) -> str:
    """Letters and digits only, lower case: compares stored text with its Markdown rendering."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def unfold(transcript, reasoning: str, limit: float = 60) -> None:
    """Open the collapsed reasoning block (a refresh may fold it again) until its text stays shown."""
    deadline, seen = time.monotonic() + limit, 0
    while seen < 2:
        if time.monotonic() > deadline:
            raise AssertionError(f"the reasoning never stayed visible: {transcript.inner_text()!r}")
        if words(reasoning) in words(transcript.inner_text()):
            seen += 1
        else:
            seen = 0
            transcript.get_by_text(REASONING_TITLE).first.click()
        time.sleep(1)


def open_in_supervise(supervisor: User, sid: str, shown: str) -> None:
    """Type the session id, let the tab's refresh (which follows the id box) draw the session, then
    press Open, which also records the read in the audit log.

    Waiting for the refresh first keeps a refresh that left before the id was typed from landing
    after Open: it would draw the empty view, and the empty view's shared ``gr.update`` for the flag
    dropdown has lost its ``value`` key after its first use (Gradio pops it), so the page would keep
    the old flag selected while the server's choices are empty; every later refresh then fails with
    "Value: ... is not in the list of choices: []" (reported; see the check below).
    """
    supervisor.field("Open session id").fill(sid)
    expect(supervisor.page.locator("#supervise-transcript")).to_contain_text(shown)
    supervisor.button("Open").click()
    supervisor.page.wait_for_timeout(2500)  # two refreshes
    expect(supervisor.page.get_by_text("is not in the list of choices")).to_have_count(0)


def call_api(user: User, api_name: str, data: list) -> list[dict]:
    """A direct call of a Gradio endpoint from the user's page, with their cookie, as a tampering user
    could make it: the server-sent events of the call, as {event, data} (the last is "complete")."""
    return user.page.evaluate(
        """async ([name, data]) => {
            const post = await fetch(`gradio_api/call/${name}`, {method: "POST",
                headers: {"Content-Type": "application/json"}, body: JSON.stringify({data})});
            const {event_id} = await post.json();
            const text = await (await fetch(`gradio_api/call/${name}/${event_id}`)).text();
            const events = text.split("\\n\\n").filter(Boolean).map(block => {
                const lines = block.split("\\n");
                const data = lines.slice(1).join("\\n").replace("data: ", "");
                return {event: lines[0].replace("event: ", ""), data};
            });
            return events;
        }""", [api_name, data])


# ----- scenarios -------------------------------------------------------------------------------

def test_patient_chats_with_the_embedded_model_and_only_a_supervisor_sees_the_reasoning(app, users):
    patient = users("pat1")
    assert patient.page.get_by_role("tab").all_inner_texts() == ["Session"]
    consent(patient)
    consents = app.rows("SELECT c.version FROM consents c JOIN users u ON u.id = c.user_id WHERE u.username='pat1'")
    assert len(consents) == 1
    expect(patient.page.get_by_label("Show reasoning (supervisor / researcher view)")).to_have_count(0)

    patient.choose("Therapist model", "SmolLM2-135M-Instruct · Instruct (reasoning)")  # the real embedded model
    message = "I have been feeling low and tired this week."
    send(patient, message)
    sid = session_id(patient)
    query = "SELECT role, content, reasoning, model_id FROM turns WHERE session_id=? ORDER BY idx"
    stored = wait_for(lambda: len(rows := app.rows(query, (sid,))) >= 2 and rows,
                      timeout=MODEL_WAIT_MS / 1000, what="the therapist's reply in the database")
    assert [row[0] for row in stored] == ["patient", "therapist"]
    assert stored[0][1] == message
    reply, reasoning, model_id = stored[1][1], stored[1][2], stored[1][3]
    assert model_id == "default-think" and reply.strip() and reasoning and reasoning.strip()
    chat = patient.page.locator("#session-chat")
    expect(bot_messages(patient, "session-chat")).to_have_count(1)
    expect(chat.get_by_text(message)).to_be_visible()
    wait_for(lambda: words(reply)[:20] in words(bot_messages(patient, "session-chat").inner_text()),
             60, "the stored reply on the patient's page", interval=0.2)  # its start: Markdown may render the rest
    # the patient never sees the reasoning: no toggle, no block, not even through a forged API call.
    # The small model may say its reasoning again as its answer (same words, on some CPUs): what
    # must be absent is the reasoning beyond the reply the patient is shown (which the page holds
    # twice: as the message and in its aria-label).
    html = chat.inner_html()
    assert REASONING_TITLE not in html
    assert words(reasoning) not in words(html).replace(words(reply), " "), (reasoning, reply)
    events = call_api(patient, "history", [sid, True])
    assert events[-1]["event"] == "complete", events
    msgs, _ids = json.loads(events[-1]["data"])
    assert len(msgs) == 2 and not any((m.get("metadata") or {}).get("title") for m in msgs)
    assert words(reasoning) not in words(json.dumps(msgs, ensure_ascii=False)).replace(words(reply), " ")
    patient.shot("1-patient-session")

    supervisor = users("sup1")
    supervisor.shot("1-supervisor-session")
    supervisor.tab("Supervise")
    expect(supervisor.page.locator("#supervise-live")).to_contain_text(sid)
    open_in_supervise(supervisor, sid, message)
    transcript = supervisor.page.locator("#supervise-transcript")
    expect(transcript).to_contain_text(REASONING_TITLE)
    unfold(transcript, reasoning)
    supervisor.shot("1-supervisor-supervise")
    assert app.rows("SELECT COUNT(*) FROM audit WHERE actor='sup1' AND action='session.read' AND target=?",
                    (sid,))[0][0] >= 1


def test_supervisor_sees_a_risk_flag_appear_and_resolves_it_with_a_note(app, users):
    supervisor = users("sup1").tab("Supervise")
    alert = supervisor.page.locator("#supervise-alert")
    expect(alert).to_contain_text("No open risk flags")

    patient = users("pat2")
    consent(patient)
    patient.page.get_by_label("ACT (single session)").check()
    patient.choose("Therapist model", "Scripted therapist")
    send(patient, PATIENT)
    expect(bot_messages(patient, "session-chat")).to_have_count(1)
    expect(bot_messages(patient, "session-chat").last).to_contain_text(ANSWER)
    sid = session_id(patient)
    send(patient, RISK_HIGH)
    expect(bot_messages(patient, "session-chat")).to_have_count(2)
    expect(bot_messages(patient, "session-chat").last).to_contain_text("988")
    expect(patient.page.locator("#session-status")).to_contain_text("Safety check")
    patient.shot("2-patient-session-safe-reply")
    turns = app.rows("SELECT role, content, model_id FROM turns WHERE session_id=? ORDER BY idx", (sid,))
    assert [(r[0], r[2]) for r in turns] == [("patient", None), ("therapist", "fake-therapist"),
                                             ("patient", None), ("therapist", "safety")]
    assert turns[2][1] == RISK_HIGH and "988" in turns[3][1]
    flag = app.rows("SELECT id, level, status FROM flags WHERE session_id=?", (sid,))
    assert len(flag) == 1 and flag[0][1] == "high" and flag[0][2] == "open"

    # the supervisor's page shows it without a reload (the tab polls every second here)
    expect(alert).to_contain_text("1 session(s) with open risk flags")
    live = supervisor.page.locator("#supervise-live")
    expect(live.get_by_test_id("cell-0-8")).to_have_text(sid)  # first row: open flags come first
    expect(live.get_by_test_id("cell-0-0")).to_have_text("HIGH")
    open_in_supervise(supervisor, sid, RISK_HIGH)
    flags = supervisor.page.locator("#supervise-flags")
    expect(flags).to_contain_text("HIGH")
    expect(flags).to_contain_text("open")
    supervisor.shot("2-supervisor-supervise-flag")

    note = "Called the patient: safe at home with family tonight; safety plan agreed."
    supervisor.field("Resolution note (required)").fill(note)
    supervisor.button("Resolve flag").click()
    expect(supervisor.page.locator("#supervise-status")).to_contain_text("Flag resolved.")
    expect(flags).to_contain_text(f"resolved by sup1: {note}")
    expect(alert).to_contain_text("No open risk flags")  # the refresh goes on working
    supervisor.shot("2-supervisor-supervise-resolved")
    assert app.rows("SELECT status, resolved_by, resolution_note FROM flags WHERE id=?", (flag[0][0],)) == [
        ("resolved", "sup1", note)]
    audit = app.rows("SELECT detail_json FROM audit WHERE actor='sup1' AND action='flag.resolve' AND target=?", (sid,))
    assert len(audit) == 1 and json.loads(audit[0][0])["flag"] == flag[0][0]


def test_researcher_watches_rates_and_judges_a_simulated_session(app, users):
    researcher = users("adm1")
    assert researcher.page.get_by_role("tab").all_inner_texts() == ["Session", "Watch", "Review", "Supervise", "Admin"]
    researcher.tab("Watch")
    researcher.choose("Therapist model", "Scripted reasoning therapist")
    researcher.choose("Patient model (plays the persona)", "Scripted patient")
    exchanges = researcher.field("number input for Exchanges")  # the slider's number box
    exchanges.fill("2")
    exchanges.press("Enter")
    researcher.button("Start").click()
    expect(researcher.page.locator("#watch-status")).to_contain_text("finished", timeout=MODEL_WAIT_MS)
    watch = researcher.page.locator("#watch-chat")
    expect(watch).to_contain_text(PATIENT)
    expect(watch).to_contain_text(ANSWER)
    expect(watch).to_contain_text(REASONING_TITLE)
    researcher.shot("3-researcher-watch")
    sid = app.rows("SELECT id FROM sessions WHERE study='watch'")[0][0]
    assert app.rows("SELECT therapist_model, patient_model, simulated, status FROM sessions WHERE id=?", (sid,)) == [
        ("fake-think", "fake-patient", 1, "ended")]
    assert app.rows("SELECT role, content, reasoning FROM turns WHERE session_id=? ORDER BY idx", (sid,)) == [
        ("patient", PATIENT, None), ("therapist", ANSWER, REASONING)] * 2

    researcher.tab("Review")
    researcher.button("Find sessions").click()
    found = researcher.page.locator("#review-found")
    expect(found).to_contain_text(sid)
    found.get_by_role("gridcell", name=sid, exact=True).click()  # a click on its row opens it
    expect(researcher.page.locator("#review-chat")).to_contain_text(ANSWER)
    researcher.choose("Rubric", "ACT Fidelity Measure (ACT-FM) [act-fm]")
    expect(researcher.page.locator("#review-item-25")).to_be_visible()
    chosen = {}
    for i in range(1, 26):
        value = i % 4
        item = researcher.page.locator(f"#review-item-{i}")
        item.get_by_role("radio", name=re.compile(rf"^{value} · ")).check()
        chosen[i] = value
    researcher.field("Comment (optional)").fill("Rated in the end-to-end test.")
    researcher.button("Save my rating").click()
    expect(researcher.page.locator("#review-saved")).to_contain_text("Saved your act-fm rating")
    expect(researcher.page.locator("#review-ratings")).to_contain_text("adm1 (human)")
    researcher.shot("3-researcher-review")
    rating = app.rows("SELECT scores_json, comment, status FROM ratings WHERE session_id=? AND rater_kind='human' "
                      "AND rater_id='adm1' AND rubric_id='act-fm'", (sid,))
    assert len(rating) == 1 and rating[0][1] == "Rated in the end-to-end test."
    from eval.rubrics import load_rubric
    items = load_rubric("act-fm").items
    assert json.loads(rating[0][0]) == {it.id: chosen[it.number] for it in items}

    researcher.tab("Admin")
    researcher.tab("Judge")
    researcher.choose("Rubric", "ACT Fidelity Measure (ACT-FM) [act-fm]")
    researcher.choose("Judge model", "Scripted judge")
    researcher.field("Sessions (all, study:NAME or ids)").fill(sid)
    researcher.button("Launch judge job").click()
    expect(researcher.page.locator("#admin-status")).to_contain_text("Launched judge job")
    runs = researcher.page.locator("#judge-runs").get_by_role("row").filter(has_text="fake-judge")
    expect(runs).to_contain_text("fake-judge", timeout=MODEL_WAIT_MS)
    expect(runs).to_contain_text("done", timeout=MODEL_WAIT_MS)
    expect(runs).to_contain_text("1/1")
    researcher.shot("3-researcher-admin-judge")
    run = app.rows("SELECT id, status, n_ok, n_failed, selection FROM judge_runs WHERE judge_model='fake-judge'")
    assert len(run) == 1 and run[0][1:] == ("done", 1, 0, sid)
    judged = app.rows("SELECT status, scores_json FROM ratings WHERE session_id=? AND rater_kind='judge' "
                      "AND judge_run_id=?", (sid, run[0][0]))
    assert len(judged) == 1 and judged[0][0] == "ok"
    assert set(json.loads(judged[0][1]).values()) == {3}  # the scripted judge's top score on every item

    researcher.tab("Review")  # the judge's scores now sit beside the human rating
    researcher.button("Open").click()
    expect(researcher.page.locator("#review-ratings")).to_contain_text("fake-judge (judge, ok")
    researcher.shot("3-researcher-review-with-judge")


def test_training_job_shows_progress_and_can_be_cancelled(app, users):
    admin = users("adm1").tab("Admin").tab("Train")
    admin.choose("Dataset", "tiny")
    admin.field("Adapter id").fill("e2e-cancelled")
    admin.field("Answers with reasoning").uncheck()
    for label, value in (("Max steps (-1 = epochs)", "40"), ("LoRA r", "4"), ("LoRA alpha", "8"),
                         ("LoRA targets", "q_proj,v_proj"), ("Max length (tokens)", "512")):
        admin.field(label).fill(value)
    admin.button("Start training").click()
    note = admin.page.locator("#train-note")
    expect(note).to_contain_text("Launched sft job")
    job_id = note.locator("code").inner_text()
    assert app.rows("SELECT kind, created_by FROM jobs WHERE id=?", (job_id,)) == [("sft", "adm1")]
    admin.field("Follow job id").fill(job_id)
    admin.field("Follow job id").press("Enter")
    progress = admin.page.locator("#train-progress")
    expect(progress).to_contain_text(re.compile(r"step \d+/40"), timeout=MODEL_WAIT_MS)
    expect(progress).to_contain_text("running")
    expect(admin.page.locator("#admin-jobs")).to_contain_text(job_id)
    admin.shot("4-admin-train-progress")

    admin.field("Job id").fill(job_id)
    admin.button("Cancel job").click()
    expect(admin.page.locator("#admin-status")).to_contain_text(f"Job {job_id} is cancelled")
    expect(progress).to_contain_text("is cancelled")
    admin.shot("4-admin-train-cancelled")
    job = app.rows("SELECT status, progress_json FROM jobs WHERE id=?", (job_id,))
    assert job[0][0] == "cancelled"
    done = json.loads(job[0][1])["done"]
    assert 1 <= done < 40  # it had made progress, and stopped before the end
    assert not (app.data / "adapters" / "e2e-cancelled").exists()  # no half adapter reaches the catalog
    assert app.rows("SELECT COUNT(*) FROM audit WHERE actor='adm1' AND action='job.cancel' AND target=?",
                    (job_id,))[0][0] == 1


HOSTILE_PAGE = """<!doctype html><title>hostile</title><script>
const app = "%(app)s";
async function attempt(name, url, options) {
  try {
    const r = await fetch(url, Object.assign({credentials: "include"}, options));
    let body = "";
    try { body = await r.text(); } catch (e) { body = "unreadable: " + e; }
    return {name, type: r.type, status: r.status, body: body.slice(0, 300)};
  } catch (e) { return {name, error: String(e)}; }
}
window.results = (async () => [
  await attempt("config", app + "/config"),
  await attempt("info", app + "/gradio_api/info"),
  await attempt("note-json", app + "/gradio_api/call/supervise_note", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({data: ["%(sid)s", "HOSTILE NOTE"]})}),
  await attempt("note-simple", app + "/gradio_api/call/supervise_note", {method: "POST",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({data: ["%(sid)s", "HOSTILE NOTE"]})}),
  await attempt("note-no-cors", app + "/gradio_api/call/supervise_note", {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({data: ["%(sid)s", "HOSTILE NOTE"]})}),
])();
</script>"""


def serve_hostile_page(folder: Path, html: str):
    """A page on another loopback port, as a dev server or a package's web view would serve it."""
    import functools
    import http.server
    import threading
    (folder / "index.html").write_text(html, encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_page_on_another_loopback_port_gets_nothing_from_a_signed_in_supervisor(app, users, tmp_path):
    supervisor = users("sup1")  # signed in: the browser holds the session cookie for 127.0.0.1
    sid = app.rows("SELECT id FROM sessions ORDER BY created_utc DESC LIMIT 1")
    sid = sid[0][0] if sid else "no-session"
    server = serve_hostile_page(tmp_path, HOSTILE_PAGE % {"app": app.url.rstrip("/"), "sid": sid})
    hostile_origin = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = supervisor.context.new_page()
        page.goto(hostile_origin + "/index.html")
        results = page.evaluate("window.results")
    finally:
        server.shutdown()
    by_name = {r["name"]: r for r in results}
    # Nothing readable came back: each request either failed in the browser (no CORS grant) or was
    # an opaque no-cors response, and none of the app's data appears in what the page could read.
    for name in ("config", "info", "note-json", "note-simple"):
        assert "error" in by_name[name], by_name[name]
    assert by_name["note-no-cors"].get("type") == "opaque" and by_name["note-no-cors"]["body"] == ""
    assert app.rows("SELECT COUNT(*) FROM notes WHERE text LIKE '%HOSTILE NOTE%'")[0][0] == 0
    # The server refused them (not only the browser), and said so in the audit log: under the
    # supervisor whose cookie came along, or anonymously for the browser's cookie-less preflight.
    refused = [(actor, json.loads(detail)) for actor, detail in app.rows(
        "SELECT actor, detail_json FROM audit WHERE action='http.refused' AND detail_json LIKE ?",
        (f"%{hostile_origin}%",))]
    assert len(refused) >= 4, refused
    assert {d["path"] for _, d in refused} >= {"/config", "/gradio_api/info", "/gradio_api/call/supervise_note"}
    assert all(actor == "sup1" for actor, d in refused if d["method"] != "OPTIONS"), refused
    assert any(actor == "sup1" for actor, _ in refused)


def test_enter_sends_and_nothing_typed_while_a_reply_streams_is_lost(app, users):
    """Issue 19 (2): Enter sends and Shift+Enter adds a line; the box is not cleared by the stream;
    a second send during the reply is refused aloud and its text stays in the box."""
    patient = users("pat3")
    consent(patient)
    patient.choose("Therapist model", "Scripted therapist")
    box = patient.field("Your message (you are the patient)")
    box.fill("line one")
    box.press("Shift+Enter")
    box.press_sequentially("line two")
    patient.page.wait_for_timeout(1000)
    assert box.input_value() == "line one\nline two"  # a new line, nothing sent
    assert patient.field("Session id").input_value() == ""

    first = "Please take your time with me."
    box.fill(first)
    box.press("Enter")
    sid = session_id(patient)
    expect(box).to_have_value("")  # emptied once the message is stored
    reply = bot_messages(patient, "session-chat").last
    expect(reply).to_contain_text("Slowly")  # the slow reply streams (about 8 s)
    second = "My sister is ill too."
    box.fill(second)
    box.press("Enter")  # while the reply is still streaming
    expect(patient.page.locator("#session-status")).to_contain_text("still in the box")
    patient.shot("5-patient-refused-during-stream")
    query = "SELECT role, content FROM turns WHERE session_id=? ORDER BY idx"
    wait_for(lambda: len(app.rows(query, (sid,))) >= 2, 120, "the slow reply in the database")
    expect(reply).to_contain_text(SLOW_REPLY.split()[-3])
    patient.page.wait_for_timeout(1500)  # the stream's last update has landed
    assert box.input_value() == second  # neither the stream nor its end cleared the box
    assert app.rows(query, (sid,)) == [("patient", first), ("therapist", SLOW_REPLY)]

    box.press("Enter")  # the reply is done: the kept message goes through
    wait_for(lambda: len(app.rows(query, (sid,))) >= 4, 120, "the second exchange in the database")
    assert [r for r in app.rows(query, (sid,)) if r[0] == "patient"] == [("patient", first), ("patient", second)]
    expect(box).to_have_value("")


def consent_if_asked(user: User) -> None:
    box = user.page.get_by_label("I have read this information and I agree to take part")
    user.page.wait_for_timeout(1500)  # the page load decides which panel shows
    if box.is_visible():
        consent(user)


def test_reload_back_links_and_a_fixed_model_land_where_the_user_was(app, users):
    """Issue 19 (1, 3, 4): a reload resumes the session, a link opens it for a supervisor, Back
    returns to the previous tab, a model change mid-session is explicit, a study shows its size
    and waits for a second press."""
    patient = users("pat3")
    consent_if_asked(patient)
    before = patient.field("Session id").input_value()  # an earlier test may have left one open
    patient.choose("Therapist model", "Scripted therapist")
    patient.button("New session").click()
    sid = wait_for(lambda: (v := patient.field("Session id").input_value()) != before and v, 60,
                   "the new session's id", interval=0.2)
    assert app.rows("SELECT therapist_model FROM sessions WHERE id=?", (sid,)) == [("fake-therapist",)]
    box = patient.field("Your message (you are the patient)")
    box.fill("Hello again.")
    box.press("Enter")
    query = "SELECT role, model_id FROM turns WHERE session_id=? ORDER BY idx"
    wait_for(lambda: len(app.rows(query, (sid,))) >= 2, 60, "the reply in the database")
    wait_for(lambda: f"session={sid}" in patient.page.url, 30, "the session in the address")
    patient.page.reload()  # lands in the same session, with its model named above the chat
    expect(patient.field("Session id")).to_have_value(sid)
    expect(patient.page.locator("#session-chat")).to_contain_text("Hello again.")
    expect(patient.page.locator("#session-header")).to_contain_text("Scripted therapist")
    patient.choose("Therapist model", "Scripted reasoning therapist")
    expect(patient.page.locator("#session-status")).to_contain_text("This session stays with Scripted therapist")
    patient.shot("6-patient-model-stays")
    box.fill("Which model answers now?")
    box.press("Enter")
    wait_for(lambda: len(app.rows(query, (sid,))) >= 4, 60, "the second reply in the database")
    assert {m for r, m in app.rows(query, (sid,)) if r == "therapist"} == {"fake-therapist"}

    supervisor = users("sup1")
    supervisor.page.goto(f"{app.url.rstrip('/')}/?tab=supervise&session={sid}")  # a shared link
    expect(supervisor.page.locator("#supervise-transcript")).to_contain_text("Hello again.")
    expect(supervisor.page.get_by_role("tab", name="Supervise", exact=True)).to_have_attribute("aria-selected", "true")
    supervisor.tab("Review")
    wait_for(lambda: "tab=review" in supervisor.page.url, 30, "the tab in the address")
    supervisor.page.go_back()  # Back: the previous tab, not away from the app
    expect(supervisor.page.get_by_role("tab", name="Supervise", exact=True)).to_have_attribute("aria-selected", "true")
    assert supervisor.page.url.startswith(app.url.rstrip("/"))

    admin = users("adm1").tab("Admin").tab("Study")
    admin.choose("Study file", "act_thinking_therapist (shipped)")
    admin.field("Overrides, one key=value per line (e.g. turns=4, rubrics=[tes])").fill("turns=2")
    before = app.rows("SELECT COUNT(*) FROM jobs WHERE kind='study'")[0][0]
    admin.button("Launch study job").click()
    note = admin.page.get_by_text("press Launch study job again")
    expect(note).to_be_visible()
    expect(admin.page.get_by_text(re.compile(r"\d+ simulated session\(s\), \d+ exchanges"))).to_be_visible()
    admin.shot("6-admin-study-size")
    assert app.rows("SELECT COUNT(*) FROM jobs WHERE kind='study'")[0][0] == before  # nothing started yet


def test_a_dataset_built_from_the_train_tab_appears_in_its_picker_without_a_reload(app, users):
    """Issue 19 (5): the launched build job is followed at once, and its dataset is listed and chosen."""
    admin = users("adm1").tab("Admin").tab("Train")
    admin.page.get_by_text("1. Build a dataset").click()
    admin.field("Dataset name").fill("ui-built")
    admin.field("Keep reasoning (<think>)").uncheck()
    admin.field("Exchanges per example (0 = whole)").fill("1")
    admin.button("Build dataset").click()
    note = admin.page.locator("#train-note")
    expect(note).to_contain_text("Launched build job")
    job_id = note.locator("code").inner_text()
    expect(admin.field("Follow job id")).to_have_value(job_id)
    expect(admin.field("Dataset")).to_have_value("ui-built", timeout=MODEL_WAIT_MS)
    assert (app.data / "datasets" / "ui-built" / "train.jsonl").is_file()
    admin.shot("7-admin-train-built-dataset")
