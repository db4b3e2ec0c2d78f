"""Admin › Study: launch a whole comparison study as a background job and read its report.

A study file (``eval/studies/*.yaml`` or ``<data dir>/studies/*.yaml``) runs as ``python -m eval
study`` in a job: simulate, judge, analyse, each resumable, the job's progress saying which stage
it is in. The report folder it writes (``<data dir>/studies/<name>/``) is shown here: the Markdown
report, the tables and the plots.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import gradio as gr

from jobs.kinds import StudyJob
from services import Services
from ui.access import Access

ADMINS = ("admin",)
NO_REPORT = ("*No study report yet.* Launch a study above with its **analyse** stage (it writes the report), "
             "then press **Refresh list** and pick the study.")
_OVERRIDE = re.compile(r"^[a-z_]+=[^\n]{0,200}$")


class StudyHandlers:
    def __init__(self, services: Services, access: Access):
        self.s = services
        self.access = access

    def _user_dir(self) -> Path:
        return self.s.settings.data_dir / "studies"

    def study_files(self) -> list[tuple[str, str]]:
        from eval.study import STUDIES_DIR
        files = sorted(STUDIES_DIR.glob("*.yaml"))
        if self._user_dir().is_dir():
            files += sorted(self._user_dir().glob("*.yaml"))
        return [(f"{p.stem} ({'shipped' if p.parent == STUDIES_DIR else 'yours'})", str(p)) for p in files]

    def launch(self, path, overrides_text, stages, confirmed=None, request: gr.Request = None):
        """(note, confirmation). Large work (eval/estimate.py) is only described on the first
        press; pressing again with the same file, overrides and stages launches it."""
        from eval.estimate import study_size
        from eval.study import StudyError, check_models, load_study
        who = self.access.require(request, ADMINS, "job.launch")
        if path not in {p for _, p in self.study_files()}:
            return "**Not launched:** pick a study file.", None
        overrides = [line.strip() for line in (overrides_text or "").splitlines() if line.strip()]
        bad = [o for o in overrides if not _OVERRIDE.match(o)]
        stages = [s for s in (stages or []) if s in ("simulate", "judge", "analyse")]
        if bad or not stages:
            return "**Not launched:** " + ("overrides are key=value lines" if bad else "pick at least one stage") + ".", None
        try:
            config = load_study(path, overrides)
            check_models(self.s.catalog, self.s.settings.data_dir, config)
            size = study_size(self.s.store, self.s.personas, config, stages)
        except (StudyError, FileNotFoundError, ValueError) as exc:
            return f"**Not launched:** {exc}", None
        key = json.dumps([path, overrides, stages])
        if size.needs_confirmation() and confirmed != key:
            return (f"**{config.name}: {size.line()}.** This is long work: press **Launch study job** again "
                    "to start it, or change the overrides (e.g. turns=2, repeats=1) for a pilot."), key
        job = self.s.jobs.submit(StudyJob(path, tuple(stages), tuple(overrides)), who.username)
        return f"Launched study job `{job['id']}` ({config.name}: {', '.join(stages)}; {size.line()}).", None

    def reports(self, request: gr.Request = None):
        self.access.require(request, ADMINS, "study.read")
        root = self._user_dir()
        names = sorted(p.parent.name for p in root.glob("*/report.md")) if root.is_dir() else []
        return gr.update(choices=names, value=names[0] if names else None)

    def show(self, name, request: gr.Request = None):
        """(report markdown, descriptives table, tests table, plot image paths)."""
        self.access.require(request, ADMINS, "study.read", name)
        folder = self._user_dir() / (name or "")
        if not name or not (folder / "report.md").is_file() or folder.parent != self._user_dir():
            return NO_REPORT, _shown(None), _shown(None), []
        text = (folder / "report.md").read_text(encoding="utf-8")
        text = re.sub(r"!\[[^\]]*\]\([^)]*\)\n?", "", text)  # the plots are shown in the gallery
        return text, _shown(_table(folder / "descriptives.csv")), _shown(_table(folder / "tests.csv")), \
            [str(p) for p in sorted(folder.glob("*.png"))]


def _shown(table):
    """A results table, hidden while there is none (an empty one shows headers "1 2 3")."""
    return gr.update(value=table, visible=table is not None)


def _table(path: Path):
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        return None
    import pandas as pd
    return pd.DataFrame(rows[1:], columns=rows[0])


def build_study(services: Services, access: Access) -> None:
    h = StudyHandlers(services, access)
    with gr.Tab("Study"):
        gr.Markdown("Run a comparison study (variants × standardized patients → simulated sessions → judge "
                    "scores → statistics) as a background job; a re-run resumes. Follow it in the jobs table.")
        with gr.Row():
            study = gr.Dropdown(h.study_files(), label="Study file", scale=2)
            stages = gr.CheckboxGroup(["simulate", "judge", "analyse"], value=["simulate", "judge", "analyse"],
                                      label="Stages")
        overrides = gr.Textbox("", lines=2, label="Overrides, one key=value per line (e.g. turns=4, rubrics=[tes])")
        go = gr.Button("Launch study job", variant="primary")
        note = gr.Markdown()
        gr.Markdown("### Results")
        with gr.Row():
            report = gr.Dropdown([], label="Study report", scale=3)
            refresh = gr.Button("Refresh list", scale=1)
        gallery = gr.Gallery(label="Plots", columns=2, height=360)
        descriptives = gr.Dataframe(label="Descriptives: M (SD), range, n per variant", interactive=False,
                                    visible=False)
        tests = gr.Dataframe(label="Tests: omnibus, contrasts (Holm-Sidak), nonparametric", interactive=False,
                             visible=False)
        text = gr.Markdown(NO_REPORT)
    confirm = gr.State(None)  # the launch the note described, awaiting a second press
    go.click(h.launch, [study, overrides, stages, confirm], [note, confirm], api_name="study_launch")
    refresh.click(h.reports, None, report, api_name="study_reports")
    report.change(h.show, report, [text, descriptives, tests, gallery], api_name="study_show")
