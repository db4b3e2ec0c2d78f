"""The optional teacher step from the command line, with the real embedded model as teacher."""
from __future__ import annotations

from patient_sim.__main__ import main
from patient_sim.personas import persona_store
from store.db import Store


def test_teacher_writes_profiles_for_sampled_personas_and_saves_them(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "personas", "--sample", "1", "--seed", "5",
                 "--teacher", "default", "--save"]) == 0
    assert "saved 1" in capsys.readouterr().out
    store = Store(tmp_path / "sessions.db")
    taught = persona_store(store).list(source="teacher")
    store.close()
    assert len(taught) == 1 and taught[0].id.startswith("tch-")
    assert len(taught[0].profile["written_profile"].split()) >= 20


def test_unknown_teacher_is_a_clear_error(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "personas", "--sample", "1", "--teacher", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
