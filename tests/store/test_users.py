"""Accounts: scrypt hashes, roles, disabling, the CLI, and the loopback-only rule without accounts."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from store.users import UserError, UserStore, hash_password, verify_password

ROOT = Path(__file__).resolve().parents[2]


def test_password_hash_is_salted_and_verifies(store):
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("correct horse", first) and not verify_password("wrong horse", first)
    assert not verify_password("x", "garbage")


def test_add_authenticate_role_disable(store):
    users = UserStore(store)
    user = users.add("dr_lee", "long-enough-pw", "supervisor")
    assert user["role"] == "supervisor" and "password_hash" not in user
    raw = store.db.execute("SELECT password_hash FROM users WHERE username='dr_lee'").fetchone()[0]
    assert "long-enough-pw" not in raw
    assert users.authenticate("dr_lee", "long-enough-pw")["username"] == "dr_lee"
    assert users.authenticate("dr_lee", "nope") is None and users.authenticate("ghost", "x") is None
    assert users.set_role("dr_lee", "admin")["role"] == "admin"
    users.set_disabled("dr_lee", True)
    assert users.authenticate("dr_lee", "long-enough-pw") is None
    with pytest.raises(UserError, match="already exists"):
        users.add("dr_lee", "long-enough-pw", "patient")
    with pytest.raises(UserError, match="Role"):
        users.add("pat", "long-enough-pw", "superuser")
    with pytest.raises(UserError, match="at least"):
        users.add("pat", "short", "patient")


def _cli(data_dir, *args, password=None):
    env = dict(os.environ)
    env.pop("THERALAB_PASSWORD", None)
    if password:
        env["THERALAB_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "store", "--data-dir", str(data_dir), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)


def test_users_cli(tmp_path):
    out = _cli(tmp_path, "users", "add", "pat01", "--role", "patient", password="patient-pass-1")
    assert out.returncode == 0, out.stderr
    assert _cli(tmp_path, "users", "set-role", "pat01", "supervisor").returncode == 0
    assert _cli(tmp_path, "users", "disable", "pat01").returncode == 0
    listing = _cli(tmp_path, "users", "list").stdout
    assert "pat01" in listing and "supervisor" in listing and "disabled" in listing
    bad = _cli(tmp_path, "users", "set-role", "nobody", "admin")
    assert bad.returncode == 2 and "No user" in bad.stderr
    from store.audit import AuditLog
    from store.db import Store
    actions = [a["action"] for a in AuditLog(Store(tmp_path / "sessions.db")).recent()]
    assert {"user.add", "user.set_role", "user.disable"} <= set(actions)


def test_non_loopback_bind_without_accounts_is_refused(tmp_path):
    out = subprocess.run([sys.executable, "app.py", "--host", "0.0.0.0", "--port", "0", "--data-dir",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "without accounts" in out.stderr and "Traceback" not in out.stderr
