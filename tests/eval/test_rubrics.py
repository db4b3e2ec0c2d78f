"""Rubrics as data (eval/rubrics.py, eval/rubrics/*.yaml): loading, strict checks, scoring, schema, forms."""
from __future__ import annotations

import json

import pytest
import yaml

from eval.rubrics import RUBRICS_DIR, Rubric, RubricError, list_rubrics, load_rubric, scan_rubrics

SHIPPED = {"ctrs": (11, 0, 6), "ctrs-10": (11, 1, 10), "act-fm": (25, 0, 3), "tes": (9, 1, 7)}


def _by_number(rubric: Rubric, numbers: list[int]) -> dict[str, int]:
    """Item scores given in item order (item 1 first), keyed by item id."""
    assert len(numbers) == len(rubric.items)
    return {it.id: n for it, n in zip(rubric.items, numbers)}


def _minimal() -> dict:
    """A small valid rubric written for these tests."""
    return {
        "version": 1, "name": "Test scale", "description": "Two parts, four items.",
        "scale": {"min": 1, "max": 5, "anchors": {1: {"label": "Low"}, 5: {"label": "High"}}},
        "items": [{"id": f"q{n}", "number": n, "title": f"Question {n}", "guidance": "Look for it."}
                  for n in range(1, 5)],
        "subscales": [{"id": "first", "name": "First", "items": ["q1", "q2"]},
                      {"id": "second", "name": "Second", "items": ["q3", "q4"]}],
        "scoring": {"totals": [{"id": "total", "name": "Total", "method": "sum", "items": "all",
                                "range": [4, 20]}]},
    }


def _write(directory, data, name="my-scale.yaml"):
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _schema_errors(schema: dict, value, where: str = "$") -> list[str]:
    """The few JSON-schema keywords json_schema() uses, checked by hand (jsonschema is not installed)."""
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        errors = [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            errors += [f"{where}: extra {k}" for k in value if k not in props]
        for k, sub in props.items():
            if k in value:
                errors += _schema_errors(sub, value[k], f"{where}.{k}")
        return errors
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: not an integer"]
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            return [f"{where}: out of range"]
        return []
    if kind == "string":
        return [] if isinstance(value, str) else [f"{where}: not a string"]
    raise AssertionError(f"unexpected schema type {kind!r}")


# ---------------------------------------------------------------------------------------------
# The shipped rubrics


@pytest.mark.parametrize("rubric_id", sorted(SHIPPED))
def test_shipped_rubrics_load(rubric_id):
    n_items, lo, hi = SHIPPED[rubric_id]
    r = load_rubric(rubric_id)
    assert (r.id, len(r.items), r.scale_min, r.scale_max) == (rubric_id, n_items, lo, hi)
    assert [it.number for it in r.items] == list(range(1, n_items + 1))
    assert sorted(r.anchors) == list(range(lo, hi + 1))  # every point of the scale has a label
    assert r.version >= 1 and r.name and r.description
    assert all(it.title and it.guidance for it in r.items)
    head = (RUBRICS_DIR / f"{rubric_id}.yaml").read_text(encoding="utf-8")[:800]
    assert "written for TheraLab" in head


def test_list_rubrics_has_the_four():
    assert {r.id for r in list_rubrics()} >= set(SHIPPED)


def test_load_by_path_and_unknown_id():
    assert load_rubric(RUBRICS_DIR / "tes.yaml").id == "tes"
    assert load_rubric(str(RUBRICS_DIR / "tes.yaml")).id == "tes"
    with pytest.raises(RubricError, match="unknown rubric 'nope'.*ctrs"):
        load_rubric("nope")


def test_ctrs_parts_and_competence_line():
    r = load_rubric("ctrs")
    parts = {s.id: [r.item(i).number for i in s.items] for s in r.subscales}
    assert parts == {"part_1": [1, 2, 3, 4, 5, 6], "part_2": [7, 8, 9, 10, 11]}
    assert {it.part for it in r.items[:6]} == {"I"} and {it.part for it in r.items[6:]} == {"II"}
    assert [it.title for it in r.items][:2] == ["Agenda", "Feedback"]
    assert r.items[-1].title == "Homework"
    assert all(sorted(it.anchors) == [0, 2, 4, 6] for it in r.items)
    assert [(t.id, t.range) for t in r.totals] == [("total", (0, 66))]

    below = r.score(_by_number(r, [4, 4, 4, 4, 4, 4, 4, 4, 3, 2, 2]))
    assert below["total"] == 39 and below["competent"] is False and below["complete"] is True
    assert below["subscales"] == {"part_1": 24, "part_2": 15}
    at_line = r.score(_by_number(r, [4, 4, 4, 4, 4, 4, 4, 4, 3, 2, 3]))
    assert at_line["total"] == 40 and at_line["competent"] is True
    assert r.score(_by_number(r, [6] * 11))["totals"] == {"total": 66}
    assert r.score(_by_number(r, [0] * 11))["totals"] == {"total": 0}


def test_ctrs10_word_scale_and_total_range():
    r = load_rubric("ctrs-10")
    assert r.anchors[1].label == "Severely Deficient" and r.anchors[10].label == "Outstanding"
    assert len({a.label for a in r.anchors.values()}) == 10
    assert [(t.id, t.range) for t in r.totals] == [("total", (11, 110))]
    assert r.score(_by_number(r, [1] * 11))["total"] == 11
    assert r.score(_by_number(r, [10] * 11))["total"] == 110
    mixed = r.score(_by_number(r, [7, 8, 6, 5, 9, 4, 6, 7, 3, 10, 2]))
    assert mixed["total"] == 67 and mixed["subscales"] == {"part_1": 39, "part_2": 28}
    assert "competent" not in mixed  # the study defines no competence line on this scale


def test_ctrs10_items_mirror_ctrs():
    ctrs, ten = load_rubric("ctrs"), load_rubric("ctrs-10")
    key = lambda it: (it.id, it.number, it.title, it.guidance, it.part, it.subscale)  # noqa: E731
    assert [key(it) for it in ten.items] == [key(it) for it in ctrs.items]
    for a, b in zip(ctrs.items, ten.items):  # anchors moved by 1 + 1.5 x: 0, 2, 4, 6 -> 1, 4, 7, 10
        assert {int(1 + 1.5 * v): text for v, text in a.anchors.items()} == b.anchors


def test_act_fm_subscales_follow_the_reference():
    r = load_rubric("act-fm")
    numbers = {s.id: [r.item(i).number for i in s.items] for s in r.subscales}
    assert numbers == {
        "stance_consistent": [1, 2, 3, 4], "stance_inconsistent": [5, 6, 7],
        "open_consistent": [8, 9, 10], "open_inconsistent": [11, 12, 13],
        "aware_consistent": [14, 15, 16], "aware_inconsistent": [17, 18, 19],
        "engaged_consistent": [20, 21, 22], "engaged_inconsistent": [23, 24, 25],
    }
    assert all(it.subscale and it.part in {"stance", "open", "aware", "engaged"} for it in r.items)
    assert [a.label for a in r.anchors.values()] == ["Never", "Rarely", "Sometimes", "Consistently"]
    assert {t.id: t.range for t in r.totals} == {"consistency": (0, 36), "inconsistency": (0, 36)}


def test_act_fm_scoring_by_hand():
    r = load_rubric("act-fm")
    scores = _by_number(r, [3, 2, 2, 1,  1, 0, 0,    # stance: consistent 8, inconsistent 1
                            2, 3, 1,  0, 1, 0,       # open: 6, 1
                            2, 2, 2,  0, 0, 1,       # aware: 6, 1
                            3, 3, 2,  0, 2, 0])      # engaged: 8, 2
    out = r.score(scores)
    assert out["subscales"] == {"stance_consistent": 8, "stance_inconsistent": 1, "open_consistent": 6,
                                "open_inconsistent": 1, "aware_consistent": 6, "aware_inconsistent": 1,
                                "engaged_consistent": 8, "engaged_inconsistent": 2}
    # 8 x 3/4 + 6 + 6 + 8 = 26; 1 + 1 + 1 + 2 = 5
    assert out["totals"] == {"consistency": pytest.approx(26.0), "inconsistency": 5}
    assert out["total"] == pytest.approx(26.0) and out["complete"] and out["problems"] == []

    only_stance = r.score(_by_number(r, [2, 1, 1, 1] + [0] * 21))  # 5 x 3/4
    assert only_stance["totals"]["consistency"] == pytest.approx(3.75)
    top = r.score(_by_number(r, [3] * 25))
    assert top["totals"] == {"consistency": pytest.approx(36.0), "inconsistency": 36}


def test_tes_mean():
    r = load_rubric("tes")
    assert r.subscales == [] and all(it.subscale is None for it in r.items)
    assert r.score(_by_number(r, [5, 6, 4, 7, 5, 3, 6, 5, 4]))["total"] == pytest.approx(5.0)
    out = r.score(_by_number(r, [5, 6, 4, 7, 5, 3, 6, 5, 5]))
    assert out["totals"] == {"mean": pytest.approx(46 / 9)}
    assert r.score(_by_number(r, [1] * 9))["total"] == pytest.approx(1.0)


def test_incomplete_scores_give_no_totals():
    r = load_rubric("ctrs")
    scores = _by_number(r, [6] * 11)
    del scores["homework"]
    out = r.score(scores)
    assert out["complete"] is False and out["total"] is None and out["competent"] is None
    assert out["subscales"] == {"part_1": 36, "part_2": None}
    assert out["problems"] == ["item 11 (homework): missing"]


# ---------------------------------------------------------------------------------------------
# validate_scores


def test_validate_scores_reports_each_kind_of_problem():
    r = load_rubric("ctrs")
    scores = _by_number(r, [3] * 11)
    scores.update(agenda=7, feedback=-1, understanding=3.5, interpersonal="4", collaboration=True,
                  extra_item=2)
    del scores["homework"]
    valid, problems = r.validate_scores(scores)
    assert set(valid) == {"pacing", "guided_discovery", "key_cognitions", "strategy", "techniques"}
    assert problems == [
        "item 1 (agenda): 7 is outside 0-6",
        "item 2 (feedback): -1 is outside 0-6",
        "item 3 (understanding): 3.5 is not an integer",
        "item 4 (interpersonal): '4' is not an integer",
        "item 5 (collaboration): True is not an integer",
        "item 11 (homework): missing",
        "unknown item 'extra_item'",
    ]


def test_validate_scores_accepts_judge_objects_and_integral_floats():
    r = load_rubric("tes")
    scores = {it.id: {"score": 4, "rationale": "steady"} for it in r.items}
    scores["concern"] = 6.0
    scores["warmth"] = None  # a blank form field
    valid, problems = r.validate_scores(scores)
    assert valid["concern"] == 6 and isinstance(valid["concern"], int)
    assert problems == ["item 4 (warmth): missing"]
    assert r.validate_scores([1, 2])[1] == ["scores must be a mapping of item id to score, not list"]


# ---------------------------------------------------------------------------------------------
# json_schema and form_fields


@pytest.mark.parametrize("rubric_id", sorted(SHIPPED))
def test_json_schema_accepts_valid_and_rejects_invalid(rubric_id):
    r = load_rubric(rubric_id)
    schema = json.loads(json.dumps(r.json_schema()))  # plain JSON, as a backend receives it
    assert schema["required"] == [it.id for it in r.items] and schema["additionalProperties"] is False
    good = {it.id: {"score": r.scale_max, "rationale": "seen throughout"} for it in r.items}
    assert _schema_errors(schema, good) == []
    first = r.items[0].id

    def broken(**change):
        bad = json.loads(json.dumps(good))
        for key, value in change.items():
            if key == "drop":
                del bad[value]
            elif key == "extra":
                bad[value] = {"score": r.scale_min, "rationale": ""}
            else:
                bad[first][key] = value
        return _schema_errors(schema, bad)

    assert broken(drop=first) == [f"$: missing {first}"]
    assert broken(extra="made_up") == ["$: extra made_up"]
    assert broken(score=r.scale_max + 1) == [f"$.{first}.score: out of range"]
    assert broken(score=r.scale_min - 1) == [f"$.{first}.score: out of range"]
    assert broken(score="3") == [f"$.{first}.score: not an integer"]
    assert broken(score=True) == [f"$.{first}.score: not an integer"]
    assert broken(rationale=7) == [f"$.{first}.rationale: not a string"]
    assert broken(note="x") == [f"$.{first}: extra note"]
    del good[first]["rationale"]
    assert _schema_errors(schema, good) == [f"$.{first}: missing rationale"]


def test_form_fields():
    r = load_rubric("ctrs")
    fields = r.form_fields()
    assert [f["id"] for f in fields] == [it.id for it in r.items]
    agenda = fields[0]
    assert (agenda["number"], agenda["title"], agenda["min"], agenda["max"]) == (1, "Agenda", 0, 6)
    assert agenda["guidance"] == r.items[0].guidance and agenda["subscale"] == "part_1"
    assert [a["value"] for a in agenda["anchors"]] == list(range(7))
    assert agenda["anchors"][2]["label"] == "Mediocre"
    assert agenda["anchors"][2]["description"] == r.items[0].anchors[2]  # the item's own anchor
    assert agenda["anchors"][3]["description"] == r.anchors[3].description  # else the scale's
    assert agenda["choices"][0] == ("0 · Poor", 0) and len(agenda["choices"]) == 7
    assert len(load_rubric("act-fm").form_fields()) == 25


# ---------------------------------------------------------------------------------------------
# User rubrics and broken files


def test_user_rubric_appears_everywhere(tmp_path):
    path = _write(tmp_path, _minimal())
    ids = [r.id for r in list_rubrics([tmp_path])]
    assert "my-scale" in ids and set(SHIPPED) <= set(ids)
    r = load_rubric("my-scale", extra_dirs=[tmp_path])
    assert r.path == path and len(r.items) == 4
    assert r.score({"q1": 5, "q2": 4, "q3": 1, "q4": 2})["subscales"] == {"first": 9, "second": 3}
    assert list_rubrics([tmp_path / "not-made-yet"])  # a missing user dir holds no rubrics
    with pytest.raises(RubricError, match="unknown rubric"):
        load_rubric("my-scale")


def _broken(tmp_path, change) -> RubricError:
    data = _minimal()
    change(data)
    path = _write(tmp_path, data)
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    assert info.value.path == path and str(path) in str(info.value)
    return info.value


def _dup_item(d):
    d["items"][1]["id"] = "q1"


def _sub_missing_item(d):
    d["subscales"][1]["items"] = ["q3", "q9"]


def _scale_anchor_out(d):
    d["scale"]["anchors"][6] = {"label": "Beyond"}


def _item_anchor_out(d):
    d["items"][0]["anchors"] = {0: "too low"}


def _item_in_two(d):
    d["subscales"][1]["items"] = ["q2", "q3", "q4"]


def _item_in_none(d):
    d["subscales"][1]["items"] = ["q3"]


def _total_missing_subscale(d):
    d["scoring"]["totals"][0] = {"id": "total", "name": "T", "method": "sum", "subscales": ["first", "third"],
                                 "range": [4, 20]}


def _wrong_range(d):
    d["scoring"]["totals"][0]["range"] = [0, 20]


def _unknown_key(d):
    d["items"][0]["guidence"] = "typo"


def _id_mismatch(d):
    d["id"] = "other"


def _dup_number(d):
    d["items"][3]["number"] = 3


def _threshold_missing_total(d):
    d["scoring"]["thresholds"] = [{"id": "passed", "name": "P", "total": "sum", "at_least": 10}]


@pytest.mark.parametrize("change,problem", [
    (_dup_item, "duplicate item id 'q1'"),
    (_sub_missing_item, "subscale 'second' refers to unknown item 'q9'"),
    (_scale_anchor_out, "anchor 6 is outside the scale 1-5"),
    (_item_anchor_out, "item 'q1' anchors: anchor 0 is outside the scale 1-5"),
    (_item_in_two, "item 'q2' is in both subscale 'first' and 'second'"),
    (_item_in_none, "items in no subscale: q4"),
    (_total_missing_subscale, "total 'total' refers to unknown subscale 'third'"),
    (_wrong_range, "declared range [0, 20] does not match the range its parts give [4, 20]"),
    (_unknown_key, "unknown key(s) guidence"),
    (_id_mismatch, "id 'other' does not match the file name 'my-scale.yaml'"),
    (_dup_number, "duplicate item number 3"),
    (_threshold_missing_total, "threshold 'passed' refers to unknown total 'sum'"),
])
def test_broken_rubric_names_file_and_problem(tmp_path, change, problem):
    assert problem in _broken(tmp_path, change).problem


def test_invalid_yaml_and_duplicate_keys(tmp_path):
    bad = _write(tmp_path, "version: 1\nname: [unclosed\n", "bad-yaml.yaml")
    with pytest.raises(RubricError, match=r"bad-yaml\.yaml: invalid YAML"):
        load_rubric(bad)
    text = yaml.safe_dump(_minimal(), sort_keys=False).replace("version: 1\n", "version: 1\nversion: 2\n")
    dup = _write(tmp_path, text, "dup-key.yaml")
    with pytest.raises(RubricError, match=r"dup-key\.yaml: invalid YAML: duplicate key 'version' \(line 2"):
        load_rubric(dup)


def test_weighted_total_in_user_rubric(tmp_path):
    data = _minimal()
    data["scoring"]["totals"].append({"id": "weighted", "name": "W", "method": "weighted_sum",
                                      "weights": {"first": 0.5, "q3": 2}, "range": [3, 15]})
    data["scoring"]["thresholds"] = [{"id": "passed", "name": "P", "total": "weighted", "at_least": 10}]
    r = load_rubric(_write(tmp_path, data))
    out = r.score({"q1": 5, "q2": 3, "q3": 2, "q4": 1})
    assert out["totals"] == {"total": 11, "weighted": pytest.approx(8.0)} and out["passed"] is False


def test_list_rubrics_reports_broken_user_files(tmp_path):
    _write(tmp_path, _minimal())
    broken = _write(tmp_path, "items: [", "broken.yaml")
    shadow = _write(tmp_path, yaml.safe_dump(_minimal()), "tes.yaml")
    with pytest.raises(RubricError) as info:
        list_rubrics([tmp_path])
    assert str(broken) in str(info.value) and "invalid YAML" in str(info.value)
    assert str(shadow) in str(info.value) and "rubric id 'tes' is already defined" in str(info.value)
    assert [e.path for e in info.value.errors] == [broken, shadow]
    rubrics, errors = scan_rubrics([tmp_path])  # the lenient view a UI can show beside a warning
    assert "my-scale" in {r.id for r in rubrics} and {e.path for e in errors} == {broken, shadow}
