"""App cold start: seconds from ``python app.py`` to the first page served, against a bare Gradio
app started the same way in the same run (the floor: Python, Gradio's import and its server).

    python -m benchmarks.cold_start [--rounds 3]

Each round starts both in a fresh process on a free loopback port with an empty data directory
and polls ``/`` until it answers 200; the two are alternated so drift in the machine hits both.
Our start includes opening (and migrating) the SQLite store, the model catalog and building every
tab; the embedded model itself loads on first use, not at start.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.figures import Figure, add_figures_argument, write_figures  # noqa: E402

BARE_APP = ("import sys, gradio as gr\n"
            "with gr.Blocks() as demo:\n    gr.Markdown('hello')\n"
            "demo.launch(server_name='127.0.0.1', server_port=int(sys.argv[1]))\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_to_first_page(command: list[str], port: int, timeout: float = 180) -> float:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{command} exited with {proc.returncode} before serving a page")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                    if reply.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"{command} served no page within {timeout} s")
    finally:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    add_figures_argument(parser)
    args = parser.parse_args(argv)
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bare_app.py"
        script.write_text(BARE_APP)
        for i in range(args.rounds):
            port = _free_port()
            bare.append(time_to_first_page([sys.executable, str(script), str(port)], port))
            port = _free_port()
            data = Path(tmp) / f"data{i}"
            ours.append(time_to_first_page([sys.executable, "app.py", "--port", str(port), "--data-dir", str(data)],
                                           port))
    o, b = statistics.median(ours), statistics.median(bare)
    print(f"app cold start to first page: {o:.2f} s (rounds: {', '.join(f'{x:.1f}' for x in ours)}); "
          f"bare Gradio app: {b:.2f} s; ratio {o / b:.2f}")
    write_figures(args.figures, [Figure("app cold start to first page served vs a bare Gradio app", o, b, "",
                                        "s", "cold_start")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
