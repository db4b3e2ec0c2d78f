"""Security review (issue 17): owner-only data files, constant-cost sign-in with throttling, and
bounded, escaped audit values."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat

import pytest

from store import files, users as users_mod
from store.audit import MAX_DETAIL_JSON, AuditLog, clean_detail, clean_text
from store.db import Store
from store.signin import SignInThrottle, sign_in
from store.users import MAX_CREDENTIAL, UserStore


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# --- 1. owner-only data ------------------------------------------------------------------------

def test_fresh_store_is_owner_only_under_a_loose_umask(tmp_path, loose_umask):
    store = Store(tmp_path / "data" / "sessions.db")
    try:
        AuditLog(store).record("alice", "app.start")
        assert _mode(tmp_path / "data") == 0o700
        for name in ("sessions.db", "sessions.db-wal", "sessions.db-shm"):
            assert (tmp_path / "data" / name).exists(), name
            assert _mode(tmp_path / "data" / name) == 0o600, name
    finally:
        store.close()


def test_existing_loose_dir_and_db_are_fixed_and_logged(tmp_path, loose_umask, caplog):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    conn = sqlite3.connect(data / "sessions.db")  # an older version's file, made under umask 022
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    assert _mode(data / "sessions.db") == 0o644
    with caplog.at_level(logging.WARNING, logger="store.files"):
        store = Store(data / "sessions.db")
    try:
        assert _mode(data) == 0o700 and _mode(data / "sessions.db") == 0o600
        for name in ("sessions.db-wal", "sessions.db-shm"):
            if (data / name).exists():
                assert _mode(data / name) == 0o600, name
        text = caplog.text
        assert str(data / "sessions.db") in text and "0o644" in text
        assert str(data) in text and "0o755" in text
    finally:
        store.close()


def test_a_dir_we_do_not_own_is_left_alone(tmp_path, monkeypatch, caplog):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    monkeypatch.setattr(files.os, "getuid", lambda: os.stat(shared).st_uid + 1)
    with caplog.at_level(logging.WARNING, logger="store.files"):
        files.private_dir(shared)
    assert _mode(shared) == 0o755 and "not owned" in caplog.text


def test_a_sticky_shared_dir_is_left_alone_even_when_ours(tmp_path, caplog):
    tmp_like = tmp_path / "tmp"
    tmp_like.mkdir()
    os.chmod(tmp_like, 0o1777)
    with caplog.at_level(logging.WARNING, logger="store.files"):
        Store(tmp_like / "sessions.db").close()
    assert stat.S_IMODE(os.stat(tmp_like).st_mode) == 0o1777 and "shared directory" in caplog.text
    assert _mode(tmp_like / "sessions.db") == 0o600  # the files themselves are still ours to tighten


def test_a_filesystem_that_refuses_chmod_does_not_crash(tmp_path, monkeypatch, caplog):
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)

    def refuse(*_a, **_k):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(files.os, "chmod", refuse)
    with caplog.at_level(logging.WARNING, logger="store.files"):
        store = Store(data / "sessions.db")
    AuditLog(store).record("alice", "app.start")
    store.close()
    assert "Could not make" in caplog.text


def test_every_command_line_runs_with_an_owner_only_umask():
    """load_settings (where every entry point starts) sets umask 077 for the process."""
    import subprocess
    import sys

    from apprunner import ROOT
    code = "import os, config; os.umask(0o022); config.load_settings([]); print(oct(os.umask(0)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "0o77", done.stderr


# --- 2. sign-in: one KDF per attempt, throttling ------------------------------------------------

@pytest.fixture
def scrypt_calls(monkeypatch):
    users_mod._dummy()  # made once per process, on first use: not part of any attempt's cost
    calls = []
    real = hashlib.scrypt

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(users_mod.hashlib, "scrypt", counting)
    return calls


def test_every_attempt_costs_exactly_one_scrypt(store, scrypt_calls):
    users = UserStore(store)
    users.add("dr_lee", "long-enough-pw", "supervisor")
    users.add("gone", "long-enough-pw", "patient")
    users.set_disabled("gone", True)
    scrypt_calls.clear()
    attempts = [("ghost", "long-enough-pw", False), ("gone", "long-enough-pw", False),
                ("dr_lee", "wrong-password", False), ("dr_lee", "long-enough-pw", True),
                (None, "x", False), ("dr_lee", None, False), (123, ["x"], False),
                ("x" * (MAX_CREDENTIAL + 1), "pw", False), ("dr_lee", "p" * (MAX_CREDENTIAL + 1), False),
                ("d" * 1_000_000, "p" * 1_000_000, False)]
    for username, password, ok in attempts:
        before = len(scrypt_calls)
        result = users.authenticate(username, password)
        assert (result is not None) == ok, (str(username)[:20], str(password)[:20])
        assert len(scrypt_calls) - before == 1, (str(username)[:20], str(password)[:20])


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _throttle(clock, **kw):
    kw = {"user_free": 5, "address_free": 20, "base_delay_s": 30.0, "max_delay_s": 900.0,
          "window_s": 3600.0, **kw}
    return SignInThrottle(clock=clock, **kw)


def test_lockout_after_n_failures_then_doubling_backoff_up_to_a_cap():
    clock = FakeClock()
    t = _throttle(clock)
    started = [t.failed("Dr_Lee", "10.0.0.1") for _ in range(4)]
    assert started == [False] * 4 and t.check("dr_lee", "10.0.0.1") == 0
    assert t.failed("dr_lee ", "10.0.0.1") is True  # the 5th starts it; names are normalised
    assert t.check("DR_LEE", "10.0.0.2") == 30  # locked per username, whatever the address
    delays = []
    for _ in range(8):
        clock.advance(t.check("dr_lee"))
        assert t.check("dr_lee") == 0
        assert t.failed("dr_lee") is False  # only the first failure of a streak reports a lockout
        delays.append(t.check("dr_lee"))
    assert delays == [60, 120, 240, 480, 900, 900, 900, 900]


def test_success_resets_the_username_and_an_old_streak_is_forgotten():
    clock = FakeClock()
    t = _throttle(clock)
    for _ in range(4):
        t.failed("pat01", "a")
    t.succeeded("pat01", "a")
    for _ in range(4):
        assert t.failed("pat01", "a") is False
    assert t.check("pat01", "a") == 0
    clock.advance(3601)
    assert t.failed("pat01", "a") is False and t.check("pat01") == 0  # a fresh streak of one


def test_per_address_limit_across_many_usernames():
    clock = FakeClock()
    t = _throttle(clock)
    results = [t.failed(f"user{i}", "192.0.2.7") for i in range(20)]
    assert results[:19] == [False] * 19 and results[19] is True
    assert t.check("someone-new", "192.0.2.7") == 30
    assert t.check("someone-new", "192.0.2.8") == 0
    t.succeeded("user1", "192.0.2.7")  # one good account does not clear the address
    assert t.check("anyone", "192.0.2.7") == 30


def test_memory_is_bounded_under_a_username_spray():
    clock = FakeClock()
    t = _throttle(clock, max_entries=100, address_free=10**9)
    for _ in range(5):
        t.failed("admin", "a")  # a real lockout that a spray must not evict
    for i in range(5000):
        t.failed(f"random-{i}-" + "x" * 500, f"addr{i}")
    users_n, addresses_n = t.size()
    assert users_n <= 100 and addresses_n <= 100
    assert t.check("admin") > 0
    assert all(len(k) <= 64 for k in t._users.streaks)


def test_stale_entries_are_dropped_first():
    clock = FakeClock()
    t = _throttle(clock, max_entries=10)
    for i in range(10):
        t.failed(f"u{i}")
    clock.advance(3601)
    t.failed("new")
    assert t.size()[0] == 1


def test_sign_in_refuses_the_right_password_while_locked_and_audits_the_lockout_once(store, monkeypatch):
    users, audit = UserStore(store), AuditLog(store)
    users.add("dr_lee", "long-enough-pw", "supervisor")
    clock = FakeClock()
    t = _throttle(clock)
    for _ in range(5):
        assert not sign_in(users, t, audit, "dr_lee", "wrong-password", "127.0.0.1").ok
    checked = []
    monkeypatch.setattr(users, "authenticate", lambda *a: checked.append(a) or {"username": "dr_lee"})
    refused = sign_in(users, t, audit, "dr_lee", "long-enough-pw", "127.0.0.1")
    assert not refused.ok and refused.wait_s == 30 and checked == []  # the password was not even tried
    monkeypatch.undo()
    clock.advance(30)
    assert sign_in(users, t, audit, "dr_lee", "long-enough-pw", "127.0.0.1").ok
    actions = [r["action"] for r in reversed(audit.recent())]
    assert actions == ["auth.login_failed"] * 5 + ["auth.lockout", "auth.login"]
    lockout = audit.recent(action="auth.lockout")[0]
    assert lockout["actor"] == "dr_lee" and json.loads(lockout["detail_json"]) == {
        "wait_s": 30, "address": "127.0.0.1"}


# --- 3. bounded, escaped audit values ----------------------------------------------------------

def test_huge_actor_is_stored_capped(store):
    audit = AuditLog(store)
    audit.record("a" * 1_000_000 + "\n", "auth.login_failed", "t" * 10_000, note="n" * 10_000)
    row = audit.recent()[0]
    assert row["actor"] == "a" * 64 + f"…(+{1_000_001 - 64} chars)"
    assert len(row["target"]) < 4200 and len(row["detail_json"]) <= MAX_DETAIL_JSON
    assert json.loads(row["detail_json"])["note"] == "n" * 500 + "…(+9500 chars)"


def test_control_and_bidi_characters_are_escaped_everywhere(store):
    audit = AuditLog(store)
    # An action is one of vocabulary.EventKind: a forged one is refused, and the refusal's own
    # message shows it escaped.
    with pytest.raises(ValueError) as refused:
        audit.record("eve", "S1\u202etxt.exe", "x")
    assert "S1\\u202etxt.exe" in str(refused.value) and not audit.recent()
    audit.record("eve\n2024-01-01 admin auth.login", "session.read", "x\r\x00",
                 note="a\u2066b\u200fc\u061cd\x1b[31m\x85", nested={"k\n": ["v\u202a", 3]})
    row = audit.recent()[0]
    assert row["actor"] == "eve\\u000a2024-01-01 admin auth.login"
    assert row["action"] == "session.read" and row["target"] == "x\\u000d\\u0000"
    detail = json.loads(row["detail_json"])
    assert detail["note"] == "a\\u2066b\\u200fc\\u061cd\\u001b[31m\\u0085"
    assert detail["nested"] == {"k\\u000a": ["v\\u202a", 3]}
    for value in (row["actor"], row["action"], row["target"], row["detail_json"]):
        assert not any(ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f or ch in "\u202a\u202e\u2066\u200f\u061c"
                       for ch in value)


def test_ordinary_values_are_unchanged(store):
    audit = AuditLog(store)
    detail = {"reason": "done", "n": 3, "ok": True, "none": None, "items": ["a", "b"],
              "sub": {"x": 1.5}, "name": "Zoë – café"}
    audit.record("dr_lee", "session.end", "01HZY", **detail)
    row = audit.recent()[0]
    assert (row["actor"], row["action"], row["target"]) == ("dr_lee", "session.end", "01HZY")
    assert row["detail_json"] == json.dumps(detail)
    assert clean_text("plain text", 64) == "plain text" and clean_detail({}) is None


def test_total_detail_is_capped_and_stays_json():
    text = clean_detail({f"k{i}": "\"" * 500 for i in range(40)})
    assert len(text) <= MAX_DETAIL_JSON and "truncated" in json.loads(text)
    many = json.loads(clean_detail({"ids": list(range(1000))}))
    assert len(many["ids"]) == 51 and many["ids"][-1] == "…(+950 items)"


def test_blank_usernames_cannot_lock_everyone_through_the_address_only_check():
    from store.signin import SignInThrottle
    throttle = SignInThrottle(user_free=5, address_free=20, clock=lambda: 0.0)
    for _ in range(8):
        throttle.failed("   ", "10.0.0.9")
    assert throttle.check(None, "10.0.0.1") == 0.0       # the guard's pre-check for another address
    assert throttle.check("alice", "10.0.0.1") == 0.0
