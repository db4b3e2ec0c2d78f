"""``python -m store users add|list|set-role|disable|enable``: manage accounts from the shell."""
from __future__ import annotations

import argparse
import getpass
import os
import sys

from config import ConfigError, load_settings
from store.audit import AuditLog
from store.db import Store, StoreError
from store.users import ROLES, UserError, UserStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m store", description="TheraLab data store")
    parser.add_argument("--data-dir")
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
    return parser


def _password() -> str:
    password = os.environ.get("THERALAB_PASSWORD")
    if password:
        return password
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise UserError("The passwords do not match")
    return first


def _run(args, users: UserStore, audit: AuditLog) -> None:
    if args.action == "add":
        user = users.add(args.username, _password(), args.role)
        audit.record("cli", "user.add", user["id"], username=user["username"], role=user["role"])
        print(f"added {user['username']} ({user['role']})")
    elif args.action == "list":
        for u in users.list():
            print(f"{u['username']:<24} {u['role']:<10} {'disabled' if u['disabled'] else 'active'}")
    elif args.action == "set-role":
        user = users.set_role(args.username, args.role)
        audit.record("cli", "user.set_role", user["id"], role=args.role)
        print(f"{user['username']} is now {user['role']}")
    else:
        user = users.set_disabled(args.username, args.action == "disable")
        audit.record("cli", f"user.{args.action}", user["id"])
        print(f"{user['username']} {args.action}d")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(["--data-dir", args.data_dir] if args.data_dir else [])
        store = Store(settings.db_path)
        _run(args, UserStore(store), AuditLog(store))
    except (ConfigError, StoreError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
