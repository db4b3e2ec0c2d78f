"""Rubrics as data: one YAML file per rating instrument drives the form, the judge and the scoring.

A rubric lives in ``eval/rubrics/<id>.yaml`` (shipped: ``ctrs``, ``ctrs-10``, ``act-fm``, ``tes``)
or in any directory passed as ``extra_dirs`` (by convention ``<data dir>/rubrics``, see
``user_rubrics_dir``): a file dropped there shows up wherever rubrics are listed. The file name
without ``.yaml`` is the rubric id. A file holds::

    id: my-scale                # optional; must equal the file name
    version: 1                  # positive integer; bump it when the meaning of a score changes
    name: ...                   # shown to raters
    description: ...
    modality: cbt | act | any   # optional, default any: which sessions it is meant for
    scale: {min: 0, max: 6, anchors: {0: {label: Poor, description: ...}, ...}}
    items:                      # numbered 1..N
      - {id: agenda, number: 1, title: ..., guidance: ..., part: I, anchors: {0: ..., 6: ...}}
    subscales:                  # optional; when present every item is in exactly one
      - {id: part_1, name: ..., items: [agenda, ...]}
    scoring:
      totals:                   # method sum | weighted_sum | mean, over items or subscales
        - {id: total, name: ..., method: sum, items: all, range: [0, 66]}
        - {id: c, name: ..., method: weighted_sum, weights: {part_1: 0.75, part_2: 1}, range: [..]}
      primary: total            # optional, default the first total
      thresholds:               # optional: a bool in score() per threshold
        - {id: competent, name: ..., total: total, at_least: 40}

Files are checked strictly on load (unknown keys, duplicate keys or ids, item numbers, subscale
membership, references in the scoring, anchors and declared ranges against the scale), and every
problem is a ``RubricError`` that names the file. A subscale's score is the sum of its items.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vocabulary import MODALITY_OR_ANY

RUBRICS_DIR = Path(__file__).resolve().parent / "rubrics"
METHODS = ("sum", "weighted_sum", "mean")
MODALITIES = MODALITY_OR_ANY
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# Keys score() always returns: a threshold with one of these ids would overwrite them.
_RESULT_KEYS = {"rubric", "version", "complete", "items", "subscales", "totals", "total", "problems"}


class RubricError(ValueError):
    """A rubric file is missing, unreadable or invalid; ``path`` names the file when there is one.

    From ``list_rubrics`` it stands for several files: ``errors`` holds one error per broken file.
    """

    def __init__(self, problem: str, path: Path | str | None = None, errors: Iterable[RubricError] = ()):
        self.problem = problem
        self.path = Path(path) if path is not None else None
        self.errors = list(errors)
        super().__init__(f"{path}: {problem}" if path is not None else problem)


@dataclass(frozen=True)
class Anchor:
    value: int
    label: str
    description: str = ""


@dataclass(frozen=True)
class RubricItem:
    id: str
    number: int
    title: str
    guidance: str
    anchors: dict[int, str] = field(default_factory=dict)  # item-specific descriptions, if any
    subscale: str | None = None
    part: str | None = None


@dataclass(frozen=True)
class Subscale:
    id: str
    name: str
    items: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Total:
    id: str
    name: str
    method: str
    parts: tuple[tuple[str, str, float], ...]  # (kind "item" | "subscale", id, weight)
    range: tuple[float, float]


@dataclass(frozen=True)
class Threshold:
    id: str
    name: str
    total: str
    at_least: float


@dataclass
class Rubric:
    id: str
    name: str
    version: int
    scale_min: int
    scale_max: int
    anchors: dict[int, Anchor]
    items: list[RubricItem]
    subscales: list[Subscale]
    description: str = ""
    modality: str = "any"
    totals: list[Total] = field(default_factory=list)
    primary: str = ""
    thresholds: list[Threshold] = field(default_factory=list)
    path: Path | None = None

    def item(self, item_id: str) -> RubricItem:
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(item_id)

    def validate_scores(self, scores: Mapping) -> tuple[dict[str, int], list[str]]:
        """Keep the valid item scores; list what is missing, out of range, not an integer or unknown.

        A value may be the score itself or the judge's ``{"score": .., "rationale": ..}`` object.
        ``None`` counts as missing (a form left blank). Integral floats such as ``4.0`` are accepted
        because JSON does not tell them apart from integers; booleans and strings are not.
        """
        if not isinstance(scores, Mapping):
            return {}, [f"scores must be a mapping of item id to score, not {type(scores).__name__}"]
        known = {it.id for it in self.items}
        valid: dict[str, int] = {}
        problems: list[str] = []
        for it in self.items:
            raw = scores.get(it.id)
            if isinstance(raw, Mapping):
                raw = raw.get("score")
            where = f"item {it.number} ({it.id})"
            if raw is None:
                problems.append(f"{where}: missing")
                continue
            value = _as_int(raw)
            if value is None:
                problems.append(f"{where}: {raw!r} is not an integer")
            elif not self.scale_min <= value <= self.scale_max:
                problems.append(f"{where}: {value} is outside {self.scale_min}-{self.scale_max}")
            else:
                valid[it.id] = value
        problems += [f"unknown item {key!r}" for key in scores if key not in known]
        return valid, problems

    def score(self, scores: Mapping) -> dict[str, Any]:
        """Subscales, totals and thresholds from item scores.

        Invalid scores are left out (and listed under ``problems``); a subscale or total that needs a
        left-out item is ``None``, as is a threshold on it, so an incomplete rating never looks like
        a low one. ``total`` is the primary total (for example the ACT-FM consistency total).
        """
        valid, problems = self.validate_scores(scores)
        subscales = {s.id: _sum_or_none([valid.get(i) for i in s.items]) for s in self.subscales}
        totals = {t.id: _combine(t, valid, subscales) for t in self.totals}
        result: dict[str, Any] = {
            "rubric": self.id, "version": self.version, "complete": len(valid) == len(self.items),
            "items": valid, "subscales": subscales, "totals": totals, "total": totals[self.primary],
            "problems": problems,
        }
        for th in self.thresholds:
            value = totals[th.total]
            result[th.id] = None if value is None else value >= th.at_least
        return result

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema a judge's answer must follow: every item, each with a rationale and a score."""
        def one(it: RubricItem) -> dict[str, Any]:
            return {
                "type": "object",
                "description": f"Item {it.number}: {it.title}",
                # Rationale first: decoders that follow property order (llama.cpp grammars) then
                # make the model give its reasons before it commits to a number.
                "properties": {
                    "rationale": {"type": "string"},
                    "score": {"type": "integer", "minimum": self.scale_min, "maximum": self.scale_max},
                },
                "required": ["rationale", "score"],
                "additionalProperties": False,
            }
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"{self.name} ratings",
            "type": "object",
            "properties": {it.id: one(it) for it in self.items},
            "required": [it.id for it in self.items],
            "additionalProperties": False,
        }

    def form_fields(self) -> list[dict[str, Any]]:
        """One entry per item with what a rating form shows: title, guidance, range and anchors.

        ``anchors`` lists every scale point with its label and the item's own description where the
        instrument has one (else the scale's); ``choices`` is ready for a radio group: (label, value).
        """
        fields = []
        for it in self.items:
            anchors = [{"value": v, "label": a.label, "description": it.anchors.get(v, a.description)}
                       for v, a in sorted(self.anchors.items())]
            labels = {a["value"]: a["label"] for a in anchors}
            fields.append({
                "id": it.id, "number": it.number, "title": it.title, "guidance": it.guidance,
                "min": self.scale_min, "max": self.scale_max, "part": it.part, "subscale": it.subscale,
                "anchors": anchors,
                "choices": [(f"{v} · {labels[v]}" if v in labels else str(v), v)
                            for v in range(self.scale_min, self.scale_max + 1)],
            })
        return fields


# ---------------------------------------------------------------------------------------------
# Finding and loading files


def user_rubrics_dir(data_dir: Path | str) -> Path:
    """Where a user's own rubric files go, by convention: ``<data dir>/rubrics``."""
    return Path(data_dir) / "rubrics"


def load_user_rubric(id_or_path: str | Path, data_dir: Path | str) -> Rubric:
    """``load_rubric`` that also looks in the data directory's own rubrics (what every command does)."""
    return load_rubric(id_or_path, [user_rubrics_dir(data_dir)])


def rubric_dirs(extra_dirs: Iterable[Path | str] = ()) -> list[Path]:
    return [RUBRICS_DIR, *(Path(d) for d in extra_dirs)]


def load_rubric(id_or_path: str | Path, extra_dirs: Iterable[Path | str] = ()) -> Rubric:
    """A rubric by id (shipped first, then ``extra_dirs`` in order) or by the path of its file."""
    text = str(id_or_path)
    if isinstance(id_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        return load_rubric_file(Path(id_or_path))
    dirs = rubric_dirs(extra_dirs)
    for d in dirs:
        path = d / f"{text}.yaml"
        if path.is_file():
            return load_rubric_file(path)
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise RubricError(f"unknown rubric {text!r}; available: {', '.join(known) or 'none'}")


def scan_rubrics(extra_dirs: Iterable[Path | str] = ()) -> tuple[list[Rubric], list[RubricError]]:
    """Every rubric that loads, and one error per file that does not (for a UI that shows both)."""
    rubrics: dict[str, Rubric] = {}
    errors: list[RubricError] = []
    for d in rubric_dirs(extra_dirs):
        if not d.is_dir():  # a user dir that was never created simply holds no rubrics
            continue
        for path in sorted(d.glob("*.yaml")):
            try:
                rubric = load_rubric_file(path)
            except RubricError as exc:
                errors.append(exc)
                continue
            if rubric.id in rubrics:  # the shipped file wins: a copy must get a new id
                errors.append(RubricError(f"rubric id {rubric.id!r} is already defined by "
                                          f"{rubrics[rubric.id].path}", path))
                continue
            rubrics[rubric.id] = rubric
    return list(rubrics.values()), errors


def list_rubrics(extra_dirs: Iterable[Path | str] = ()) -> list[Rubric]:
    """Every rubric, shipped and user; raises ``RubricError`` naming each broken file and why."""
    rubrics, errors = scan_rubrics(extra_dirs)
    if errors:
        raise RubricError("broken rubric files:\n" + "\n".join(f"  {e}" for e in errors), errors=errors)
    return rubrics


def load_rubric_file(path: Path) -> Rubric:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(f"cannot read: {exc}", path) from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RubricError(f"invalid YAML: {_yaml_problem(exc)}", path) from exc
    return _parse(data, path)


# ---------------------------------------------------------------------------------------------
# Strict parsing. Each helper raises _Invalid(problem); _parse adds the file name once.


class _Invalid(Exception):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: plain YAML keeps the last one without a word."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable key: let SafeLoader report it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def _parse(data: Any, path: Path) -> Rubric:
    try:
        return _build(data, path)
    except _Invalid as exc:
        raise RubricError(str(exc), path) from None


_TOP = {"id", "version", "name", "description", "modality", "scale", "items", "subscales", "scoring"}


def _build(data: Any, path: Path) -> Rubric:
    if data is None:
        raise _Invalid("the file is empty")
    top = _mapping(data, "the file", _TOP, required=("version", "name", "description", "scale",
                                                    "items", "scoring"))
    rubric_id = path.stem
    if not _ID.match(rubric_id):
        raise _Invalid(f"file name {path.name!r} is not a valid rubric id (lower case, digits, - and _)")
    if top.get("id", rubric_id) != rubric_id:
        raise _Invalid(f"id {top['id']!r} does not match the file name {path.name!r}")
    version = top["version"]
    if not _is_int(version) or version < 1:
        raise _Invalid(f"version must be a positive integer, not {version!r}")
    modality = top.get("modality", "any")
    if modality not in MODALITIES:
        raise _Invalid(f"modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
    lo, hi, anchors = _parse_scale(top["scale"])
    items = _parse_items(top["items"], lo, hi)
    subscales = _parse_subscales(top.get("subscales") or [], items)
    membership = {i: s.id for s in subscales for i in s.items}
    items = [RubricItem(it.id, it.number, it.title, it.guidance, it.anchors, membership.get(it.id), it.part)
             for it in items]
    totals, primary, thresholds = _parse_scoring(top["scoring"], items, subscales, lo, hi)
    return Rubric(id=rubric_id, name=_text(top["name"], "name"), version=version, scale_min=lo,
                  scale_max=hi, anchors=anchors, items=items, subscales=subscales,
                  description=_text(top["description"], "description"), modality=modality,
                  totals=totals, primary=primary, thresholds=thresholds, path=path)


def _parse_scale(raw: Any) -> tuple[int, int, dict[int, Anchor]]:
    scale = _mapping(raw, "scale", {"min", "max", "anchors"}, required=("min", "max", "anchors"))
    lo, hi = scale["min"], scale["max"]
    if not (_is_int(lo) and _is_int(hi)):
        raise _Invalid(f"scale min and max must be integers, not {lo!r} and {hi!r}")
    if lo >= hi:
        raise _Invalid(f"scale min {lo} must be below max {hi}")
    anchors = {}
    for value, spec in _anchor_map(scale["anchors"], "scale anchors", lo, hi).items():
        entry = _mapping(spec, f"scale anchor {value}", {"label", "description"}, required=("label",))
        anchors[value] = Anchor(value, _text(entry["label"], f"scale anchor {value} label"),
                                _text(entry.get("description", ""), f"scale anchor {value}", empty=True))
    return lo, hi, anchors


_ITEM_KEYS = {"id", "number", "title", "guidance", "anchors", "part"}


def _parse_items(raw: Any, lo: int, hi: int) -> list[RubricItem]:
    if not isinstance(raw, list) or not raw:
        raise _Invalid("items must be a non-empty list")
    items: list[RubricItem] = []
    ids: set[str] = set()
    numbers: set[int] = set()
    for pos, spec in enumerate(raw, 1):
        entry = _mapping(spec, f"item #{pos}", _ITEM_KEYS, required=("id", "number", "title", "guidance"))
        item_id, number = _ident(entry["id"], f"item #{pos} id"), entry["number"]
        where = f"item {item_id!r}"
        if item_id in ids:
            raise _Invalid(f"duplicate item id {item_id!r}")
        if not _is_int(number) or number < 1:
            raise _Invalid(f"{where}: number must be a positive integer, not {number!r}")
        if number in numbers:
            raise _Invalid(f"{where}: duplicate item number {number}")
        anchors = {v: _text(d, f"{where} anchor {v}")
                   for v, d in _anchor_map(entry.get("anchors") or {}, f"{where} anchors", lo, hi).items()}
        part = entry.get("part")
        items.append(RubricItem(item_id, number, _text(entry["title"], f"{where} title"),
                                _text(entry["guidance"], f"{where} guidance"), anchors,
                                part=None if part is None else _text(part, f"{where} part")))
        ids.add(item_id)
        numbers.add(number)
    if numbers != set(range(1, len(items) + 1)):  # forms and reports list items by their number
        raise _Invalid(f"item numbers must run 1..{len(items)}, got {sorted(numbers)}")
    return sorted(items, key=lambda it: it.number)


def _parse_subscales(raw: Any, items: list[RubricItem]) -> list[Subscale]:
    if not isinstance(raw, list):
        raise _Invalid("subscales must be a list")
    item_ids = {it.id for it in items}
    subscales: list[Subscale] = []
    owner: dict[str, str] = {}
    for pos, spec in enumerate(raw, 1):
        entry = _mapping(spec, f"subscale #{pos}", {"id", "name", "description", "items"},
                         required=("id", "name", "items"))
        sub_id = _ident(entry["id"], f"subscale #{pos} id")
        if sub_id in item_ids or any(s.id == sub_id for s in subscales):
            # totals name items and subscales in one namespace (weights), so ids must not clash
            raise _Invalid(f"duplicate subscale id {sub_id!r} (subscale ids must differ from each other "
                           "and from item ids)")
        members = entry["items"]
        if not isinstance(members, list) or not members:
            raise _Invalid(f"subscale {sub_id!r}: items must be a non-empty list of item ids")
        for m in members:
            if not isinstance(m, str) or m not in item_ids:
                raise _Invalid(f"subscale {sub_id!r} refers to unknown item {m!r}")
            if m in owner:
                raise _Invalid(f"item {m!r} is in both subscale {owner[m]!r} and {sub_id!r}")
            owner[m] = sub_id
        subscales.append(Subscale(sub_id, _text(entry["name"], f"subscale {sub_id!r} name"), tuple(members),
                                  _text(entry.get("description", ""), f"subscale {sub_id!r}", empty=True)))
    orphans = [it.id for it in items if it.id not in owner]
    if subscales and orphans:
        raise _Invalid(f"items in no subscale: {', '.join(orphans)}")
    return subscales


def _parse_scoring(raw: Any, items: list[RubricItem], subscales: list[Subscale], lo: int,
                   hi: int) -> tuple[list[Total], str, list[Threshold]]:
    scoring = _mapping(raw, "scoring", {"totals", "primary", "thresholds"}, required=("totals",))
    ranges = {("item", it.id): (lo, hi) for it in items}
    ranges.update({("subscale", s.id): (lo * len(s.items), hi * len(s.items)) for s in subscales})
    specs = scoring["totals"]
    if not isinstance(specs, list) or not specs:
        raise _Invalid("scoring totals must be a non-empty list")
    totals: list[Total] = []
    for pos, spec in enumerate(specs, 1):
        total = _parse_total(spec, pos, items, subscales, ranges)
        if any(t.id == total.id for t in totals):
            raise _Invalid(f"duplicate total id {total.id!r}")
        totals.append(total)
    by_id = {t.id: t for t in totals}
    primary = scoring.get("primary", totals[0].id)
    if not isinstance(primary, str) or primary not in by_id:
        raise _Invalid(f"scoring primary {primary!r} is not a total ({', '.join(by_id)})")
    thresholds = []
    raw_thresholds = scoring.get("thresholds") or []
    if not isinstance(raw_thresholds, list):
        raise _Invalid("scoring thresholds must be a list")
    for pos, spec in enumerate(raw_thresholds, 1):
        entry = _mapping(spec, f"threshold #{pos}", {"id", "name", "total", "at_least"},
                         required=("id", "name", "total", "at_least"))
        th_id = _ident(entry["id"], f"threshold #{pos} id")
        if th_id in _RESULT_KEYS or any(t.id == th_id for t in thresholds):
            raise _Invalid(f"threshold id {th_id!r} is taken")
        if not isinstance(entry["total"], str) or entry["total"] not in by_id:
            raise _Invalid(f"threshold {th_id!r} refers to unknown total {entry['total']!r}")
        t_lo, t_hi = by_id[entry["total"]].range
        at_least = entry["at_least"]
        if not _is_number(at_least) or not t_lo < at_least <= t_hi:
            raise _Invalid(f"threshold {th_id!r}: at_least {at_least!r} must lie in ({t_lo}, {t_hi}]")
        thresholds.append(Threshold(th_id, _text(entry["name"], f"threshold {th_id!r} name"),
                                    entry["total"], at_least))
    return totals, primary, thresholds


def _parse_total(spec: Any, pos: int, items: list[RubricItem], subscales: list[Subscale],
                 ranges: dict[tuple[str, str], tuple[float, float]]) -> Total:
    entry = _mapping(spec, f"total #{pos}", {"id", "name", "method", "items", "subscales", "weights", "range"},
                     required=("id", "name", "method", "range"))
    total_id = _ident(entry["id"], f"total #{pos} id")
    where = f"total {total_id!r}"
    method = entry["method"]
    if method not in METHODS:
        raise _Invalid(f"{where}: method must be one of {', '.join(METHODS)}, not {method!r}")
    sources = [k for k in ("items", "subscales", "weights") if k in entry]
    wanted = ["weights"] if method == "weighted_sum" else ["items", "subscales"]
    if len(sources) != 1 or sources[0] not in wanted:
        raise _Invalid(f"{where}: method {method} takes exactly one of {' or '.join(wanted)}")
    parts = _total_parts(entry, sources[0], where, items, subscales)
    return Total(total_id, _text(entry["name"], f"{where} name"), method, parts,
                 _checked_range(entry["range"], method, parts, ranges, where))


def _total_parts(entry: dict, source: str, where: str, items: list[RubricItem],
                 subscales: list[Subscale]) -> tuple[tuple[str, str, float], ...]:
    item_ids = {it.id for it in items}
    sub_ids = {s.id for s in subscales}
    if source == "weights":
        if not isinstance(entry["weights"], dict) or not entry["weights"]:
            raise _Invalid(f"{where}: weights must be a non-empty mapping of item or subscale id to weight")
        pairs, kinds = list(entry["weights"].items()), ("item", "subscale")
    else:
        names = [it.id for it in items] if entry[source] == "all" else entry[source]
        if not isinstance(names, list) or not names:
            raise _Invalid(f"{where}: {source} must be a non-empty list of ids" +
                           (" or all" if source == "items" else ""))
        pairs, kinds = [(n, 1) for n in names], (source[:-1],)
    parts: list[tuple[str, str, float]] = []
    for name, weight in pairs:
        kind = None if not isinstance(name, str) else \
            "item" if name in item_ids else "subscale" if name in sub_ids else None
        if kind not in kinds:
            raise _Invalid(f"{where} refers to unknown {' or '.join(kinds)} {name!r}")
        if any(p[1] == name for p in parts):
            raise _Invalid(f"{where} lists {name!r} twice")
        if not _is_number(weight) or weight <= 0:
            raise _Invalid(f"{where}: weight of {name!r} must be a positive number, not {weight!r}")
        parts.append((kind, name, weight))
    return tuple(parts)


def _checked_range(raw: Any, method: str, parts, ranges, where: str) -> tuple[float, float]:
    """The declared range must be what the parts can produce: it catches a wrong weight or item list."""
    if not (isinstance(raw, list) and len(raw) == 2 and all(_is_number(x) for x in raw)):
        raise _Invalid(f"{where}: range must be [min, max], not {raw!r}")
    lows = [w * ranges[(kind, name)][0] for kind, name, w in parts]
    highs = [w * ranges[(kind, name)][1] for kind, name, w in parts]
    if method == "mean":
        expected = (sum(lows) / len(parts), sum(highs) / len(parts))
    else:
        expected = (sum(lows), sum(highs))
    if not all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(raw, expected)):
        raise _Invalid(f"{where}: declared range {raw} does not match the range its parts give "
                       f"[{_fmt(expected[0])}, {_fmt(expected[1])}]")
    return (raw[0], raw[1])


# ---------------------------------------------------------------------------------------------
# Small shared helpers


def _mapping(raw: Any, where: str, allowed: set[str], required: Iterable[str] = ()) -> dict:
    if not isinstance(raw, dict):
        raise _Invalid(f"{where} must be a mapping, not {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:  # a misspelt key would otherwise be ignored without a word
        raise _Invalid(f"{where}: unknown key(s) {', '.join(unknown)}")
    missing = [k for k in required if k not in raw]
    if missing:
        raise _Invalid(f"{where}: missing {', '.join(missing)}")
    return raw


def _anchor_map(raw: Any, where: str, lo: int, hi: int) -> dict[int, Any]:
    if not isinstance(raw, dict):
        raise _Invalid(f"{where} must be a mapping of score to text")
    for value in raw:
        if not _is_int(value):
            raise _Invalid(f"{where}: {value!r} is not an integer score")
        if not lo <= value <= hi:
            raise _Invalid(f"{where}: anchor {value} is outside the scale {lo}-{hi}")
    return dict(sorted(raw.items()))


def _text(raw: Any, where: str, empty: bool = False) -> str:
    if not isinstance(raw, str) or not (empty or raw.strip()):
        raise _Invalid(f"{where} must be {'' if empty else 'non-empty '}text, not {raw!r}")
    return raw.strip()


def _ident(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not _ID.match(raw):
        raise _Invalid(f"{where} {raw!r} is not a valid id (lower case letters, digits, - and _)")
    return raw


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _as_int(raw: Any) -> int | None:
    """An integer score, or None: bools are ints to Python but never a score."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        return int(raw)
    return None


def _sum_or_none(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(values)


def _combine(total: Total, items: dict[str, int], subscales: dict[str, int | None]) -> float | int | None:
    values = [(items.get(name) if kind == "item" else subscales.get(name), w) for kind, name, w in total.parts]
    if any(v is None for v, _ in values):
        return None
    if total.method == "mean":
        return sum(v for v, _ in values) / len(values)
    weighted = sum(v * w for v, w in values)
    # plain sums of integer scores stay integers; weighted sums may be fractional
    return float(weighted) if total.method == "weighted_sum" else weighted


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
