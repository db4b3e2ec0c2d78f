"""Human ratings: validate a rater's scores against the rubric, score them, store them; and the
side-by-side view of every human and judge rating of one session.

A human rating must cover every item (a half-filled form is refused with the list of what is
missing, and nothing is stored); the comment is optional. Saving again as the same rater on the
same session and rubric edits that rater's rating.
"""
from __future__ import annotations

from eval.rubrics import Rubric
from store.ratings import RatingStore

COMMENT_MAX_CHARS = 4000


class RatingInvalid(ValueError):
    pass


def rate_session(ratings: RatingStore, rubric: Rubric, session_id: str, rater_id: str, scores: dict,
                 comment: str | None = None) -> dict:
    """Store (or update) ``rater_id``'s rating; raises RatingInvalid listing every problem."""
    if not rater_id:
        raise RatingInvalid("a rating needs a rater")
    valid, problems = rubric.validate_scores(scores or {})
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX_CHARS:
        problems.append(f"the comment is {len(comment)} characters; the limit is {COMMENT_MAX_CHARS}")
    if problems:
        raise RatingInvalid("Not saved: " + "; ".join(problems))
    result = rubric.score(valid)
    return ratings.save(session_id=session_id, rater_id=rater_id, rater_kind="human", rubric_id=rubric.id,
                        rubric_version=rubric.version, scores=valid, totals=result["totals"],
                        total=result["total"], status="ok", comment=comment or None)


def side_by_side(ratings: list[dict], rubric: Rubric) -> tuple[list[str], list[list]]:
    """(headers, rows): one column per rating (humans first), one row per item, then the totals."""
    ratings = sorted((r for r in ratings if r["rubric_id"] == rubric.id),
                     key=lambda r: (r["rater_kind"] != "human", r["created_utc"]))
    headers = ["Item"] + [_label(r) for r in ratings]
    rows = [[f"{it.number}. {it.title}"] + [_cell(r, it.id) for r in ratings] for it in rubric.items]
    for total in rubric.totals:
        rows.append([total.name] + [_fmt((r.get("totals") or {}).get(total.id)) for r in ratings])
    return headers, rows


def _cell(rating: dict, item_id: str):
    """An item's score; a judge's comes with its rationale (stored, and shown here to be checked)."""
    score = rating["scores"].get(item_id, "-")
    why = ((rating.get("detail") or {}).get("rationales") or {}).get(item_id) if rating["rater_kind"] == "judge" else None
    if not why or not isinstance(why, str):
        return score
    why = " ".join(why.split())
    return f"{score} · {why[:157] + '…' if len(why) > 160 else why}"


def _label(rating: dict) -> str:
    if rating["rater_kind"] == "human":
        return f"{rating['rater_id']} (human)"
    return f"{rating['rater_id']} (judge, {rating['status']}, run {(rating['judge_run_id'] or '')[-6:]})"


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
