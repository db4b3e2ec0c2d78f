"""Test helper: run the real app in a subprocess and talk to it as a user would."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class RunningApp:
    """``python app.py`` on a free loopback port in a subprocess, as a user would start it."""

    def __init__(self, data: Path, env: dict | None = None):
        import socket
        import subprocess
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data, self.db = data, data / "sessions.db"
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = data / "app.log"
        full_env = {"PATH": "/usr/bin:/bin", "THERALAB_MAX_TOKENS": "40", "THERALAB_REASONING_BUDGET": "40",
                    **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "app.py", "--port", str(self.port), "--data-dir", str(data)],
                                     cwd=ROOT, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=full_env)

    def client(self, auth: tuple[str, str] | None = None, timeout: float = 60):
        """A gradio_client for this app, waiting for it to answer first."""
        import time
        from gradio_client import Client
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail("app exited: " + self.log.read_text()[-2000:])
            try:
                return Client(self.url, verbose=False, auth=auth)
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError("app did not answer in time: " + self.log.read_text()[-2000:])
                time.sleep(0.3)

    def rows(self, sql: str, args=()):
        import sqlite3
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()

    def stop(self) -> None:
        import subprocess
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def chat_text(message: dict) -> str:
    """A chat message's text (gradio_client returns content as a list of typed parts)."""
    content = message["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def wait_for(predicate, timeout: float = 15.0, what="condition", interval: float = 0.05):
    """Poll ``predicate`` until it returns something true (returned) or ``timeout`` s pass
    (AssertionError naming ``what``, which may be a callable giving the message then)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(interval)
