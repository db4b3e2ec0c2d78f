"""Review tab: find sessions, read them (with the model's reasoning if wanted), rate them on any
rubric with a form built from the rubric, and see every human and judge rating side by side.

The form is a fixed bank of radio groups; choosing a rubric relabels the first N of them (one per
item, with the item's guidance and anchors) and hides the rest, so the form's endpoint is the same
for every rubric: ``review_save(session, rubric, comment, *item scores)``. Raters are supervisors
and admins; each rating is saved as the signed-in user and audited.
"""
from __future__ import annotations

import gradio as gr

from eval.ratings import RatingInvalid, rate_session, side_by_side
from eval.rubrics import Rubric, RubricError, list_rubrics, load_rubric, user_rubrics_dir
from services import Services
from store.ratings import RatingError, RatingStore
from ui.access import SUPERVISORS, Access
from ui.chat_view import render_turns
from vocabulary import EventKind

MAX_FORM_ITEMS = 40
FIND_HEADERS = ["Session id", "Started (UTC)", "Study", "Variant", "Model", "Approach", "Source", "Status",
                "Turns", "Flags", "Human ratings", "Judge ratings"]
FLAG_CHOICES = [("Any", "any"), ("Ever flagged", "flagged"), ("Open flag", "open"), ("Never flagged", "none")]
SOURCE_CHOICES = [("Any", "any"), ("Human patient", "human"), ("Simulated", "simulated"), ("Imported", "imported")]


def _source(row: dict) -> str:
    if (row.get("sim_key") or "").startswith("import:"):
        return "imported"
    return "simulated" if row["simulated"] else "human"


def _anchors(field: dict) -> str:
    return " · ".join(f"{a['value']} {a['label']}" + (f": {a['description']}" if a["description"] else "")
                      for a in field["anchors"] if a["description"] or a["label"])


class ReviewHandlers:
    def __init__(self, services: Services, access: Access):
        self.s = services
        self.access = access
        self.ratings = RatingStore(services.store)

    def _rubric_dirs(self):
        return [user_rubrics_dir(self.s.settings.data_dir)]

    def rubric_choices(self) -> list[tuple[str, str]]:
        return [(f"{r.name} [{r.id}]", r.id) for r in list_rubrics(self._rubric_dirs())]

    def _rubric(self, rubric_id) -> Rubric:
        try:
            return load_rubric(rubric_id, self._rubric_dirs())
        except RubricError as exc:
            raise gr.Error(f"Rubric not available: {exc}") from None

    # ----- finding ---------------------------------------------------------------------------
    def find(self, study, modality, model, flag, source, text, request: gr.Request = None):
        self.access.require(request, SUPERVISORS, "review.find")
        rows = self.s.sessions.find(study=study or None, modality=modality or None, model=model or None,
                                    flag=flag or "any", source=source or "any", text=text)
        table = [[r["id"], (r["created_utc"] or "")[:16].replace("T", " "), r["study"] or "", r["variant"] or "",
                  r["therapist_model"], r["modality"].upper(), _source(r), r["status"], r["n_turns"], r["n_flags"],
                  r["n_human"], r["n_judge"]] for r in rows]
        return table, f"{len(table)} session(s) found." + (" (showing the newest 200)" if len(table) >= 200 else "")

    def filters(self, request: gr.Request = None):
        self.access.require(request, SUPERVISORS, "review.filters")
        facets = self.s.sessions.facets()
        return (gr.update(choices=[""] + facets["study"]), gr.update(choices=[""] + facets["therapist_model"]),
                gr.update(choices=self.rubric_choices()))

    def initial(self, request: gr.Request = None):
        """At page load: the filter choices for raters, nothing (and no error) for anyone else."""
        if not self.access.who(request, "app.load").supervises:
            return gr.update(), gr.update(), gr.update()
        return self.filters(request)

    # ----- reading ---------------------------------------------------------------------------
    def open(self, sid, rubric_id, show_reasoning, request: gr.Request = None):
        """(session id, header, transcript, ratings table, *form)."""
        sid = (sid or "").strip()
        who = self.access.require(request, SUPERVISORS, "review.read", sid)
        if not sid:
            return ("", "*Pick a session above or paste its id.*", [], *self._rating_views(None, rubric_id, who.username))
        try:
            session = self.s.sessions.get(sid)
        except KeyError:
            raise gr.Error("Unknown session id.") from None
        self.access.record_read(who, session)
        chat, _ = render_turns(self.s.sessions.turns(sid), bool(show_reasoning))
        header = (f"**Session** `{sid}` · {session['modality'].upper()} · model `{session['therapist_model']}` · "
                  f"study {session['study'] or '-'} / variant {session['variant'] or '-'} · {_source(session)} · "
                  f"status {session['status']} · started {(session['created_utc'] or '')[:16]} UTC")
        return (sid, header, chat, *self._rating_views(sid, rubric_id, who.username))

    def select(self, rubric_id, show_reasoning, evt: gr.SelectData, request: gr.Request = None):
        row = evt.row_value or []
        return self.open(row[0] if row else "", rubric_id, show_reasoning, request)

    def redraw(self, sid, show_reasoning, request: gr.Request = None):
        self.access.require(request, SUPERVISORS, "review.read", sid)
        if not sid:
            return []
        return render_turns(self.s.sessions.turns(sid), bool(show_reasoning))[0]

    def _rating_views(self, sid, rubric_id, rater: str) -> list:
        """(ratings table, rubric description, comment, *radio updates): rubric and ratings read once."""
        rubric = self._rubric(rubric_id) if rubric_id else None
        ratings = self.ratings.for_session(sid, rubric.id) if sid and rubric else []
        return [self._ratings_table(sid, rubric, ratings), *self._form(sid, rubric, ratings, rater)]

    @staticmethod
    def _ratings_table(sid, rubric: Rubric | None, ratings: list[dict]):
        if not sid or rubric is None:
            return gr.update(value=[], headers=["Item"])
        headers, rows = side_by_side(ratings, rubric)
        if len(headers) == 1:
            return gr.update(value=[[row[0], "-"] for row in rows], headers=["Item", "No ratings yet"])
        return gr.update(value=[[str(x) for x in row] for row in rows], headers=headers)

    # ----- the form --------------------------------------------------------------------------
    def form(self, sid, rubric_id, request: gr.Request = None):
        who = self.access.require(request, SUPERVISORS, "review.form", sid)
        return tuple(self._rating_views(sid, rubric_id, who.username))

    @staticmethod
    def _form(sid, rubric: Rubric | None, ratings: list[dict], rater: str) -> list:
        """(rubric description, comment, *one update per radio group)."""
        if rubric is None:
            return ["*Choose a rubric to rate this session.*", "", *[gr.update(visible=False, value=None) for _ in range(MAX_FORM_ITEMS)]]
        own = next((r for r in ratings if r["rater_kind"] == "human" and r["rater_id"] == rater), None) if sid else None
        fields = rubric.form_fields()
        if len(fields) > MAX_FORM_ITEMS:
            raise gr.Error(f"{rubric.id} has {len(fields)} items; this form holds {MAX_FORM_ITEMS}.")
        anchor_lines = [_anchors(f) for f in fields]
        shared = len(set(anchor_lines)) == 1  # the same scale under every item: shown once, as a legend
        updates = []
        for f, anchors in zip(fields, anchor_lines):
            info = f["guidance"] if shared or not anchors else f"{f['guidance']}  [{anchors}]"
            updates.append(gr.update(visible=True, label=f"{f['number']}. {f['title']}", choices=f["choices"],
                                     info=info, value=(own or {}).get("scores", {}).get(f["id"])))
        updates += [gr.update(visible=False, value=None) for _ in range(MAX_FORM_ITEMS - len(fields))]
        about = f"**{rubric.name}** (v{rubric.version}): {rubric.description}"
        if shared and anchor_lines and anchor_lines[0]:
            about += f"\n\n**Scale for every item:** {anchor_lines[0]}"
        if own:
            about += f"\n\n*You rated this session on {own['updated_utc'][:16]} UTC; saving again edits your rating.*"
        return [about, (own or {}).get("comment") or "", *updates]

    def save(self, request: gr.Request, sid, rubric_id, comment, *values):
        """Save the signed-in rater's rating: (status line, ratings table).

        The request comes first because Gradio only fills in positional parameters, and the item
        scores arrive as ``*values``."""
        sid = (sid or "").strip()
        who = self.access.require(request, SUPERVISORS, "rating.save", sid)
        if not sid or not rubric_id:
            return "**Not saved:** open a session and choose a rubric first.", gr.update()
        rubric = self._rubric(rubric_id)
        scores = {it.id: values[i] if i < len(values) else None for i, it in enumerate(rubric.items)}
        try:
            self.s.sessions.get(sid)
            rating = rate_session(self.ratings, rubric, sid, who.username, scores, comment)
        except KeyError:
            return "**Not saved:** unknown session.", gr.update()
        except (RatingInvalid, RatingError) as exc:
            return f"**{exc}**", gr.update()
        self.s.audit.record(who.username, EventKind.RATING_SAVE, sid, rubric=rubric.id, rating=rating["id"],
                            total=rating["total"])
        total = rating["total"]
        return (f"Saved your {rubric.id} rating (total {round(total, 2):g})." if total is not None else "Saved.",
                self._ratings_table(sid, rubric, self.ratings.for_session(sid, rubric.id)))


def build_review(services: Services, access: Access, app: gr.Blocks) -> None:
    h = ReviewHandlers(services, access)
    gr.Markdown("Find sessions, read them, and rate them on a rubric. Your rating is saved under your "
                "name; other raters' and the LLM judges' scores appear beside it.")
    with gr.Row():
        study = gr.Dropdown([""], value="", label="Study", allow_custom_value=True)
        modality = gr.Dropdown([("Any", ""), ("CBT", "cbt"), ("ACT", "act")], value="", label="Approach")
        model = gr.Dropdown([""], value="", label="Therapist model", allow_custom_value=True)
        flag = gr.Dropdown(FLAG_CHOICES, value="any", label="Risk flags")
        source = gr.Dropdown(SOURCE_CHOICES, value="any", label="Source")
    with gr.Row():
        text = gr.Textbox(label="Words in the transcript (full-text search)", scale=4)
        find = gr.Button("Find sessions", variant="primary", scale=1)
        refresh = gr.Button("Refresh filters", scale=1)
    found_line = gr.Markdown()
    found = gr.Dataframe(headers=FIND_HEADERS, interactive=False, wrap=True, label="Sessions (click one to open it)",
                         elem_id="review-found")
    with gr.Row():
        sid = gr.Textbox(label="Session id", scale=3)
        rubric = gr.Dropdown(h.rubric_choices(), value=None, label="Rubric", scale=2)
        show_reasoning = gr.Checkbox(True, label="Show the model's reasoning", scale=1)
        open_btn = gr.Button("Open", scale=1)
    header = gr.Markdown()
    with gr.Row():
        with gr.Column(scale=3):
            chat = gr.Chatbot(label="Transcript", height=520, elem_id="review-chat")
            ratings = gr.Dataframe(headers=["Item"], interactive=False, wrap=True,
                                   label="Ratings of this session (humans, then judges)",
                                   elem_id="review-ratings")
        with gr.Column(scale=2):
            about = gr.Markdown("*Choose a rubric to rate this session.*")
            items = [gr.Radio(choices=[], visible=False, label=f"Item {i + 1}", elem_id=f"review-item-{i + 1}")
                     for i in range(MAX_FORM_ITEMS)]
            comment = gr.Textbox(label="Comment (optional)", lines=3)
            save = gr.Button("Save my rating", variant="primary")
            saved = gr.Markdown(elem_id="review-saved")
    find_inputs = [study, modality, model, flag, source, text]
    find.click(h.find, find_inputs, [found, found_line], api_name="review_find")
    text.submit(h.find, find_inputs, [found, found_line], api_name=False)
    refresh.click(h.filters, None, [study, model, rubric], api_name="review_filters")
    view = [sid, header, chat, ratings, about, comment, *items]
    open_btn.click(h.open, [sid, rubric, show_reasoning], view, api_name="review_open")
    found.select(h.select, [rubric, show_reasoning], view, api_name=False)
    rubric.change(h.form, [sid, rubric], [ratings, about, comment, *items], api_name="review_form")
    show_reasoning.change(h.redraw, [sid, show_reasoning], chat, api_name=False)
    save.click(h.save, [sid, rubric, comment, *items], [saved, ratings], api_name="review_save")
    app.load(h.initial, None, [study, model, rubric], api_name=False)
