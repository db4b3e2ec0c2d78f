"""Typed specs: YAML files (and ``key=value`` overrides) that fill a dataclass config, strictly.

Training recipes, study files and job settings all load through here (``training/recipes.py``
names the training recipes' folder).

An unknown key is an error naming the key and the keys the method knows (a typo such as
``learning_rat`` must never be silently ignored), and each value is checked against the field's
type. ``overrides`` (``key=value`` strings from the command line or the Train tab) are applied on
top of the file.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class RecipeError(ValueError):
    pass


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check (and gently convert, for command-line strings) one value against its type hint."""
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is None:
        if type(None) in typing.get_args(hint):
            return None
        raise RecipeError(f"{name}: a value is required")
    if origin in (list, tuple):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise RecipeError(f"{name}: expected a list, got {value!r}")
        return [_coerce(name, v, args[0] if args else str) for v in items]
    if origin is typing.Union or (origin is not None and args):
        hint = args[0]
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise RecipeError(f"{name}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool):
            raise RecipeError(f"{name}: expected a number, got {value!r}")
        try:
            number = hint(value) if isinstance(value, str) else value
        except ValueError:
            raise RecipeError(f"{name}: expected {hint.__name__}, got {value!r}") from None
        if hint is int and (not isinstance(number, int) and not float(number).is_integer()):
            raise RecipeError(f"{name}: expected a whole number, got {value!r}")
        return hint(number)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise RecipeError(f"{name}: expected text, got {value!r}")
        return str(value)
    return value


def build_config(cls: type[T], values: dict[str, Any], where: str = "recipe") -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    checked = {k: _coerce(f"{where}: {k}", v, hints[k]) for k, v in values.items()}
    missing = [n for n, f in fields.items() if n not in checked and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RecipeError(f"{where}: missing required key(s) {', '.join(missing)}")
    return cls(**checked)


def load_recipe(cls: type[T], path: str | Path | None, overrides: list[str] | None = None,
                search_dir: Path | None = None) -> T:
    """The config from a YAML recipe (or none) plus ``key=value`` overrides; a bare file name that
    is not a file here is looked up in ``search_dir``."""
    values: dict[str, Any] = {}
    where = "overrides"
    if path:
        path = Path(path)
        if not path.is_file() and search_dir is not None and (search_dir / path).is_file():
            path = search_dir / path
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise RecipeError(f"{path}: cannot read the recipe: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise RecipeError(f"{path}: a recipe is a mapping of keys to values")
        values.update(loaded or {})
        where = str(path)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {item!r}: use key=value")
        values[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return build_config(cls, values, where)
