"""The security review's findings (issue 17), each checked against the running app (``python
app.py`` in a subprocess) the way the reviewer found it: raw HTTP with forged headers, and
gradio_client for the handler calls. The browser test of a hostile page on another loopback port is
in tests/e2e/test_browser.py."""
from __future__ import annotations

import os
import stat

import httpx
import pytest

from apprunner import RunningApp, wait_for

PASSWORD = "correct-horse-battery"
HOSTILE = "http://127.0.0.1:9999"


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """Single-researcher mode (no accounts): the mode with no sign-in at all."""
    data = tmp_path_factory.mktemp("single")
    os.chmod(data, 0o755)  # as an older version left it: must be tightened at start
    running = RunningApp(data, {"THERALAB_PRELOAD_DEFAULT": "0"})
    running.client()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def accounts(tmp_path_factory):
    from store.db import Store
    from store.users import UserStore
    data = tmp_path_factory.mktemp("accounts")
    store = Store(data / "sessions.db")
    for name, role in (("pat1", "patient"), ("pat2", "patient"), ("victim", "patient"), ("adm1", "admin")):
        UserStore(store).add(name, PASSWORD, role)
    store.close()
    os.chmod(data / "sessions.db", 0o644)
    running = RunningApp(data, {"THERALAB_PRELOAD_DEFAULT": "0"})
    running.client(auth=("adm1", PASSWORD))
    yield running
    running.stop()


def _get(app: RunningApp, path: str, **headers) -> httpx.Response:
    return httpx.get(app.url.rstrip("/") + path, headers=headers, timeout=30)


def _sign_in(app: RunningApp, username: str, password: str, **headers) -> httpx.Response:
    return httpx.post(app.url.rstrip("/") + "/login", data={"username": username, "password": password},
                      headers=headers, timeout=60)


# 1. cross-origin access and DNS rebinding --------------------------------------------------------

def test_a_foreign_origin_is_refused_without_any_cors_grant(single):
    answer = _get(single, "/config", Origin=HOSTILE)
    assert answer.status_code == 403
    assert not any(k.lower().startswith("access-control-") for k in answer.headers)
    preflight = httpx.options(single.url.rstrip("/") + "/gradio_api/call/send", timeout=30, headers={
        "Origin": HOSTILE, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    assert _get(single, "/config", Origin="null").status_code == 403
    # a no-cors request from another port of the same site, and one with a foreign Referer
    assert _get(single, "/config", **{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}).status_code == 403
    assert _get(single, "/config", Referer=HOSTILE + "/page").status_code == 403
    own = _get(single, "/config", Origin=single.url.rstrip("/"))
    assert own.status_code == 200 and "access-control-allow-credentials" not in own.headers
    rows = single.rows("SELECT detail_json FROM audit WHERE action='http.refused' AND detail_json LIKE ?",
                       (f"%{HOSTILE}%",))
    assert rows, "the refusals are audited"


def test_a_rebound_dns_name_is_refused_but_a_link_to_the_start_page_works(single):
    assert _get(single, "/config", Host="attacker.example:%d" % single.port).status_code == 403
    assert _get(single, "/", Host="attacker.example").status_code == 403
    assert _get(single, "/config", Host=f"localhost:{single.port}").status_code == 200
    link = _get(single, "/", Referer="https://wiki.example/setup", **{"Sec-Fetch-Site": "cross-site",
                                                                       "Sec-Fetch-Mode": "navigate"})
    assert link.status_code == 200


def test_session_cookies_are_same_site_strict(accounts):
    answer = _sign_in(accounts, "pat2", PASSWORD)
    assert answer.status_code == 200
    cookies = answer.headers.get_list("set-cookie")
    assert cookies and all("samesite=strict" in c.lower() for c in cookies), cookies


# 2. owner-only data ------------------------------------------------------------------------------

def test_data_dir_and_database_files_are_owner_only(single, accounts):
    for app in (single, accounts):
        assert _mode(app.data) == 0o700
        for suffix in ("", "-wal", "-shm"):
            path = app.data / f"sessions.db{suffix}"
            if path.exists():
                assert _mode(path) == 0o600, (path, oct(_mode(path)))


# 3. throttled sign-in ----------------------------------------------------------------------------

def test_repeated_wrong_passwords_lock_the_username_and_the_lockout_is_audited(accounts):
    for _ in range(5):
        assert _sign_in(accounts, "victim", "wrong-password").status_code == 400
    assert _sign_in(accounts, "victim", PASSWORD).status_code == 400  # locked: even the right one
    assert _sign_in(accounts, "pat1", PASSWORD).status_code == 200    # other users are not
    assert accounts.rows("SELECT COUNT(*) FROM audit WHERE action='auth.lockout' AND actor='victim'")[0][0] == 1


# 4. bounded audit inputs -------------------------------------------------------------------------

def test_a_huge_username_with_newlines_is_stored_capped_and_escaped(accounts):
    forged = "x" * 1_000_000 + "\nadmin auth.login"
    assert _sign_in(accounts, forged, "whatever").status_code == 400
    actor = wait_for(lambda: accounts.rows(
        "SELECT actor FROM audit WHERE action='auth.login_failed' AND actor LIKE 'xxxx%'"), 10, "the audit row")[0][0]
    assert len(actor) < 100 and "\n" not in actor


def test_a_forwarded_for_header_cannot_choose_the_address_the_throttle_and_audit_see(accounts):
    assert _sign_in(accounts, "pat1", "wrong-password", **{"X-Forwarded-For": "203.0.113.77"}).status_code == 400
    detail = accounts.rows("SELECT detail_json FROM audit WHERE action='auth.login_failed' AND actor='pat1' "
                           "ORDER BY id DESC LIMIT 1")[0][0]
    assert "203.0.113.77" not in detail and "127.0.0.1" in detail


# 5. uploads --------------------------------------------------------------------------------------

def test_uploads_are_refused_even_when_signed_in(accounts):
    cookies = _sign_in(accounts, "pat1", PASSWORD).cookies
    answer = httpx.post(accounts.url.rstrip("/") + "/gradio_api/upload", cookies=cookies, timeout=30,
                        files={"files": ("notes.txt", b"x" * 4096)})
    assert answer.status_code == 403


# 6. information leaks ----------------------------------------------------------------------------

def test_no_api_description_schema_or_monitoring_before_sign_in_or_for_patients(accounts):
    page = _get(accounts, "/")
    assert page.status_code == 200
    assert "supervise_note" not in page.text and "accept_consent" not in page.text
    for path in ("/openapi.json", "/gradio_api/openapi.json", "/monitoring", "/monitoring/summary"):
        assert _get(accounts, path).status_code in (401, 403), path
    cookies = _sign_in(accounts, "pat1", PASSWORD).cookies
    summary = httpx.get(accounts.url.rstrip("/") + "/monitoring/summary", cookies=cookies, timeout=30)
    assert summary.status_code == 403


# 7 and 8. refusals audited, one answer for unknown and foreign sessions, strict types --------------

def test_unknown_and_foreign_session_ids_get_the_same_answer(accounts):
    from gradio_client.exceptions import AppError
    owner = accounts.client(auth=("pat2", PASSWORD))
    owner.predict(True, api_name="/accept_consent")
    sid = owner.predict("cbt", "default", False, api_name="/start_session")[0]
    other = accounts.client(auth=("pat1", PASSWORD))
    messages = []
    for target in (sid, "01JUNKNOWNSESSION0000000000"):
        with pytest.raises(AppError) as refused:
            other.predict(target, api_name="/end_session")
        messages.append(str(refused.value))
    assert messages[0] == messages[1]
    assert accounts.rows("SELECT COUNT(*) FROM audit WHERE action='access.denied' AND actor='pat1'")[0][0] >= 2


def test_consent_must_be_a_boolean_and_a_message_a_string(accounts):
    from gradio_client.exceptions import AppError
    client = accounts.client(auth=("pat1", PASSWORD))
    before = accounts.rows("SELECT COUNT(*) FROM consents")[0][0]
    with pytest.raises(AppError, match="not valid"):
        client.predict("notabool", api_name="/accept_consent")
    assert accounts.rows("SELECT COUNT(*) FROM consents")[0][0] == before
    client.predict(True, api_name="/accept_consent")
    sid = client.predict("cbt", "default", False, api_name="/start_session")[0]
    for bad in (12345, {"role": "therapist"}):
        with pytest.raises(AppError, match="not valid"):
            client.predict(sid, bad, False, "cbt", "default", api_name="/send")
    assert accounts.rows("SELECT COUNT(*) FROM turns WHERE session_id=?", (sid,))[0][0] == 0
    assert accounts.rows("SELECT COUNT(*) FROM audit WHERE action='access.invalid_input'")[0][0] >= 3


def test_unauthenticated_calls_are_audited(accounts):
    assert _get(accounts, "/config").status_code == 401
    assert accounts.rows("SELECT COUNT(*) FROM audit WHERE action='http.refused' AND "
                         "detail_json LIKE '%answered 401%'")[0][0] >= 1


def test_the_address_is_throttled_across_usernames(accounts):
    # Last in this module: it locks the loopback address out of signing in for a while.
    statuses = [_sign_in(accounts, f"nobody{i}", "wrong-password").status_code for i in range(25)]
    assert 429 in statuses and statuses[0] == 400
    answer = _sign_in(accounts, "adm1", PASSWORD)
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) > 0
