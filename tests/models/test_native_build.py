"""The llama.cpp build: flags chosen from the CPU (never AMX, never more than the CPU has), a crash
in the smoke check rebuilds with a safer tier, a rebuild happens only when something changed, and
``python -m models doctor`` reports on the real build."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models import native

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("build_llama", ROOT / "scripts" / "build_llama.py")
build_llama = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_llama)

SAPPHIRE_RAPIDS = ("fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma bmi1 bmi2 avx2 avx512f avx512dq avx512cd "
                   "avx512bw avx512vl avx512vbmi avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8")
HASWELL = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma bmi1 bmi2 avx2"
OLD = "fpu sse sse2 ssse3"
x86_only = pytest.mark.skipif(not native.is_x86(), reason="x86-64 tiers")


def cpu(flags: str, model: str = "Test CPU") -> dict:
    return native.cpu_info(f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n")


def args_of(tier: native.Tier, info: dict) -> dict[str, str]:
    return dict(a[2:].split("=") for a in tier.cmake_args(info["flags"]))


@x86_only
def test_an_amx_cpu_gets_avx512_with_its_extensions_and_never_amx():
    info = cpu(SAPPHIRE_RAPIDS)
    tiers = native.candidate_tiers(info["flags"])
    assert [t.name for t in tiers] == ["avx512", "avx2", "sse42", "generic"]
    best = args_of(tiers[0], info)
    assert best["GGML_NATIVE"] == "OFF"
    assert {best[k] for k in ("GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX512_BF16", "GGML_AVX2")} == {"ON"}
    assert {best[k] for k in ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")} == {"OFF"}
    assert native.amx_reported(info)


@x86_only
def test_cpus_without_avx512_or_avx_get_only_what_they_have():
    haswell = cpu(HASWELL)
    assert [t.name for t in native.candidate_tiers(haswell["flags"])] == ["avx2", "sse42", "generic"]
    assert args_of(native.candidate_tiers(haswell["flags"])[0], haswell)["GGML_AVX512"] == "OFF"
    old = cpu(OLD)
    tiers = native.candidate_tiers(old["flags"])
    assert [t.name for t in tiers] == ["generic"]
    assert set(args_of(tiers[0], old).values()) == {"OFF"}  # plain x86-64: runs anywhere
    assert [t.name for t in native.candidate_tiers(cpu(SAPPHIRE_RAPIDS)["flags"], "avx2")][0] == "avx2"
    with pytest.raises(ValueError, match="unknown llama.cpp tier"):
        native.candidate_tiers(old["flags"], "turbo")


class FakeBuilds:
    """Records builds; the smoke check crashes for the tiers in ``crash``."""

    def __init__(self, crash=(), fail_build=()):
        self.crash, self.fail_build, self.built, self.said = set(crash), set(fail_build), [], []

    def build(self, requirement, args):
        self.built.append(args)
        return 1 if self._tier(args) in self.fail_build else 0

    def smoke(self):
        if self._tier(self.built[-1]) in self.crash:
            return native.SmokeResult(False, "the smoke check killed by signal SIGSEGV (11)", -11)
        return native.SmokeResult(True, "generated 8 tokens in 0.10 s", 0, 8, 0.1)

    @staticmethod
    def _tier(args):
        on = {a for a in args if a.endswith("=ON")}
        if "-DGGML_AVX512=ON" in on:
            return "avx512"
        return "avx2" if "-DGGML_AVX2=ON" in on else "other"


def install(fake, info, prefix):
    return build_llama.install(fake.build, fake.smoke, info, fake.said.append, prefix=str(prefix))


@x86_only
def test_a_build_that_crashes_is_rebuilt_with_a_safer_tier_and_then_left_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("THERALAB_LLAMA_TIER", raising=False)
    monkeypatch.delenv("THERALAB_LLAMA_CMAKE_ARGS", raising=False)
    info, fake = cpu(SAPPHIRE_RAPIDS), FakeBuilds(crash={"avx512"})
    assert install(fake, info, tmp_path) == 0
    assert len(fake.built) == 2 and "-DGGML_AVX512=ON" in fake.built[0] and "-DGGML_AVX512=OFF" in fake.built[1]
    assert any("does not work on this CPU" in line and "SIGSEGV" in line for line in fake.said)
    stamp = native.read_stamp(tmp_path)
    assert stamp["tier"] == "avx2" and "SIGSEGV" in stamp["failed_tiers"][0] and stamp["smoke"]["ok"]
    assert stamp["version"] == build_llama.pinned_requirement()[1]

    again = FakeBuilds()
    assert install(again, info, tmp_path) == 0 and again.built == []  # nothing changed: no rebuild
    moved = FakeBuilds()  # the environment now runs on another CPU: choose again
    assert install(moved, cpu(HASWELL, "Other CPU"), tmp_path) == 0 and len(moved.built) == 1


@x86_only
def test_no_working_tier_is_a_clear_failure(tmp_path, monkeypatch):
    monkeypatch.delenv("THERALAB_LLAMA_TIER", raising=False)
    fake = FakeBuilds(crash={"avx512", "avx2", "other"}, fail_build=set())
    assert install(fake, cpu(SAPPHIRE_RAPIDS), tmp_path) == 1
    assert len(fake.built) == 4 and "no build of llama.cpp worked" in fake.said[-1]
    assert "models doctor" in fake.said[-1] and native.read_stamp(tmp_path) is None


def test_the_smoke_check_reports_a_native_crash_as_such(tmp_path):
    crasher = tmp_path / "python"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(0o755)
    result = native.smoke_check(python=str(crasher), timeout=30)
    assert not result.ok and result.returncode == -11 and "SIGSEGV" in result.detail


def test_the_installed_build_passes_its_smoke_check_and_its_stamp_matches_this_cpu():
    result = native.smoke_check()
    assert result.ok and result.tokens > 0, result.detail
    assert "CPU" in result.system_info or "SSE" in result.system_info
    stamp = native.read_stamp()
    assert stamp is not None, "llama-cpp-python was not built by scripts/install.sh"
    assert stamp["cpu_key"] == native.cpu_key(native.cpu_info()) and stamp["smoke"]["ok"]
    if native.is_x86():
        assert "-DGGML_NATIVE=OFF" in stamp["cmake_args"] and "-DGGML_AMX_TILE=OFF" in stamp["cmake_args"]
        assert "AMX_INT8 = 1" not in result.system_info


def doctor(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "models", "doctor", "--data-dir", str(data_dir), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "THERALAB_CONFIG": ""})


def test_doctor_times_each_local_backend_and_names_the_build(embedded_hf_data_dir):
    shown = doctor("--tokens", "8", data_dir=embedded_hf_data_dir)
    assert shown.returncode == 0, shown.stderr
    assert "tier '" in shown.stdout and "system info:" in shown.stdout
    lines = {line.split()[0]: line for line in shown.stdout.splitlines() if line.split()}
    assert lines["llama_cpp"].split()[1] == "yes" and lines["hf"].split()[1] == "yes", shown.stdout
    report = json.loads(doctor("--json", "--backend", "llama_cpp", "--tokens", "8",
                               data_dir=embedded_hf_data_dir).stdout)
    probe = report["probes"][0]
    assert probe["backend"] == "llama_cpp" and probe["usable"] and probe["tokens"] > 0
    assert probe["tokens_per_s"] > 0 and report["llama_build"]["tier"]
