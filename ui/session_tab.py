"""Session tab: a human plays the patient and chats with a CBT or ACT therapist model."""
from __future__ import annotations

import gradio as gr

from models.catalog import CatalogError
from services import Services
from store.sessions import SessionNotFound
from therapist.session import TurnRejected
from ui.chat_view import reasoning_message, render_turns

MODALITIES = [("CBT (depression course)", "cbt"), ("ACT (single session)", "act")]


def _model_choices(services: Services, modality: str) -> list[tuple[str, str]]:
    return [(e.label, e.id) for e in services.catalog.entries(modality)]


def build_session(services: Services) -> None:
    engine, sessions = services.engine, services.sessions

    with gr.Row():
        modality = gr.Radio(MODALITIES, value="cbt", label="Therapy approach")
        model = gr.Dropdown(_model_choices(services, "cbt"), value="default", label="Therapist model")
        show_reasoning = gr.Checkbox(False, label="Show reasoning (supervisor / researcher view)")
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

    def on_modality(mod):
        choices = _model_choices(services, mod)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def redraw(sid, show):
        if not sid:
            return [], []
        try:
            return render_turns(sessions.turns(sid), bool(show))
        except SessionNotFound:
            return [], []

    def start(mod, model_id, show, continue_from=None):
        try:
            row = engine.start(mod, model_id, continue_from=continue_from or None, actor="researcher")
        except (TurnRejected, CatalogError, SessionNotFound) as exc:
            return gr.update(), [], [], f"**Could not start:** {exc}"
        msgs, ids = redraw(row["id"], show)
        note = f"Session {row['course_index']} of course `{row['course_id']}` started."
        return row["id"], msgs, ids, note

    def start_next(sid, mod, model_id, show):
        if not sid:
            return gr.update(), [], [], "**Start a session first**; the next one continues its course."
        return start(mod, model_id, show, continue_from=sid)

    def send_message(sid, text, show, mod, model_id):
        """Stream the reply; every yield is (session id, chat, turn ids, status, message box).

        With no session open yet, the first message starts one with the chosen approach and model.
        """
        try:
            text = engine.clean_message(text)
            if not sid:
                sid = engine.start(mod, model_id, actor="researcher")["id"]
            events = engine.turn(sid, text)
            next(events)  # the patient turn is committed before anything is generated
        except (TurnRejected, SessionNotFound, CatalogError) as exc:
            yield sid or "", gr.update(), gr.update(), f"**Not sent:** {exc}", gr.update()
            return
        for update in _stream(sid, events, show):
            yield (sid, *update)

    def retry_reply(sid, show):
        if not sid:
            yield gr.update(), gr.update(), "**Start a session first.**", gr.update()
            return
        turns = sessions.turns(sid)
        if not turns or turns[-1]["role"] != "patient":
            yield gr.update(), gr.update(), "Nothing to retry: the last turn already has a reply.", gr.update()
            return
        try:
            events = engine.reply(sid)
        except TurnRejected as exc:
            yield gr.update(), gr.update(), f"**{exc}**", gr.update()
            return
        yield from _stream(sid, events, show)

    def _stream(sid, events, show):
        msgs, ids = redraw(sid, show)
        reasoning, answer, error = "", "", None
        yield msgs, ids, "", ""
        for event in events:
            if event.kind == "reasoning":
                reasoning += event.text
            elif event.kind == "answer":
                answer += event.text
            elif event.kind == "rewrite":
                answer = event.text
            elif event.kind == "error":
                error = event.text
            elif event.kind == "done":
                break
            live = list(msgs)
            if show and reasoning:
                live.append(reasoning_message(reasoning, pending=not answer))
            if answer:
                live.append({"role": "assistant", "content": answer})
            yield live, ids, "", ""
        msgs, ids = redraw(sid, show)
        yield msgs, ids, (f"**{error}**" if error else ""), ""

    def end_session(sid):
        if not sid:
            return "**No session to end.**"
        try:
            summary = engine.end(sid, actor="researcher")
        except SessionNotFound as exc:
            return f"**Unknown session** {exc}"
        return "Session ended." + (f"\n\n{summary}" if summary else "")

    def on_like(sid, ids, data: gr.LikeData):
        index = data.index if isinstance(data.index, int) else data.index[0]
        turn_id = ids[index] if 0 <= index < len(ids) else None
        if not turn_id:
            return "Only therapist replies can be rated."
        value = 1 if data.liked is True else -1 if data.liked is False else None
        sessions.set_feedback(turn_id, value)
        services.audit.record("researcher", "turn.feedback", turn_id, value=value)
        return "Feedback saved."

    modality.change(on_modality, modality, model, api_name=False)
    new.click(start, [modality, model, show_reasoning], [session_id, chat, turn_ids, status],
              api_name="start_session")
    following.click(start_next, [session_id, modality, model, show_reasoning],
                    [session_id, chat, turn_ids, status], api_name="next_session")
    send_inputs = [session_id, message, show_reasoning, modality, model]
    send_outputs = [session_id, chat, turn_ids, status, message]
    send.click(send_message, send_inputs, send_outputs, api_name="send")
    message.submit(send_message, send_inputs, send_outputs, api_name=False)
    retry.click(retry_reply, [session_id, show_reasoning], [chat, turn_ids, status, message], api_name="retry")
    end.click(end_session, session_id, status, api_name="end_session")
    show_reasoning.change(redraw, [session_id, show_reasoning], [chat, turn_ids], api_name="history")
    chat.like(on_like, [session_id, turn_ids], status, api_name=False)
