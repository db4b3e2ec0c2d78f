"""SFT step time through ``python -m training sft`` against a plain TRL script, and tokens/s on CPU.

    python -m benchmarks.training [--steps 12] [--rounds 2] [--max-length 512] [--device cpu|cuda]
                                  [--checkpoint DIR]

Builds the ACT reasoning set (one exchange per example) with ``python -m training build`` into a
temporary data dir, then alternates, ``--rounds`` times, our command and the plain TRL script
(``python -m benchmarks.plain_trl_sft``) on the same checkpoint, data and settings (batch 1, LoRA
r=8 on q/v, fp32, ``--max-length``). A step's time is the median interval between consecutive
logged steps, the first step (warm-up) left out; tokens/s is tokens seen over those intervals.
Ratio = ours / plain (target <= 1.1). Start-up (imports, model load, base validation) is not a
step and is reported apart. ``--device cuda`` runs both sides in bf16 on the GPU; ``--checkpoint``
trains another transformers checkpoint than the embedded model's dense copy. Run it on an otherwise idle machine: two trainings on two cores slow
each other down several times over.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.figures import Figure, add_figures_argument, write_figures

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True, text=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    return time.perf_counter() - started


def _rates(points: list[tuple[float, int, float]]) -> tuple[float, float]:
    """(median seconds per step, tokens per second) from (time, step, tokens seen), warm-up step dropped."""
    points = sorted(p for p in points if p[1] >= 1)
    intervals = [(b[0] - a[0]) / (b[1] - a[1]) for a, b in zip(points, points[1:]) if b[1] > a[1]]
    tokens = points[-1][2] - points[0][2]
    return statistics.median(intervals), tokens / (points[-1][0] - points[0][0])


def ours(data: Path, ckpt: Path, steps: int, max_length: int, device: str) -> tuple[float, float, float]:
    output = f"bench-{time.monotonic_ns()}"
    wall = _run(["-m", "training", "--data-dir", str(data), "sft", "--config", "act-sft-think.yaml",
                 "dataset=bench", f"output={output}", f"max_steps={steps}", "grad_accum=1", "batch_size=1",
                 f"max_length={max_length}", "lora_r=8", "lora_alpha=16", "lora_targets=[q_proj, v_proj]",
                 "learning_rate=5e-4", "eval_at_end=false", "export_gguf=false", f"device={device}", f"base={ckpt}"])
    rows = [json.loads(line) for line in (data / "adapters" / output / "progress.jsonl").read_text().splitlines()]
    points = [(r["elapsed_s"], r["step"], r["num_tokens"]) for r in rows if r.get("loss") is not None]
    return (*_rates(points), wall)


def plain(data: Path, ckpt: Path, steps: int, max_length: int, device: str) -> tuple[float, float, float]:
    log = data / f"plain-{time.monotonic_ns()}.jsonl"
    wall = _run(["-m", "benchmarks.plain_trl_sft", str(ckpt), str(data / "datasets" / "bench" / "train.jsonl"),
                 str(log), "--steps", str(steps), "--max-length", str(max_length), "--device", device])
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    points = [(r["t"], r["step"], r["num_tokens"]) for r in rows if r.get("num_tokens") is not None]
    return (*_rates(points), wall)


def main() -> int:
    parser = argparse.ArgumentParser(description="SFT step time: python -m training sft vs plain TRL")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--checkpoint", type=Path, help="a transformers checkpoint (default: the embedded model)")
    add_figures_argument(parser)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        from models.embedded import ensure_embedded_hf
        ckpt = args.checkpoint.resolve() if args.checkpoint else ensure_embedded_hf(data)
        _run(["-m", "training", "--data-dir", str(data), "build", "--config", "build-act-think.yaml",
              "name=bench", "window=1"])
        results = {"ours": [], "plain": []}
        for _ in range(args.rounds):  # alternate, so drift in the machine's speed hits both sides
            results["plain"].append(plain(data, ckpt, args.steps, args.max_length, args.device))
            results["ours"].append(ours(data, ckpt, args.steps, args.max_length, args.device))
    for name, runs in results.items():
        for step_s, tok_s, wall in runs:
            print(f"{name:>5}: {step_s:.2f} s/step, {tok_s:.0f} tokens/s, {wall:.0f} s wall incl. start-up")
    step = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    tokens = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
    print(f"step time ours / plain TRL: {step['ours']:.2f} / {step['plain']:.2f} s = {step['ours'] / step['plain']:.3f} "
          f"(target <= 1.1); tokens/s ours {tokens['ours']:.0f}, plain {tokens['plain']:.0f} "
          f"(batch 1, max length {args.max_length}, "
          f"{'bf16 on CUDA' if args.device == 'cuda' else f'fp32, {os.cpu_count()} CPUs'})")
    where = "CUDA bf16" if args.device == "cuda" else f"CPU fp32, {os.cpu_count()} cores"
    write_figures(args.figures, [
        Figure(f"SFT step time: python -m training sft vs plain TRL ({where})", step["ours"], step["plain"],
               "<= 1.1", "s/step", "training"),
        Figure(f"SFT tokens per second, ours vs plain TRL ({where})", tokens["ours"], tokens["plain"], "",
               "tokens/s", "training")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
