"""The Gradio user interface: one module per tab; only this package and app.py import gradio."""
