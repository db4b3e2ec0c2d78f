"""``python -m models list``: print the model catalog; ``python -m models doctor``: check this machine."""
from __future__ import annotations

import argparse
import json
import sys

from config import ConfigError, enforce_offline_env, load_settings
from models.catalog import Catalog, CatalogError
from models.convert import register_cli, run_cli


def main(argv: list[str] | None = None) -> int:
    enforce_offline_env()
    parser = argparse.ArgumentParser(prog="python -m models", description="TheraLab model catalog")
    sub = parser.add_subparsers(dest="command", required=True)
    lister = sub.add_parser("list", help="list every model a user can pick")
    lister.add_argument("--data-dir")
    lister.add_argument("--config")
    lister.add_argument("--json", action="store_true", help="machine-readable output")
    doctor = sub.add_parser("doctor", help="CPU features, llama.cpp build, and a timed generation on each local backend")
    doctor.add_argument("--data-dir")
    doctor.add_argument("--config")
    doctor.add_argument("--tokens", type=int, default=32, help="tokens to generate per backend (default 32)")
    doctor.add_argument("--backend", action="append", choices=["llama_cpp", "hf"],
                        help="check only this backend (repeatable; default both)")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    register_cli(sub)
    args = parser.parse_args(argv)
    if args.command == "convert-lora":
        return run_cli(args)
    flags = [f for k in ("data_dir", "config") if getattr(args, k)
             for f in (f"--{k.replace('_', '-')}", getattr(args, k))]
    try:
        catalog = Catalog(load_settings(flags))
    except (ConfigError, CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "doctor":
        return run_doctor(args, catalog.settings)
    entries = catalog.entries()
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
    else:
        print(f"{'id':<22} {'backend':<10} {'modality':<8} {'reasoning':<9} {'source':<8} {'label':<48} status")
        for e in entries:
            print(f"{e.id:<22} {e.backend:<10} {e.modality:<8} {e.reasoning:<9} {e.source:<8} "
                  f"{e.label:<48} {e.status()}")
    for err in catalog.errors:
        print(f"warning: {err}", file=sys.stderr)
    return 0


def run_doctor(args, settings) -> int:
    """Exit 0 when the embedded model runs on at least one local backend, else 1."""
    from models.doctor import diagnose, render
    report = diagnose(settings.data_dir, settings, args.tokens, tuple(args.backend or ("llama_cpp", "hf")))
    print(json.dumps(report.to_dict(), indent=2) if args.json else render(report))
    return 0 if any(p.usable for p in report.probes) else 1


if __name__ == "__main__":
    sys.exit(main())
