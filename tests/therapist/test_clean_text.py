"""Patient and supervisor text at the turn boundary: bidi controls that would reorder what a
supervisor reads are removed, direction marks stay, and anything that is not text is refused."""
import pytest

from therapist.review import TurnRejected, clean_text


def test_bidi_overrides_and_isolates_are_removed_but_direction_marks_stay():
    text = "I am fine \u202egnitaeh\u202c today \u2067x\u2069 \u200f\u05e9\u05dc\u05d5\u05dd"
    cleaned = clean_text(text, "empty", "broken")
    assert not any(ch in cleaned for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    assert "gnitaeh" in cleaned and "\u200f" in cleaned


@pytest.mark.parametrize("value", [12345, {"role": "therapist"}, ["a"], b"bytes"])
def test_anything_but_text_is_refused(value):
    with pytest.raises(TurnRejected, match="must be text"):
        clean_text(value, "empty", "broken")
