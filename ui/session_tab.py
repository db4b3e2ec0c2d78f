"""Session tab: a human plays the patient and chats with a CBT or ACT therapist model."""
from __future__ import annotations

import gradio as gr

from models.catalog import CatalogError
from services import Services
from store.sessions import SessionNotFound
from therapist.session import TurnRejected
from ui.chat_view import reasoning_message, render_turns

MODALITIES = [("CBT (depression course)", "cbt"), ("ACT (single session)", "act")]
ACTOR = "researcher"  # single-researcher mode until accounts exist


class SessionHandlers:
    """The tab's event handlers; each returns or yields values for the wired outputs."""

    def __init__(self, services: Services):
        self.services = services
        self.engine = services.engine
        self.sessions = services.sessions

    def model_choices(self, modality: str) -> list[tuple[str, str]]:
        return [(e.label, e.id) for e in self.services.catalog.entries(modality)]

    def on_modality(self, modality):
        choices = self.model_choices(modality)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def redraw(self, sid, show):
        """(chat messages, turn ids) of a stored session."""
        if not sid:
            return [], []
        try:
            return render_turns(self.sessions.turns(sid), bool(show))
        except SessionNotFound:
            return [], []

    def start(self, modality, model_id, show, continue_from=None):
        try:
            row = self.engine.start(modality, model_id, continue_from=continue_from or None, actor=ACTOR)
        except (TurnRejected, CatalogError, SessionNotFound) as exc:
            return gr.update(), [], [], f"**Could not start:** {exc}"
        msgs, ids = self.redraw(row["id"], show)
        return row["id"], msgs, ids, f"Session {row['course_index']} of course `{row['course_id']}` started."

    def start_next(self, sid, modality, model_id, show):
        if not sid:
            return gr.update(), [], [], "**Start a session first**; the next one continues its course."
        return self.start(modality, model_id, show, continue_from=sid)

    def send(self, sid, text, show, modality, model_id):
        """Yields (session id, chat, turn ids, status, message box) while the reply streams.

        With no session open yet, the first message starts one with the chosen approach and model.
        """
        try:
            text = self.engine.clean_message(text)
            if not sid:
                sid = self.engine.start(modality, model_id, actor=ACTOR)["id"]
            events = self.engine.turn(sid, text)
            next(events)  # the patient turn is committed before anything is generated
        except (TurnRejected, SessionNotFound, CatalogError) as exc:
            yield sid or "", gr.update(), gr.update(), f"**Not sent:** {exc}", gr.update()
            return
        for update in self._stream(sid, events, show):
            yield (sid, *update)

    def retry(self, sid, show):
        turns = self.sessions.turns(sid) if sid else []
        if not turns or turns[-1]["role"] != "patient":
            yield gr.update(), gr.update(), "Nothing to retry: the last message already has a reply.", gr.update()
            return
        try:
            events = self.engine.reply(sid)
        except TurnRejected as exc:
            yield gr.update(), gr.update(), f"**{exc}**", gr.update()
            return
        yield from self._stream(sid, events, show)

    def _stream(self, sid, events, show):
        """Yields (chat, turn ids, status, message box): stored turns plus the live reply."""
        msgs, ids = self.redraw(sid, show)
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
            live = list(msgs)
            if show and reasoning:
                live.append(reasoning_message(reasoning, pending=not answer))
            if answer:
                live.append({"role": "assistant", "content": answer})
            yield live, ids, "", ""
        msgs, ids = self.redraw(sid, show)
        if self.sessions.get(sid)["status"] == "hold":
            notice += " This session is on hold until a supervisor reviews it."
        yield msgs, ids, (f"**{error}**" if error else notice.strip()), ""

    def end(self, sid):
        if not sid:
            return "**No session to end.**"
        try:
            summary = self.engine.end(sid, actor=ACTOR)
        except SessionNotFound as exc:
            return f"**Unknown session** {exc}"
        return "Session ended." + (f"\n\n{summary}" if summary else "")

    def like(self, sid, ids, data: gr.LikeData):
        index = data.index if isinstance(data.index, int) else data.index[0]
        turn_id = ids[index] if 0 <= index < len(ids) else None
        if not turn_id:
            return "Only therapist replies can be rated."
        value = 1 if data.liked is True else -1 if data.liked is False else None
        self.sessions.set_feedback(turn_id, value)
        self.services.audit.record(ACTOR, "turn.feedback", turn_id, value=value, session=sid)
        return "Feedback saved."


def build_session(services: Services) -> None:
    h = SessionHandlers(services)
    with gr.Row():
        modality = gr.Radio(MODALITIES, value="cbt", label="Therapy approach")
        model = gr.Dropdown(h.model_choices("cbt"), value="default", label="Therapist model")
        show = gr.Checkbox(False, label="Show reasoning (supervisor / researcher view)")
    chat = gr.Chatbot(label="Session", height=460, feedback_options=("Like", "Dislike"))
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
        status = gr.Markdown(scale=3)

    started = [session_id, chat, turn_ids, status]
    streamed = [chat, turn_ids, status, message]
    modality.change(h.on_modality, modality, model, api_name=False)
    new.click(h.start, [modality, model, show], started, api_name="start_session")
    following.click(h.start_next, [session_id, modality, model, show], started, api_name="next_session")
    send_inputs = [session_id, message, show, modality, model]
    send.click(h.send, send_inputs, [session_id, *streamed], api_name="send")
    message.submit(h.send, send_inputs, [session_id, *streamed], api_name=False)
    retry.click(h.retry, [session_id, show], streamed, api_name="retry")
    end.click(h.end, session_id, status, api_name="end_session")
    show.change(h.redraw, [session_id, show], [chat, turn_ids], api_name="history")
    chat.like(h.like, [session_id, turn_ids], status, api_name=False)
