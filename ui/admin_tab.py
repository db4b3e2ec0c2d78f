"""Admin tab: launch long work as background jobs (simulation batches, LLM-judge runs, training,
whole studies), follow every job's progress, log and cancel button, and read judge-human agreement.

A job is a separate process (jobs/runner.py), so it survives a page reload and an app restart;
this tab only reads its row, its progress file and its log.
"""
from __future__ import annotations

import re

import gradio as gr

from jobs.kinds import JudgeJob, SimulateJob
from services import Services
from ui.access import Access

ADMINS = ("admin",)
JOB_HEADERS = ["Job id", "Kind", "Status", "Progress", "Started (UTC)", "Finished (UTC)", "By", "Error"]
_PERSONA_SPEC = re.compile(r"^(all|sample:\d{1,4}|[A-Za-z0-9_.:-]+(,[A-Za-z0-9_.:-]+)*)$")
_STUDY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SELECTION = re.compile(r"^(all|study:[A-Za-z0-9_.-]{1,64}|[0-9A-Za-z]{1,64}(,[0-9A-Za-z]{1,64})*)$")
RUN_HEADERS = ["Run id", "Rubric", "Judge", "Sessions", "Status", "Rated", "ok", "partial", "failed",
               "Started (UTC)", "Job"]


class AdminHandlers:
    def __init__(self, services: Services, access: Access):
        self.s = services
        self.access = access

    def launch_simulation(self, therapists, personas, patient_model, turns, repeats, concurrency, study,
                          request: gr.Request = None):
        who = self.access.require(request, ADMINS, "job.launch")
        therapists = [t for t in (therapists or []) if t]
        problems = []
        if not therapists:
            problems.append("pick at least one therapist model")
        if not _PERSONA_SPEC.match((personas or "").strip()):
            problems.append("personas must be all, sample:N or a comma-separated list of persona ids")
        known = {e.id for e in self.s.catalog.entries()}
        unknown = [m for m in [*therapists, patient_model] if m not in known]
        if unknown:  # only catalog ids ever reach the child's command line
            problems.append("unknown model(s): " + ", ".join(map(str, unknown)))
        if study and not _STUDY.match(study):
            problems.append("the study name may use letters, digits, _ . - only")
        if problems:
            return "**Not launched:** " + "; ".join(problems) + ".", self.jobs_table()
        spec = SimulateJob(tuple(therapists), personas.strip(), patient_model, int(turns), int(repeats),
                           int(concurrency), study or None)
        job = self.s.jobs.submit(spec, who.username)
        return f"Launched job `{job['id']}`: {self._simulation_size(spec)}.", self.jobs_table()

    def _simulation_size(self, spec: SimulateJob) -> str:
        from eval.estimate import persona_count, simulation_size
        n = persona_count(self.s.personas, spec.personas, "act")  # the simulate command's default modality
        return simulation_size(self.s.store, list(spec.therapists), spec.patient_model, n, spec.turns,
                               spec.repeats).line()

    def launch_judge(self, rubric_id, judge_model, selection, concurrency, include_reasoning, new_run,
                     request: gr.Request = None):
        """Start ``python -m eval judge`` as a job: (status line, jobs table, runs table)."""
        from eval.rubrics import list_rubrics, user_rubrics_dir
        who = self.access.require(request, ADMINS, "job.launch")
        selection = (selection or "").replace(" ", "")
        problems = []
        if rubric_id not in {r.id for r in list_rubrics([user_rubrics_dir(self.s.settings.data_dir)])}:
            problems.append("pick a rubric")
        if judge_model not in {e.id for e in self.s.catalog.entries()}:
            problems.append(f"unknown judge model {judge_model!r}")
        if not _SELECTION.match(selection):
            problems.append("sessions must be all, study:NAME or session ids separated by commas")
        if not problems:  # a selection that matches nothing is refused now, not "done, 0/?" later
            from eval.runs import RunError, select_sessions
            try:
                n_sessions = len(select_sessions(self.s.store, selection))
            except RunError as exc:
                problems.append(str(exc))
            else:
                if not n_sessions:
                    problems.append(f"no ended session matches {selection!r} (simulate or end sessions first)")
        if problems:
            return "**Not launched:** " + "; ".join(problems) + ".", self.jobs_table(), self.runs_table()
        from eval.estimate import judge_size
        spec = JudgeJob(rubric_id, judge_model, selection, int(concurrency), bool(include_reasoning), bool(new_run))
        job = self.s.jobs.submit(spec, who.username)
        size = judge_size(self.s.store, [judge_model], [rubric_id], n_sessions).line()
        return f"Launched judge job `{job['id']}`: {n_sessions} session(s), {size}.", self.jobs_table(), self.runs_table()

    def runs_table(self) -> list[list]:
        from store.ratings import RatingStore
        rows = []
        for run in RatingStore(self.s.store).runs(limit=30):
            rated = run["n_ok"] + run["n_partial"] + run["n_failed"]
            rows.append([run["id"], run["rubric_id"], run["judge_model"], run["selection"], run["status"],
                         f"{rated}/{run.get('n_total') or '?'}", run["n_ok"], run["n_partial"], run["n_failed"],
                         (run.get("started_utc") or "")[:19], run.get("job_id") or "cli"])
        return rows

    def agreement(self, rubric_id, study, request: gr.Request = None):
        """The agreement table for one rubric (optionally one study)."""
        from eval.agreement import agreement_for_store, rows_as_dicts
        from eval.rubrics import RubricError, load_rubric, user_rubrics_dir
        self.access.require(request, ADMINS, "agreement.read")
        try:
            rubric = load_rubric(rubric_id, [user_rubrics_dir(self.s.settings.data_dir)])
        except RubricError as exc:
            return [], f"**{exc}**"
        rows = rows_as_dicts(agreement_for_store(self.s.store, rubric, study=(study or "").strip() or None))
        if not rows:
            return [], f"No ratings on {rubric.id} yet: rate sessions in the Review tab and run a judge."
        table = [[_fmt(v) for v in row.values()] for row in rows]
        return gr.update(value=table, headers=list(rows[0].keys())), f"{len(rows)} comparison rows for {rubric.name}."

    def jobs_table(self) -> list[list]:
        rows = []
        for job in self.s.jobs.jobs.list(limit=30):
            progress = job.get("progress") or {}
            done, total = progress.get("done"), progress.get("total")
            where = f"{done}/{total}" if total else ""
            if progress.get("stage"):  # a study says which of its stages the count belongs to
                where = f"stage {progress['stage']}: {where}" if where else f"stage {progress['stage']}"
            rows.append([job["id"], job["kind"], job["status"], where,
                         (job.get("started_utc") or "")[:19], (job.get("finished_utc") or "")[:19],
                         job.get("created_by") or "", (job.get("error") or "")[:120]])
        return rows

    def refresh(self, job_id, request: gr.Request = None):
        self.access.require(request, ADMINS, "job.list")
        return self.jobs_table(), self._log(job_id), self.runs_table()

    def _log(self, job_id) -> str:
        if not job_id:
            return ""
        try:
            return self.s.jobs.tail_log(job_id, lines=30)
        except Exception as exc:
            return f"(no log: {exc})"

    def select(self, evt: gr.SelectData, request: gr.Request = None):
        self.access.require(request, ADMINS, "job.read")
        row = evt.row_value or []
        job_id = row[0] if row else ""
        return job_id, self._log(job_id)

    def cancel(self, job_id, request: gr.Request = None):
        who = self.access.require(request, ADMINS, "job.cancel")
        if not job_id:
            return "Pick a job first.", self.jobs_table()
        try:
            job = self.s.jobs.cancel(job_id, who.username)
        except Exception as exc:
            return f"**Not cancelled:** {exc}", self.jobs_table()
        return f"Job `{job_id}` is {job['status']}.", self.jobs_table()


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _build_judge(h: AdminHandlers, models: list) -> tuple:
    from eval.rubrics import list_rubrics, user_rubrics_dir
    found = list_rubrics([user_rubrics_dir(h.s.settings.data_dir)])
    rubrics = [(f"{r.name} [{r.id}]", r.id) for r in found]
    shortest = min(found, key=lambda r: len(r.items)).id if found else None  # the quickest to judge
    with gr.Tab("Judge"):
        gr.Markdown("Rate sessions with an LLM judge in the background. Running the same settings again "
                    "continues that run and rates only what it has not. The embedded 135M model is for trying "
                    "the pipeline, not for clinical conclusions: measure any judge against human raters under "
                    "Agreement.")
        with gr.Row():
            rubric = gr.Dropdown(rubrics, value=shortest, label="Rubric")
            judge = gr.Dropdown(models, value="default", label="Judge model")
            selection = gr.Textbox("all", label="Sessions (all, study:NAME or ids)")
        with gr.Row():
            concurrency = gr.Number(1, precision=0, minimum=1, maximum=8, label="Concurrency")
            reasoning = gr.Checkbox(False, label="Let the judge see the therapist's reasoning")
            new_run = gr.Checkbox(False, label="Start a new run (do not continue)")
            launch = gr.Button("Launch judge job", variant="primary")
        runs = gr.Dataframe(headers=RUN_HEADERS, interactive=False, wrap=True, label="Judge runs", elem_id="judge-runs")
    with gr.Tab("Agreement"):
        gr.Markdown("How well judges agree with human raters, and humans with each other, per item and per "
                    "total: ICC(2,1), quadratic-weighted kappa, Krippendorff's alpha, Spearman, mean bias.")
        with gr.Row():
            a_rubric = gr.Dropdown(rubrics, value=rubrics[0][1] if rubrics else None, label="Rubric")
            a_study = gr.Textbox("", label="Study (empty: all)")
            compute = gr.Button("Compute agreement", variant="primary")
        a_line = gr.Markdown()
        a_table = gr.Dataframe(interactive=False, wrap=True, label="Agreement")
    compute.click(h.agreement, [a_rubric, a_study], [a_table, a_line], api_name="admin_agreement")
    return (rubric, judge, selection, concurrency, reasoning, new_run), launch, runs


def build_admin(services: Services, access: Access) -> gr.Timer:
    from ui.study_tab import build_study
    from ui.train_tab import build_train
    h = AdminHandlers(services, access)
    models = [(e.label, e.id) for e in services.catalog.entries()]
    timer = gr.Timer(3.0, active=False)
    with gr.Tab("Simulate"):
        gr.Markdown("Run simulated sessions in the background: every persona meets every therapist "
                    "variant (a paired design); a re-run skips what is done.")
        with gr.Row():
            therapists = gr.Dropdown(models, value=["default"], multiselect=True, label="Therapist variants")
            patient = gr.Dropdown(models, value="default", label="Patient model")
        with gr.Row():
            personas = gr.Textbox("sample:4", label="Personas (all, sample:N or ids)")
            turns = gr.Number(6, precision=0, minimum=1, maximum=60, label="Exchanges per session")
            repeats = gr.Number(1, precision=0, minimum=1, maximum=20, label="Repeats")
            concurrency = gr.Number(1, precision=0, minimum=1, maximum=8, label="Concurrency")
            study = gr.Textbox("smoke", label="Study name")
        launch = gr.Button("Launch simulation job", variant="primary")
    judge_inputs, launch_judge, runs = _build_judge(h, models)
    build_train(services, access, timer)
    build_study(services, access)
    gr.Markdown("### Jobs")
    jobs = gr.Dataframe(headers=JOB_HEADERS, interactive=False, wrap=True, label="Jobs (click one to see its log)",
                        elem_id="admin-jobs")
    with gr.Row():
        job_id = gr.Textbox(label="Job id", scale=3)
        cancel = gr.Button("Cancel job", variant="stop", scale=1)
    log = gr.Textbox(label="Log (last lines)", lines=8, interactive=False)
    status = gr.Markdown(elem_id="admin-status")
    launch.click(h.launch_simulation, [therapists, personas, patient, turns, repeats, concurrency, study],
                 [status, jobs], api_name="admin_simulate")
    launch_judge.click(h.launch_judge, list(judge_inputs), [status, jobs, runs], api_name="admin_judge")
    timer.tick(h.refresh, job_id, [jobs, log, runs], api_name="admin_jobs", show_progress="hidden")
    jobs.select(h.select, None, [job_id, log], api_name=False)
    cancel.click(h.cancel, job_id, [status, jobs], api_name="admin_cancel")
    return timer
