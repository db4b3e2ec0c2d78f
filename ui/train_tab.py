"""Admin · Train: build a dataset and train an SFT or ORPO adapter as background jobs, with a live
loss plot, progress and ETA; a finished adapter shows up in every model picker without a restart.

The form becomes a ``TrainingJob`` (``jobs/kinds.py``), whose ``key=value`` overrides for
``python -m training`` are checked here with the same recipe rules (unknown keys and bad values refused) before any job starts.
"""
from __future__ import annotations

import re

import gradio as gr

from jobs.kinds import TrainingJob
from services import Services
from ui.access import Access

ADMINS = ("admin",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TARGETS = re.compile(r"^[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*$")


class TrainHandlers:
    def __init__(self, services: Services, access: Access):
        self.s = services
        self.access = access

    def datasets(self) -> list[str]:
        root = self.s.settings.data_dir / "datasets"
        return sorted(p.name for p in root.iterdir() if (p / "train.jsonl").is_file()) if root.is_dir() else []

    def _launch(self, spec: TrainingJob, config_cls, who) -> tuple[str, str | dict]:
        """(note, the job id to follow: the launched job is followed at once)."""
        from training.recipes import RecipeError, load_recipe
        try:  # the child checks them again; refused here, no job starts for a bad value
            load_recipe(config_cls, None, spec.overrides())
        except RecipeError as exc:
            return f"**Not launched:** {exc}", gr.update()
        job = self.s.jobs.submit(spec, who.username)
        return f"Launched {spec.method} job `{job['id']}`; following it below.", job["id"]

    def build(self, name, kind, modality, reasoning, window, request: gr.Request = None):
        from training.build import BuildConfig
        who = self.access.require(request, ADMINS, "job.launch")
        if not _NAME.match(name or ""):
            return "**Not launched:** the dataset name may use letters, digits, _ . - only.", gr.update()
        spec = TrainingJob("build", {"name": name, "kind": kind, "modality": modality, "reasoning": bool(reasoning),
                                     "window": int(window)})
        return self._launch(spec, BuildConfig, who)  # the dataset is listed once the job has built it

    def train(self, method, dataset, output, label, modality, reasoning, epochs, max_steps, lr, lora_r,
              lora_alpha, targets, max_length, request: gr.Request = None):
        from training.common import TrainConfig
        who = self.access.require(request, ADMINS, "job.launch")
        problems = []
        if method not in ("sft", "orpo"):
            problems.append("method must be sft or orpo")
        if dataset not in self.datasets():
            problems.append("pick a built dataset")
        if not _NAME.match(output or ""):
            problems.append("the adapter id may use letters, digits, _ . - only")
        if not _TARGETS.match((targets or "").replace(" ", "")):
            problems.append("LoRA targets: module names separated by commas")
        if problems:
            return "**Not launched:** " + "; ".join(problems) + ".", gr.update()
        settings = {"dataset": dataset, "output": output, "modality": modality, "reasoning": bool(reasoning),
                    "epochs": float(epochs), "max_steps": int(max_steps), "learning_rate": float(lr),
                    "lora_r": int(lora_r), "lora_alpha": int(lora_alpha), "lora_targets": targets.replace(" ", ""),
                    "max_length": int(max_length), **({"label": label} if label else {})}
        return self._launch(TrainingJob(method, settings), TrainConfig, who)

    def follow_all(self, job_id, listed=None, request: gr.Request = None):
        """Timer: (loss points, progress line, dataset picker, datasets listed). A dataset a build
        job has written appears in the picker at once, chosen if that job is the one followed."""
        plot, line = self.follow(job_id, request)
        names = self.datasets()
        if names == (listed or []):
            return plot, line, gr.update(), listed
        built = None
        try:
            job = self.s.jobs.jobs.get((job_id or "").strip()) if job_id else None
        except Exception:  # noqa: BLE001 - an unknown id is reported by follow's line
            job = None
        if job and job["kind"] == "build" and job["status"] == "done":
            built = (job["config"].get("settings") or {}).get("name")
        update = gr.update(choices=names, value=built) if built in names else gr.update(choices=names)
        return plot, line, update, names

    def follow(self, job_id, request: gr.Request = None):
        """(loss points, progress line) for a training job: its progress.jsonl as the job reported it."""
        self.access.require(request, ADMINS, "job.read")
        job_id = (job_id or "").strip()
        if not job_id:
            return None, "*Launch a build or training job (it is followed here), or enter a job id.*"
        try:
            job = self.s.jobs.jobs.get(job_id)
            records = self.s.jobs.read_progress(job_id)
        except Exception as exc:
            return None, f"(no progress: {exc})"
        points = [{"step": r["done"], "loss": r["loss"]} for r in records if r.get("loss") is not None]
        last = next((r for r in reversed(records) if "done" in r), None)
        line = f"Job `{job_id}` ({job['kind']}) is **{job['status']}**"
        if last:
            eta = last.get("eta_s")
            line += f" · step {last['done']}/{last['total']}"
            line += f" · loss {last['loss']:.3f}" if last.get("loss") is not None else ""
            line += f" · ETA {int(eta // 60)} min {int(eta % 60)} s" if eta is not None and job["status"] == "running" else ""
        summary = (job.get("progress") or {}).get("summary") or {}
        if job["status"] == "done" and summary.get("adapter"):
            line += f" · adapter **{summary['adapter']}** is in the model pickers"
        import pandas as pd
        return (pd.DataFrame(points) if points else None), line


def build_train(services: Services, access: Access, timer: gr.Timer) -> None:
    h = TrainHandlers(services, access)
    with gr.Tab("Train"):
        gr.Markdown("Build a dataset from the seed corpus (and datagen output), then train a LoRA adapter on it. "
                    "Both run as background jobs; follow the loss below. A finished adapter is exported to "
                    "GGUF and appears in the Session tab's model list.")
        with gr.Accordion("1. Build a dataset", open=False):
            with gr.Row():
                d_name = gr.Textbox("act-think", label="Dataset name")
                d_kind = gr.Dropdown([("SFT conversations", "sft"), ("ORPO pairs", "orpo")], value="sft", label="Kind")
                d_modality = gr.Dropdown([("ACT", "act"), ("CBT", "cbt"), ("Both", "all")], value="act", label="Sessions")
                d_reasoning = gr.Checkbox(True, label="Keep reasoning (<think>)")
                d_window = gr.Number(4, precision=0, minimum=0, maximum=20, label="Exchanges per example (0 = whole)")
            d_go = gr.Button("Build dataset")
        with gr.Row():
            method = gr.Dropdown([("SFT", "sft"), ("ORPO", "orpo")], value="sft", label="Method")
            dataset = gr.Dropdown(h.datasets(), label="Dataset", allow_custom_value=True)
            output = gr.Textbox("my-adapter", label="Adapter id")
            label = gr.Textbox("", label="Label in the model pickers")
            modality = gr.Dropdown([("ACT", "act"), ("CBT", "cbt"), ("Any", "any")], value="act", label="For")
            reasoning = gr.Checkbox(True, label="Answers with reasoning")
        with gr.Row():
            epochs = gr.Number(1, minimum=0.1, maximum=50, label="Epochs")
            max_steps = gr.Number(-1, precision=0, label="Max steps (-1 = epochs)")
            lr = gr.Number(2e-4, label="Learning rate")
            lora_r = gr.Number(16, precision=0, minimum=1, maximum=256, label="LoRA r")
            lora_alpha = gr.Number(32, precision=0, minimum=1, maximum=512, label="LoRA alpha")
            targets = gr.Textbox("q_proj,k_proj,v_proj,o_proj", label="LoRA targets")
            max_length = gr.Number(1024, precision=0, minimum=128, maximum=8192, label="Max length (tokens)")
        go = gr.Button("Start training", variant="primary")
        note = gr.Markdown(elem_id="train-note")
        with gr.Row():
            follow_id = gr.Textbox(label="Follow job id", scale=3)
        line = gr.Markdown(elem_id="train-progress")
        plot = gr.LinePlot(x="step", y="loss", title="Training loss", height=260)
    listed = gr.State(h.datasets())  # what the dataset picker offers now
    d_go.click(h.build, [d_name, d_kind, d_modality, d_reasoning, d_window], [note, follow_id], api_name="train_build")
    go.click(h.train, [method, dataset, output, label, modality, reasoning, epochs, max_steps, lr, lora_r,
                       lora_alpha, targets, max_length], [note, follow_id], api_name="train_start")
    follow_id.submit(h.follow, follow_id, [plot, line], api_name="train_follow")
    timer.tick(h.follow_all, [follow_id, listed], [plot, line, dataset, listed], api_name=False,
               show_progress="hidden")
