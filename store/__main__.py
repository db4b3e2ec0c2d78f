"""``python -m store``: manage the data store from the shell.

    users add|list|set-role|disable|enable   accounts and roles
    export --study NAME|--all --format jsonl|csv [--redact] [--names FILE] [--out PATH]
    erase --user NAME [--keep-account] [--yes]   remove a participant's data for good
    compact                                  rewrite the database file (finishes an erase)
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys

from config import ConfigError, load_settings
from store.audit import AuditLog
from store.db import Store, StoreError
from store.erase import EraseError, compact, erase_user, plan_erasure
from store.export import FORMATS, ExportError, canonical, export_sessions
from store.redact import Redactor, load_names
from store.users import ROLES, UserError, UserStore
from vocabulary import EventKind

# Exit codes: 0 done, 1 cancelled at the prompt, 2 bad input (nothing changed),
# 3 erased but the database file could not be compacted yet (run `compact` when idle).
EXIT_CANCELLED, EXIT_ERROR, EXIT_NOT_COMPACTED = 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m store", description="TheraLab data store")
    parser.add_argument("--data-dir", help="data directory (default: THERALAB_DATA_DIR, else ./data)")
    sub = parser.add_subparsers(dest="area", required=True)
    users = sub.add_parser("users", help="accounts and roles").add_subparsers(dest="action", required=True)
    add = users.add_parser("add", help="create an account (password from THERALAB_PASSWORD or a prompt)")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, default="patient")
    users.add_parser("list", help="list accounts")
    role = users.add_parser("set-role", help="change an account's role")
    role.add_argument("username")
    role.add_argument("role", choices=ROLES)
    for name in ("disable", "enable"):
        users.add_parser(name, help=f"{name} an account").add_argument("username")
    _add_data_commands(sub)
    from jobs.cli import share_global_flags
    return share_global_flags(parser)


def _add_data_commands(sub) -> None:
    export = sub.add_parser("export", help="export sessions with turns and flags (no usernames)")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", help="only sessions of this study")
    which.add_argument("--all", action="store_true", help="every session, with or without a study")
    export.add_argument("--format", choices=FORMATS, default="jsonl")
    export.add_argument("--redact", action="store_true",
                        help="replace e-mails, phone numbers, URLs and listed names with placeholders")
    export.add_argument("--names", help="names file for --redact (implies --redact)")
    export.add_argument("--out", help="output file (default: <data dir>/exports/<timestamped name>)")
    erase = sub.add_parser("erase", help="erase a participant's sessions, consents and account for good")
    erase.add_argument("--user", required=True, help="the username to erase")
    erase.add_argument("--keep-account", action="store_true", help="erase the data but keep the account")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sub.add_parser("compact", help="checkpoint and VACUUM the database so deleted bytes are gone")


def _password() -> str:
    password = os.environ.get("THERALAB_PASSWORD")
    if password:
        return password
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise UserError("The passwords do not match")
    return first


def _run_users(args, users: UserStore, audit: AuditLog) -> None:
    if args.action == "add":
        user = users.add(args.username, _password(), args.role)
        audit.record("cli", EventKind.USER_ADD, user["id"], username=user["username"], role=user["role"])
        print(f"added {user['username']} ({user['role']})")
    elif args.action == "list":
        for u in users.list():
            print(f"{u['username']:<24} {u['role']:<10} {'disabled' if u['disabled'] else 'active'}")
    elif args.action == "set-role":
        user = users.set_role(args.username, args.role)
        audit.record("cli", EventKind.USER_SET_ROLE, user["id"], role=args.role)
        print(f"{user['username']} is now {user['role']}")
    else:
        user = users.set_disabled(args.username, args.action == "disable")
        audit.record("cli", EventKind(f"user.{args.action}"), user["id"])
        print(f"{user['username']} {args.action}d")


def _run_export(args, store: Store, data_dir) -> int:
    redactor = None
    if args.redact or args.names:
        try:
            redactor = Redactor(load_names(args.names) if args.names else None)
        except (OSError, UnicodeDecodeError) as exc:
            raise ExportError(f"cannot read the names file {args.names}: {exc}") from exc
    study = None if args.all else args.study
    out = os.path.abspath(args.out) if args.out else None
    result = export_sessions(store, data_dir, study=study, fmt=args.format, redactor=redactor, out=out)
    path = str(canonical(result.path))
    # Content-free: the audit row names the file, never what is in it.
    AuditLog(store).record("cli", EventKind.DATA_EXPORT, path, study=study, all=bool(args.all),
                           format=args.format, redacted=redactor is not None, sessions=result.sessions)
    print(path)
    print(f"exported {result.sessions} sessions, {result.turns} turns"
          f"{' (redacted)' if redactor else ''}; manifest {result.manifest.name}")
    return 0


def _confirmed(username: str) -> bool:
    try:
        typed = input(f"Type the username ({username}) to confirm: ")
    except EOFError:
        return False
    return typed.strip() == username


def _run_erase(args, store: Store, data_dir) -> int:
    plan = plan_erasure(store, data_dir, args.user)
    print(f"Erasing {args.user} cannot be undone: {len(plan.session_ids)} sessions, {plan.turns} turns, "
          f"{len(plan.exports)} export files; account {'kept' if args.keep_account else 'deleted'}")
    for path in plan.exports:
        print(f"  export: {path}")
    if not args.yes and not _confirmed(args.user):
        print("cancelled: nothing was changed", file=sys.stderr)
        return EXIT_CANCELLED
    report = erase_user(store, data_dir, plan, keep_account=args.keep_account)
    for path in report.exports_removed:
        print(f"removed {path}")
    print(f"erased {report.sessions} sessions and {report.turns} turns of user {report.user_id}")
    if not report.compacted:
        print(f"warning: {report.compact_error}. The rows are deleted, but old bytes may remain in "
              "the database files: stop the app and run `python -m store compact`.", file=sys.stderr)
        return EXIT_NOT_COMPACTED
    return 0


def _run_compact(store: Store) -> int:
    error = compact(store)
    if error:
        print(f"error: {error}. Stop the app and try again.", file=sys.stderr)
        return EXIT_NOT_COMPACTED
    print(f"compacted {store.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(["--data-dir", args.data_dir] if args.data_dir else [])
        store = Store(settings.db_path)
        try:
            if args.area == "export":
                return _run_export(args, store, settings.data_dir)
            if args.area == "erase":
                return _run_erase(args, store, settings.data_dir)
            if args.area == "compact":
                return _run_compact(store)
            _run_users(args, UserStore(store), AuditLog(store))
        finally:
            store.close()
    except (ConfigError, StoreError, UserError, ExportError, EraseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
