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
from ui.access import EVERYONE, Access
from ui.chat_view import reasoning_message, render_turns
from vocabulary import EventKind, Modality

MODALITIES = [("CBT (depression course)", Modality.CBT.value), ("ACT (single session)", Modality.ACT.value)]
REVIEWING = "Your therapist is reviewing your message. The reply will appear here shortly."


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
        """(consent panel, chat panel, reasoning toggle, session id, chat, turn ids, status, poll timer)."""
        who = self.access.who(request, "session.load")
        consented = not self.engine.needs_consent(who.user_id)
        sid, msgs, ids, note = "", [], [], ""
        latest = [s for s in self.sessions.list(limit=5, user_id=who.user_id) if s["status"] != "ended"] \
            if who.user_id else []
        if consented and latest:  # a patient who reloads the page finds their open session again
            sid = latest[0]["id"]
            msgs, ids = self._redraw(sid, False)
            note = f"Welcome back, {who.username}. Your session is still open."
        waiting = bool(sid) and self._awaiting_review(sid)
        return (gr.update(visible=not consented), gr.update(visible=consented),
                gr.update(visible=who.supervises, value=False), sid, msgs, ids,
                REVIEWING if waiting else note, gr.update(active=waiting))

    def consent(self, agreed, request: gr.Request = None):
        who = self.access.require(request, EVERYONE, "consent")
        if not agreed:
            return gr.update(), gr.update(), "**Please tick the box** to confirm you have read the information."
        self.engine.record_consent(who.user_id, who.username)
        return gr.update(visible=False), gr.update(visible=True), "Thank you. You can start whenever you are ready."

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

    def start_next(self, sid, modality, model_id, show, request: gr.Request = None):
        if not sid:
            return gr.update(), [], [], "**Start a session first**; the next one continues its course."
        return self._start(modality, model_id, show, sid, request)

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
            yield sid or "", gr.update(), gr.update(), f"**Not sent:** {exc}", gr.update()
            return
        for update in self._stream(sid, events, show):
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

    def _stream(self, sid, events, show):
        """Yields (chat, turn ids, status, message box): stored turns plus the live reply."""
        msgs, ids = self._redraw(sid, show)
        reasoning, answer, error, notice = "", "", None, ""
        yield msgs, ids, "", ""
        for event in events:
            if event.kind == "flag":
                notice = ("**Safety check:** this message was flagged for the supervising clinician "
                          f"(level: {event.text}).")
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
                live.append({"role": "assistant", "content": answer})
            yield live, ids, "", ""
        msgs, ids = self._redraw(sid, show)
        if self.sessions.get(sid)["status"] == "hold" and REVIEWING not in notice:
            notice += " This session is on hold: a supervisor reviews each reply before you see it."
        yield msgs, ids, (f"**{error}**" if error else notice.strip()), ""

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
        chat = gr.Chatbot(label="Session", height=460, feedback_options=("Like", "Dislike"), elem_id="session-chat")
        turn_ids = gr.State([])
        message = gr.Textbox(label="Your message (you are the patient)", lines=2,
                             placeholder="Type how you are feeling, then press Send")
        with gr.Row():
            send = gr.Button("Send", variant="primary")
            retry = gr.Button("Retry reply")
            new = gr.Button("New session")
            following = gr.Button("Next session of this course")
            end = gr.Button("End session")
        with gr.Row():
            session_id = gr.Textbox(label="Session id", interactive=False, scale=1)
            status = gr.Markdown(scale=3, elem_id="session-status")
    timer = gr.Timer(2.0, active=False)

    app.load(h.on_load, None, [consent_panel, chat_panel, show, session_id, chat, turn_ids, status, timer],
             api_name="session_load")
    agree.click(h.consent, agreed, [consent_panel, chat_panel, consent_status], api_name="accept_consent")
    started = [session_id, chat, turn_ids, status]
    streamed = [chat, turn_ids, status, message]
    modality.change(h.on_modality, modality, model, api_name=False)
    app.load(h.on_modality, modality, model, api_name="session_models")  # adapters trained since the app started
    new.click(h.start, [modality, model, show], started, api_name="start_session")
    following.click(h.start_next, [session_id, modality, model, show], started, api_name="next_session")
    send_inputs = [session_id, message, show, modality, model]
    send.click(h.send, send_inputs, [session_id, *streamed], api_name="send").then(
        h.waiting, session_id, timer, api_name=False)
    message.submit(h.send, send_inputs, [session_id, *streamed], api_name=False).then(
        h.waiting, session_id, timer, api_name=False)
    retry.click(h.retry, [session_id, show], streamed, api_name="retry").then(
        h.waiting, session_id, timer, api_name=False)
    timer.tick(h.poll, [session_id, show], [chat, turn_ids, status, timer], api_name="session_poll")
    end.click(h.end, session_id, status, api_name="end_session")
    show.change(h.redraw, [session_id, show], [chat, turn_ids], api_name="history")
    chat.like(h.like, [session_id, turn_ids], status, api_name=False)
