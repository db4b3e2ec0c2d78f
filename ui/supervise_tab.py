"""Supervise tab: live sessions and risk flags, read any session with its reasoning, hold the
model, approve / edit / replace held drafts, write notes, end sessions, resolve flags.

Only supervisors and admins may call these handlers; every action lands in the audit log.
"""
from __future__ import annotations

import gradio as gr

from services import Services
from store.flags import FlagError
from store.supervision import DraftError, live_overview
from therapist.escalation import UNSCREENED
from therapist.session import TurnRejected
from ui import location
from ui.access import SUPERVISORS, Access, Principal
from ui.chat_view import render_turns
from vocabulary import EventKind

LIVE_HEADERS = ["Flag", "Status", "Patient", "Approach", "Model", "Turns", "Drafts waiting",
                "Last activity (UTC)", "Session id"]


def empty_view() -> tuple:
    """A fresh tuple each time: Gradio drops ``value`` from an update dict once it has sent it, so a
    shared one would later clear only the choices and leave a stale flag selected."""
    return ("*No session open. Click a row above or paste a session id.*", [], "",
            gr.update(choices=[], value=None), None, "", "", "")


def _flag_label(flag: dict) -> str:
    """A flag's level, or, for a message the risk screen could not read, a request to read it."""
    if flag["kind"] == UNSCREENED:
        return "UNSCREENED (language the screen does not read: please read this message)"
    return flag["level"].upper()


class SuperviseHandlers:
    def __init__(self, services: Services, access: Access):
        self.s = services
        self.access = access
        self.engine = services.engine

    def _who(self, request, action, target=None) -> Principal:
        return self.access.require(request, SUPERVISORS, action, target)

    # ----- overview --------------------------------------------------------------------------
    def live(self, request: gr.Request = None):
        """(rows of the live table, alert line): open flags first."""
        self._who(request, "supervise.live")
        self.engine.abandon_idle()  # at most once a minute: tabs closed mid-session leave the list
        rows = live_overview(self.s.store)
        table = [[(r["flag_level"] or "").upper(), r["status"], r["patient"] + (" (sim)" if r["simulated"] else ""),
                  r["modality"].upper(), r["therapist_model"], r["n_turns"], r["drafts"],
                  (r["last_utc"] or r["created_utc"] or "")[:19].replace("T", " "), r["id"]] for r in rows]
        flagged = sum(1 for r in rows if r["open_flags"])
        drafts = sum(r["drafts"] for r in rows)
        alert = (f"### ⚠ {flagged} session(s) with open risk flags" if flagged else "No open risk flags.")
        alert += f" · {drafts} draft(s) waiting for review" if drafts else ""
        return table, alert

    def tick(self, sid, shown_draft=None, picked_flag=None, request: gr.Request = None):
        """Timer: the live table, and the open session redrawn (not audited again as a read).

        The draft box and the flag choice are left alone while they still refer to the same draft
        and an open flag, so a refresh never overwrites an edit in progress.
        """
        table, alert = self.live(request)
        return (table, alert, *(self._view(sid, shown_draft, picked_flag) if sid else empty_view()))

    # ----- one session -----------------------------------------------------------------------
    def open(self, sid, request: gr.Request = None):
        sid = (sid or "").strip()
        who = self._who(request, "session.read", sid)
        if not sid:
            return ("", *empty_view())
        try:
            session = self.s.sessions.get(sid)
        except KeyError:
            return ("", "**Unknown session id.**", *empty_view()[1:])
        self.access.record_read(who, session)
        return (sid, *self._view(sid))

    def open_linked(self, request: gr.Request = None):
        """On page load: open the session a link names (``?tab=supervise&session=ID``), for a
        supervisor; nothing for anyone else or without a link."""
        sid = location.session_from(request, "supervise")
        if not sid or not self.access.who(request, "supervise.link").supervises:
            return (gr.update(),) * (1 + len(empty_view()))
        return self.open(sid, request)

    def select(self, evt: gr.SelectData, request: gr.Request = None):
        row = evt.row_value or []
        return self.open(row[-1] if row else "", request)

    def _view(self, sid, shown_draft=None, picked_flag=None):
        """(header, transcript, flags, flag choices, draft id, draft text, draft info, notes)."""
        session = self.s.sessions.get(sid)
        chat, _ = render_turns(self.s.sessions.turns(sid), True)
        flags = self.s.flags.for_session(sid)
        header = (f"**Session** `{sid}` · {session['modality'].upper()} · model `{session['therapist_model']}` · "
                  f"status **{session['status']}** · started {session['created_utc'][:19]} UTC")
        flag_lines = [f"- **{_flag_label(f)}** {f['kind']} · {f['status']}" +
                      (f" · resolved by {f['resolved_by']}: {f['resolution_note']}" if f["status"] != "open" else "")
                      for f in flags]
        open_flags = [(f"{_flag_label(f)} {f['kind']} ({f['created_utc'][:19]})", f["id"])
                      for f in flags if f["status"] == "open"]
        draft = self.s.drafts.pending(sid)
        info = ""
        if draft:
            info = f"Draft from `{draft['model_id']}` at {draft['created_utc'][:19]} UTC."
            if draft.get("reasoning"):
                info += f"\n\n> Reasoning: {draft['reasoning']}"
        notes = "\n".join(f"- {n['created_utc'][:16]} **{n['author']}**: {n['text']}"
                          for n in self.s.notes.for_session(sid)) or "*No notes yet.*"
        open_ids = [value for _, value in open_flags]
        flag_value = picked_flag if picked_flag in open_ids else (open_ids[0] if open_ids else None)
        draft_text = gr.update() if draft and draft["id"] == shown_draft else (draft["content"] if draft else "")
        return (header, chat, "\n".join(flag_lines) or "*No flags.*",
                gr.update(choices=open_flags, value=flag_value),
                draft["id"] if draft else None, draft_text, info, notes)

    def _act(self, sid, action, fn):  # noqa: ARG002 (action names the call in tracebacks)
        """Run one supervisor action and redraw: (status, *view)."""
        if not sid:
            return ("**Open a session first.**", *empty_view())
        try:
            message = fn()
        except (TurnRejected, FlagError, DraftError, ValueError) as exc:
            message = f"**Not done:** {exc}"
        return (message, *self._view(sid))

    # ----- actions ---------------------------------------------------------------------------
    def hold(self, sid, request: gr.Request = None):
        who = self._who(request, "session.hold", sid)
        return self._act(sid, "hold", lambda: self.engine.set_hold(sid, True, who.username)
                         or "Session on hold: replies now wait for your review.")

    def release(self, sid, request: gr.Request = None):
        who = self._who(request, "session.release", sid)
        return self._act(sid, "release", lambda: self.engine.set_hold(sid, False, who.username)
                         or "Hold released: replies go to the patient directly again.")

    def end(self, sid, request: gr.Request = None):
        who = self._who(request, "session.end", sid)
        def run():
            if self.s.sessions.get(sid)["status"] in ("ended", "abandoned"):
                return "This session is already over."
            self.engine.end(sid, actor=who.username)
            return "Session ended."
        return self._act(sid, "end", run)

    def decide(self, sid, draft_id, action, text, request: gr.Request = None):
        who = self._who(request, f"draft.{action}", sid)
        def run():
            if not draft_id:
                return "No draft is waiting."
            self.engine.decide_draft(draft_id, action, who.username, text)
            return {"approve": "Draft approved", "edit": "Edited draft"}[action] + " and sent to the patient."
        return self._act(sid, action, run)

    def approve(self, sid, draft_id, request: gr.Request = None):
        return self.decide(sid, draft_id, "approve", None, request)

    def send_edited(self, sid, draft_id, text, request: gr.Request = None):
        return self.decide(sid, draft_id, "edit", text, request)

    def replace(self, sid, text, request: gr.Request = None):
        who = self._who(request, "draft.replace", sid)
        def run():
            self.engine.supervisor_reply(sid, text, who.username)
            return "Your reply was sent to the patient."
        return self._act(sid, "replace", run)

    def regenerate(self, sid, request: gr.Request = None):
        self._who(request, "draft.regenerate", sid)
        def run():
            turns = self.s.sessions.turns(sid)
            if not turns or turns[-1]["role"] != "patient":
                return "Nothing to regenerate: the patient's last message already has a reply."
            events = list(self.engine.reply(sid))
            return f"**{events[-1].text}**" if events and events[-1].kind == "error" else "New draft ready."
        return self._act(sid, "regenerate", run)

    def resolve(self, sid, flag_id, note, request: gr.Request = None):
        who = self._who(request, "flag.resolve", sid)
        def run():
            if not flag_id:
                return "No open flag selected."
            flag = self.s.flags.resolve(flag_id, who.username, note)
            self.s.audit.record(who.username, EventKind.FLAG_RESOLVE, sid, flag=flag_id, also=flag["also_resolved"])
            also = f" Also closed {len(flag['also_resolved'])} linked flag(s) in other sessions of this " \
                   f"patient." if flag["also_resolved"] else ""
            return f"Flag resolved.{also} (A held session stays on hold until you release it.)"
        return self._act(sid, "resolve", run)

    def note(self, sid, text, request: gr.Request = None):
        who = self._who(request, "note.add", sid)
        def run():
            self.s.notes.add(sid, who.username, text)
            self.s.audit.record(who.username, EventKind.NOTE_ADD, sid)
            return "Note saved."
        return self._act(sid, "note", run)


def build_supervise(services: Services, access: Access, app: gr.Blocks | None = None) -> gr.Timer:
    h = SuperviseHandlers(services, access)
    alert = gr.Markdown("Loading live sessions…", elem_id="supervise-alert")
    live = gr.Dataframe(headers=LIVE_HEADERS, interactive=False, wrap=True,
                        label="Live sessions (open flags first; click a row to open it)", elem_id="supervise-live")
    with gr.Row():
        sid = gr.Textbox(label="Open session id", scale=3)
        open_btn = gr.Button("Open", scale=1)
    header = gr.Markdown()
    with gr.Row():
        with gr.Column(scale=3):
            transcript = gr.Chatbot(label="Transcript with reasoning", height=420, elem_id="supervise-transcript")
        with gr.Column(scale=2):
            flags_md = gr.Markdown(label="Risk flags", elem_id="supervise-flags")
            flag_pick = gr.Dropdown(label="Open flag to resolve", choices=[])
            resolve_note = gr.Textbox(label="Resolution note (required)", lines=2)
            resolve_btn = gr.Button("Resolve flag")
            with gr.Row():
                hold_btn = gr.Button("Put on hold")
                release_btn = gr.Button("Release hold")
                end_btn = gr.Button("End session", variant="stop")
    draft_id = gr.State(None)
    draft_box = gr.Textbox(label="Draft waiting for review (edit it, then 'Send edited')", lines=3)
    draft_info = gr.Markdown()
    with gr.Row():
        approve_btn = gr.Button("Approve draft as written", variant="primary")
        edit_btn = gr.Button("Send edited draft")
        regen_btn = gr.Button("Discard and regenerate")
    own_reply = gr.Textbox(label="Or write the reply yourself (replaces any draft)", lines=2)
    replace_btn = gr.Button("Send my reply")
    notes_md = gr.Markdown()
    note_box = gr.Textbox(label="Supervisor note (kept with the session, never shown to the patient)", lines=2)
    note_btn = gr.Button("Add note")
    status = gr.Markdown(elem_id="supervise-status")
    timer = gr.Timer(services.settings.supervise_refresh_s, active=False)

    view = [header, transcript, flags_md, flag_pick, draft_id, draft_box, draft_info, notes_md]
    timer.tick(h.tick, [sid, draft_id, flag_pick], [live, alert, *view], api_name="supervise_tick",
               show_progress="hidden")
    # The opened session goes into the URL (a reload or a shared link opens it again).
    for opened in (open_btn.click(h.open, sid, [sid, *view], api_name="supervise_open"),
                   sid.submit(h.open, sid, [sid, *view], api_name=False),
                   live.select(h.select, None, [sid, *view], api_name=False)):
        opened.success(None, sid, None, js=location.SESSION_URL_JS, api_name=False)
    if app is not None:
        app.load(h.open_linked, None, [sid, *view], api_name=False)
    acted = [status, *view]
    hold_btn.click(h.hold, sid, acted, api_name="supervise_hold")
    release_btn.click(h.release, sid, acted, api_name="supervise_release")
    end_btn.click(h.end, sid, acted, api_name="supervise_end")
    approve_btn.click(h.approve, [sid, draft_id], acted, api_name="supervise_approve")
    edit_btn.click(h.send_edited, [sid, draft_id, draft_box], acted, api_name="supervise_send_edited")
    regen_btn.click(h.regenerate, sid, acted, api_name="supervise_regenerate")
    replace_btn.click(h.replace, [sid, own_reply], acted, api_name="supervise_reply")
    resolve_btn.click(h.resolve, [sid, flag_pick, resolve_note], acted, api_name="supervise_resolve")
    note_btn.click(h.note, [sid, note_box], acted, api_name="supervise_note")
    return timer
