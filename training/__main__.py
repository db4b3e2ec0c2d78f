"""``python -m training``: build datasets and train LoRA adapters from the shell.

    datagen --config RECIPE [key=value ...]  a teacher model writes new sessions (resumable)
    build --config RECIPE [key=value ...]    SFT sets, ORPO pairs or judge-SFT examples
    sft   --config RECIPE [key=value ...]    supervised fine-tuning of a LoRA adapter
    orpo  --config RECIPE [key=value ...]    ORPO preference tuning of a LoRA adapter
    judge-sft --config RECIPE [key=value ...] fine-tune a judge on the store's human ratings
    export ADAPTER [--merge [--quant q8_0]]  (re)write an adapter's GGUF LoRA for llama.cpp; --merge
                                             also writes the base with the adapter merged in
    parity ADAPTER [--prompts N]             greedy agreement of hf+PEFT and llama.cpp+GGUF LoRA
    risk [--config RECIPE] [key=value ...]   train the learned risk screen's head (therapist/safety/model/)
    demo-adapters [--config RECIPE] [key=value ...]
                                             rebuild the five shipped demo adapters (models/adapters/)

A recipe is a YAML file (``training/recipes/``) whose keys are the method's config fields; an
unknown key is an error. ``key=value`` pairs after the recipe override it (``max_steps=3``).
Exit codes: 0 done, 2 bad input (nothing written).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config import ConfigError, load_settings
from training.recipes import RecipeError, load_recipe

EXIT_ERROR = 2


def _add(sub, name: str, help_text: str):
    p = sub.add_parser(name, help=help_text)
    if name == "export":
        p.add_argument("adapter", help="adapter id under <data dir>/adapters/, or a PEFT adapter folder")
        p.add_argument("--outtype", choices=("f32", "f16"), default="f32", help="GGUF LoRA tensor type")
        p.add_argument("--merge", action="store_true", help="also write merged-<quant>.gguf: the base "
                       "model with the adapter merged in, served without a LoRA file")
        p.add_argument("--quant", choices=("q8_0", "f16", "f32"), default="q8_0",
                       help="type of the merged tensors (with --merge)")
    elif name == "parity":
        p.add_argument("adapter", help="adapter id (<data dir>/adapters/ or models/adapters/) or folder")
        p.add_argument("--prompts", type=int, default=20, help="validation prompts to answer (default 20)")
        p.add_argument("--tokens", type=int, default=8, help="greedy tokens compared per prompt (default 8)")
    else:
        default = {"demo-adapters": "demo-adapters.yaml", "risk": "risk-classifier.yaml"}.get(name)
        p.add_argument("--config", default=default, help="recipe YAML (a path, or a file name in training/recipes/)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe values to override")
    p.add_argument("--job-id", default=None, help="(set by the Admin tab's job runner)")
    return p


def _run_build(args, data_dir: Path, reporter) -> int:
    from training.build import BuildConfig, build
    config = load_recipe(BuildConfig, args.config, args.overrides)
    generate, store = None, None
    if config.kind == "orpo":
        from models.base import GenParams
        from models.catalog import Catalog
        from models.pool import ModelPool
        settings = load_settings(["--data-dir", str(data_dir)])
        backend = ModelPool(settings, Catalog(settings)).get(config.rejected_model)
        params = GenParams(max_tokens=config.rejected_max_tokens, temperature=0.7, seed=config.seed)
        generate = lambda messages: backend.stream(messages, params).text()  # noqa: E731
    if config.kind == "judge":
        from store.db import Store
        store = Store(Path(data_dir) / "sessions.db")
    def progress(i: int, n: int) -> None:
        print(f"\rtranscripts {i}/{n}", end="", file=sys.stderr)
        reporter.progress(i, n)
    out = build(config, data_dir, generate=generate, store=store, progress=progress)
    print(file=sys.stderr)
    print(f"dataset written to {out}")
    reporter.done({"dataset": config.name, "path": str(out)})
    return 0


def _asker(data_dir: Path, model_id: str, max_tokens: int, seed: int):
    from models.base import GenParams
    from models.catalog import Catalog
    from models.pool import ModelPool
    settings = load_settings(["--data-dir", str(data_dir)])
    backend = ModelPool(settings, Catalog(settings)).get(model_id)
    params = GenParams(max_tokens=max_tokens, temperature=0.8, seed=seed)
    return lambda messages: backend.stream(messages, params).text()


def _run_datagen(args, data_dir: Path, reporter) -> int:
    from training.datagen import DatagenConfig, generate
    config = load_recipe(DatagenConfig, args.config, args.overrides)
    teacher = _asker(data_dir, config.teacher, config.max_tokens, config.seed)
    reviewer = _asker(data_dir, config.reviewer, 60, config.seed) if config.reviewer else None

    def progress(i: int, n: int) -> None:
        print(f"\rsessions {i}/{n}", end="", file=sys.stderr)
        reporter.progress(i, n)
    result = generate(config, data_dir, teacher, reviewer, progress)
    print(file=sys.stderr)
    print(f"{result['written']} written, {result['skipped']} already there, {result['revisions']} revisions: "
          f"{result['path']}")
    reporter.done(result)
    return 0


def _adapter_folder(data_dir: Path, name: str) -> Path:
    """An adapter id under <data dir>/adapters/ or models/adapters/, or a folder path."""
    from models.catalog import SHIPPED_ADAPTERS
    for folder in (Path(data_dir) / "adapters" / name, SHIPPED_ADAPTERS / name, Path(name).expanduser()):
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"{name}: no adapter folder under <data dir>/adapters/ or models/adapters/, "
                            f"and no such folder")


def _run_export(args, data_dir: Path, reporter) -> int:
    """Convert ``ADAPTER/peft`` (or a PEFT folder) to adapter.gguf, optionally a merged GGUF; update the card."""
    import json
    from models.convert import peft_lora_to_gguf
    from models.embedded import embedded_gguf_path
    folder = _adapter_folder(data_dir, args.adapter)
    peft_dir = folder / "peft" if (folder / "peft").is_dir() else folder
    if not (peft_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{args.adapter}: no PEFT adapter (adapter_config.json) there")
    written = {"gguf": peft_lora_to_gguf(peft_dir, folder / "adapter.gguf", base_gguf=embedded_gguf_path(),
                                         outtype=args.outtype)}
    if args.merge:
        from models.merge import merge_lora_into_gguf
        written["merged_gguf"] = merge_lora_into_gguf(peft_dir, embedded_gguf_path(),
                                                      folder / f"merged-{args.quant}.gguf", args.quant)
    card_path = folder / "card.json"
    if card_path.is_file():
        card = json.loads(card_path.read_text(encoding="utf-8"))
        card.update({key: path.name for key, path in written.items()})
        card_path.write_text(json.dumps(card, indent=2), encoding="utf-8")
    for path in written.values():
        print(f"wrote {path}")
    reporter.done({key: str(path) for key, path in written.items()})
    return 0


def _run_parity(args, data_dir: Path, reporter) -> int:
    from models.embedded import ensure_embedded_hf
    from training.parity import adapter_prompts, measure
    folder = _adapter_folder(data_dir, args.adapter)
    if not (folder / "adapter.gguf").is_file() or not (folder / "peft").is_dir():
        raise FileNotFoundError(f"{folder}: parity needs both adapter.gguf and peft/ (run export first)")
    result = measure(folder, ensure_embedded_hf(data_dir), adapter_prompts(folder, data_dir, args.prompts),
                     args.tokens)
    card_path = folder / "card.json"
    if card_path.is_file():  # kept with the adapter's other measurements
        import json
        card = json.loads(card_path.read_text(encoding="utf-8"))
        card.setdefault("metrics", {})["parity"] = result
        card_path.write_text(json.dumps(card, indent=2), encoding="utf-8")
    print(f"{folder.name}: first token agrees on {result['first_token']:.0%}, first {result['k']} tokens on "
          f"{result['first_k']:.0%} of {result['prompts']} prompts")
    reporter.done(result)
    return 0


def _run_demo(args, data_dir: Path, reporter) -> int:
    from training.demo import DemoConfig, main as demo_main
    config = load_recipe(DemoConfig, args.config, args.overrides)
    cards = demo_main(config, data_dir, reporter=reporter, log=lambda line: print(line, flush=True))
    reporter.done({"adapters": [c["id"] for c in cards]})
    return 0


def _run_risk(args, data_dir: Path, reporter) -> int:
    from training.risk import RiskTrainConfig, main as risk_main
    config = load_recipe(RiskTrainConfig, args.config, args.overrides)
    card = risk_main(config, log=lambda line: print(line, flush=True))
    reporter.done({"out_dir": config.out_dir, **card["validation"]["summary"]})
    return 0


def _run_train(method: str):
    def run(args, data_dir: Path, reporter) -> int:
        from training.common import TrainConfig
        module = __import__(f"training.{method.replace('-', '_')}", fromlist=["main"])
        config = load_recipe(getattr(module, "JudgeTrainConfig", TrainConfig), args.config, args.overrides)
        card = module.main(config, data_dir, reporter=reporter)
        metrics = card["metrics"]
        print(f"adapter {card['id']} written; metrics: {metrics}")
        reporter.done({"adapter": card["id"], **metrics})
        return 0
    return run


COMMANDS = {
    "datagen": ("a teacher model writes synthetic sessions from sampled personas", _run_datagen),
    "build": ("build a dataset (sft, orpo or judge) from transcripts or ratings", _run_build),
    "sft": ("train a LoRA adapter with supervised fine-tuning", _run_train("sft")),
    "orpo": ("train a LoRA adapter with ORPO preference tuning", _run_train("orpo")),
    "judge-sft": ("fine-tune a judge adapter on human ratings in the store", _run_train("judge-sft")),
    "export": ("write an adapter's GGUF LoRA (over the embedded quantized base)", _run_export),
    "parity": ("compare greedy answers of hf+PEFT and llama.cpp+GGUF LoRA for one adapter", _run_parity),
    "risk": ("train the learned risk screen's head and thresholds on the labelled messages", _run_risk),
    "demo-adapters": ("rebuild the shipped demo adapters from the seed corpus", _run_demo),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description="TheraLab training pipeline")
    parser.add_argument("--data-dir", help="data directory (default: THERALAB_DATA_DIR, else ./data)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, _) in COMMANDS.items():
        _add(sub, name, help_text)
    from jobs.cli import add_job_spec_flag, share_global_flags
    add_job_spec_flag(parser)
    return share_global_flags(parser)


def main(argv: list[str] | None = None) -> int:
    from jobs.cli import job_argv
    from jobs.kinds import JobSpecError
    from jobs.reporter import JobReporter
    try:
        argv = job_argv(argv, "training")
    except JobSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(["--data-dir", args.data_dir] if args.data_dir else [])
        data_dir = Path(settings.data_dir)
        reporter = JobReporter.from_args(args.job_id, data_dir)
        reporter.on_cancel()
        with reporter.guard():  # a job's row always ends done, failed (with the error) or cancelled
            try:
                return COMMANDS[args.command][1](args, data_dir, reporter)
            except (RecipeError, FileNotFoundError, ValueError) as exc:
                reporter.fail(str(exc))
                raise
    except (ConfigError, RecipeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
