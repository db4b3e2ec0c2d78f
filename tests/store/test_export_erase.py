"""Export (jsonl/csv, pseudonyms, manifests), redaction, and participant erasure.

The erasure tests plant a unique canary string in every place a participant's text can live
(turn content and reasoning, a summary, a flag detail and note, a supervisor note, a held
draft, an export file) and then check the raw bytes of every file in the data dir.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from store.__main__ import main
from store.db import Store
from store.export import participant_id
from store.flags import FlagStore
from store.ids import new_id, utc_now
from store.redact import NamesList, Redactor, load_names, redact_patterns
from store.sessions import SessionStore, TurnRecord
from store.users import UserStore

ROOT = Path(__file__).resolve().parents[2]
USER_A, USER_B = "alpha_7731", "bravo_4402"
TABLES = ("users", "consents", "sessions", "turns", "flags", "ratings", "drafts", "notes")


@pytest.fixture(autouse=True)
def _no_theralab_env(monkeypatch):
    # main() reads THERALAB_* like the app does; the tests pass --data-dir explicitly.
    for key in [k for k in os.environ if k.startswith("THERALAB_")]:
        monkeypatch.delenv(key)


def _canary() -> str:
    # Ends in a digit so the porter stemmer leaves it whole inside the FTS index too.
    return f"zq{secrets.token_hex(6)}k9"


def _participant(store: Store, username: str, marker: str, study: str | None = None) -> dict:
    """A user with one consent and two sessions; ``marker`` is planted in every text field."""
    user = UserStore(store).add(username, "long-enough-pw", "patient")
    sessions, flags = SessionStore(store), FlagStore(store)
    ids = []
    for n in range(2):
        sid = sessions.create(modality="cbt", therapist_model="default-think", reasoning=True,
                              user_id=user["id"])["id"]
        ids.append(sid)
        patient = sessions.add_turn(sid, TurnRecord("patient", f"I feel low today {marker} number {n}"))
        sessions.add_turn(sid, TurnRecord("therapist", "Thank you for telling me.", model_id="default-think",
                                          reasoning=f"The patient said {marker}; validate first.",
                                          latency_ms=120, ttft_ms=40))
        flag = flags.raise_flag(sid, "low", "passive_ideation", turn_id=patient["id"],
                                detail={"matches": [marker]})
        flags.resolve(flag["id"], "dr_lee", f"Checked in, {marker} is safe")
        sessions.end(sid, summary=f"Session Summary: discussed {marker}.")
        if study:
            with store.write() as db:
                db["sessions"].update(sid, {"study": study})
    with store.write() as db:
        db["consents"].insert({"id": new_id(), "user_id": user["id"], "version": "v1",
                               "text_sha256": "0" * 64, "created_utc": utc_now()})
        db["notes"].insert({"id": new_id(), "session_id": ids[0], "author": "dr_lee",
                            "text": f"Supervisor note about {marker}", "created_utc": utc_now()})
        db["drafts"].insert({"id": new_id(), "session_id": ids[0], "content": f"Held draft {marker}",
                             "reasoning": f"draft reasoning {marker}", "status": "pending",
                             "created_utc": utc_now()})
        db["ratings"].insert({"id": new_id(), "session_id": ids[0], "rater_id": "dr_lee",
                              "rater_kind": "human", "rubric_id": "ctrs", "scores_json": "{}",
                              "total": 3.5, "comment": f"rated {marker}", "created_utc": utc_now()})
    return {"user": user, "session_ids": ids}


def _data_bytes(data_dir: Path) -> dict[str, bytes]:
    """Raw bytes of every file in the data dir (database, WAL, shm, exports...)."""
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}


def _holding(data_dir: Path, needle: str) -> list[str]:
    return [name for name, data in _data_bytes(data_dir).items()
            if needle.encode() in data or needle.lower().encode() in data]


def _counts(store: Store) -> dict[str, int]:
    return {t: store.db[t].count for t in TABLES}


def _cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THERALAB_")}
    return subprocess.run([sys.executable, "-m", "store", "--data-dir", str(data_dir), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env,
                          input="" if stdin is None else stdin)


def _main(data_dir: Path, *args: str) -> int:
    return main(["--data-dir", str(data_dir), *args])


def _export(data_dir: Path, *args: str) -> Path:
    """Run an export in-process; returns the one new export file (not its manifest)."""
    before = set((data_dir / "exports").glob("*"))
    assert _main(data_dir, "export", *args) == 0
    new = [p for p in set((data_dir / "exports").glob("*")) - before if not p.name.endswith(".manifest.json")]
    assert len(new) == 1
    return new[0]


# --- erasure --------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["in_process", "subprocess"])
def test_erase_leaves_no_byte_of_the_participant(how, settings, store, capsys):
    data_dir = settings.data_dir
    canary, other = _canary(), _canary()
    a = _participant(store, USER_A, canary)
    b = _participant(store, USER_B, other, study="pilot")
    all_export = _export(data_dir, "--all", "--format", "jsonl")
    csv_export = _export(data_dir, "--all", "--format", "csv")
    b_only = _export(data_dir, "--study", "pilot", "--format", "jsonl")
    # A copy without a manifest (e.g. renamed by hand) is found by the session ids inside it.
    stray = data_dir / "exports" / "copy-for-stats.jsonl"
    stray.write_bytes(all_export.read_bytes())
    # An export written outside exports/ is found through its audit row.
    outside = data_dir.parent / "elsewhere" / "mine.csv"
    assert _main(data_dir, "export", "--all", "--format", "csv", "--out", str(outside)) == 0

    # Control: the canary really is in the database files and the exports before erasure,
    # so the assertions below can fail.
    db_files = _data_bytes(data_dir)
    assert canary.encode() in db_files["sessions.db"] + db_files.get("sessions.db-wal", b"")
    holding = {Path(n).name for n in _holding(data_dir, canary)}
    assert {all_export.name, csv_export.name, stray.name} <= holding
    assert canary.encode() in outside.read_bytes()
    assert b_only.name not in holding
    assert len(SessionStore(store).search(canary)) == 4
    capsys.readouterr()

    if how == "in_process":
        assert _main(data_dir, "erase", "--user", USER_A, "--yes") == 0
        output = capsys.readouterr().out
    else:
        result = _cli(data_dir, "erase", "--user", USER_A, "--yes")
        assert result.returncode == 0, result.stderr
        output = result.stdout

    assert _holding(data_dir, canary) == []
    assert not outside.exists()
    assert USER_A.encode() not in _data_bytes(data_dir)["sessions.db"]
    for path in (all_export, csv_export, stray):
        assert not path.exists() and f"removed {path}" in output
    assert b_only.exists() and f"removed {b_only}" not in output

    # Every row of A is gone; B is untouched and still searchable.
    sessions = SessionStore(store)
    for table, column, value in [("users", "id", a["user"]["id"]), ("consents", "user_id", a["user"]["id"]),
                                 ("sessions", "user_id", a["user"]["id"])]:
        assert store.db[table].count_where(f"{column} = ?", [value]) == 0
    for table in ("turns", "flags", "ratings", "drafts", "notes"):
        assert store.db[table].count_where(f"session_id IN ({','.join('?' * 2)})", a["session_ids"]) == 0
    for sid in b["session_ids"]:
        assert sessions.get(sid)["user_id"] == b["user"]["id"] and len(sessions.turns(sid)) == 2
    assert {r["session_id"] for r in sessions.search(other)} == set(b["session_ids"])
    assert sessions.search(canary) == []
    assert _counts(store) == {"users": 1, "consents": 1, "sessions": 2, "turns": 4, "flags": 2,
                              "ratings": 1, "drafts": 1, "notes": 1}

    tombstones = [r for r in store.db["audit"].rows_where("action = 'user.erased'")]
    assert len(tombstones) == 1 and tombstones[0]["target"] == a["user"]["id"]
    detail = json.loads(tombstones[0]["detail_json"])
    assert detail["sessions"] == 2 and detail["turns"] == 4 and detail["exports_removed"] == 4
    assert USER_A not in json.dumps(tombstones[0]) and canary not in json.dumps(tombstones[0])
    assert store.integrity_check() == "ok"
    store.db.execute("INSERT INTO turns_fts(turns_fts) VALUES ('integrity-check')")


def test_erase_keep_account_keeps_only_the_user_row(settings, store):
    canary = _canary()
    a = _participant(store, USER_A, canary)
    assert _main(settings.data_dir, "erase", "--user", USER_A, "--keep-account", "--yes") == 0
    assert UserStore(store).get(USER_A)["id"] == a["user"]["id"]
    assert store.db["sessions"].count == 0 and store.db["consents"].count == 0
    assert _holding(settings.data_dir, canary) == []


def test_erase_unknown_user_is_an_error_and_changes_nothing(settings, store, capsys):
    _participant(store, USER_A, _canary())
    export = _export(settings.data_dir, "--all", "--format", "jsonl")
    before = _counts(store)
    assert _main(settings.data_dir, "erase", "--user", "nobody", "--yes") == 2
    assert "No user 'nobody'" in capsys.readouterr().err
    assert _counts(store) == before and export.exists()
    assert store.db["audit"].count_where("action = 'user.erased'") == 0
    result = _cli(settings.data_dir, "erase", "--user", "nobody", "--yes")
    assert result.returncode == 2 and "No user" in result.stderr and "Traceback" not in result.stderr


def test_erase_asks_for_the_username_without_yes(settings, store):
    _participant(store, USER_A, _canary())
    before = _counts(store)
    wrong = _cli(settings.data_dir, "erase", "--user", USER_A, stdin="yes\n")
    assert wrong.returncode == 1 and "nothing was changed" in wrong.stderr
    assert _counts(store) == before
    right = _cli(settings.data_dir, "erase", "--user", USER_A, stdin=f"{USER_A}\n")
    assert right.returncode == 0, right.stderr
    assert store.db["sessions"].count == 0 and store.db["users"].count == 0


# --- export ---------------------------------------------------------------------------------

def test_export_jsonl_round_trip_without_usernames(settings, store, capsys):
    a = _participant(store, USER_A, "marker")
    no_account = SessionStore(store).create(modality="act", therapist_model="default", reasoning=False)
    SessionStore(store).add_turn(no_account["id"], TurnRecord("patient", "Hello"))
    path = _export(settings.data_dir, "--all", "--format", "jsonl")
    printed = capsys.readouterr().out
    assert str(path) in printed and "exported 3 sessions, 5 turns" in printed
    text = path.read_text(encoding="utf-8")
    assert USER_A not in text and a["user"]["id"] not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["id"] for r in records] == a["session_ids"] + [no_account["id"]]
    first = records[0]
    assert first["participant_id"] == "P-" + hashlib.sha256(a["user"]["id"].encode()).hexdigest()[:10]
    assert first["participant_id"] == participant_id({"user_id": a["user"]["id"]})
    assert records[1]["participant_id"] == first["participant_id"]  # stable across sessions
    assert records[2]["participant_id"] == no_account["course_id"]  # no account: the course
    assert [t["role"] for t in first["turns"]] == ["patient", "therapist"]
    assert first["turns"][1]["latency_ms"] == 120 and first["turns"][1]["ttft_ms"] == 40
    assert first["flags"][0]["status"] == "resolved" and first["flags"][0]["turn_idx"] == 0
    assert "detail_json" not in first["flags"][0] and first["summary"].startswith("Session Summary")
    manifest = json.loads(path.with_name(path.name + ".manifest.json").read_text())
    assert manifest["session_ids"] == [r["id"] for r in records] and manifest["user_ids"] == [a["user"]["id"]]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    audit = store.db["audit"].rows_where("action = 'data.export'")
    row = next(audit)
    assert row["target"] == str(path) and json.loads(row["detail_json"])["sessions"] == 3
    assert "marker" not in row["detail_json"]


def test_export_csv_round_trip(settings, store):
    a = _participant(store, USER_A, "marker")
    empty = SessionStore(store).create(modality="act", therapist_model="default", reasoning=False)
    path = _export(settings.data_dir, "--all", "--format", "csv")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5  # 2 sessions x 2 turns, plus one row for the session without turns
    assert {r["session_id"] for r in rows} == set(a["session_ids"]) | {empty["id"]}
    assert [r["turn_role"] for r in rows[:2]] == ["patient", "therapist"]
    assert rows[0]["modality"] == "cbt" and rows[0]["participant_id"].startswith("P-")
    assert json.loads(rows[0]["flags_json"])[0]["level"] == "low"
    assert rows[-1]["turn_content"] == "" and rows[-1]["session_id"] == empty["id"]
    assert USER_A not in path.read_text(encoding="utf-8")


def test_export_study_filter(settings, store):
    a = _participant(store, USER_A, "m1", study="pilot")
    b = _participant(store, USER_B, "m2")  # made in the Session tab: study NULL
    path = _export(settings.data_dir, "--study", "pilot", "--format", "jsonl")
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert ids == a["session_ids"]
    everything = _export(settings.data_dir, "--all", "--format", "jsonl")
    assert len(everything.read_text().splitlines()) == 4
    assert _main(settings.data_dir, "export", "--study", "nope", "--format", "csv") == 2
    assert set(b["session_ids"]).isdisjoint(ids)


def test_export_redact(settings, store, tmp_path):
    user = UserStore(store).add(USER_A, "long-enough-pw", "patient")
    sessions = SessionStore(store)
    sid = sessions.create(modality="cbt", therapist_model="default", reasoning=True, user_id=user["id"])["id"]
    said = ("Mail me at jo.doe@example.com or call 555-123-4567. "
            "My sister Maria said see www.example.org. On 2024-05-01 I slept 4 hours.")
    sessions.add_turn(sid, TurnRecord("patient", said, reasoning="Call +44 7700 900123 back"))
    sessions.end(sid, summary="Maria called from +1 (555) 123-4567")
    names = tmp_path / "names.txt"
    names.write_text(f"# study names\n{USER_A}: Maria\n", encoding="utf-8")
    path = _export(settings.data_dir, "--all", "--format", "jsonl", "--names", str(names))
    text = path.read_text()
    for leaked in ("jo.doe@example.com", "555-123-4567", "7700 900123", "www.example.org", "Maria"):
        assert leaked not in text
    record = json.loads(text)
    assert record["turns"][0]["content"] == ("Mail me at [EMAIL] or call [PHONE]. My sister [NAME] said see "
                                             "[URL]. On 2024-05-01 I slept 4 hours.")
    assert record["turns"][0]["reasoning"] == "Call [PHONE] back"
    assert record["summary"] == "[NAME] called from [PHONE]"
    assert json.loads(next(store.db["audit"].rows_where("action = 'data.export'"))["detail_json"])["redacted"]
    plain = _export(settings.data_dir, "--all", "--format", "csv", "--redact")
    assert "[EMAIL]" in plain.read_text() and "Maria" in plain.read_text()  # no names file: names kept


# --- redaction units ------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("write to jo.doe+x@mail.example.co.uk, thanks", "write to [EMAIL], thanks"),
    ("call +1 (555) 123-4567 now", "call [PHONE] now"),
    ("call 555-123-4567.", "call [PHONE]."),
    ("(555) 123-4567 or 555.123.4567", "[PHONE] or [PHONE]"),
    ("my mobile is 07700 900123", "my mobile is [PHONE]"),
    ("ring +44 20 7946 0958", "ring [PHONE]"),
    ("see https://example.org/a?b=1. Also www.foo.com/x), ok", "see [URL]. Also [URL]), ok"),
    ("call 555-123-4567 4 times", "call [PHONE] 4 times"),
])
def test_redact_patterns(text, expected):
    assert redact_patterns(text) == expected


@pytest.mark.parametrize("text", [
    "On 2024-05-01 at 10:30 I slept 4 hours",
    "from 01/05/2024 to 12.05.2024, 2019-2020",
    "I'm 34, weigh 70.5 kg, paid 1,500,000 and live in room 101",
    "the meeting is 9:00-17:30, ip 192.168.1.1, version 1.2.3",
    "2024-05-01 12:00:00",
])
def test_redact_leaves_dates_times_and_small_numbers(text):
    assert redact_patterns(text) == text


def test_redact_names_global_and_per_participant(tmp_path):
    names_file = tmp_path / "names.txt"
    names_file.write_text("# comment\n\nAnn\nMary Ann\npat01: Tom, Lee\npat02: Sam\n", encoding="utf-8")
    names = load_names(names_file)
    assert names.everywhere == ["Ann", "Mary Ann"]
    assert names.by_participant == {"pat01": ["Tom", "Lee"], "pat02": ["Sam"]}
    redact = Redactor(names)
    text = "ANN met Mary  Ann, Tom and Sam; Annual planning with Tommy, Samuel and Leeds."
    assert redact(text, "pat01") == ("[NAME] met [NAME], [NAME] and Sam; Annual planning with Tommy, "
                                     "Samuel and Leeds.")
    assert redact(text, "pat02") == ("[NAME] met [NAME], Tom and [NAME]; Annual planning with Tommy, "
                                     "Samuel and Leeds.")
    assert redact(text, None) == ("[NAME] met [NAME], Tom and Sam; Annual planning with Tommy, "
                                  "Samuel and Leeds.")
    assert redact(None) is None and redact("") == ""
    assert Redactor(NamesList(["Url", "Email"]))("mail a@b.org") == "mail [EMAIL]"  # placeholders stay


def test_erase_with_an_open_reader_says_so_and_compact_finishes(settings, store, monkeypatch, capsys):
    import sqlite3

    import store.db as store_db
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 200)  # do not wait 30 s for the reader
    canary = _canary()
    _participant(store, USER_A, canary)
    reader = sqlite3.connect(settings.db_path)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM turns").fetchone()  # holds a read snapshot, like a busy app
    try:
        code = _main(settings.data_dir, "erase", "--user", USER_A, "--yes")
        err = capsys.readouterr().err
        assert code == 3 and "python -m store compact" in err
        assert store.db["sessions"].count == 0  # the rows are gone; only the bytes may linger
    finally:
        reader.rollback()
        reader.close()
    assert _main(settings.data_dir, "compact") == 0
    assert _holding(settings.data_dir, canary) == []
