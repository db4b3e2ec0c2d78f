"""A backend whose Python package is absent says what to install instead of crashing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each snippet hides one package (sys.modules[name] = None makes its import fail) and builds
# the backend; it must raise BackendUnavailableError naming the package.
CASES = {
    "llama_cpp": "from models.llama_cpp_backend import LlamaCppBackend as B; from models.embedded import "
                 "embedded_gguf_path; B('x', embedded_gguf_path())",
    "openai": "from models.openai_backend import OpenAIBackend as B; B('x', 'http://127.0.0.1:9/v1', 'm')",
    "transformers": "from models.hf_backend import HFBackend as B; from models.embedded import ensure_embedded_hf;"
                    " import tempfile, pathlib; b = B('x', pathlib.Path(sys.argv[1])); b.host()",
}


@pytest.mark.parametrize("package", sorted(CASES))
def test_absent_package_is_a_clear_error(package, tmp_path):
    fake_dir = tmp_path / "hfdir"
    fake_dir.mkdir()
    (fake_dir / "config.json").write_text("{}")
    script = (f"import sys; sys.modules[{package!r}] = None\n"
              "from models.base import BackendUnavailableError\n"
              "try:\n"
              f"    {CASES[package]}\n"
              "except BackendUnavailableError as exc:\n"
              "    print('UNAVAILABLE:', exc)\n")
    out = subprocess.run([sys.executable, "-c", script, str(fake_dir)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    assert "UNAVAILABLE:" in out.stdout and "pip install" in out.stdout
