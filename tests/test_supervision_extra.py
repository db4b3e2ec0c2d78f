"""Supervision behaviour the other tests leave out: consent versioning, risk carried over to a new
course of the same account, and the Supervise tab's end / release actions with their role checks.

Handler-level, with a fake backend and accounts mode, as in tests/ui/test_supervise_handlers.py.
"""
from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from types import SimpleNamespace

import gradio as gr
import pytest

from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from services import build_services
from therapist.session import ConsentRequired
from ui.access import Access
from ui.session_tab import REVIEWING, SessionHandlers
from ui.supervise_tab import SuperviseHandlers

IMMINENT = "I've got the pills in front of me and I'm going to take them all tonight. This is goodbye."
MODERATE = "I keep thinking about killing myself."
REPLY = "How are you feeling?"


def _services(settings):
    services = build_services(settings)
    services.sign_in = services.users.count() > 0
    services.catalog.add(CatalogEntry("fake", "Fake", "fake", source="test"))
    services.pool.register("fake", FakeBackend("fake", replies=lambda m: REPLY))
    return services


@pytest.fixture
def svc(settings):
    services = _services(settings)
    for name, role in (("pat1", "patient"), ("pat2", "patient"), ("sup", "supervisor")):
        services.users.add(name, "a-long-password", role)
    services.sign_in = True  # as app.py decides at start-up when accounts exist
    yield services
    services.store.close()


def req(name):
    return SimpleNamespace(username=name)


def handlers(svc):
    access = Access(svc)
    return SessionHandlers(svc, access), SuperviseHandlers(svc, access)


def uid(svc, name):
    return svc.users.get(name)["id"]


def rows(svc, sql, args=()):
    """Straight from the SQLite file, not through the stores."""
    with sqlite3.connect(svc.settings.db_path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args).fetchall()]


def audit(svc, action, target=None):
    sql, args = "SELECT * FROM audit WHERE action = ?", [action]
    if target is not None:
        sql, args = sql + " AND target = ?", [*args, target]
    return rows(svc, sql + " ORDER BY id", args)


def send(sh, sid, text, name, modality="act"):
    """The Session tab's send handler, run to the end: its last (sid, chat, ids, status, box)."""
    return list(sh.send(sid, text, False, modality, "fake", req(name)))[-1]


# ----- 1. consent is versioned -----------------------------------------------------------------

def test_new_consent_version_asks_again_and_keeps_the_old_row(svc, settings):
    sh, _ = handlers(svc)
    sh.consent(True, req("pat1"))
    v1 = svc.engine.consent
    first = send(sh, "", "Hello there.", "pat1")[0]
    assert first and svc.sessions.get(first)["user_id"] == uid(svc, "pat1")
    svc.store.close()

    bumped = _services(dataclasses.replace(settings, consent_version="2"))
    try:
        assert bumped.engine.consent.version == "2" and bumped.engine.consent.text == v1.text
        assert bumped.engine.needs_consent(uid(bumped, "pat1"))
        with pytest.raises(ConsentRequired):
            bumped.engine.start("act", "fake", user_id=uid(bumped, "pat1"))
        sh2, _ = handlers(bumped)
        consent_panel, chat_panel, *_ = sh2.on_load(req("pat1"))
        assert consent_panel["visible"] is True and chat_panel["visible"] is False
        status = send(sh2, "", "Hello again.", "pat1")[3]
        assert "consent" in status
        assert [s["id"] for s in bumped.sessions.list(user_id=uid(bumped, "pat1"))] == [first]  # nothing new

        sh2.consent(True, req("pat1"))
        second = send(sh2, "", "Hello again.", "pat1")[0]
        assert second and second != first
        consents = rows(bumped, "SELECT * FROM consents WHERE user_id = ? ORDER BY created_utc, id",
                        [uid(bumped, "pat1")])
        assert [(c["version"], c["text_sha256"]) for c in consents] == [("1", v1.sha256), ("2", v1.sha256)]
        given = audit(bumped, "consent.given", uid(bumped, "pat1"))
        assert [g["actor"] for g in given] == ["pat1", "pat1"]
        assert '"version": "2"' in given[-1]["detail_json"]
    finally:
        bumped.store.close()


def test_changed_consent_text_same_version_asks_again(settings, tmp_path):
    text_file = tmp_path / "consent.md"
    text_file.write_text("Study consent. {crisis_contacts}\n", encoding="utf-8")
    base = dataclasses.replace(settings, consent_file=str(text_file))
    svc = _services(base)
    try:
        user = svc.users.add("pat1", "a-long-password", "patient")
        svc.engine.record_consent(user["id"], "pat1")
        old_sha = hashlib.sha256(svc.engine.consent.text.encode()).hexdigest()
        assert svc.engine.consent.sha256 == old_sha and "988" in svc.engine.consent.text
        assert svc.engine.start("act", "fake", user_id=user["id"])["user_id"] == user["id"]
    finally:
        svc.store.close()

    text_file.write_text("Study consent, revised: sessions are now recorded. {crisis_contacts}\n", encoding="utf-8")
    svc = _services(base)
    try:
        assert svc.engine.consent.version == "1" and svc.engine.consent.sha256 != old_sha
        assert svc.engine.needs_consent(user["id"])
        with pytest.raises(ConsentRequired):
            svc.engine.start("act", "fake", user_id=user["id"])
        assert len(svc.sessions.list(user_id=user["id"])) == 1
        svc.engine.record_consent(user["id"], "pat1")
        assert not svc.engine.needs_consent(user["id"])
        consents = rows(svc, "SELECT version, text_sha256 FROM consents WHERE user_id = ? ORDER BY created_utc, id",
                        [user["id"]])
        assert consents == [{"version": "1", "text_sha256": old_sha},
                            {"version": "1", "text_sha256": svc.engine.consent.sha256}]
    finally:
        svc.store.close()

    # The crisis contacts are part of the text shown, so a new locale asks again as well.
    svc = _services(dataclasses.replace(base, crisis_locale="UK"))
    try:
        assert "116 123" in svc.engine.consent.text and svc.engine.needs_consent(user["id"])
    finally:
        svc.store.close()


# ----- 2. risk is sticky across a new course of the same account ---------------------------------

def test_open_high_flag_follows_the_account_into_a_fresh_course(svc):
    sh, sup = handlers(svc)
    for name in ("pat1", "pat2"):
        sh.consent(True, req(name))
    first = send(sh, "", IMMINENT, "pat1", "cbt")[0]
    assert svc.sessions.get(first)["status"] == "hold"
    sup.end(first, req("sup"))
    assert svc.sessions.get(first)["status"] == "ended"
    [flag] = rows(svc, "SELECT * FROM flags WHERE session_id = ?", [first])
    assert flag["status"] == "open" and flag["level"] in ("high", "imminent")

    # A brand-new session (no continue_from): a new course, same account.
    sid, chat, _, status, _ = send(sh, "", "Hi, I'm back. Things are fine now.", "pat1", "cbt")
    new = svc.sessions.get(sid)
    assert sid != first and new["course_id"] != svc.sessions.get(first)["course_id"] and new["course_index"] == 1
    assert new["status"] == "hold"
    carried = rows(svc, "SELECT * FROM flags WHERE session_id = ?", [sid])
    assert [(f["kind"], f["level"], f["status"]) for f in carried] == [("carried_over", flag["level"], "open")]
    assert flag["id"] in carried[0]["detail_json"]
    assert len(audit(svc, "risk.carried_over", sid)) == 1
    # On hold: the reply waits as a draft and the patient sees the reviewing notice, not the reply.
    assert REVIEWING in status and REPLY not in [m["content"] for m in chat]
    assert svc.drafts.pending(sid)["content"] == REPLY
    assert [t["role"] for t in svc.sessions.turns(sid)] == ["patient"]

    # Another account's new session is untouched.
    other = send(sh, "", "Hello.", "pat2")[0]
    assert svc.sessions.get(other)["status"] == "active"
    assert rows(svc, "SELECT * FROM flags WHERE session_id = ?", [other]) == []


def test_open_moderate_flag_carries_over_without_a_hold_and_resolution_stops_it(svc):
    sh, sup = handlers(svc)
    sh.consent(True, req("pat1"))
    first = send(sh, "", MODERATE, "pat1")[0]
    sh.end(first, req("pat1"))
    second = send(sh, "", "Hello again.", "pat1")[0]
    assert svc.sessions.get(second)["status"] == "active"
    carried = rows(svc, "SELECT kind, level, status FROM flags WHERE session_id = ?", [second])
    assert carried == [{"kind": "carried_over", "level": "moderate", "status": "open"}]
    assert svc.sessions.turns(second)[-1]["content"] == REPLY  # not held

    # Resolving every open flag (each with a note) means the next fresh session starts clean.
    for sid in (first, second):
        for f in rows(svc, "SELECT id FROM flags WHERE session_id = ? AND status = 'open'", [sid]):
            assert "resolved" in sup.resolve(sid, f["id"], "Safety plan reviewed with the patient.", req("sup"))[0]
    sh.end(second, req("pat1"))
    third = send(sh, "", "Hello once more.", "pat1")[0]
    assert rows(svc, "SELECT * FROM flags WHERE session_id = ?", [third]) == []


# ----- 3. Supervise tab: end session and release hold --------------------------------------------

def _held_session(svc, sh):
    sh.consent(True, req("pat1"))
    sid = send(sh, "", IMMINENT, "pat1")[0]
    assert svc.sessions.get(sid)["status"] == "hold"
    return sid


def test_supervisor_releases_the_hold_and_it_is_audited(svc):
    sh, sup = handlers(svc)
    sid = _held_session(svc, sh)
    status, header, *_ = sup.release(sid, req("sup"))
    assert "Hold released" in status and "status **active**" in header
    assert rows(svc, "SELECT status FROM sessions WHERE id = ?", [sid]) == [{"status": "active"}]
    released = audit(svc, "session.release", sid)
    assert [r["actor"] for r in released] == ["sup"]
    # The flag stays open (only a note closes it), but replies now reach the patient directly.
    assert rows(svc, "SELECT status FROM flags WHERE session_id = ?", [sid]) == [{"status": "open"}]
    # (Not "I put the pills away": any talk of the pills right after this plan gets the safe reply.)
    send(sh, sid, "I called my sister and she is coming over.", "pat1")
    assert svc.sessions.turns(sid)[-1]["content"] == REPLY and svc.drafts.pending(sid) is None


def test_supervisor_ends_the_session_and_it_is_audited(svc):
    sh, sup = handlers(svc)
    sid = _held_session(svc, sh)
    status, header, *_ = sup.end(sid, req("sup"))
    assert status == "Session ended." and "status **ended**" in header
    [row] = rows(svc, "SELECT status, ended_utc FROM sessions WHERE id = ?", [sid])
    assert row["status"] == "ended" and row["ended_utc"]
    assert [r["actor"] for r in audit(svc, "session.end", sid)] == ["sup"]
    # Ended means ended: the patient cannot add to it and a later release is refused.
    n_turns = len(svc.sessions.turns(sid))
    assert "Not sent" in send(sh, sid, "Are you there?", "pat1")[3]
    assert len(svc.sessions.turns(sid)) == n_turns
    assert "Not done" in sup.release(sid, req("sup"))[0]
    assert audit(svc, "session.release", sid) == []
    assert rows(svc, "SELECT status FROM sessions WHERE id = ?", [sid]) == [{"status": "ended"}]


@pytest.mark.parametrize("action", ["end", "release"])
def test_patient_cannot_end_or_release_from_the_supervise_tab(svc, action):
    sh, sup = handlers(svc)
    sid = _held_session(svc, sh)
    with pytest.raises(gr.Error, match="patient"):
        getattr(sup, action)(sid, req("pat1"))  # even on the patient's own session
    assert rows(svc, "SELECT status, ended_utc FROM sessions WHERE id = ?", [sid]) == [
        {"status": "hold", "ended_utc": None}]
    assert audit(svc, "session.end", sid) == [] and audit(svc, "session.release", sid) == []
    [denied] = audit(svc, "access.denied", sid)
    assert denied["actor"] == "pat1"
    assert f'"endpoint": "session.{action}"' in denied["detail_json"] and '"role": "patient"' in denied["detail_json"]


# ----- 4. linked flags, ending twice, a draft left waiting ----------------------------------------

def _carried_pair(svc, sh):
    sh.consent(True, req("pat1"))
    first = send(sh, "", MODERATE, "pat1")[0]
    sh.end(first, req("pat1"))
    second = send(sh, "", "Hello again.", "pat1")[0]
    [original] = rows(svc, "SELECT id FROM flags WHERE session_id = ?", [first])
    [copy] = rows(svc, "SELECT id FROM flags WHERE session_id = ?", [second])
    return first, second, original["id"], copy["id"]


@pytest.mark.parametrize("resolve_copy", [False, True])
def test_resolving_a_flag_closes_its_carried_copies_with_the_same_note(svc, resolve_copy):
    sh, sup = handlers(svc)
    first, second, original, copy = _carried_pair(svc, sh)
    sid, fid, other = (second, copy, original) if resolve_copy else (first, original, copy)
    message = sup.resolve(sid, fid, "Safety plan reviewed with the patient.", req("sup"))[0]
    assert "Also closed 1 linked flag" in message
    [linked] = rows(svc, "SELECT status, resolved_by, resolution_note FROM flags WHERE id = ?", [other])
    assert linked["status"] == "resolved" and linked["resolved_by"] == "sup"
    assert linked["resolution_note"] == f"Safety plan reviewed with the patient. (resolved with flag {fid})"
    [entry] = audit(svc, "flag.resolve", sid)
    assert other in entry["detail_json"]
    sh.end(second, req("pat1"))
    third = send(sh, "", "Hello once more.", "pat1")[0]
    assert rows(svc, "SELECT * FROM flags WHERE session_id = ?", [third]) == []


def test_an_unrelated_open_flag_stays_open_when_another_is_resolved(svc):
    sh, sup = handlers(svc)
    first, second, original, copy = _carried_pair(svc, sh)
    send(sh, second, MODERATE, "pat1")  # a new disclosure in the second session: its own flag
    fresh = [f["id"] for f in rows(svc, "SELECT id, kind FROM flags WHERE session_id = ?", [second])
             if f["kind"] != "carried_over"]
    assert fresh
    sup.resolve(first, original, "Reviewed.", req("sup"))
    assert rows(svc, "SELECT status FROM flags WHERE id = ?", [fresh[0]]) == [{"status": "open"}]


def test_ending_a_held_session_withdraws_its_draft_and_ending_again_changes_nothing(svc):
    sh, sup = handlers(svc)
    sid = _held_session(svc, sh)
    send(sh, sid, "Are you still there?", "pat1")
    draft = svc.drafts.pending(sid)
    assert draft is not None
    assert sup.end(sid, req("sup"))[0] == "Session ended."
    assert svc.drafts.pending(sid) is None
    assert rows(svc, "SELECT status FROM drafts WHERE id = ?", [draft["id"]]) == [{"status": "superseded"}]
    [ended] = audit(svc, "session.end", sid)
    assert '"draft_withdrawn": true' in ended["detail_json"]
    before = rows(svc, "SELECT status, ended_utc, summary FROM sessions WHERE id = ?", [sid])

    assert sup.end(sid, req("sup"))[0] == "This session is already over."
    svc.engine.end(sid, actor="sup")  # the engine itself is idempotent too
    assert rows(svc, "SELECT status, ended_utc, summary FROM sessions WHERE id = ?", [sid]) == before
    assert len(audit(svc, "session.end", sid)) == 1
