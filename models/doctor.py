"""``python -m models doctor``: what this machine can run, measured, and what to do when it cannot.

It reports the CPU's features, how llama.cpp was built (the stamp ``scripts/build_llama.py`` left)
and what llama.cpp itself says it uses, then tries each local backend in a child process: load the
embedded model and time a greedy generation. A child, so a native crash is a finding on the page,
not the end of the doctor. Configured endpoints (the openai backend) are listed, not called.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from models import native

PROBE_TIMEOUT_S = 600
_SHOWN_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni", "avx512f", "avx512bw",
                "avx512vl", "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16",
                "asimd", "sve")


@dataclass
class Probe:
    backend: str
    usable: bool
    detail: str
    tokens: int = 0
    seconds: float = 0.0
    load_seconds: float = 0.0
    device: str = ""
    advice: str = ""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


@dataclass
class Report:
    cpu: dict
    cores: int
    llama_build: dict | None
    llama_version: str | None
    system_info: str
    probes: list[Probe] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["cpu"] = {**self.cpu, "flags": sorted(self.cpu["flags"])}
        for probe, row in zip(self.probes, out["probes"]):
            row["tokens_per_s"] = round(probe.tokens_per_s, 1)
        return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def probe(backend: str, data_dir: Path, tokens: int = 32, timeout: float = PROBE_TIMEOUT_S) -> Probe:
    """Load the embedded model on ``backend`` in a child process and time ``tokens`` tokens."""
    cmd = [sys.executable, "-m", "models.doctor", "--probe", backend, "--data-dir", str(data_dir),
           "--tokens", str(tokens)]
    try:
        proc = subprocess.run(cmd, cwd=native.REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Probe(backend, False, f"no answer within {timeout:.0f} s", advice=_advice(backend, "timeout"))
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return Probe(**json.loads(lines[-1]))
        except (TypeError, ValueError):
            pass
    tail = " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
    crashed = proc.returncode < 0
    detail = f"the test {native.describe_exit(proc.returncode)}" + (f": {tail}" if tail else "")
    return Probe(backend, False, detail, advice=_advice(backend, "crash" if crashed else "error", tail))


def _advice(backend: str, failure: str, tail: str = "") -> str:
    if backend == "llama_cpp":
        if "No module named 'llama_cpp'" in tail or "needs llama-cpp-python" in tail:
            return "llama-cpp-python is not installed: run `bash scripts/install.sh`."
        if failure == "crash":
            return ("llama.cpp crashed natively on this CPU. Rebuild it with a safer flag set: "
                    "`THERALAB_LLAMA_TIER=avx2 bash scripts/install.sh` (or `generic`, which runs on any "
                    "x86-64 CPU); delete .venv/.llama_cpp_build.json to force a rebuild at the same tier.")
        return "See the error above; `bash scripts/install.sh` rebuilds and re-checks llama.cpp."
    if "torch" in tail or "transformers" in tail:
        return "The hf backend needs torch and transformers: `bash scripts/install.sh` installs them."
    if failure == "crash":
        return "torch crashed natively (often out of memory): try a smaller model or the llama_cpp backend."
    return "The hf backend is optional; the llama_cpp backend serves the embedded model on any CPU."


def _child_probe(backend: str, data_dir: Path, tokens: int) -> int:
    """Runs in the child: load the embedded model on ``backend``, time a greedy generation."""
    from models.base import BackendError, GenParams
    from models.catalog import EMBEDDED
    from models.worker import build_local_backend
    started = time.perf_counter()
    try:
        model = build_local_backend({"backend": backend, "id": "doctor", "base": EMBEDDED, "adapter": None,
                                     "n_ctx": 1024, "n_threads": None, "data_dir": str(data_dir)})
        messages = [{"role": "user", "content": "Give me three short tips for sleeping better."}]
        params = GenParams(max_tokens=tokens, temperature=0.0, min_tokens=tokens)
        model.stream(messages, params).text()  # warm-up: the first call pays one-off set-up
        loaded = time.perf_counter()
        stream = model.stream(messages, params)
        stream.text()
        seconds = time.perf_counter() - loaded
    except BackendError as exc:
        print(json.dumps(asdict(Probe(backend, False, str(exc), advice=_advice(backend, "error", str(exc))))))
        return 0
    device = "cpu"
    if backend == "hf":
        device = str(model.host().device)
    print(json.dumps(asdict(Probe(backend, True, "ok", stream.usage.completion_tokens, round(seconds, 3),
                                  round(loaded - started, 3), device))))
    return 0


def _system_info() -> str:
    """llama.cpp's own account of the features it was built with (from a child: it may crash)."""
    code = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode(errors='replace'))"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "(no answer)"
    if proc.returncode != 0:
        return f"(unavailable: {native.describe_exit(proc.returncode)})"
    return proc.stdout.strip()


def diagnose(data_dir: Path, settings=None, tokens: int = 32, backends=("llama_cpp", "hf")) -> Report:
    from models.cpu_share import usable_cores
    report = Report(native.cpu_info(), usable_cores(), native.read_stamp(), _version("llama_cpp_python"),
                    _system_info())
    for backend in backends:
        report.probes.append(probe(backend, data_dir, tokens))
    if settings is not None:
        report.endpoints = [f"{m.get('id')}: {m.get('base_url')} ({m.get('model')})"
                            for m in settings.models if m.get("backend") == "openai"]
    return report


def render(report: Report) -> str:
    cpu = report.cpu
    flags = [f for f in _SHOWN_FLAGS if f in cpu["flags"]]
    lines = ["TheraLab model doctor", "",
             f"CPU        {cpu['model']} ({cpu['machine']}), {report.cores} usable core(s)",
             f"features   {' '.join(flags) or '(none of the SIMD extensions llama.cpp uses)'}"]
    if native.amx_reported(cpu):
        lines.append("           AMX reported: llama.cpp is built without its AMX kernels (docs/install.md)")
    build = report.llama_build
    if report.llama_version is None:
        lines.append("llama.cpp  llama-cpp-python is not installed: run `bash scripts/install.sh`")
    elif build is None:
        lines.append(f"llama.cpp  llama-cpp-python {report.llama_version}, not built by scripts/install.sh: "
                     "its flags are unknown (a plain pip install builds -march=native)")
    else:
        same_cpu = build.get("cpu_key") == native.cpu_key(cpu)
        lines.append(f"llama.cpp  llama-cpp-python {report.llama_version}, tier '{build.get('tier')}'"
                     f"{'' if same_cpu else ' (built on another CPU: run bash scripts/install.sh)'}")
        lines.append(f"           CMAKE_ARGS {' '.join(build.get('cmake_args', []))}")
        for failure in build.get("failed_tiers", []):
            lines.append(f"           fell back from {failure}")
    lines.append(f"           system info: {report.system_info}")
    lines += ["", f"{'backend':<10} {'usable':<7} {'load s':>7} {'tok/s':>7}  detail"]
    for p in report.probes:
        measured = f"{p.tokens} tokens in {p.seconds:.2f} s on {p.device}" if p.usable else p.detail
        lines.append(f"{p.backend:<10} {'yes' if p.usable else 'NO':<7} {p.load_seconds:>7.2f} "
                     f"{p.tokens_per_s:>7.1f}  {measured}")
        if p.advice:
            lines.append(f"{'':<10} what to do: {p.advice}")
    endpoints = ", ".join(report.endpoints) or "none configured"
    lines.append(f"{'openai':<10} {'-':<7} {'':>7} {'':>7}  endpoints (not contacted): {endpoints}")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(prog="python -m models.doctor")
    parser.add_argument("--probe", choices=["llama_cpp", "hf"], required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    from config import enforce_offline_env
    enforce_offline_env()
    sys.exit(_child_probe(args.probe, Path(args.data_dir), args.tokens))
