"""Admin tab: launch long work as background jobs (simulation batches for now; training and
judging will join) and follow every job's progress, log and cancel button.

A job is a separate process (store/jobs.py), so it survives a page reload and an app restart;
this tab only reads its row, its progress file and its log.
"""
from __future__ import annotations

import re

import gradio as gr

from services import Services
from ui.access import Access

ADMINS = ("admin",)
JOB_HEADERS = ["Job id", "Kind", "Status", "Progress", "Started (UTC)", "Finished (UTC)", "By", "Error"]
_PERSONA_SPEC = re.compile(r"^(all|sample:\d{1,4}|[A-Za-z0-9_.:-]+(,[A-Za-z0-9_.:-]+)*)$")
_STUDY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


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
        argv = ["patient_sim", "--data-dir", str(self.s.settings.data_dir), "simulate",
                "--personas", personas.strip(), "--patient-model", patient_model, "--turns", str(int(turns)),
                "--repeats", str(int(repeats)), "--concurrency", str(int(concurrency))]
        for therapist in therapists:
            argv += ["--therapist", therapist]
        if study:
            argv += ["--study", study]
        job = self.s.jobs.launch("simulate", argv, {"therapists": therapists, "personas": personas,
                                                     "turns": int(turns), "repeats": int(repeats),
                                                     "study": study or None}, who.username)
        return f"Launched job `{job['id']}`.", self.jobs_table()

    def jobs_table(self) -> list[list]:
        rows = []
        for job in self.s.jobs.jobs.list(limit=30):
            progress = job.get("progress") or {}
            done, total = progress.get("done"), progress.get("total")
            rows.append([job["id"], job["kind"], job["status"], f"{done}/{total}" if total else "",
                         (job.get("started_utc") or "")[:19], (job.get("finished_utc") or "")[:19],
                         job.get("created_by") or "", (job.get("error") or "")[:120]])
        return rows

    def refresh(self, job_id, request: gr.Request = None):
        self.access.require(request, ADMINS, "job.list")
        return self.jobs_table(), self._log(job_id)

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


def build_admin(services: Services, access: Access) -> gr.Timer:
    h = AdminHandlers(services, access)
    models = [(e.label, e.id) for e in services.catalog.entries()]
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
    gr.Markdown("### Jobs")
    jobs = gr.Dataframe(headers=JOB_HEADERS, interactive=False, wrap=True, label="Jobs (click one to see its log)")
    with gr.Row():
        job_id = gr.Textbox(label="Job id", scale=3)
        cancel = gr.Button("Cancel job", variant="stop", scale=1)
    log = gr.Textbox(label="Log (last lines)", lines=8, interactive=False)
    status = gr.Markdown()
    timer = gr.Timer(3.0, active=False)
    launch.click(h.launch_simulation, [therapists, personas, patient, turns, repeats, concurrency, study],
                 [status, jobs], api_name="admin_simulate")
    timer.tick(h.refresh, job_id, [jobs, log], api_name="admin_jobs", show_progress="hidden")
    jobs.select(h.select, None, [job_id, log], api_name=False)
    cancel.click(h.cancel, job_id, [status, jobs], api_name="admin_cancel")
    return timer
