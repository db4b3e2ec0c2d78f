"""Assembles the Gradio app from one builder function per tab."""
from __future__ import annotations

import gradio as gr

from services import Services
from ui.session_tab import build_session

BANNER = ("**TheraLab** · supervised AI therapy research. The therapist is an AI model, not a "
          "clinician. If you are in crisis, call or text 988 (US) or your local emergency number.")


def build_app(services: Services) -> gr.Blocks:
    with gr.Blocks(title="TheraLab") as app:
        gr.Markdown(BANNER)
        gr.Markdown("**Single-researcher mode:** no accounts exist, so there is no sign-in and the app "
                    "only listens on this computer (loopback).")
        if services.catalog.errors:
            gr.Markdown("**Model catalog warnings:** " + "; ".join(services.catalog.errors))
        with gr.Tabs():
            with gr.Tab("Session"):
                build_session(services)
    return app
