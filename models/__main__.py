"""``python -m models list``: print the model catalog."""
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


if __name__ == "__main__":
    sys.exit(main())
