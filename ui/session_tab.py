"""Session tab: a human plays the patient and chats with a CBT or ACT therapist model.

Consent comes first. Patients see only their own sessions and never the model's reasoning;
supervisors and admins may show it. Every handler checks the caller on the server side.
"""
from __future__ import annotations

import gradio as gr

from models.catalog import CatalogError
from services import Services
from store.sessions import SessionNotFound
from therapist.session import TurnRejected
from ui import location
from ui.access import EVERYONE, Access
from ui.chat_view import ANSWER_LABEL, reasoning_message, render_turns
from vocabulary import EventKind, Modality

MODALITIES = [("CBT (depression course)", Modality.CBT.value), ("ACT (single session)", Modality.ACT.value)]
REVIEWING = "Your therapist is reviewing your message. The reply will appear here shortly."
KEPT = "Your message is still in the box above."  # the status line sits under the box


def safety_notice(level: str, clinical: bool) -> str:
    """What the status line says when the screen flags a message: plain words for the patient; the
    clinical level only in the supervisor's view."""
    if clinical:
        return f"**Safety check:** this message was flagged for the supervising clinician (level: {level})."
    return ("**Safety check:** what you wrote has been passed to the clinician supervising this study, "
            "so a person will look at it. You are not in trouble.")


class SessionHandlers:
    """The tab's event handlers; each returns or yields values for the wired outputs."""

    def __init__(self, services: Services, access: Access | None = None):
        self.services = services
        self.engine = services.engine
        self.sessions = services.sessions
        self.access = access or Access(services)

    def model_choices(self, modality: str) -> list[tuple[str, str]]:
        return [(e.label, e.id) for e in self.services.catalog.entries(modality)]

    def on_modality(self, modality, request: gr.Request = None):
        self.access.who(request, "session.models")
        choices = self.model_choices(modality)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    # ----- page load and consent -------------------------------------------------------------
    def on_load(self, request: gr.Request = None):
        """(consent panel, chat panel, reasoning toggle, session id, chat, turn ids, status, poll
        timer, open-sessions list, its row, approach, model). A reload, or a link naming one of the caller's own sessions
        (``?session=``), lands in that session; else in their latest open one."""
        who = self.access.who(request, "session.load")
        consented = not self.engine.needs_consent(who.user_id)
        sid, msgs, ids, note = "", [], [], ""
        linked = location.session_from(request, "session")
        if consented and linked:
            sid, note = self._linked(who, linked)
        own = self.sessions.open_for(who.user_id) if consented else []
        if consented and not sid and own:  # a patient who reloads the page finds their open session again
            sid = own[0]["id"]
            note = f"Welcome back, {who.username}. Your session is still open."
        modality, model_id = Modality.CBT.value, "default"
        if sid:
            msgs, ids = self._redraw(sid, False)
            session = self.sessions.get(sid)
            modality, model_id = session["modality"], session["therapist_model"]
        choices = self.model_choices(modality)  # adapters trained since the app started are listed
        if model_id not in [value for _, value in choices]:
            model_id = choices[0][1] if choices else None
        waiting = bool(sid) and self._awaiting_review(sid)
        return (gr.update(visible=not consented), gr.update(visible=consented),
                gr.update(visible=who.supervises, value=False), sid, msgs, ids,
                REVIEWING if waiting else note, gr.update(active=waiting), *self._open_list(own, sid),
                modality, gr.update(choices=choices, value=model_id))

    def _linked(self, who, sid: str) -> tuple[str, str]:
        """(session id, note) for a session named in the URL: only the caller's own, never a
        simulation; an ended one is shown with a note (a new message is refused by the engine)."""
        try:
            session = self.sessions.get(sid)
        except SessionNotFound:
            session = None
        if session is None or session["simulated"] or session["user_id"] != who.user_id:
            self.services.audit.record(who.username, EventKind.ACCESS_DENIED, sid, endpoint="session.link",
                                       role=who.role, reason="not this user's session or unknown")
            return "", "The session in this link is not one of yours, so it was not opened."
        if session["status"] in ("ended", "abandoned"):
            return sid, "This session is over (it ended or was closed after a long pause). Press **New session** to start another."
        return sid, f"Welcome back, {who.username}. Your session is still open."

    def _open_list(self, own: list[dict], current: str):
        """The "Continue where you left off" choices: the caller's other open sessions."""
        choices = [(self._label(row), row["id"]) for row in own if row["id"] != current]
        return gr.update(choices=choices, value=None), gr.update(visible=bool(choices))

    def _label(self, row: dict) -> str:
        n = sum(1 for t in self.sessions.turns(row["id"]) if t["role"] == "patient")
        started = (row["created_utc"] or "")[:16].replace("T", " ")
        return f"{started} UTC · {row['modality'].upper()} · {row['therapist_model']} · {n} message(s)"

    def resume(self, pick, show, request: gr.Request = None):
        """Open one of the caller's own open sessions: (session id, chat, turn ids, status, list, row)."""
        if not pick:
            return gr.update(), gr.update(), gr.update(), "**Choose a session to continue.**", gr.update(), gr.update()
        who, session = self.access.session_for(request, pick, "session.resume")
        if session["user_id"] != who.user_id or session["simulated"]:
            return (gr.update(), gr.update(), gr.update(), "**Only your own sessions can be continued here.**",
                    gr.update(), gr.update())
        msgs, ids = self._redraw(pick, show and who.supervises)
        return (pick, msgs, ids, "Session reopened: carry on where you left off.",
                *self._open_list(self.sessions.open_for(who.user_id), pick))

    def consent(self, agreed, request: gr.Request = None):
        """(consent panel, chat panel, the consent panel's line, the chat's status line): the
        thank-you goes where it is seen, under the chat, since the consent panel closes."""
        who = self.access.require(request, EVERYONE, "consent")
        if not agreed:
            return (gr.update(), gr.update(), "**Please tick the box** to confirm you have read the information.",
                    gr.update())
        self.engine.record_consent(who.user_id, who.username)
        return (gr.update(visible=False), gr.update(visible=True), "",
                "Thank you for agreeing. Type your first message below whenever you are ready.")

    # ----- conversation ------------------------------------------------------------------------
    def _redraw(self, sid, show):
        try:
            return render_turns(self.sessions.turns(sid), bool(show))
        except SessionNotFound:
            return [], []

    def redraw(self, sid, show, request: gr.Request = None):
        """(chat messages, turn ids) of a stored session; reasoning only for supervisors."""
        if not sid:
            return [], []
        who, session = self.access.session_for(request, sid, "session.history")
        self.access.record_read(who, session)
        return self._redraw(sid, show and who.supervises)

    def start(self, modality, model_id, show, request: gr.Request = None):
        return self._start(modality, model_id, show, None, request)

    def _start(self, modality, model_id, show, continue_from, request):
        who = self.access.require(request, EVERYONE, "session.start")
        if continue_from:
            self.access.session_for(request, continue_from, "session.next")
        try:
            row = self.engine.start(modality, model_id, user_id=who.user_id,
                                    continue_from=continue_from or None, actor=who.username)
        except (TurnRejected, CatalogError, SessionNotFound) as exc:
            return gr.update(), [], [], f"**Could not start:** {exc}"
        msgs, ids = self._redraw(row["id"], show and who.supervises)
        note = f"Session {row['course_index']} of course `{row['course_id']}` started."
        if row["status"] == "hold":
            note += " A supervisor will review the therapist's replies in this session."
        return row["id"], msgs, ids, note

    def start_next(self, sid, modality, model_id, show, confirmed=None, request: gr.Request = None):
        """The next session of the course: (session id, chat, turn ids, status, confirmation).

        A course keeps its therapist model. When the dropdown shows another one, the first press
        only says so; pressing again with the same choice switches the course knowingly."""
        if not sid:
            return gr.update(), [], [], "**Start a session first**; the next one continues its course.", None
        _, previous = self.access.session_for(request, sid, "session.next")
        kept = previous["therapist_model"]
        if model_id and model_id != kept and confirmed != f"{sid}:{model_id}":
            return (gr.update(), gr.update(), gr.update(),
                    f"This course has used **{self._model_label(kept)}**; the dropdown shows "
                    f"**{self._model_label(model_id)}**. Press **Next session of this course** again to "
                    f"continue the course with {self._model_label(model_id)}, or choose "
                    f"{self._model_label(kept)} in the dropdown.", f"{sid}:{model_id}")
        return (*self._start(modality, model_id or kept, show, sid, request), None)

    def _model_label(self, model_id: str) -> str:
        try:
            return self.services.catalog.get(model_id).label
        except (CatalogError, KeyError, LookupError):
            return model_id

    def header(self, sid, request: gr.Request = None):
        """The line above the chat: which session is open and the model that answers in it."""
        if not sid:
            return "*No session open yet: your first message starts one with the approach and model above.*"
        _, session = self.access.session_for(request, sid, "session.header")
        course = f" · session {session['course_index']} of its course" if session["modality"] == "cbt" else ""
        return (f"**{session['modality'].upper()} session**{course} · therapist model "
                f"**{self._model_label(session['therapist_model'])}** · status {session['status']}")

    def on_model(self, sid, model_id, request: gr.Request = None):
        """The dropdown changed: say plainly that the open session keeps its model."""
        if not sid or not model_id:
            return gr.update()
        _, session = self.access.session_for(request, sid, "session.models")
        if session["status"] not in ("active", "hold") or session["therapist_model"] == model_id:
            return gr.update()
        return (f"This session stays with **{self._model_label(session['therapist_model'])}**. Press **New "
                f"session** to start one with **{self._model_label(model_id)}**.")

    def send(self, sid, text, show, modality, model_id, request: gr.Request = None):
        """Yields (session id, chat, turn ids, status, message box) while the reply streams.

        With no session open yet, the first message starts one with the chosen approach and model.
        """
        who = self.access.who(request, "session.send")
        if sid:
            self.access.session_for(request, sid, "session.send")
        show = show and who.supervises
        try:
            text = self.engine.clean_message(text)
            if not sid:
                sid = self.engine.start(modality, model_id, user_id=who.user_id, actor=who.username)["id"]
            events = self.engine.turn(sid, text)
            next(events)  # the patient turn is committed before anything is generated
        except (TurnRejected, SessionNotFound, CatalogError) as exc:
            # The box is left as it is: the message the patient typed is never thrown away.
            yield sid or "", gr.update(), gr.update(), f"**Not sent:** {exc} {KEPT}", gr.update()
            return
        for update in self._stream(sid, events, show, clear_box=True):
            yield (sid, *update)

    def retry(self, sid, show, request: gr.Request = None):
        if not sid:
            yield gr.update(), gr.update(), "**No session open.**", gr.update()
            return
        who, _ = self.access.session_for(request, sid, "session.retry")
        turns = self.sessions.turns(sid)
        if not turns or turns[-1]["role"] != "patient" or self._awaiting_review(sid):
            yield gr.update(), gr.update(), "Nothing to retry: the last message already has a reply.", gr.update()
            return
        try:
            events = self.engine.reply(sid)
        except TurnRejected as exc:
            yield gr.update(), gr.update(), f"**{exc}**", gr.update()
            return
        yield from self._stream(sid, events, show and who.supervises)

    def _stream(self, sid, events, show, clear_box: bool = False):
        """Yields (chat, turn ids, status, message box): stored turns plus the live reply.

        The message box is emptied once, when the sent message is stored (``clear_box``), and never
        touched again while the reply streams, so what the patient types meanwhile stays. The
        status line is not rewritten by the stream either: a refusal shown meanwhile stays visible.
        """
        msgs, ids = self._redraw(sid, show)
        reasoning, answer, error, notice = "", "", None, ""
        yield msgs, ids, "", ("" if clear_box else gr.update())
        for event in events:
            if event.kind == "flag":
                notice = safety_notice(event.text, show)
            elif event.kind == "reasoning":
                reasoning += event.text
            elif event.kind == "answer":
                answer += event.text
            elif event.kind == "rewrite":
                answer = event.text
            elif event.kind == "error":
                error = event.text
            elif event.kind == "held":
                notice += " " + REVIEWING
            live = list(msgs)
            if show and reasoning:
                live.append(reasoning_message(reasoning, pending=not answer))
            if answer:
                label = f"{ANSWER_LABEL}\n\n" if show and reasoning else ""
                live.append({"role": "assistant", "content": label + answer})
            yield live, ids, gr.update(), gr.update()
        msgs, ids = self._redraw(sid, show)
        if self.sessions.get(sid)["status"] == "hold" and REVIEWING not in notice:
            notice += " This session is on hold: a supervisor reviews each reply before you see it."
        yield msgs, ids, (f"**{error}**" if error else notice.strip()), gr.update()

    def _awaiting_review(self, sid) -> bool:
        return self.services.drafts.pending(sid) is not None or (
            self.sessions.get(sid)["status"] == "hold" and self.engine.replying(sid))

    def waiting(self, sid, request: gr.Request = None):
        """Turns the poll timer on while a reply waits for the supervisor."""
        if not sid:
            return gr.update(active=False)
        self.access.session_for(request, sid, "session.poll")
        return gr.update(active=self._awaiting_review(sid))

    def poll(self, sid, show, request: gr.Request = None):
        """Timer tick while waiting: (chat, turn ids, status, timer)."""
        if not sid:
            return gr.update(), gr.update(), gr.update(), gr.update(active=False)
        who, _ = self.access.session_for(request, sid, "session.poll")
        msgs, ids = self._redraw(sid, show and who.supervises)
        waiting = self._awaiting_review(sid)
        return msgs, ids, REVIEWING if waiting else "", gr.update(active=waiting)

    def end(self, sid, request: gr.Request = None):
        if not sid:
            return "**No session to end.**"
        who, _ = self.access.session_for(request, sid, "session.end")
        summary = self.engine.end(sid, actor=who.username)
        return "Session ended." + (f"\n\n{summary}" if summary and who.supervises else "")

    def like(self, sid, ids, data: gr.LikeData, request: gr.Request = None):
        index = data.index if isinstance(data.index, int) else data.index[0]
        turn_id = ids[index] if 0 <= index < len(ids) else None
        if not turn_id or not sid:
            return "Only therapist replies can be rated."
        who, _ = self.access.session_for(request, sid, "turn.feedback")
        if turn_id not in {t["id"] for t in self.sessions.turns(sid)}:
            return "Only therapist replies of this session can be rated."
        value = 1 if data.liked is True else -1 if data.liked is False else None
        self.sessions.set_feedback(turn_id, value)
        self.services.audit.record(who.username, EventKind.TURN_FEEDBACK, turn_id, value=value, session=sid)
        return "Feedback saved."


def build_session(services: Services, access: Access, app: gr.Blocks) -> None:
    h = SessionHandlers(services, access)
    with gr.Column(visible=False) as consent_panel:
        gr.Markdown(services.engine.consent.text)
        gr.Markdown(f"*Consent version {services.engine.consent.version}*")
        agreed = gr.Checkbox(False, label="I have read this information and I agree to take part")
        agree = gr.Button("Continue", variant="primary")
        consent_status = gr.Markdown()
    with gr.Column(visible=False) as chat_panel:
        with gr.Row():
            modality = gr.Radio(MODALITIES, value="cbt", label="Therapy approach")
            model = gr.Dropdown(h.model_choices("cbt"), value="default", label="Therapist model")
            show = gr.Checkbox(False, label="Show reasoning (supervisor / researcher view)")
        header = gr.Markdown(h.header(""), elem_id="session-header")
        chat = gr.Chatbot(label="Session", height=460, feedback_options=("Like", "Dislike"), elem_id="session-chat")
        turn_ids = gr.State([])
        # One line that grows: Enter sends, Shift+Enter starts a new line (Gradio's rule for lines=1).
        message = gr.Textbox(label="Your message (you are the patient)", lines=1, max_lines=8,
                             placeholder="Type how you are feeling. Enter sends, Shift+Enter adds a line.")
        status = gr.Markdown(elem_id="session-status")  # right by the box: safety notices are seen
        with gr.Row():
            send = gr.Button("Send", variant="primary")
            retry = gr.Button("Retry reply")
            new = gr.Button("New session")
            following = gr.Button("Next session of this course")
            end = gr.Button("End session")
        session_id = gr.Textbox(label="Session id", interactive=False)
        with gr.Row(visible=False) as open_row:
            open_list = gr.Dropdown([], label="Continue where you left off (your other open sessions)", scale=3)
            resume = gr.Button("Continue this session", scale=1)
    timer = gr.Timer(2.0, active=False)

    app.load(h.on_load, None, [consent_panel, chat_panel, show, session_id, chat, turn_ids, status, timer,
                               open_list, open_row, modality, model], api_name="session_load")
    session_id.change(None, session_id, None, js=location.SESSION_URL_JS, api_name=False)  # reload lands here
    resume.click(h.resume, [open_list, show], [session_id, chat, turn_ids, status, open_list, open_row],
                 api_name="resume_session")
    agree.click(h.consent, agreed, [consent_panel, chat_panel, consent_status, status], api_name="accept_consent")
    started = [session_id, chat, turn_ids, status]
    streamed = [chat, turn_ids, status, message]
    # .input: only a person's choice, not the page load setting them to the open session's values
    modality.input(h.on_modality, modality, model, api_name="session_models")
    new.click(h.start, [modality, model, show], started, api_name="start_session")
    switch = gr.State(None)  # "<session>:<model>" once the user has been told the course's model differs
    following.click(h.start_next, [session_id, modality, model, show, switch], [*started, switch],
                    api_name="next_session")
    session_id.change(h.header, session_id, header, api_name=False)
    model.input(h.on_model, [session_id, model], status, api_name=False)
    send_inputs = [session_id, message, show, modality, model]
    # "multiple": a second Send while a reply streams reaches the server and is refused there with
    # a notice (the text stays in the box), instead of being dropped by the page without a word.
    send.click(h.send, send_inputs, [session_id, *streamed], api_name="send", trigger_mode="multiple").then(
        h.waiting, session_id, timer, api_name=False)
    message.submit(h.send, send_inputs, [session_id, *streamed], api_name=False, trigger_mode="multiple").then(
        h.waiting, session_id, timer, api_name=False)
    retry.click(h.retry, [session_id, show], streamed, api_name="retry").then(
        h.waiting, session_id, timer, api_name=False)
    timer.tick(h.poll, [session_id, show], [chat, turn_ids, status, timer], api_name="session_poll")
    end.click(h.end, session_id, status, api_name="end_session")
    show.change(h.redraw, [session_id, show], [chat, turn_ids], api_name="history")
    chat.like(h.like, [session_id, turn_ids], status, api_name=False)
