"""The native llama.cpp build: which CPU features it may use, what was built, and a smoke check.

Why this exists: llama-cpp-python compiles llama.cpp from source, by default with ``-march=native``.
On Xeons that report AMX (``amx_tile amx_int8 amx_bf16``) that build turns on ggml's AMX kernels,
and on hosts that advertise AMX without giving a process working tile state (virtual machines,
sandboxes) the first ``llama_decode`` dies with a segmentation fault. So the install never builds
"native": it picks a named **tier** of instruction-set flags from what the CPU reports, AMX always
off, and checks the result in a child process before trusting it (``scripts/build_llama.py``).

Tiers, best first; each needs the CPU flags it lists and runs on every CPU that has them:

* ``avx512``  AVX-512 F/CD/VL/DQ/BW (+ VBMI, VNNI, BF16 where reported) with AVX2, FMA, F16C, BMI2
* ``avx2``    AVX2, FMA, F16C, BMI2 (+ AVX-VNNI where reported): every x86-64 CPU since about 2015
* ``sse42``   SSE 4.2 only
* ``generic`` no extensions beyond x86-64's SSE2: runs on any x86-64 CPU

Other architectures get ``native`` (the compiler's own detection) and then ``portable``.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAMP_NAME = ".llama_cpp_build.json"
SMOKE_TIMEOUT_S = 180
_X86_OPTIONS = ("SSE42", "AVX", "AVX2", "BMI2", "FMA", "F16C", "AVX_VNNI", "AVX512", "AVX512_VBMI",
                "AVX512_VNNI", "AVX512_BF16", "AMX_TILE", "AMX_INT8", "AMX_BF16")


@dataclass(frozen=True)
class Tier:
    name: str
    requires: frozenset[str]                      # /proc/cpuinfo flags the tier cannot run without
    options: tuple[str, ...]                      # GGML_<option>=ON; every other x86 option is OFF
    extras: dict[str, str] = field(default_factory=dict)  # cpuinfo flag -> option, added when present
    native: bool = False                          # non-x86: let the compiler detect the CPU

    def cmake_args(self, cpu_flags: set[str]) -> list[str]:
        if self.native:
            return ["-DGGML_NATIVE=ON"]
        if not is_x86():
            return ["-DGGML_NATIVE=OFF"]
        on = set(self.options) | {opt for flag, opt in self.extras.items() if flag in cpu_flags}
        return ["-DGGML_NATIVE=OFF"] + [f"-DGGML_{opt}={'ON' if opt in on else 'OFF'}" for opt in _X86_OPTIONS]

    def runs_on(self, cpu_flags: set[str]) -> bool:
        return self.requires <= cpu_flags


_AVX2 = frozenset({"avx", "avx2", "fma", "f16c", "bmi2", "sse4_2"})
X86_TIERS = (
    Tier("avx512", _AVX2 | {"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"},
         ("SSE42", "AVX", "AVX2", "BMI2", "FMA", "F16C", "AVX512"),
         {"avx512vbmi": "AVX512_VBMI", "avx512_vnni": "AVX512_VNNI", "avx512_bf16": "AVX512_BF16"}),
    Tier("avx2", _AVX2, ("SSE42", "AVX", "AVX2", "BMI2", "FMA", "F16C"), {"avx_vnni": "AVX_VNNI"}),
    Tier("sse42", frozenset({"sse4_2"}), ("SSE42",)),
    Tier("generic", frozenset(), ()),
)
OTHER_TIERS = (Tier("native", frozenset(), (), native=True), Tier("portable", frozenset(), ()))


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The CPU's model name and feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return {"machine": platform.machine(), "model": model, "flags": flags}


def tiers() -> tuple[Tier, ...]:
    return X86_TIERS if is_x86() else OTHER_TIERS


def candidate_tiers(cpu_flags: set[str], forced: str | None = None) -> list[Tier]:
    """The tiers to try on this CPU, best first. ``forced`` (THERALAB_LLAMA_TIER) starts there."""
    usable = [t for t in tiers() if t.runs_on(cpu_flags)]
    if forced:
        names = [t.name for t in tiers()]
        if forced not in names:
            raise ValueError(f"unknown llama.cpp tier {forced!r}: choose one of {', '.join(names)}")
        usable = [t for t in usable if names.index(t.name) >= names.index(forced)]
    return usable


def cpu_key(info: dict) -> str:
    """Identifies the CPU a build was made for: another model or feature set means rebuild."""
    text = info["machine"] + "|" + info["model"] + "|" + " ".join(sorted(info["flags"]))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def amx_reported(info: dict) -> bool:
    return any(f.startswith("amx") for f in info["flags"])


# ----- the stamp the build leaves in the virtual environment ------------------------------------

def stamp_path(prefix: str | Path | None = None) -> Path:
    return Path(prefix or sys.prefix) / STAMP_NAME


def read_stamp(prefix: str | Path | None = None) -> dict | None:
    try:
        data = json.loads(stamp_path(prefix).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_stamp(data: dict, prefix: str | Path | None = None) -> None:
    path = stamp_path(prefix)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


# ----- smoke check -------------------------------------------------------------------------------

@dataclass
class SmokeResult:
    ok: bool
    detail: str                # what happened, in words
    returncode: int | None = None
    tokens: int = 0
    seconds: float = 0.0
    system_info: str = ""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def describe_exit(returncode: int | None) -> str:
    """'killed by signal SIGSEGV (11)' for a negative return code, else 'exited with code N'."""
    if returncode is None:
        return "did not finish"
    if returncode < 0:
        import signal
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "signal"
        return f"killed by signal {name} ({-returncode})"
    return f"exited with code {returncode}"


def smoke_check(python: str | None = None, tokens: int = 8, timeout: float = SMOKE_TIMEOUT_S) -> SmokeResult:
    """Load the embedded model and generate ``tokens`` tokens in a child process.

    A child, because the failure this guards against is a native crash that would take the
    caller down with it."""
    cmd = [python or sys.executable, "-m", "models.native", "smoke", "--tokens", str(tokens)]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return SmokeResult(False, f"the smoke check did not finish in {timeout:.0f} s")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return SmokeResult(False, f"the smoke check {describe_exit(proc.returncode)}"
                           + (f": {' / '.join(tail)}" if tail else ""), proc.returncode)
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return SmokeResult(False, f"the smoke check printed no result: {proc.stdout[-200:]!r}", 0)
    return SmokeResult(out["tokens"] > 0, f"generated {out['tokens']} tokens in {out['seconds']:.2f} s", 0,
                       out["tokens"], out["seconds"], out.get("system_info", ""))


def _smoke_child(tokens: int) -> int:
    """Runs in the child: load, generate, print one JSON line."""
    import llama_cpp

    from models.embedded import embedded_gguf_path
    llm = llama_cpp.Llama(model_path=str(embedded_gguf_path()), n_ctx=256, verbose=False)
    started = time.perf_counter()
    out = llm.create_completion("The capital of France is", max_tokens=tokens, temperature=0.0)
    seconds = time.perf_counter() - started
    n = out["usage"]["completion_tokens"]
    info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    print(json.dumps({"tokens": n, "seconds": seconds, "system_info": info}))
    return 0


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(prog="python -m models.native")
    parser.add_argument("command", choices=["smoke"])
    parser.add_argument("--tokens", type=int, default=8)
    sys.exit(_smoke_child(parser.parse_args().tokens))
