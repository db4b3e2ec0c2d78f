"""Transcript import: the text format, per-file errors, all-or-nothing storage, --skip-bad,
idempotent re-import, the audit row, full-text search and the CLI pieces."""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import types
from pathlib import Path

import pytest

from eval.transcripts import (ImportSummary, TranscriptFormatError, TranscriptImportError, add_import_parser,
                              import_command, import_transcripts, parse_transcript, read_transcript)
from store.audit import AuditLog
from store.db import Store
from store.sessions import SessionStore

DATA = Path(__file__).parent / "data" / "transcripts"
GOOD = "Patient: I feel stuck.\n\nTherapist: Tell me more about stuck.\n"


@pytest.fixture
def db(tmp_path):
    store = Store(tmp_path / "s.db")
    yield store
    store.close()


def count(store: Store, table: str) -> int:
    return store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def write(folder: Path, name: str, text: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def run(store: Store, path, study="s1", variant="published", **kw) -> ImportSummary:
    return import_transcripts(store, AuditLog(store), path, study, variant, **kw)


# --- parsing ---------------------------------------------------------------------------------

def test_thinking_blocks_attach_to_the_next_therapist_turn():
    turns = read_transcript(DATA / "act_thinking.txt").turns
    assert [t.role for t in turns] == ["patient", "therapist"] * 4
    assert turns[1].reasoning.startswith("The patient is fused with a hopeless prediction.")
    assert turns[3].reasoning.startswith("Values are showing up")
    assert [i for i, t in enumerate(turns) if t.reasoning] == [1, 3]
    assert turns[1].content.startswith("That sounds really heavy") and "Thinking" not in turns[1].content
    assert turns[0].line == 1 and turns[1].line == 5  # the label's line, after the Thinking block


def test_think_tags_aliases_bold_labels_and_paragraphs():
    turns = read_transcript(DATA / "act_think_tags.txt").turns
    assert [t.role for t in turns] == ["patient", "therapist"] * 2 + ["patient"]
    assert turns[1].reasoning.startswith("Experiential avoidance")
    assert turns[1].content == ("It makes sense that you'd want to avoid that tight feeling. "
                                "I'm curious what staying quiet has cost you at work.")
    assert turns[2].content.endswith("can't get them out.\n\nI lie awake afterwards going over what I "
                                     "should have said.")
    assert turns[3].reasoning == ("Two paragraphs from the client: a value (contributing ideas) and rumination "
                                  "afterwards.\n\nOffer willingness as an alternative to control.")
    assert turns[3].content.startswith("So there's a part of you") and "\n\nWhat if the goal" in turns[3].content
    assert not any("<think>" in t.content or "**" in t.content for t in turns)


def test_upper_case_labels_without_reasoning():
    turns = read_transcript(DATA / "cbt_plain.txt").turns
    assert len(turns) == 9 and turns[-1].role == "patient" and not any(t.reasoning for t in turns)
    assert turns[0].content == "I failed my driving test again yesterday. I'm just useless at everything."


@pytest.mark.parametrize("label, role", [
    ("Patient:", "patient"), ("client:", "patient"), ("**Client:**", "patient"), ("__Patient__:", "patient"),
    ("THERAPIST:", "therapist"), ("Counselor:", "therapist"), ("**Counsellor**:", "therapist"),
    ("  **Therapist :**", "therapist"),
])
def test_label_spellings(label, role):
    other = "Therapist: ok." if role == "patient" else "Patient: ok."
    turns = parse_transcript(f"{other}\n\n{label} Hello there.\n")
    assert (turns[1].role, turns[1].content) == (role, "Hello there.")


def test_a_label_on_any_line_starts_a_turn_and_unknown_labels_stay_in_the_turn():
    text = ("Patient: **Really** bad week.\nTherapist: no blank line before me\n\nNarrator: a pause\n\n"
            "Therapist:\nOn the next line.\n\nPatient Thinking: not a label\n")
    turns = parse_transcript(text)
    assert [t.role for t in turns] == ["patient", "therapist", "therapist"]
    assert turns[0].content == "**Really** bad week."
    assert turns[1].content == "no blank line before me\n\nNarrator: a pause" and turns[1].line == 2
    assert turns[2].content == "On the next line.\n\nPatient Thinking: not a label"


def test_thinking_block_and_think_tags_combine_and_crlf_bom_are_fine():
    text = "\ufeffPatient: hi\r\n\r\nTherapist Thinking: plan A\r\n\r\nTherapist: <think>plan B</think>Hello.\r\n"
    turns = parse_transcript(text)
    assert turns[1].reasoning == "plan A\n\nplan B" and turns[1].content == "Hello."


# --- per-file errors -------------------------------------------------------------------------

BAD = [
    ("latin1.txt", "Patient: caf\xe9\n\nTherapist: ok\n".encode("latin-1"), "not UTF-8", 1),
    ("late_latin1.txt", b"Patient: hi\n\nTherapist: na\xefve\n", "not UTF-8", 3),
    ("empty.txt", "\n  \n", "empty", None),
    ("preamble.txt", "Session 3 transcript\n\n" + GOOD, "text before the first speaker label", 1),
    ("no_patient.txt", "Therapist: hello\n\nCounselor: anyone?\n", "no Patient turn", None),
    ("no_therapist.txt", "Patient: hello\n\nClient: anyone?\n", "no Therapist turn", None),
    ("empty_turn.txt", GOOD + "\nPatient:\n\n**Therapist:**  \n", "turn has no text", 5),
    ("only_think.txt", "Patient: hi\n\nTherapist: <think>hmm</think>\n", "therapist turn has no text", 3),
    ("thinking_at_end.txt", GOOD + "\nTherapist Thinking: wrap up\n", "not followed by a Therapist turn", 5),
    ("thinking_then_patient.txt", "Patient: a\n\nTherapist Thinking: x\n\nPatient: b\n\nTherapist: c\n",
     "not followed by a Therapist turn", 3),
    ("empty_thinking.txt", "Patient: a\n\nTherapist Thinking:\n\nTherapist: c\n", "Thinking:' has no text", 3),
    ("unclosed.txt", "Patient: a\n\nTherapist: fine\n\nPatient: b\n\nTherapist: Hm.\n\nLet me <think>see\n",
     "unclosed <think>", 9),
    ("stray.txt", "Patient: a\n\nTherapist: <think>x</think>ok\nthen</think>\n", "</think> without <think>", 4),
]


@pytest.mark.parametrize("name, content, problem, line", BAD, ids=[b[0] for b in BAD])
def test_each_bad_file_is_refused_with_its_name_and_line(db, tmp_path, name, content, problem, line):
    path = write(tmp_path / "in", name, content)
    with pytest.raises(TranscriptImportError) as err:
        run(db, path)
    message = str(err.value)
    assert f"{name}: " in message and problem in message
    if line is not None:
        assert f"line {line}:" in message
    else:
        assert "line " not in message
    assert count(db, "sessions") == count(db, "turns") == count(db, "audit") == 0


def test_format_error_carries_the_line():
    with pytest.raises(TranscriptFormatError) as err:
        parse_transcript("Patient: a\n\nTherapist: b\n\n\n\nTherapist Thinking: c\n")
    assert err.value.line == 7 and str(err.value).startswith("line 7: ")


# --- storage ---------------------------------------------------------------------------------

def test_one_bad_file_stores_nothing_and_every_bad_file_is_listed(db, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(DATA, folder)
    write(folder, "b_empty.txt", "")
    write(folder, "z_preamble.txt", "Hello\n\n" + GOOD)
    with pytest.raises(TranscriptImportError) as err:
        run(db, folder)
    message = str(err.value)
    assert "2 bad" in message and "b_empty.txt: the file is empty" in message
    assert "z_preamble.txt: line 1: text before" in message and "act_thinking.txt" not in message
    assert count(db, "sessions") == count(db, "turns") == count(db, "audit") == 0


def test_a_failure_while_writing_leaves_nothing(db, tmp_path):
    class BrokenAudit(AuditLog):
        def record(self, *args, **kw):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        import_transcripts(db, BrokenAudit(db), DATA, "s1", "published")
    assert count(db, "sessions") == count(db, "turns") == count(db, "audit") == 0


def test_skip_bad_imports_the_good_files_and_reports_the_bad(db, tmp_path):
    folder = tmp_path / "in"
    write(folder, "a.txt", GOOD)
    write(folder, "b.txt", "Patient: only me\n")
    summary = run(db, folder, skip_bad=True)
    assert [name for name, _, _ in summary.imported] == ["a.txt"] and summary.skipped == []
    assert summary.bad == [("b.txt", "no Therapist turn")]
    assert count(db, "sessions") == 1 and count(db, "turns") == 2
    assert summary.line() == "imported 1 transcripts (2 turns), skipped 0 already imported, 1 bad"


def test_sessions_and_turns_are_stored_as_ended_imports(db):
    summary = run(db, DATA, study="pub", variant="gpt-x", modality="cbt")
    assert [(f, n) for f, _, n in summary.imported] == [
        ("act_think_tags.txt", 5), ("act_thinking.txt", 8), ("cbt_plain.txt", 9)]
    sessions = SessionStore(db)
    by_file = {f: sessions.get(sid) for f, sid, _ in summary.imported}
    row = by_file["act_thinking.txt"]
    sha = hashlib.sha256((DATA / "act_thinking.txt").read_bytes()).hexdigest()
    assert (row["status"], row["modality"], row["therapist_model"], row["study"], row["variant"]) == (
        "ended", "cbt", "imported:gpt-x", "pub", "gpt-x")
    assert (row["simulated"], row["user_id"], row["course_id"], row["course_index"]) == (0, None, row["id"], 1)
    assert row["sim_key"] == f"import:{sha}" and row["ended_utc"]
    assert json.loads(row["meta_json"]) == {"source": "import", "file": "act_thinking.txt", "sha256": sha}
    assert [by_file[f]["reasoning"] for f in sorted(by_file)] == [1, 1, 0]
    turns = sessions.turns(row["id"])
    assert [t["idx"] for t in turns] == list(range(8))
    assert [t["role"] for t in turns] == ["patient", "therapist"] * 4
    assert turns[1]["model_id"] == "imported:gpt-x" and turns[0]["model_id"] is None
    assert json.loads(turns[1]["meta_json"]) == {"line": 5} and all(t["created_utc"] for t in turns)
    assert turns[3]["reasoning"].startswith("Values are showing up") and turns[2]["reasoning"] is None


def test_reimport_skips_files_already_in_the_study(db, tmp_path):
    run(db, DATA)
    counts = (count(db, "sessions"), count(db, "turns"))
    again = run(db, DATA)
    assert again.imported == [] and again.skipped == ["act_think_tags.txt", "act_thinking.txt", "cbt_plain.txt"]
    assert (count(db, "sessions"), count(db, "turns")) == counts == (3, 22)
    other_study = run(db, DATA / "cbt_plain.txt", study="s2")
    assert len(other_study.imported) == 1 and count(db, "sessions") == 4


def test_identical_files_in_one_batch_are_stored_once(db, tmp_path):
    folder = tmp_path / "in"
    write(folder, "a.txt", GOOD)
    write(folder, "copy_of_a.txt", GOOD)
    summary = run(db, folder)
    assert len(summary.imported) == 1 and summary.skipped == ["copy_of_a.txt"] and count(db, "sessions") == 1


def test_one_audit_row_per_import(db, tmp_path):
    folder = tmp_path / "in"
    write(folder, "a.txt", GOOD)
    write(folder, "b.txt", "")
    run(db, folder, actor="alice", skip_bad=True)
    run(db, folder, actor="alice", skip_bad=True)
    rows = AuditLog(db).recent(action="transcripts.import")
    assert len(rows) == 2 and rows[0]["actor"] == "alice" and rows[0]["target"] is None
    assert json.loads(rows[0]["detail_json"]) == {"study": "s1", "variant": "published",
                                                  "imported": 0, "skipped": 1, "bad": 1}
    assert json.loads(rows[1]["detail_json"])["imported"] == 1


def test_imported_turns_are_searchable(db):
    run(db, DATA)
    sessions = SessionStore(db)
    hits = sessions.search("bookshelf")
    assert len(hits) == 1 and "bookshelf" in hits[0]["content"]
    assert len(sessions.search("rumination")) == 1  # a word only in <think> reasoning


def test_directory_picks_txt_and_md_but_not_readme_or_others(db, tmp_path):
    folder = tmp_path / "in"
    write(folder, "one.md", GOOD)
    write(folder, "two.TXT", GOOD.replace("stuck", "lost"))
    write(folder, "README.md", "How these transcripts were made.\n")
    write(folder, "notes.json", "{}")
    write(folder, ".hidden.txt", "junk")
    summary = run(db, folder)
    assert [name for name, _, _ in summary.imported] == ["one.md", "two.TXT"]


def test_missing_path_empty_folder_and_bad_options(db, tmp_path):
    with pytest.raises(TranscriptImportError, match="nowhere: no such file or directory"):
        run(db, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TranscriptImportError, match="no transcript files"):
        run(db, tmp_path / "empty")
    with pytest.raises(TranscriptImportError, match="modality"):
        run(db, DATA, modality="dbt")
    with pytest.raises(TranscriptImportError, match="study"):
        run(db, DATA, study=" ")
    assert count(db, "sessions") == count(db, "audit") == 0


# --- CLI -------------------------------------------------------------------------------------

def parse_cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m eval")
    add_import_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_imports_and_prints_the_summary(db, capsys):
    args = parse_cli(["import-transcripts", str(DATA), "--study", "pub", "--variant", "v1"])
    assert (args.modality, args.skip_bad) == ("act", False)
    ctx = types.SimpleNamespace(store=db, settings=None)
    assert import_command(args, ctx) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "imported 3 transcripts (22 turns), skipped 0 already imported, 0 bad" and err == ""
    assert {r["modality"] for r in db.db["sessions"].rows} == {"act"}
    assert AuditLog(db).recent()[0]["actor"] == "cli"


def test_cli_skip_bad_lists_bad_files_on_stderr(db, tmp_path, capsys):
    folder = tmp_path / "in"
    write(folder, "a.txt", GOOD)
    write(folder, "b.txt", "Therapist: hello?\n")
    args = parse_cli(["import-transcripts", str(folder), "--study", "pub", "--variant", "v1",
                      "--modality", "cbt", "--skip-bad"])
    assert import_command(args, types.SimpleNamespace(store=db, settings=None)) == 0
    out, err = capsys.readouterr()
    assert "imported 1 transcripts" in out and err.strip() == "bad file skipped: b.txt: no Patient turn"


def test_cli_requires_study_and_variant_and_refuses_bad_files(db, tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_cli(["import-transcripts", str(DATA), "--study", "pub"])
    with pytest.raises(SystemExit):
        parse_cli(["import-transcripts", str(DATA), "--study", "pub", "--variant", "v", "--modality", "dbt"])
    bad = write(tmp_path / "in", "b.txt", "")
    args = parse_cli(["import-transcripts", str(bad), "--study", "pub", "--variant", "v1"])
    with pytest.raises(TranscriptImportError, match="b.txt: the file is empty"):
        import_command(args, types.SimpleNamespace(store=db, settings=None))
    assert count(db, "sessions") == 0
