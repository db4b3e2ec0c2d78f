"""Start-up stays light: the llama.cpp path never imports torch or transformers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from config import load_settings
from services import build_services
from ui.app import build_app
services = build_services(load_settings(["--data-dir", sys.argv[1]]))
build_app(services)
services.pool.get("default")
print(json.dumps(sorted(m for m in ("torch", "transformers", "trl", "peft") if m in sys.modules)))
"""


def test_llama_cpp_path_does_not_import_torch(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
