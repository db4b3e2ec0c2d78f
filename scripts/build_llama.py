"""Build llama-cpp-python for this CPU with deliberate flags, check it, and fall back if it crashes.

Run by ``scripts/install.sh`` with the virtual environment's Python. A no-op (well under a second)
when the stamp in the environment says the pinned version was built and checked on this CPU.
Otherwise, for each tier ``models/native.py`` allows on this CPU, best first:

1. uninstall any llama-cpp-python and drop pip's cached wheels of it (pip reuses a wheel it built
   once whatever CMAKE_ARGS say the next time), then build from the sdist with the tier's flags
   and ``--no-cache-dir``, so this build is neither taken from nor left in the cache;
2. run the smoke check in a child process (load the embedded model, generate a few tokens);
3. if the child crashed, say so, and try the next, safer tier.

Environment: ``THERALAB_LLAMA_TIER`` starts at a named tier (say ``avx2``);
``THERALAB_LLAMA_CMAKE_ARGS`` adds CMake arguments (for instance ``-DGGML_CUDA=ON``).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models import native  # noqa: E402

REQUIREMENTS = native.REPO / "requirements.txt"


def pinned_requirement(requirements: Path = REQUIREMENTS) -> tuple[str, str]:
    """('llama-cpp-python[server]==X', 'X'): the one pin, read from requirements.txt."""
    for line in requirements.read_text().splitlines():
        match = re.match(r"\s*(llama[-_]cpp[-_]python(\[[^\]]*\])?)\s*==\s*([\w.]+)", line)
        if match:
            return f"{match.group(1)}=={match.group(3)}", match.group(3)
    raise SystemExit("requirements.txt has no pinned llama-cpp-python (llama-cpp-python==X)")


def up_to_date(stamp: dict | None, version: str, info: dict) -> bool:
    return bool(stamp and stamp.get("version") == version and stamp.get("cpu_key") == native.cpu_key(info)
                and stamp.get("smoke", {}).get("ok") and stamp.get("extra_cmake_args", "") ==
                os.environ.get("THERALAB_LLAMA_CMAKE_ARGS", ""))


def pip(*args: str, env: dict | None = None) -> int:
    return subprocess.call([sys.executable, "-m", "pip", *args], env=env)


def build(requirement: str, cmake_args: list[str]) -> int:
    pip("uninstall", "--yes", "--quiet", "llama-cpp-python")
    pip("cache", "remove", "llama_cpp_python")  # a wheel built earlier with other flags
    env = dict(os.environ, CMAKE_ARGS=" ".join(cmake_args), FORCE_CMAKE="1")
    return pip("install", "--quiet", "--no-cache-dir", "--no-binary", "llama-cpp-python", requirement, env=env)


def install(build_fn: Callable[[str, list[str]], int] = build,
            smoke_fn: Callable[[], native.SmokeResult] = native.smoke_check,
            info: dict | None = None, say: Callable[[str], None] = print, prefix: str | None = None) -> int:
    """Build and check tiers until one works; 0 on success. ``prefix`` is the environment the stamp
    goes in (default: this one). The functions are injectable for tests."""
    info = info or native.cpu_info()
    requirement, version = pinned_requirement()
    if up_to_date(native.read_stamp(prefix), version, info):
        return 0
    extra = os.environ.get("THERALAB_LLAMA_CMAKE_ARGS", "")
    try:
        tiers = native.candidate_tiers(info["flags"], os.environ.get("THERALAB_LLAMA_TIER") or None)
    except ValueError as exc:
        say(f"error: {exc}")
        return 2
    if native.amx_reported(info):
        say("This CPU reports AMX: llama.cpp is built without its AMX kernels, which crash on hosts "
            "that advertise AMX without usable tile state.")
    failures: list[str] = []
    for tier in tiers:
        args = tier.cmake_args(info["flags"]) + extra.split()
        say(f"Building llama-cpp-python {version} for the '{tier.name}' CPU tier (a few minutes)...")
        say(f"  CMAKE_ARGS={' '.join(args)}")
        if build_fn(requirement, args) != 0:
            failures.append(f"{tier.name}: the build failed")
            say(f"The '{tier.name}' build failed; trying a safer tier.")
            continue
        result = smoke_fn()
        if result.ok:
            native.write_stamp({"version": version, "tier": tier.name, "cmake_args": args,
                                "extra_cmake_args": extra, "cpu_key": native.cpu_key(info),
                                "cpu_model": info["model"], "failed_tiers": failures,
                                "smoke": {"ok": True, "detail": result.detail,
                                          "tokens_per_s": round(result.tokens_per_s, 1)}}, prefix)
            say(f"llama.cpp works on this CPU ('{tier.name}' tier): {result.detail}.")
            return 0
        failures.append(f"{tier.name}: {result.detail}")
        say(f"WARNING: the '{tier.name}' build of llama.cpp does not work on this CPU: {result.detail}. "
            "Rebuilding with a safer flag set.")
    say("ERROR: no build of llama.cpp worked on this machine:\n  " + "\n  ".join(failures)
        + "\nRun `.venv/bin/python -m models doctor` for details.")
    return 1


if __name__ == "__main__":
    sys.exit(install())
