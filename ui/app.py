"""Assembles the Gradio app from one builder function per tab, and shows each role its tabs.

Which tabs a user sees is a convenience; the handlers check roles themselves (ui/access.py).
"""
from __future__ import annotations

import gradio as gr

from services import Services
from ui import location
from ui.access import Access
from ui.review_tab import build_review
from ui.session_tab import build_session
from ui.admin_tab import ADMINS, build_admin
from ui.supervise_tab import build_supervise
from ui.watch_tab import build_watch

BANNER = ("**TheraLab** · supervised AI therapy research. The therapist is an AI model, not a "
          "clinician. If you are in crisis, call or text 988 (US) or your local emergency number.")
SINGLE = ("**Single-researcher mode:** no accounts exist, so there is no sign-in and the app only "
          "listens on this computer (loopback). Create accounts with `python -m store users add` and "
          "restart to turn on sign-in and roles.")


def build_app(services: Services, access: Access | None = None) -> gr.Blocks:
    access = access or Access(services)
    with gr.Blocks(title="TheraLab") as app:
        gr.Markdown(BANNER)
        who_line = gr.Markdown(SINGLE if not services.sign_in else "")
        if services.catalog.errors:
            gr.Markdown("**Model catalog warnings:** " + "; ".join(services.catalog.errors))
        with gr.Tabs() as tabs:
            with gr.Tab("Session", id="session") as session_tab:
                build_session(services, access, app)
            with gr.Tab("Watch", id="watch", visible=False) as watch_tab:
                build_watch(services, access)
            with gr.Tab("Review", id="review", visible=False) as review_tab:
                build_review(services, access, app)
            with gr.Tab("Supervise", id="supervise", visible=False) as supervise_tab:
                supervise_timer = build_supervise(services, access, app)
            with gr.Tab("Admin", id="admin", visible=False) as admin_tab:
                admin_timer = build_admin(services, access)
        for tab, tab_id in ((session_tab, "session"), (watch_tab, "watch"), (review_tab, "review"),
                            (supervise_tab, "supervise"), (admin_tab, "admin")):
            tab.select(None, None, None, js=location.tab_select_js(tab_id), api_name=False)

        def on_load(request: gr.Request = None):
            who = access.who(request, "app.load")
            line = SINGLE if not services.sign_in else f"Signed in as **{who.username}** ({who.role}) · [Sign out](/logout)"
            admin = who.role in ADMINS
            allowed = {"session"} | ({"watch", "review", "supervise"} if who.supervises else set()) | (
                {"admin"} if admin else set())
            wanted = location.tab_from(request)  # a reload or a shared link lands on its tab
            return (line, gr.update(visible=who.supervises), gr.update(visible=who.supervises),
                    gr.update(visible=who.supervises), gr.update(active=who.supervises), gr.update(visible=admin),
                    gr.update(active=admin), gr.update(selected=wanted) if wanted in allowed else gr.update())

        app.load(on_load, None, [who_line, watch_tab, review_tab, supervise_tab, supervise_timer, admin_tab,
                                 admin_timer, tabs],
                 api_name=False)
    return app
