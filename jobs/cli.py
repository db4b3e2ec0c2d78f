"""The skeleton the package command lines share (``python -m eval``, ``python -m patient_sim``).

A subcommand is a ``Command``: ``register(subparsers, name)`` adds its parser, ``run(args, ctx)``
does the work and returns the exit code. ``main`` parses, opens the data directory's settings,
runs the command, turns the package's expected errors into ``error: ...`` and exit code 2, and
closes the store if a command opened it. ``--job-spec FILE`` (how the app starts a job) is
replaced by the command line of the spec in FILE before parsing (``jobs/kinds.py``).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, NamedTuple

from config import ConfigError, Settings, load_settings
from jobs.kinds import JOB_SPEC_FLAG, JobSpecError, expand_job_spec
from store.db import Store, StoreError

EXIT_ERROR = 2


@dataclass
class Context:
    """What a handler may need; the store is opened only by handlers that touch it."""

    settings: Settings

    @cached_property
    def store(self) -> Store:
        return Store(self.settings.db_path)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()


class Command(NamedTuple):
    register: Callable[[argparse._SubParsersAction, str], argparse.ArgumentParser]
    run: Callable[[argparse.Namespace, Context], int]


def build_parser(prog: str, description: str, commands: dict[str, Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--data-dir", help="data directory (default: THERALAB_DATA_DIR, else ./data)")
    add_job_spec_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in commands.items():
        command.register(sub, name)
    return share_global_flags(parser)


GLOBAL_FLAGS = ("--data-dir",)


def add_job_spec_flag(parser: argparse.ArgumentParser) -> None:
    """Listed for --help only: ``job_argv`` replaces the flag before the parser runs."""
    parser.add_argument(JOB_SPEC_FLAG, metavar="FILE", help="run the job spec in FILE instead of a subcommand "
                        "(what the app's job runner starts: runs/<id>/spec.json)")


def job_argv(argv: list[str] | None, module: str) -> list[str]:
    """The command line to parse: ``argv`` (default sys.argv), with ``--job-spec FILE`` expanded."""
    return expand_job_spec(sys.argv[1:] if argv is None else argv, module)


def share_global_flags(parser: argparse.ArgumentParser, flags: tuple[str, ...] = GLOBAL_FLAGS,
                       _actions=None) -> argparse.ArgumentParser:
    """Accept the global flags after the subcommand too: ``python -m patient_sim simulate ...
    --data-dir D`` is the first thing a new user types. Each subcommand (nested ones included)
    gets a copy whose default is SUPPRESS, so a flag given before the subcommand is kept when it is
    not repeated after it."""
    shared = _actions if _actions is not None else [
        a for a in parser._actions if set(a.option_strings) & set(flags)]
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in action.choices.values():
            for flag in shared:
                if not set(flag.option_strings) & set(child._option_string_actions):
                    child.add_argument(*flag.option_strings, dest=flag.dest, default=argparse.SUPPRESS,
                                       help=flag.help, metavar=flag.metavar)
            share_global_flags(child, flags, shared)
    return parser


def run_main(parser: argparse.ArgumentParser, commands: dict[str, Command], argv: list[str] | None,
             expected: tuple[type[BaseException], ...] = ()) -> int:
    """Run the chosen command; ``expected`` errors (beyond config and store ones) exit 2 with a message."""
    try:
        argv = job_argv(argv, parser.prog.split()[-1])
    except JobSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    args = parser.parse_args(argv)
    ctx = None
    try:
        ctx = Context(load_settings(["--data-dir", args.data_dir] if args.data_dir else []))
        return commands[args.command].run(args, ctx)
    except (ConfigError, StoreError, *expected) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if ctx is not None:
            ctx.close()
