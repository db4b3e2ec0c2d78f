"""Issue 19 (9): a compact rating form (a scale shared by every item is shown once), judges'
rationales beside their scores, totals rounded."""
from __future__ import annotations

import pytest

from eval.ratings import side_by_side
from eval.rubrics import list_rubrics
from ui.review_tab import ReviewHandlers, _anchors


@pytest.mark.parametrize("rubric", list_rubrics([]), ids=lambda r: r.id)
def test_a_shared_scale_is_a_legend_and_item_guidance_stays(rubric):
    about, _comment, *updates = ReviewHandlers._form("S1", rubric, [], "dr")
    fields = rubric.form_fields()
    shown = [u for u in updates if u.get("visible")]
    assert len(shown) == len(fields)
    lines = {_anchors(f) for f in fields}
    if len(lines) == 1 and next(iter(lines)):
        assert f"**Scale for every item:** {next(iter(lines))}" in about
        assert all("[" not in u["info"] for u in shown)  # not repeated under each item
    else:
        assert any("[" in u["info"] for u in shown)
    assert all(u["info"].startswith(f["guidance"]) for u, f in zip(shown, fields))


def test_a_judges_rationale_sits_beside_its_score():
    rubric = list_rubrics([])[0]
    first, second = rubric.items[0].id, rubric.items[1].id
    rating = {"rubric_id": rubric.id, "rater_kind": "judge", "rater_id": "j", "status": "ok", "judge_run_id": "R1",
              "created_utc": "2026", "scores": {first: 2, second: 1}, "totals": {},
              "detail": {"rationales": {first: "Named the value\nclearly.", second: "x" * 300}}}
    human = {**rating, "rater_kind": "human", "rater_id": "dr", "detail": {"rationales": {first: "no"}}}
    headers, rows = side_by_side([rating, human], rubric)
    assert headers[1] == "dr (human)"
    assert rows[0][1] == 2 and rows[0][2] == "2 · Named the value clearly."
    assert rows[1][2].startswith("1 · xxx") and rows[1][2].endswith("…") and len(rows[1][2]) < 170
